"""One call's SDP on its way through the media relay (RFC 3264 offer/answer).

Every SDP that crosses the SBC goes through here: the codec allow-list of the trunks on the
call, then the relay, which puts our address and relay ports in place of the sender's. Media
operations of one call are serialised, so an asynchronous engine (rtpengine) cannot reorder
an 18x and its 2xx. A call marked bypass keeps its SDP as it is.
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from netaddr import IPSet
from twisted.internet.defer import Deferred, succeed
from twisted.python.failure import Failure

from sbc.interfaces import IMediaRelay, MediaCapacityError, MediaUnavailableError
from sbc.interfaces import NotAcceptableError as NotAcceptableError
from sbc.media.quota import PORTS_PER_STREAM, PortOwner, PortQuota
from sbc.media.targets import checkTargets, relayedStreams
from sbc.sip.errors import SIPParseError
from sbc.sip.message import Message
from sbc.sip.multipart import Part, buildMultipart, mediaType, multipartType, parseMultipart
from sbc.sip.sdp import SessionDescription, bumpVersion, filterCodecs, hasActiveMedia, parseSDP
from sbc.tokens import randomHex

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


# Seconds a 503 for want of relay ports asks the caller to wait (Retry-After, RFC 3261 section 20.33).
RETRY_AFTER = 10


def refusal(failure: object) -> int:
    """The status for a media failure, by the `IMediaRelay` error it is, whatever the engine: 503
    for no capacity or an unreachable engine, 488 for an SDP that cannot be used (or the SDP
    parse error's own status), 488 for anything else."""
    error = getattr(failure, "value", failure)
    if isinstance(error, MediaCapacityError | MediaUnavailableError):
        return 503
    if isinstance(error, SIPParseError):
        return error.status if error.status >= 400 else 488
    return 488


def refusalHeaders(failure: object) -> tuple[tuple[str, str], ...]:
    """Extra headers for a media failure's answer: Retry-After with every 503 (ports, engine)."""
    if isinstance(getattr(failure, "value", failure), MediaCapacityError | MediaUnavailableError):
        return (("Retry-After", str(RETRY_AFTER)),)
    return ()


class MediaAnchor:
    """One call's way through the codec filter and the relay, in order.

    The call tells it, per side ("A", "B"), as soon as it knows: ``sipSources``, the IP that
    side's signalling comes from (the relay may latch to media from it: NAT), and ``owners``, the
    trunk or account that the relay ports its SDP opens are charged to in ``quota``. Each offer or
    answer takes the side's values at the moment it is made.

    ``maxStreams`` and ``forbidden`` (``[media] max_streams`` and ``forbidden_targets``) are checked
    here, whatever the engine (the built-in relay or rtpengine): an SDP with more m= lines, or one
    that sends media to a forbidden address, gets 488 before any port is charged or bound.
    """

    __slots__ = (
        "_charged",
        "_last",
        "_streams",
        "callId",
        "codecs",
        "forbidden",
        "maxStreams",
        "offered",
        "onTimeout",
        "owners",
        "quota",
        "relay",
        "sent",
        "sipSources",
    )

    def __init__(
        self,
        relay: IMediaRelay | None,
        callId: str,
        onTimeout: Callable[[], object],
        codecs: frozenset[str] | None = None,
        quota: PortQuota | None = None,
        *,
        forbidden: IPSet | None = None,
        maxStreams: int | None = None,
    ) -> None:
        self.relay = relay
        self.forbidden = forbidden
        self.maxStreams = maxStreams
        self.callId = callId
        self.onTimeout = onTimeout
        self.codecs = codecs
        self.quota = quota
        self.offered = False
        self._last: Deferred[Any] | None = None  # none until an operation must wait for another
        # The last SDP sent towards each side, for its o= line (RFC 3264 section 8).
        self.sent: dict[str, SessionDescription] = {}
        self.sipSources: dict[str, str] = {}
        self.owners: dict[str, PortOwner] = {}
        # m= line indexes the relay holds ports for, and the ports charged: shared empties until a
        # relayed offer needs them (a held call keeps its anchor: every byte counts per call).
        self._streams: frozenset[int] = _NO_STREAMS
        self._charged: list[tuple[PortOwner | None, int]] | None = None

    @property
    def passthrough(self) -> bool:
        """Nothing to do with SDP at all: every operation is immediate, so none need queueing."""
        return self.relay is None and self.codecs is None

    def offer(self, side: str, body: bytes) -> Deferred[bytes]:
        if self.passthrough:
            return succeed(body)
        return self._queue(side, body, offer=True)

    def answer(self, side: str, body: bytes) -> Deferred[bytes]:
        if self.passthrough:
            return succeed(body)
        return self._queue(side, body, offer=False)

    def _queue(self, side: str, body: bytes, *, offer: bool) -> Deferred[bytes]:
        result: Deferred[bytes] = Deferred()
        sipSource, owner = self.sipSources.get(side), self.owners.get(side)

        def run(_: object) -> Deferred[None]:
            d = self._process(side, body, offer, sipSource, owner)
            d.addCallbacks(result.callback, result.errback)
            return d.addBoth(lambda _: None)

        self._last = self._chain(run)
        return result

    def _process(
        self, side: str, body: bytes, offer: bool, sipSource: str | None, owner: PortOwner | None
    ) -> Deferred[bytes]:
        sdp: SessionDescription | None = None
        if self.codecs is not None:
            try:
                sdp = filterCodecs(parseSDP(body), self.codecs)
            except ValueError as e:
                return _fail(NotAcceptableError(str(e)))
            if not hasActiveMedia(sdp):
                return _fail(NotAcceptableError("no allowed codec"))
            body = sdp.toBytes()
        if self.relay is None:
            return succeed(body)
        opening: set[int] = set()
        if sdp is None and (self.quota is not None or self.forbidden or self.maxStreams is not None):
            with contextlib.suppress(ValueError):  # a broken SDP: the relay reports it
                sdp = parseSDP(body)
        if sdp is not None:
            # The stream cap before the quota: too many m= lines is the SDP's fault (488), not a
            # want of ports (503).
            try:
                checkTargets(sdp, self.forbidden, self.maxStreams)
            except NotAcceptableError as e:
                return _fail(e)
        if self.quota is not None:
            if sdp is not None:
                opening = relayedStreams(sdp) - self._streams
            ports = PORTS_PER_STREAM * len(opening)
            try:
                self.quota.charge(owner, ports)
            except MediaCapacityError as e:
                return _fail(e)
            charge = (owner, ports)
            self._charged = [*(self._charged or ()), charge]
            self._streams = self._streams | opening
        if offer or not self.offered:
            self.offered = True
            d = self.relay.offer(self.callId, side, body, self.onTimeout, sipSource)
        else:
            d = self.relay.answer(self.callId, side, body, sipSource)
        if opening:
            d.addErrback(self._refunded, charge, opening)
        return d.addCallback(self._ours, "B" if side == "A" else "A")

    def _refunded(self, failure: Failure, charge: tuple[PortOwner | None, int], opening: set[int]) -> Failure:
        """The relay refused (488 before it binds anything): the ports charged for it go back."""
        if self.quota is not None and self._charged is not None and charge in self._charged:
            self._charged.remove(charge)
            self.quota.release(*charge)
        self._streams = self._streams - opening
        return failure

    def _ours(self, body: bytes, towards: str) -> bytes:
        """Our own o= towards each side: our username and session id, versions that only grow."""
        sdp = parseSDP(body)
        previous = self.sent.get(towards)
        if previous is None:
            origin = sdp.origin
            sdp = sdp.withOrigin(
                replace(
                    origin,
                    username="sbc",
                    sessionId=str(zlib.crc32(f"{self.callId}{towards}".encode())),
                    sessionVersion=1,
                )
            )
        else:
            sdp = bumpVersion(sdp, previous)
        self.sent[towards] = sdp
        return sdp.toBytes()

    def after(self, action: Callable[[], object]) -> None:
        """Run ``action`` once every media operation queued before it is done: keeps order."""
        if self.passthrough:
            action()
            return
        self._last = self._chain(lambda _: action())

    def _chain(self, action: Callable[[object], object]) -> Deferred[Any]:
        last = self._last if self._last is not None else succeed(None)
        return last.addCallback(action)

    def close(self) -> None:
        if self.relay is not None and self.offered:
            self._last = self._chain(lambda _: self.relay.delete(self.callId) if self.relay else None)
        if self.quota is not None:
            charged, self._charged = self._charged or (), None
            for owner, ports in charged:
                self.quota.release(owner, ports)


_NO_STREAMS: frozenset[int] = frozenset()


def _fail(error: Exception) -> Deferred[bytes]:
    d: Deferred[bytes] = Deferred()
    d.errback(error)
    return d
