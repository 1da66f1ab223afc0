"""Tests for sbc.anchoring's MediaAnchor: what it tells the relay, and the ports it charges."""

from __future__ import annotations

from collections.abc import Callable

from netaddr import IPSet
from twisted.internet.defer import Deferred, fail, succeed
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from sbc.anchoring import RETRY_AFTER, MediaAnchor, refusal, refusalHeaders
from sbc.interfaces import (
    IMediaRelay,
    MediaCapacityError,
    MediaUnavailableError,
    NotAcceptableError,
)
from sbc.media.ports import PortPoolExhaustedError
from sbc.media.quota import PortOwner, PortQuota, PortQuotaExceededError
from sbc.media.rtpengine import (
    RtpengineProtocolError,
    RtpengineRefusedError,
    RtpengineStoppedError,
    RtpengineTimeoutError,
)


def sdp(*ports: int, host: str = "10.0.0.1") -> bytes:
    kind = "IP6" if ":" in host else "IP4"
    lines = ["v=0", f"o=- 1 1 IN {kind} {host}", "s=-", f"c=IN {kind} {host}", "t=0 0"]
    lines += [f"m=audio {port} RTP/AVP 0" for port in ports]
    return "".join(line + "\r\n" for line in lines).encode()


@implementer(IMediaRelay)
class RecordingRelay:
    """Answers every SDP with itself, and records what it was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str | None]] = []
        self.refuse = False
        # When set, every offer and answer fails with it (an engine's own error, say).
        self.error: Exception | None = None

    def offer(
        self,
        callId: str,
        side: str,
        sdp: bytes,
        onTimeout: Callable[[], object],
        sipSource: str | None = None,
    ) -> Deferred[bytes]:
        return self._record("offer", side, sdp, sipSource)

    def answer(self, callId: str, side: str, sdp: bytes, sipSource: str | None = None) -> Deferred[bytes]:
        return self._record("answer", side, sdp, sipSource)

    def _record(self, kind: str, side: str, body: bytes, sipSource: str | None) -> Deferred[bytes]:
        self.calls.append((kind, side, sipSource))
        if self.error is not None:
            return fail(self.error)
        if self.refuse:
            return fail(NotAcceptableError("refused"))
        return succeed(body)

    def delete(self, callId: str) -> Deferred[None]:
        return succeed(None)

    def activeSessions(self) -> int:
        return 0

    def close(self) -> None:
        pass


TRUNK = PortOwner("trunk:demo", 8)


class MediaAnchorTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.relay = RecordingRelay()
        self.quota = PortQuota()
        self.anchor = MediaAnchor(self.relay, "call-1", lambda: None, quota=self.quota)

    def test_sipSourcePerSide(self) -> None:
        """Each operation tells the relay the signalling IP its side had when the operation was made."""
        self.anchor.sipSources["A"] = "203.0.113.5"
        first = self.anchor.offer("A", sdp(4000))
        self.anchor.sipSources["A"] = "203.0.113.6"
        self.successResultOf(first)
        self.successResultOf(self.anchor.answer("B", sdp(6000)))
        self.assertEqual(self.relay.calls, [("offer", "A", "203.0.113.5"), ("answer", "B", None)])

    def test_chargesStreamsToOwner(self) -> None:
        """Each stream the SDP opens costs its owner four ports; a re-offer pays only for new streams."""
        self.anchor.owners["A"] = TRUNK
        self.successResultOf(self.anchor.offer("A", sdp(4000)))
        self.assertEqual((self.quota.heldBy(TRUNK.key), self.quota.total), (4, 4))
        self.successResultOf(self.anchor.answer("B", sdp(6000)))
        self.successResultOf(self.anchor.offer("A", sdp(4000)))
        self.assertEqual(self.quota.heldBy(TRUNK.key), 4)
        self.successResultOf(self.anchor.offer("A", sdp(4000, 0, 5000)))  # a rejected m= costs nothing
        self.assertEqual(self.quota.heldBy(TRUNK.key), 8)

    def test_overLimit(self) -> None:
        """SDP that would take its owner past the limit fails before the relay is asked: 503, Retry-After."""
        self.anchor.owners["A"] = TRUNK
        failure = self.failureResultOf(self.anchor.offer("A", sdp(4000, 4002, 4004)))
        failure.trap(PortQuotaExceededError)
        self.assertEqual(self.relay.calls, [])
        self.assertEqual(refusal(failure), 503)
        self.assertEqual(refusalHeaders(failure), (("Retry-After", "10"),))
        self.assertEqual(self.quota.total, 0)

    def test_refusedSdpRefunded(self) -> None:
        """When the relay refuses the SDP (488), what was charged for it goes back."""
        self.anchor.owners["A"] = TRUNK
        self.relay.refuse = True
        failure = self.failureResultOf(self.anchor.offer("A", sdp(4000)))
        self.assertEqual((refusal(failure), refusalHeaders(failure)), (488, ()))
        self.assertEqual(self.quota.total, 0)

    def test_closeReleases(self) -> None:
        """The end of the call gives every port it was charged back."""
        self.anchor.owners["A"] = TRUNK
        self.successResultOf(self.anchor.offer("A", sdp(4000, 4002)))
        self.anchor.close()
        self.anchor.close()
        self.assertEqual((self.quota.held, self.quota.total), ({}, 0))


class LimitsTests(SynchronousTestCase):
    """max_streams and forbidden_targets hold in the anchor, for any engine (here a recording one)."""

    def setUp(self) -> None:
        self.relay = RecordingRelay()
        self.quota = PortQuota()
        self.anchor = MediaAnchor(
            self.relay,
            "call-1",
            lambda: None,
            quota=self.quota,
            forbidden=IPSet(["127.0.0.1/32", "224.0.0.0/4", "0.0.0.0/8"]),
            maxStreams=3,
        )

    def assertRefused(self, body: bytes) -> None:
        failure = self.failureResultOf(self.anchor.offer("A", body))
        failure.trap(NotAcceptableError)
        self.assertEqual((refusal(failure), refusalHeaders(failure)), (488, ()))
        self.assertEqual((self.relay.calls, self.quota.total), ([], 0))

    def test_tooManyStreamsBeforeQuota(self) -> None:
        """Too many m= lines get 488 before the owner's port quota is charged (not 503)."""
        self.anchor.owners["A"] = PortOwner("account:alice", 8)  # room for two streams
        self.assertRefused(sdp(*range(4000, 4008, 2)))
        self.assertEqual(self.quota.heldBy("account:alice"), 0)

    def test_forbiddenTarget(self) -> None:
        """SDP naming a forbidden address is refused before the engine is asked."""
        self.assertRefused(sdp(4000, host="127.0.0.1"))
        self.assertRefused(sdp(4000, host="239.1.2.3"))

    def test_forbiddenIPv4Mapped(self) -> None:
        """An IPv4-mapped IPv6 address is judged as the IPv4 address it reaches; RTCP's too."""
        self.assertRefused(sdp(4000, host="::ffff:127.0.0.1"))
        rtcp = b"RTP/AVP 0\r\na=rtcp:53020 IN IP6 ::ffff:127.0.0.1\r\n"
        self.assertRefused(sdp(4000).replace(b"RTP/AVP 0\r\n", rtcp))

    def test_allowedPasses(self) -> None:
        """Other addresses, hold (0.0.0.0), rejected streams and max_streams m= lines pass."""
        self.successResultOf(self.anchor.offer("A", sdp(4000, 0, 4004)))
        self.successResultOf(self.anchor.offer("A", sdp(4000, host="0.0.0.0")))
        self.assertEqual(len(self.relay.calls), 2)


