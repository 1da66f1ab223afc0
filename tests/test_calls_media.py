"""Tests for sbc.calls.media: what `CallMedia` tells the relay, the ports it charges, the order it
keeps, and the one table from media errors to SIP statuses."""

from __future__ import annotations

from collections.abc import Callable

from netaddr import IPSet
from twisted.internet.defer import Deferred, fail
from twisted.logger import LogLevel, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from sbc.calls.media import RETRY_AFTER, CallMedia, statusFor
from sbc.calls.parties import Side
from sbc.interfaces import (
    MediaCapacityError,
    MediaUnavailableError,
    NotAcceptableError,
)
from sbc.media.ng import (
    RtpengineProtocolError,
    RtpengineRefusedError,
    RtpengineStoppedError,
    RtpengineTimeoutError,
)
from sbc.media.ports import PortPoolExhaustedError
from sbc.media.quota import PortOwner, PortQuota, PortQuotaExceededError
from sbc.waiting import whenReady
from tests.fakes import LogRecorder, RecordingRelay


def sdp(*ports: int, host: str = "10.0.0.1") -> bytes:
    kind = "IP6" if ":" in host else "IP4"
    lines = ["v=0", f"o=- 1 1 IN {kind} {host}", "s=-", f"c=IN {kind} {host}", "t=0 0"]
    lines += [f"m=audio {port} RTP/AVP 0" for port in ports]
    return "".join(line + "\r\n" for line in lines).encode()


TRUNK = PortOwner("trunk:demo", 8)
A, B = Side.A, Side.B


class MediaTestCase(SynchronousTestCase):
    """Runs `CallMedia` operations and reads what they gave their ``then`` or ``failed``."""

    media: CallMedia
    # How the engine answers: "now" as the built-in relay does; the subclasses below run the same
    # tests with an engine that answers through a Deferred, as rtpengine does.
    when = "now"

    def start(self, op: Callable[..., None], side: Side, body: bytes) -> list[bytes | Failure]:
        """Start an offer or answer; its outcome lands in the returned list."""
        results: list[bytes | Failure] = []
        op(side, body, results.append, results.append)
        return results

    def succeeded(self, results: list[bytes | Failure]) -> bytes:
        """The SDP an operation gave, which it has by now."""
        (result,) = results
        assert isinstance(result, bytes), result
        return result

    def failed(self, results: list[bytes | Failure]) -> Failure:
        """The failure an operation gave, which it has by now."""
        (result,) = results
        assert isinstance(result, Failure), result
        return result

    def refusal(self, failure: Failure) -> tuple[int, tuple[tuple[str, str], ...]]:
        """The status and extra headers the caller would get."""
        return statusFor(failure)


class CallMediaTests(MediaTestCase):
    """Quota, sources and refusals of one call's media, whatever the engine."""

    def setUp(self) -> None:
        self.relay = RecordingRelay(self.when)
        self.quota = PortQuota()
        self.media = CallMedia(self.relay, "call-1", lambda: None, quota=self.quota)

    def test_sipSourcePerSide(self) -> None:
        """Each operation tells the relay the signalling IP its side had when the operation was made."""
        self.media.sipSources[A] = "203.0.113.5"
        first = self.start(self.media.offer, A, sdp(4000))
        self.media.sipSources[A] = "203.0.113.6"
        self.succeeded(first)
        self.succeeded(self.start(self.media.answer, B, sdp(6000)))
        self.assertEqual(self.relay.calls, [("offer", "A", "203.0.113.5"), ("answer", "B", None)])

    def test_chargesStreamsToOwner(self) -> None:
        """Each stream the SDP opens costs its owner four ports; a re-offer pays only for new streams."""
        self.media.owners[A] = TRUNK
        self.succeeded(self.start(self.media.offer, A, sdp(4000)))
        self.assertEqual((self.quota.heldBy(TRUNK.key), self.quota.total), (4, 4))
        self.succeeded(self.start(self.media.answer, B, sdp(6000)))
        self.succeeded(self.start(self.media.offer, A, sdp(4000)))
        self.assertEqual(self.quota.heldBy(TRUNK.key), 4)
        self.succeeded(self.start(self.media.offer, A, sdp(4000, 0, 5000)))  # a rejected m= costs nothing
        self.assertEqual(self.quota.heldBy(TRUNK.key), 8)

    def test_overLimit(self) -> None:
        """SDP that would take its owner past the limit fails before the relay is asked: 503, Retry-After."""
        self.media.owners[A] = TRUNK
        failure = self.failed(self.start(self.media.offer, A, sdp(4000, 4002, 4004)))
        failure.trap(PortQuotaExceededError)
        self.assertEqual(self.relay.calls, [])
        self.assertEqual(self.refusal(failure), (503, (("Retry-After", "10"),)))
        self.assertEqual(self.quota.total, 0)

    def test_refusedSdpRefunded(self) -> None:
        """When the relay refuses the SDP (488), what was charged for it goes back."""
        self.media.owners[A] = TRUNK
        self.relay.refuse = True
        failure = self.failed(self.start(self.media.offer, A, sdp(4000)))
        self.assertEqual(self.refusal(failure), (488, ()))
        self.assertEqual(self.quota.total, 0)

    def test_unparsableAnswerKeepsCharge(self) -> None:
        """An engine that took the SDP but answered with SDP we cannot parse still holds the ports
        it bound: the call stays charged for them until it closes (only the engine's refusal refunds)."""
        self.media.owners[A] = TRUNK
        recorded = self.relay._record
        garbled = lambda *args: whenReady(recorded(*args), lambda body: b"not an SDP")  # noqa: E731
        self.patch(self.relay, "_record", garbled)
        self.failed(self.start(self.media.offer, A, sdp(4000)))
        self.assertEqual(self.quota.heldBy(TRUNK.key), 4)
        self.media.close()
        self.assertEqual((self.quota.held, self.quota.total), ({}, 0))

    def test_closeReleases(self) -> None:
        """The end of the call gives every port it was charged back."""
        self.media.owners[A] = TRUNK
        self.succeeded(self.start(self.media.offer, A, sdp(4000, 4002)))
        self.media.close()
        self.media.close()
        self.assertEqual((self.quota.held, self.quota.total), ({}, 0))


