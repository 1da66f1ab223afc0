"""Where an SDP may send media, whatever the engine: ``[media] max_streams`` and ``forbidden_targets``.

An SDP names the addresses the relay (ours or rtpengine) will send media to. One naming the SBC
itself, a multicast group or the unspecified network would turn the relay against us or others,
and one with very many m= lines would take many ports at once: both get 488 (issue 15). The call
layer (`sbc.calls.media.CallMedia`) checks every SDP here before any port is charged or bound.
"""

from __future__ import annotations

import ipaddress

from netaddr import IPSet

from sbc.addresses import unbracket
from sbc.interfaces import NotAcceptableError
from sbc.sip.sdp import SessionDescription


def unmapped(host: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address ``host`` names; an IPv4-mapped IPv6 one (``::ffff:10.0.0.53``) as the IPv4
    address it reaches, so that it cannot slip past an IPv4 network; None for a hostname."""
    if host is None:
        return None
    try:
        ip = ipaddress.ip_address(unbracket(host))
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def relayedStreams(sdp: SessionDescription) -> set[int]:
    """The m= lines a relay holds ports for: those not rejected (port 0) nor over TCP."""
    return {
        index
        for index, media in enumerate(sdp.media)
        if media.port != 0 and not media.proto.upper().startswith("TCP")
    }


def checkTargets(sdp: SessionDescription, forbidden: IPSet | None, maxStreams: int | None) -> None:
    """Raise `NotAcceptableError` for more than ``maxStreams`` m= lines, or for a relayed stream
    whose RTP (``c=``) or RTCP (RFC 3605 ``a=rtcp``) address is in ``forbidden``.

    The unspecified address is hold (RFC 2543), not a target: it passes.
    """
    if maxStreams is not None and len(sdp.media) > maxStreams:
        raise NotAcceptableError(f"{len(sdp.media)} media streams, at most {maxStreams} allowed")
    if not forbidden:
        return
    for index in relayedStreams(sdp):
        media = sdp.media[index]
        hosts = [sdp.connectionAddress(media)]
        rtcp = (media.attribute("rtcp") or "").split()
        if len(rtcp) == 4:
            hosts.append(rtcp[3])
        for host in hosts:
            ip = unmapped(host)
            if ip is not None and not ip.is_unspecified and str(ip) in forbidden:
                raise NotAcceptableError(f"media to {ip} is forbidden")


__all__ = ["checkTargets", "relayedStreams", "unmapped"]