class MediaErrorTests(SynchronousTestCase):
    """Every engine fails in the interface's words, and the call answers by those words alone."""

    def test_enginesSpeakTheInterface(self) -> None:
        """Each engine's errors are the IMediaRelay errors they mean."""
        self.assertIsInstance(PortPoolExhaustedError("full"), MediaCapacityError)
        self.assertIsInstance(PortQuotaExceededError("full"), MediaCapacityError)
        self.assertIsInstance(RtpengineTimeoutError("offer", 3, 1.5), MediaUnavailableError)
        self.assertIsInstance(RtpengineStoppedError("stopped"), MediaUnavailableError)
        self.assertIsInstance(RtpengineProtocolError("garbage"), MediaUnavailableError)
        self.assertIsInstance(RtpengineRefusedError("offer", "no codec"), NotAcceptableError)

    def test_statusByInterfaceError(self) -> None:
        """488 for an SDP that cannot be used, 503 with Retry-After for no capacity or no engine."""
        cases = [
            (NotAcceptableError("codec"), 488, ()),
            (MediaCapacityError("ports"), 503, (("Retry-After", str(RETRY_AFTER)),)),
            (MediaUnavailableError("down"), 503, (("Retry-After", str(RETRY_AFTER)),)),
            (RuntimeError("a bug"), 488, ()),
        ]
        for error, status, headers in cases:
            failure = Failure(error)
            self.assertEqual((refusal(failure), refusalHeaders(failure)), (status, headers), error)
