"""Where an SDP may send media, whatever the engine: ``[media] max_streams`` and ``forbidden_targets``.

An SDP names the addresses the relay (ours or rtpengine) will send media to. One naming the SBC
itself, a multicast group or the unspecified network would turn the relay against us or others,
and one with very many m= lines would take many ports at once: both get 488 (issue 15). The call
layer (`sbc.calls.media.CallMedia`) checks every SDP here before any port is charged or bound.

The forbidden networks are asked about several times per SDP (each stream's RTP and RTCP address,
here and in the built-in relay), so they are kept as `Networks`: sorted integer ranges searched by
bisection. ``netaddr.IPSet`` answers the same question by hashing a network object for every
prefix length (33 of them for IPv4), which cost more than all the relay's sockets (issue 19).
"""

from __future__ import annotations

import ipaddress
from bisect import bisect_right
from functools import lru_cache

from netaddr import IPSet

from sbc.addresses import unbracket
from sbc.interfaces import NotAcceptableError
from sbc.sip.sdp import SessionDescription

# Hosts seen lately, parsed: SDPs name the same few gateways and phones again and again, and
# ipaddress parses in Python (several times per SDP). Bounded in entries, and in each entry's
# size: a peer chooses the host text (a hostname is legal, of any length), so only text that can
# be an IP address is cached (`unmapped` refuses longer text before the cache).
ADDRESS_CACHE = 4096
# The longest text that can be an IP address: a bracketed IPv6 address with an embedded IPv4
# address (47 characters) and a scope id (``%`` and an interface name of up to 15).
MAX_ADDRESS_TEXT = 64


def unmapped(host: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address ``host`` names; an IPv4-mapped IPv6 one (``::ffff:10.0.0.53``) as the IPv4
    address it reaches, so that it cannot slip past an IPv4 network; None for a hostname."""
    if host is None or len(host) > MAX_ADDRESS_TEXT:
        return None  # no IP address is that long: a hostname, never cached
    return _parse(host)


@lru_cache(maxsize=ADDRESS_CACHE)
def _parse(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """`unmapped` for text short enough to cache."""
    try:
        ip = ipaddress.ip_address(unbracket(host))
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


class Networks:
    """The addresses of an ``IPSet``, as sorted disjoint ranges of integers per IP version.

    Built once per configuration (the set is read as it is then); `contains` is a bisection of a
    short list, with no object made per question.
    """

    __slots__ = ("_ends", "_starts", "empty")

    def __init__(self, networks: IPSet | None = None) -> None:
        starts: dict[int, list[int]] = {4: [], 6: []}
        ends: dict[int, list[int]] = {4: [], 6: []}
        for block in networks.iter_ipranges() if networks is not None else ():
            starts[block.version].append(block.first)  # iter_ipranges: sorted, merged, v4 first
            ends[block.version].append(block.last)
        self._starts = starts
        self._ends = ends
        self.empty = not (starts[4] or starts[6])

    def contains(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        """Whether ``ip`` lies in one of the networks (an IPv4-mapped IPv6 address is judged as IPv6:
        callers pass `unmapped` addresses)."""
        value = int(ip)
        starts = self._starts[ip.version]
        index = bisect_right(starts, value) - 1
        return index >= 0 and value <= self._ends[ip.version][index]

    def __bool__(self) -> bool:
        return not self.empty

    def __repr__(self) -> str:
        count = len(self._starts[4]) + len(self._starts[6])
        return f"<Networks: {count} ranges>"


def networksOf(forbidden: IPSet | Networks | None) -> Networks:
    """``forbidden`` as `Networks`: as it is, or converted (a caller that asks often converts once)."""
    if isinstance(forbidden, Networks):
        return forbidden
    return _NOWHERE if forbidden is None else Networks(forbidden)


_NOWHERE = Networks()


def relayedStreams(sdp: SessionDescription) -> set[int]:
    """The m= lines a relay holds ports for: those not rejected (port 0) nor over TCP."""
    return {
        index
        for index, media in enumerate(sdp.media)
        if media.port != 0 and not media.proto.upper().startswith("TCP")
    }


def checkTargets(sdp: SessionDescription, forbidden: IPSet | Networks | None, maxStreams: int | None) -> None:
    """Raise `NotAcceptableError` for more than ``maxStreams`` m= lines, or for a relayed stream
    whose RTP (``c=``) or RTCP (RFC 3605 ``a=rtcp``) address is in ``forbidden``.

    The unspecified address is hold (RFC 2543), not a target: it passes.
    """
    if maxStreams is not None and len(sdp.media) > maxStreams:
        raise NotAcceptableError(f"{len(sdp.media)} media streams, at most {maxStreams} allowed")
    if not forbidden:
        return
    networks = networksOf(forbidden)
    for index in relayedStreams(sdp):
        media = sdp.media[index]
        hosts = [sdp.connectionAddress(media)]
        rtcp = (media.attribute("rtcp") or "").split()
        if len(rtcp) == 4:
            hosts.append(rtcp[3])
        for host in hosts:
            ip = unmapped(host)
            if ip is not None and not ip.is_unspecified and networks.contains(ip):
                raise NotAcceptableError(f"media to {ip} is forbidden")


__all__ = ["Networks", "checkTargets", "networksOf", "relayedStreams", "unmapped"]
