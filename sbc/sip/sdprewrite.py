"""SDP rewritten for the other side (RFC 3264): our address and ports, allowed codecs, the o= version."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import replace

from sbc.sip.sdp import (
    AUXILIARY_ENCODINGS,
    Attribute,
    Connection,
    Media,
    MediaLine,
    Origin,
    SessionDescription,
    SessionLine,
    fieldsOf,
)
from sbc.sip.uri import isDigits

_PER_FORMAT = frozenset({"rtpmap", "fmtp", "rtcp-fb"})
_ICE = frozenset({"candidate", "remote-candidates", "end-of-candidates"})


def _isICE(key: str) -> bool:
    return key in _ICE or key.startswith("ice-")


def _rtcp(attribute: Attribute, oldPort: int, newPort: int, ours: Connection) -> Attribute | None:
    """Rewrite ``a=rtcp:PORT [IN IP4 addr]`` (RFC 3605) for a stream moved from oldPort to newPort.

    An RTCP port equal to the old RTP port (RFC 5761 mux fallback) follows the RTP port; any other
    becomes newPort + 1, where a relay puts RTCP. A malformed value, or a stream that ends up
    rejected, loses the line rather than leak the peer's ports; so does an RTCP port past 65535.
    """
    fields = fieldsOf(attribute.value or "")
    if newPort == 0 or len(fields) not in (1, 4) or not isDigits(fields[0]) or len(fields[0]) > 5:
        return None
    port = int(fields[0])
    if newPort != oldPort:
        port = newPort if port == oldPort else newPort + 1
    if port > 65535:
        return None
    value = str(port)
    if len(fields) == 4:
        value += f" {ours.nettype} {ours.addrtype} {ours.address}"
    return replace(attribute, value=value)


def rewrite(
    sdp: SessionDescription,
    address: str,
    ports: Sequence[int | None],
    *,
    stripICE: bool = True,
) -> SessionDescription:
    """Anchor a description on the SBC: our address and relay ports replace the peer's.

    ``address`` (IPv4 or IPv6, brackets allowed) goes into ``o=`` and into every session- and
    media-level ``c=``, with the matching ``IN IP4``/``IN IP6``. A ``c=`` that held the null address
    (RFC 2543 hold) gets the null address of our family, so hold still reads as hold. ``ports``
    gives one entry per ``m=`` line: None leaves the port alone, and a stream that was rejected
    (port 0) stays rejected whatever the entry says. A ``/count`` suffix on ``m=`` is kept.
    ``a=rtcp`` follows the new port (see `_rtcp`). With ``stripICE``, every ICE attribute goes
    (``a=candidate``, ``a=ice-*``, ``a=end-of-candidates``, ``a=remote-candidates``), since the
    peer's candidates would point around the relay. Everything else is kept as is, including
    direction attributes, rtpmap and fmtp.

    The session version is not touched here: pass the result through `bumpVersion`.
    Raises ValueError when ``address`` is not an IP address or ``ports`` does not match the
    ``m=`` lines (caller bugs, not peer input).
    """
    if address.startswith("[") and address.endswith("]"):
        address = address[1:-1]
    family = ipaddress.ip_address(address).version
    if len(ports) != len(sdp.media):
        raise ValueError(f"{len(ports)} ports for {len(sdp.media)} media sections")
    addrtype = "IP6" if family == 6 else "IP4"
    ours = Connection("IN", addrtype, address)
    null = Connection("IN", addrtype, "::" if family == 6 else "0.0.0.0")

    def keep(line: SessionLine) -> bool:
        return not (stripICE and isinstance(line, Attribute) and _isICE(line.key))

    sessionLines: list[SessionLine] = []
    for line in sdp.lines:
        if isinstance(line, Origin):
            sessionLines.append(replace(line, nettype="IN", addrtype=addrtype, address=address))
        elif isinstance(line, Connection):
            sessionLines.append(null if line.isNull else ours)
        elif keep(line):
            sessionLines.append(line)

    media: list[Media] = []
    for section, port in zip(sdp.media, ports, strict=True):
        newPort = section.port
        if port is not None and section.port != 0:
            if not 0 <= port <= 65535:
                raise ValueError(f"port {port} out of range")
            newPort = port
        lines: list[MediaLine] = []
        for line in section.lines:
            if isinstance(line, Connection):
                lines.append(null if line.isNull else ours)
            elif isinstance(line, Attribute) and line.key == "rtcp":
                rtcp = _rtcp(line, section.port, newPort, ours)
                if rtcp is not None:
                    lines.append(rtcp)
            elif keep(line):
                lines.append(line)
        media.append(replace(section, port=newPort, lines=tuple(lines)))
    return SessionDescription(tuple(sessionLines), tuple(media))


def _fmtpParameter(media: Media, pt: str, name: str) -> str | None:
    """One ``name=value`` parameter of a payload type's ``a=fmtp`` (such as rtx's ``apt``)."""
    for line in media.lines:
        if isinstance(line, Attribute) and line.key == "fmtp" and line.payloadType == pt:
            params = (line.value or "").strip(" \t").partition(" ")[2]
            for param in params.split(";"):
                key, _, value = param.partition("=")
                if key.strip(" \t").lower() == name:
                    return value.strip(" \t")
    return None


def _filterMedia(media: Media, allowed: frozenset[str]) -> Media:
    if media.port == 0 or not media.isRTP:
        return media
    names = {pt: name.lower() for pt, name in media.encodingNames().items()}
    kept = [pt for pt in media.formats if names.get(pt) in allowed]
    # A retransmission format is useless once the format it repairs (its apt) is gone.
    keptSet = set(kept)
    kept = [pt for pt in kept if names[pt] != "rtx" or _fmtpParameter(media, pt, "apt") in keptSet]
    if len(kept) == len(media.formats):
        return media
    port = media.port
    numPorts = media.numPorts
    if all(names[pt] in AUXILIARY_ENCODINGS for pt in kept):
        # RFC 3264 §6: reject the stream with port 0 and keep one format so the m= line stays valid.
        kept = [media.formats[0]]
        port = 0
        numPorts = None
    keptSet = set(kept)
    lines = tuple(
        line
        for line in media.lines
        if not (
            isinstance(line, Attribute)
            and line.key in _PER_FORMAT
            and line.payloadType != "*"
            and line.payloadType not in keptSet
        )
    )
    return replace(media, port=port, numPorts=numPorts, formats=tuple(kept), lines=lines)


def filterCodecs(sdp: SessionDescription, allowed: Iterable[str]) -> SessionDescription:
    """Keep only the RTP payload types whose encoding name is in ``allowed`` (case-insensitive).

    Names come from ``a=rtpmap``, or the RFC 3551 static table (0 PCMU, 3 GSM, 4 G723, 8 PCMA,
    9 G722, 13 CN, 18 G729, ...). A dynamic payload type without an rtpmap has no name and goes.
    telephone-event, CN, rtx and the like stay only when named in ``allowed``, and rtx also only
    while the format it repairs stays. The ``a=rtpmap``, ``a=fmtp`` and ``a=rtcp-fb`` lines of
    removed payload types go.

    A stream left with no media format (nothing, or only telephone-event/CN/rtx) is rejected, not
    raised on: port 0, with its first original format kept so the ``m=`` line stays valid
    (RFC 3264 §6). When no stream remains active, the caller answers 488; see `hasActiveMedia`.
    Non-RTP streams (T.38 over UDPTL, BFCP, MSRP) and already rejected ones are left alone.
    """
    wanted = frozenset(name.lower() for name in allowed)
    media = tuple(_filterMedia(section, wanted) for section in sdp.media)
    return replace(sdp, media=media)


def hasActiveMedia(sdp: SessionDescription) -> bool:
    """Whether any stream is still offered or accepted (a port other than 0)."""
    return any(section.port != 0 for section in sdp.media)


def bumpVersion(sdp: SessionDescription, previous: SessionDescription | None) -> SessionDescription:
    """Give ``sdp`` the ``o=`` a leg expects after ``previous``, the last SDP the SBC sent on that leg.

    RFC 3264 §8: within a session, username and sess-id never change, and sess-version grows by
    exactly one when the content changed and stays the same when it did not. So the result takes
    username, sess-id and version from ``previous`` and adds one to the version when anything else
    differs. The peer on the other leg can restart its own ``o=`` without this leg noticing. With
    no ``previous`` (the first SDP on the leg), ``sdp`` is returned as it is.
    """
    if previous is None:
        return sdp
    before = previous.origin
    same = sdp.withOrigin(
        replace(
            sdp.origin,
            username=before.username,
            sessionId=before.sessionId,
            sessionVersion=before.sessionVersion,
        )
    )
    if same == previous:
        return same
    return same.withOrigin(replace(same.origin, sessionVersion=before.sessionVersion + 1))