class LimitsTests(MediaTestCase):
    """max_streams and forbidden_targets hold in CallMedia, for any engine (here a recording one)."""

    def setUp(self) -> None:
        self.relay = RecordingRelay(self.when)
        self.quota = PortQuota()
        self.media = CallMedia(
            self.relay,
            "call-1",
            lambda: None,
            quota=self.quota,
            forbidden=IPSet(["127.0.0.1/32", "224.0.0.0/4", "0.0.0.0/8"]),
            maxStreams=3,
        )

    def assertRefused(self, body: bytes) -> None:
        failure = self.failed(self.start(self.media.offer, A, body))
        failure.trap(NotAcceptableError)
        self.assertEqual(self.refusal(failure), (488, ()))
        self.assertEqual((self.relay.calls, self.quota.total), ([], 0))

    def test_tooManyStreamsBeforeQuota(self) -> None:
        """Too many m= lines get 488 before the owner's port quota is charged (not 503)."""
        self.media.owners[A] = PortOwner("account:alice", 8)  # room for two streams
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
        self.succeeded(self.start(self.media.offer, A, sdp(4000, 0, 4004)))
        self.succeeded(self.start(self.media.offer, A, sdp(4000, host="0.0.0.0")))
        self.assertEqual(len(self.relay.calls), 2)


class DeferredCallMediaTests(CallMediaTests):
    """The same, with an engine that answers through fired Deferreds."""

    when = "fired"


class DeferredLimitsTests(LimitsTests):
    """The same, with an engine that answers through fired Deferreds."""

    when = "fired"


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
            self.assertEqual(statusFor(failure), (status, headers), error)

    def test_statusOfUnparsableSdp(self) -> None:
        """SDP the codec cannot parse gets the parse error's own status."""
        from sbc.sip.errors import SIPParseError

        self.assertEqual(statusFor(Failure(SIPParseError("bad SDP", status=400))), (400, ()))


