"""What a session message's body holds, as sbc reads it: SDP to anchor, ISUP parts beside it (SIP-I).

A body sbc cannot read is refused (415 with Accept, or 400; RFC 3261 section 8.2.3), and nothing
crosses between the legs unread: `putBody` gives the other leg the anchored SDP and, between
trunks that pass it, the ISUP.
"""

from __future__ import annotations

from dataclasses import dataclass

from sbc.sip.errors import SIPParseError
from sbc.sip.message import Message
from sbc.sip.multipart import Part, buildMultipart, mediaType, multipartType, parseMultipart
from sbc.tokens import randomHex

__all__ = ["ACCEPT", "Body", "UnreadableBodyError", "putBody", "readBody", "sdpOf", "unreadable"]

SDP = "application/sdp"
ISUP = "application/isup"
MIXED = "multipart/mixed"
# What a session request may carry (RFC 3261 section 8.2.3): SDP, alone or in a multipart/mixed
# beside ISUP (SIP-I, SIP-T), or ISUP alone. The 415's Accept header says so.
ACCEPT = f"{SDP}, {MIXED}, {ISUP}"
# The headers of an ISUP part that cross with it; any other part header stays on its side.
_PART_HEADERS = frozenset({"content-type", "content-disposition", "content-transfer-encoding"})
_IDENTITY = frozenset({"", "identity"})


class UnreadableBodyError(Exception):
    """A body sbc cannot read: 415 with ``Accept`` (or ``Accept-Encoding``), or 400."""

    def __init__(self, status: int, reason: str, extra: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.extra = extra


@dataclass(frozen=True, slots=True)
class Body:
    """A session message's body as sbc reads it: the SDP to anchor, and the ISUP parts beside it."""

    sdp: bytes | None = None
    isup: tuple[Part, ...] = ()


_EMPTY = Body()


def readBody(message: Message) -> Body:
    """The SDP and ISUP of a message's body; raise `UnreadableBodyError` for anything else.

    Read are: no body, ``application/sdp``, ``application/isup``, and a ``multipart/mixed`` of at
    most one SDP part and ISUP parts. Any other type, a multipart with another kind of part (or a
    nested one), or a content encoding is 415; content without a Content-Type or a malformed
    multipart is 400.
    """
    if not message.body:
        return _EMPTY
    contentType = message.headers.get("content-type")
    if contentType is None:
        raise UnreadableBodyError(400, "body without Content-Type")
    if (message.headers.get("content-encoding") or "").strip().lower() not in _IDENTITY:
        raise UnreadableBodyError(415, "content encoding", (("Accept-Encoding", "identity"),))
    kind = mediaType(contentType)
    if kind == SDP:
        return Body(sdp=message.body)
    if kind == ISUP:
        headers = [("Content-Type", contentType)]
        disposition = message.headers.get("content-disposition")
        if disposition is not None:
            headers.append(("Content-Disposition", disposition))
        return Body(isup=(Part(tuple(headers), message.body),))
    if kind != MIXED:
        raise UnreadableBodyError(415, "body type", (("Accept", ACCEPT),))
    try:
        parts = parseMultipart(message.body, contentType)
    except SIPParseError as e:
        raise UnreadableBodyError(400, e.reason) from None
    sdp: bytes | None = None
    isup: list[Part] = []
    for part in parts:
        encoding = (part.header("content-transfer-encoding") or "").strip().lower()
        if part.mediaType == SDP and encoding in ("", "7bit", "8bit", "binary"):
            if sdp is not None:
                raise UnreadableBodyError(400, "more than one SDP part")
            sdp = part.body
        elif part.mediaType == ISUP:
            isup.append(Part(tuple(h for h in part.headers if h[0].lower() in _PART_HEADERS), part.body))
        else:
            raise UnreadableBodyError(415, "body part type", (("Accept", ACCEPT),))
    return Body(sdp, tuple(isup))


def sdpOf(message: Message) -> bytes | None:
    """The SDP of a message (alone or a multipart's part), or None when it has none or is unreadable.

    Only session messages (INVITE, UPDATE, PRACK, ACK and their answers) carry SDP offers and
    answers; the caller asks only for those. An encoded body (gzip) is unreadable, SDP or not.
    """
    if not message.body:
        return None
    try:
        return readBody(message).sdp
    except UnreadableBodyError:
        return None


def unreadable(message: Message) -> bool:
    """Whether a message has a body sbc cannot read (see `readBody`): an offer or answer in it is lost."""
    if not message.body:
        return False
    try:
        readBody(message)
    except UnreadableBodyError:
        return True
    return False


def putBody(target: Message, source: Message, sdp: bytes | None, *, isup: bool) -> None:
    """Give ``target`` what of ``source``'s body crosses: ``sdp`` (ours), and ISUP if ``isup``.

    Nothing crosses unread: every other part, or a body sbc cannot read, is dropped. SDP alone
    goes as ``application/sdp``, ISUP alone as it came; ISUP from a multipart goes in a fresh
    ``multipart/mixed`` (our boundary), unchanged, after the SDP if there is one.
    """
    parts: tuple[Part, ...] = ()
    if isup and source.body:
        try:
            parts = readBody(source).isup
        except UnreadableBodyError:
            parts = ()
    if not parts:
        if sdp is not None:
            target.setBody(sdp, SDP)
            if mediaType(source.headers.get("content-type")) != SDP:
                target.headers.remove("content-disposition")  # the multipart's, not the SDP's
            return
        target.setBody(b"")
        if source.body:  # dropped: no type or disposition of a body that is not there
            target.headers.remove("content-type")
            target.headers.remove("content-disposition")
        return
    if sdp is None and mediaType(source.headers.get("content-type")) == ISUP:
        target.setBody(source.body, source.headers.get("content-type"))  # ISUP alone, as it came
        disposition = source.headers.get("content-disposition")
        if disposition is not None:
            target.headers.set("Content-Disposition", disposition)
        return
    if sdp is not None:
        parts = (Part((("Content-Type", SDP),), sdp), *parts)
    boundary = f"sbc-{randomHex(8)}"
    target.setBody(buildMultipart(parts, boundary), multipartType(boundary))
    target.headers.remove("content-disposition")
