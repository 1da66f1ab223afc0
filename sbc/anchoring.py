"""One call's SDP on its way through the media relay (RFC 3264 offer/answer).

Every SDP that crosses the SBC goes through here: the codec allow-list of the trunks on the
call, then the relay, which puts our address and relay ports in place of the sender's. Media
operations of one call are serialised, so an asynchronous engine (rtpengine) cannot reorder
an 18x and its 2xx. A call marked bypass keeps its SDP as it is.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from twisted.internet.defer import Deferred, succeed

from sbc.interfaces import IMediaRelay
from sbc.media.ports import PortPoolExhaustedError
from sbc.sip.errors import SIPParseError
from sbc.sip.message import Message
from sbc.sip.sdp import SessionDescription, bumpVersion, filterCodecs, hasActiveMedia, parseSDP

SDP = "application/sdp"


def sdpOf(message: Message) -> bytes | None:
    """The SDP body of a message, or None when it has none (or another kind of body)."""
    if not message.body:
        return None
    kind = (message.headers.get("content-type") or "").split(";")[0].strip().lower()
    return message.body if kind == SDP else None


class NotAcceptableError(Exception):
    """The SDP cannot be used (no codec left, or unparseable): answer 488."""


def refusal(failure: object) -> int:
    """The status for a media failure: 503 when we are out of ports, 488 (or the SDP error's)."""
    error = getattr(failure, "value", failure)
    if isinstance(error, PortPoolExhaustedError):
        return 503
    if isinstance(error, SIPParseError):
        return error.status if error.status >= 400 else 488
    return 488


class MediaAnchor:
    __slots__ = ("_last", "callId", "codecs", "offered", "onTimeout", "relay", "sent")

    def __init__(
        self,
        relay: IMediaRelay | None,
        callId: str,
        onTimeout: Callable[[], object],
        codecs: frozenset[str] | None = None,
    ) -> None:
        self.relay = relay
        self.callId = callId
        self.onTimeout = onTimeout
        self.codecs = codecs
        self.offered = False
        self._last: Deferred[Any] | None = None  # none until an operation must wait for another
        # The last SDP sent towards each side, for its o= line (RFC 3264 section 8).
        self.sent: dict[str, SessionDescription] = {}

    @property
    def bypass(self) -> bool:
        return self.relay is None

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

        def run(_: object) -> Deferred[None]:
            d = self._process(side, body, offer)
            d.addCallbacks(result.callback, result.errback)
            return d.addBoth(lambda _: None)

        self._last = self._chain(run)
        return result

    def _process(self, side: str, body: bytes, offer: bool) -> Deferred[bytes]:
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
        if offer or not self.offered:
            self.offered = True
            d = self.relay.offer(self.callId, side, body, self.onTimeout)
        else:
            d = self.relay.answer(self.callId, side, body)
        return d.addCallback(self._ours, "B" if side == "A" else "A")

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


def _fail(error: Exception) -> Deferred[bytes]:
    d: Deferred[bytes] = Deferred()
    d.errback(error)
    return d