class OrderTests(MediaTestCase):
    """A call's media operations keep their order behind a slow engine, and cost no Deferred
    behind a quick one."""

    def test_quickRelayMakesNoDeferred(self) -> None:
        """With an engine that answers at once, offer, answer and ``after`` run at once, and not
        one Deferred is made."""
        made: list[object] = []
        original = Deferred.__init__

        def counting(d: Deferred[object], *args: object, **kwargs: object) -> None:
            made.append(d)
            original(d, *args, **kwargs)  # type: ignore[arg-type]

        relay = RecordingRelay(when="now")
        self.media = CallMedia(relay, "call-1", lambda: None, quota=PortQuota())
        self.patch(Deferred, "__init__", counting)
        offered = self.start(self.media.offer, A, sdp(4000))
        ran: list[str] = []
        self.media.after(ran.append, "after")
        answered = self.start(self.media.answer, B, sdp(6000))
        self.media.close()
        self.assertIn(b"o=sbc ", self.succeeded(offered))
        self.assertIn(b"o=sbc ", self.succeeded(answered))
        self.assertEqual(
            (ran, relay.asked(), relay.deleted), (["after"], [("offer", A), ("answer", B)], ["call-1"])
        )
        self.assertEqual(made, [])

    def test_slowEngineKeepsOrder(self) -> None:
        """Behind an answer not yet given, later operations and actions wait their turn: the
        engine is asked the next only once the one before is done, and each result comes in order."""
        relay = RecordingRelay(when="later")
        self.media = CallMedia(relay, "call-1", lambda: None)
        events: list[object] = []
        self.media.offer(A, sdp(4000), lambda body: events.append("offered"), events.append)
        self.media.after(events.append, "ringing")
        self.media.answer(B, sdp(6000), lambda body: events.append("answered"), events.append)
        self.assertEqual((relay.asked(), events), ([("offer", A)], []))
        relay.waiting[0].callback(sdp(30000, host="127.0.0.1"))
        self.assertEqual(relay.asked(), [("offer", A), ("answer", B)])
        self.assertEqual(events, ["offered", "ringing"])
        self.media.after(events.append, "after the answer")
        relay.waiting[1].callback(sdp(30002, host="127.0.0.1"))
        self.assertEqual(events, ["offered", "ringing", "answered", "after the answer"])
        self.media.after(events.append, "at once")
        self.assertEqual(events[-1], "at once")

    def test_slowEngineFailure(self) -> None:
        """A failure from a slow engine goes to that operation's ``failed``, and the next operation
        still runs after it."""
        relay = RecordingRelay(when="later")
        self.media = CallMedia(relay, "call-1", lambda: None)
        first = self.start(self.media.offer, A, sdp(4000))
        second = self.start(self.media.offer, A, sdp(4000))
        relay.waiting[0].errback(MediaUnavailableError("no reply"))
        self.failed(first).trap(MediaUnavailableError)
        self.assertEqual(second, [])
        relay.waiting[1].callback(sdp(30000, host="127.0.0.1"))
        self.assertIn(b"o=sbc ", self.succeeded(second))

    def test_queuedAfterCloseChargesNothing(self) -> None:
        """An operation queued behind the engine when the call closes fails at its turn, without
        asking the engine or charging the quota that close released."""
        relay = RecordingRelay(when="later")
        quota = PortQuota()
        self.media = CallMedia(relay, "call-1", lambda: None, quota=quota)
        self.media.owners[A] = TRUNK
        self.start(self.media.offer, A, sdp(4000))
        queued = self.start(self.media.offer, A, sdp(4000, 4002))
        self.media.close()
        self.assertEqual(quota.total, 0)
        relay.waiting[0].callback(sdp(30000, host="127.0.0.1"))
        self.failed(queued).trap(MediaUnavailableError)
        self.assertEqual((relay.asked(), relay.deleted), ([("offer", A)], ["call-1"]))
        self.assertEqual((quota.held, quota.total), ({}, 0))

    def test_failedDeleteLogged(self) -> None:
        """An engine that fails to forget the call (rtpengine's timeout) leaves no unhandled error
        in a Deferred: the failure is consumed and logged once, as a warning."""
        relay = RecordingRelay(when="now")
        failed = fail(RtpengineTimeoutError("delete", 3, 1.5))
        self.patch(relay, "delete", lambda callId: failed)
        recorder = LogRecorder()
        globalLogPublisher.addObserver(recorder)
        self.addCleanup(globalLogPublisher.removeObserver, recorder)
        self.media = CallMedia(relay, "call-1", lambda: None)
        self.succeeded(self.start(self.media.offer, A, sdp(4000)))
        self.media.close()
        self.assertIsNone(self.successResultOf(failed))
        (event,) = [e for e in recorder.events if e.get("callId") == "call-1"]
        self.assertEqual(event["log_level"], LogLevel.warn)
        error = "rtpengine delete: no reply after 3 tries in 1.5s"
        self.assertEqual((event["callId"], event["error"]), ("call-1", error))
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_closeAfterPendingWork(self) -> None:
        """The engine forgets the call only once the work queued before the end is done."""
        relay = RecordingRelay(when="later")
        self.media = CallMedia(relay, "call-1", lambda: None)
        self.start(self.media.offer, A, sdp(4000))
        self.media.close()
        self.assertEqual(relay.deleted, [])
        relay.waiting[0].callback(sdp(30000, host="127.0.0.1"))
        self.assertEqual(relay.deleted, ["call-1"])
