"""rtpengine as the media engine: `IMediaRelay` on top of the ng protocol client (`sbc.media.ng`).

`RtpengineRelay` maps the SBC's two call sides onto the ng protocol's tags (see its docstring), and
learns of media timeouts by polling (see `RtpengineRelay.poll`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from sbc.interfaces import IMediaRelay
from sbc.media.bencode import Encodable
from sbc.media.ng import RtpengineClient, isUnknownCall, mediaOptions


@dataclass
class _Session:
    """What the relay knows of one call: who to tell when media stops, and which sides spoke."""

    onTimeout: Callable[[], object]
    anchored: bool = False
    answered: bool = False


SIDES = ("A", "B")


@implementer(IMediaRelay)
class RtpengineRelay:
    """`IMediaRelay` through rtpengine: the SBC keeps signalling, rtpengine carries the media.

    Tags: the ng protocol names the two parties of a call by their SIP tags. The SBC's B2BUA has a
    different dialog per leg, so the relay makes up one stable tag per side, ``"<callId>-A"`` and
    ``"<callId>-B"``. An offer from side X goes with from-tag X (and to-tag Y once the call has
    been answered, as in a re-INVITE); the answer from side Y to it goes with from-tag X, the
    offerer, and to-tag Y: rtpengine's from-tag and to-tag follow the offer, not the answer.

    Every offer and answer asks rtpengine to rewrite the origin and session connection lines and to
    strip ICE, as the SBC's own relay does. ``flags`` and ``options`` add to that (for example
    ``flags=["SIP-source-address"]``); see `mediaOptions`.

    Media timeout: rtpengine watches the media itself. With ``--timeout=N`` it drops a call whose
    streams carried no RTP for N seconds, and ``--silent-timeout`` (default one hour) does the same
    for held (sendonly, inactive) streams, so hold does not time out. The relay learns of it by
    polling: every ``pollInterval`` seconds it sends one ``query`` per anchored call, and a call
    rtpengine no longer knows ("Unknown call-id") gets its ``onTimeout`` run and leaves the
    relay. A query that times out or fails otherwise changes nothing: a daemon that is briefly
    unreachable must not hang up calls. Set ``pollInterval`` to None to switch polling off.
    """

    log = Logger()

    def __init__(
        self,
        client: RtpengineClient,
        *,
        pollInterval: float | None = 10.0,
        flags: Sequence[str] = (),
        options: Mapping[str, Encodable] | None = None,
    ) -> None:
        self.client = client
        self.clock = client.clock
        self.pollInterval = pollInterval
        self.flags = tuple(flags)
        self.options = dict(options or {})
        self._sessions: dict[str, _Session] = {}
        self._pollTimer: IDelayedCall | None = None
        self._polling = False

    @staticmethod
    def tag(callId: str, side: str) -> str:
        """The ng tag that stands for ``side`` of ``callId``."""
        if side not in SIDES:
            raise ValueError(f'side must be "A" or "B", not {side!r}')
        return f"{callId}-{side}"

    def _mediaOptions(self) -> dict[str, Encodable]:
        options = mediaOptions(flags=self.flags, replace=["origin", "session-connection"], ICE="remove")
        options.update(self.options)
        return options

    # -- IMediaRelay --------------------------------------------------------------------------

    def offer(
        self,
        callId: str,
        side: str,
        sdp: bytes,
        onTimeout: Callable[[], object],
        sipSource: str | None = None,
    ) -> Deferred[bytes]:
        """Send the offer from ``side``; the call counts as active from now until `delete`.

        ``sipSource`` is not sent: rtpengine learns (and, with ``strict-source``, enforces) each
        side's media source by itself.
        """
        other = "B" if side == "A" else "A"
        fromTag = self.tag(callId, side)
        session = self._sessions.get(callId)
        if session is None:
            session = self._sessions[callId] = _Session(onTimeout)
        else:
            session.onTimeout = onTimeout
        options = self._mediaOptions()
        if session.answered:
            options["to-tag"] = self.tag(callId, other)
        d = self.client.offer(callId, fromTag, sdp, options)

        def anchored(result: bytes) -> bytes:
            if self._sessions.get(callId) is session:
                session.anchored = True
                self._schedulePoll()
            return result

        return d.addCallback(anchored)

    def answer(self, callId: str, side: str, sdp: bytes, sipSource: str | None = None) -> Deferred[bytes]:
        """Send the answer from ``side`` to the offer the other side made (``sipSource``: see `offer`)."""
        other = "B" if side == "A" else "A"
        toTag = self.tag(callId, side)
        d = self.client.answer(callId, self.tag(callId, other), toTag, sdp, self._mediaOptions())

        def answered(result: bytes) -> bytes:
            session = self._sessions.get(callId)
            if session is not None:
                session.answered = True
            return result

        return d.addCallback(answered)

    def delete(self, callId: str) -> Deferred[None]:
        """Release the call in rtpengine; a call rtpengine does not know is no error.

        The relay forgets the call at once, whatever rtpengine says; a call it never offered costs
        no request. Any other failure fails the returned Deferred with rtpengine's error (no reply:
        `RtpengineTimeoutError`); the caller must consume it (`CallMedia` logs it once). rtpengine's
        own timeout reclaims the ports in the end.
        """
        if self._sessions.pop(callId, None) is None:
            return succeed(None)
        self._stopPollIfIdle()

        def unknownIsFine(failure: Failure) -> None:
            if not isUnknownCall(failure):
                failure.raiseException()

        return self.client.delete(callId).addErrback(unknownIsFine)

    def activeSessions(self) -> int:
        """Calls offered and not yet deleted or timed out."""
        return len(self._sessions)

    def stop(self) -> None:
        """Stop polling (at service stop); the calls stay in rtpengine until it times them out."""
        if self._pollTimer is not None and self._pollTimer.active():
            self._pollTimer.cancel()
        self._pollTimer = None
        self.pollInterval = None

    def close(self) -> None:
        """Service shutdown: stop polling and close the control socket."""
        self.stop()
        self.client.stop()

    # -- media timeout by polling -----------------------------------------------------------------

    def _schedulePoll(self) -> None:
        if self.pollInterval is None or self._pollTimer is not None or self._polling:
            return
        self._pollTimer = self.clock.callLater(self.pollInterval, self._pollNow)

    def _stopPollIfIdle(self) -> None:
        if not any(s.anchored for s in self._sessions.values()) and self._pollTimer is not None:
            if self._pollTimer.active():
                self._pollTimer.cancel()
            self._pollTimer = None

    def _pollNow(self) -> None:
        self._pollTimer = None
        self._polling = True
        d = self.poll()

        def again(_: object) -> None:
            self._polling = False
            if any(s.anchored for s in self._sessions.values()):
                self._schedulePoll()

        d.addBoth(again)

    def poll(self) -> Deferred[list[str]]:
        """Query every anchored call once; run ``onTimeout`` for those rtpengine has dropped.

        Fires, after every query has been answered or has failed, with the Call-IDs that timed out.
        """
        anchored = [(callId, s) for callId, s in self._sessions.items() if s.anchored]
        checks = [self._check(callId, session) for callId, session in anchored]
        return gatherResults(checks).addCallback(lambda ids: [i for i in ids if i is not None])

    def _check(self, callId: str, session: _Session) -> Deferred[str | None]:
        def gone(failure: Failure) -> str | None:
            if not isUnknownCall(failure):
                self.log.warn(
                    "rtpengine query for {callId} failed: {error}", callId=callId, error=failure.value
                )
                return None
            if self._sessions.get(callId) is not session:
                return None  # deleted (or offered anew) while the query was out
            del self._sessions[callId]
            self.log.info("rtpengine dropped {callId}: media timeout", callId=callId)
            try:
                session.onTimeout()
            except Exception:
                self.log.failure("onTimeout for {callId} failed", callId=callId)
            return callId

        return self.client.query(callId).addCallbacks(lambda _: None, gone)


__all__ = ["SIDES", "RtpengineRelay"]
