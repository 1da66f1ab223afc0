"""Tests for sbc.calls.media: what `CallMedia` tells the relay, the ports it charges, the order it
keeps, and the one table from media errors to SIP statuses."""

from __future__ import annotations

import zlib
from collections.abc import Callable

from netaddr import IPSet
from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.logger import LogLevel, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from sbc.calls import media
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
from sbc.media.ports import PortPool, PortPoolExhaustedError
from sbc.media.quota import PortOwner, PortQuota, PortQuotaExceededError
from sbc.media.relay import MediaRelay
from sbc.sip.sdp import SessionDescription, parseSDP
from sbc.sip.sdprewrite import filterCodecs, rewrite
from sbc.waiting import whenReady
from tests.fakes import FakeUDPReactor, LogRecorder, RecordingParsedRelay, RecordingRelay


def sdp(*ports: int, host: str = "10.0.0.1") -> bytes:
    kind = "IP6" if ":" in host else "IP4"
    lines = ["v=0", f"o=- 1 1 IN {kind} {host}", "s=-", f"c=IN {kind} {host}", "t=0 0"]
    lines += [f"m=audio {port} RTP/AVP 0" for port in ports]
    return "".join(line + "\r\n" for line in lines).encode()


def codecSdp(port: int = 4000) -> bytes:
    """An audio offer of PCMU, PCMA and DTMF (telephone-event), for the codec allow-list."""
    mapped = b"RTP/AVP 0 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
    return sdp(port).replace(b"RTP/AVP 0\r\n", mapped)


# An SDP the parser takes but would not write back as it came: LF line ends, runs of spaces.
UNTIDY = b"v=0\no=-  1 1 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\nm=audio 4000  RTP/AVP 0\n"
TRUNK = PortOwner("trunk:demo", 8)
A, B = Side.A, Side.B


class MediaTestCase(SynchronousTestCase):
    """Runs `CallMedia` operations and reads what they gave their ``then`` or ``failed``."""

    media: CallMedia
    # How the engine answers: "now" as the built-in relay does; the subclasses below run the same
    # tests with an engine that answers through a Deferred, as rtpengine does.
    when = "now"

    def makeRelay(self) -> RecordingRelay:
        """The engine the tests' call media use: bytes in and out, answering as ``when`` says."""
        return RecordingRelay(self.when)

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
        self.relay = self.makeRelay()
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


class ParsedLimitsTests(LimitsTests):
    """The same, with an engine that takes parsed SDP (the built-in relay's way)."""

    def makeRelay(self) -> RecordingRelay:
        return RecordingParsedRelay()


class ParsedRelayTests(MediaTestCase):
    """With a relay that takes and gives parsed SDP (`IParsedMediaRelay`), each SDP is parsed once,
    filtered, checked and charged on that one object, handed over parsed and written once."""

    def setUp(self) -> None:
        self.relay = RecordingParsedRelay()
        self.quota = PortQuota()
        self.media = CallMedia(self.relay, "call-1", lambda: None, quota=self.quota)
        self.parses = 0

        def counting(body: bytes) -> SessionDescription:
            self.parses += 1
            return parseSDP(body)

        self.patch(media, "parseSDP", counting)

    def test_parsedCallsOnly(self) -> None:
        """Offer and answer reach the relay as offerParsed and answerParsed with the parsed SDP
        (each parsed once), never as bytes; an answer with nothing offered is a (late) offer."""
        self.media.sipSources[A] = "203.0.113.5"
        self.succeeded(self.start(self.media.offer, A, sdp(4000)))
        self.succeeded(self.start(self.media.answer, B, sdp(6000, host="10.0.0.2")))
        late = CallMedia(self.relay, "call-2", lambda: None)
        self.succeeded(self.start(late.answer, B, sdp(6002, host="10.0.0.2")))
        self.assertEqual(
            self.relay.calls,
            [("offerParsed", "A", "203.0.113.5"), ("answerParsed", "B", None), ("offerParsed", "B", None)],
        )
        self.assertEqual(self.relay.bodies, [])
        self.assertEqual(self.parses, 3)
        self.assertEqual(
            [bytes(given) for given in self.relay.parsed],
            [sdp(4000), sdp(6000, host="10.0.0.2"), sdp(6002, host="10.0.0.2")],
        )
        for given in self.relay.parsed:
            self.assertIsInstance(given, SessionDescription)

    def test_ourOriginOnRelayAnswer(self) -> None:
        """What the relay gives back goes on with our o= (username sbc, our session id, version
        1), each side its own."""
        self.relay.anchor = lambda given: rewrite(given, "127.0.0.1", [30000])
        toB = parseSDP(self.succeeded(self.start(self.media.offer, A, sdp(4000))))
        toA = parseSDP(self.succeeded(self.start(self.media.answer, B, sdp(6000, host="10.0.0.2"))))
        for toward, sent in ((B, toB), (A, toA)):
            origin = sent.origin
            sessionId = str(zlib.crc32(f"call-1{toward.value}".encode()))
            self.assertEqual(
                (origin.username, origin.sessionId, origin.sessionVersion, origin.address),
                ("sbc", sessionId, 1, "127.0.0.1"),
            )
            connection = sent.connection
            assert connection is not None
            self.assertEqual((connection.address, sent.media[0].port), ("127.0.0.1", 30000))

    def test_versionBumpedOnlyOnChange(self) -> None:
        """A re-offer that gives the other side the same SDP keeps our version; a changed one adds one."""
        versions = []
        for port in (4000, 4000, 4002, 4002):
            sent = self.succeeded(self.start(self.media.offer, A, sdp(port)))
            versions.append(parseSDP(sent).origin.sessionVersion)
        self.assertEqual(versions, [1, 1, 2, 2])

    def test_codecsFilterTheObjectHandedOver(self) -> None:
        """With a codec allow-list the relay gets the filtered SessionDescription itself: parsed
        once, the disallowed payload types and their rtpmap gone, not written and parsed again."""
        filtered: list[SessionDescription] = []

        def recording(given: SessionDescription, allowed: frozenset[str]) -> SessionDescription:
            filtered.append(filterCodecs(given, allowed))
            return filtered[-1]

        self.patch(media, "filterCodecs", recording)
        self.media = CallMedia(
            self.relay, "call-1", lambda: None, frozenset({"pcmu"}), self.quota, maxStreams=2
        )
        self.media.owners[A] = TRUNK
        sent = self.succeeded(self.start(self.media.offer, A, codecSdp()))
        (given,) = self.relay.parsed
        self.assertIs(given, filtered[0])
        self.assertEqual((given.media[0].formats, given.media[0].attributes), (("0",), ()))
        self.assertEqual(self.parses, 1)
        self.assertEqual(parseSDP(sent).media[0].formats, ("0",))
        self.assertEqual(self.quota.heldBy(TRUNK.key), 4)

    def test_brokenSdp(self) -> None:
        """A broken SDP fails with its parse status, 400 if malformed and 488 for a network type
        we cannot relay, before the relay is asked or any port (even none) is charged."""
        self.media.owners[A] = TRUNK
        atm = sdp(4000).replace(b"c=IN IP4 10.0.0.1", b"c=ATM NSAP 47.0091.8100")
        for body, status in ((b"hello", 400), (sdp(4000)[:-20], 400), (atm, 488)):
            failure = self.failed(self.start(self.media.offer, A, body))
            self.assertEqual(self.refusal(failure), (status, ()), body)
        self.assertEqual((self.quota.held, self.quota.total), ({}, 0))
        self.assertEqual((self.relay.calls, self.media.offered), ([], False))

    def builtIn(self) -> tuple[MediaRelay, FakeUDPReactor]:
        """Call media on the built-in relay (which takes parsed SDP), and its fake UDP reactor."""
        udp = FakeUDPReactor()
        relay = MediaRelay(udp, Clock(), "127.0.0.1", PortPool(30000, 30099))
        self.media = CallMedia(relay, "call-1", lambda: None, quota=self.quota)
        return relay, udp

    def test_builtInRelayVersions(self) -> None:
        """On the built-in relay, B sees our o= at version 1 until what it is sent changes: A moving
        its own port does not change it (B still sends to the same relay port), a new stream does."""
        self.builtIn()
        versions = []
        for body in (sdp(4000), sdp(4000), sdp(4002), sdp(4002, 5000)):
            toB = parseSDP(self.succeeded(self.start(self.media.offer, A, body)))
            self.assertEqual((toB.origin.username, toB.origin.address), ("sbc", "127.0.0.1"))
            versions.append(toB.origin.sessionVersion)
        self.assertEqual(versions, [1, 1, 1, 2])

    def test_brokenSdpBuiltInRelay(self) -> None:
        """The same with the built-in relay: 400 and 488, nothing charged and nothing bound."""
        relay, udp = self.builtIn()
        self.media.owners[A] = TRUNK
        atm = sdp(4000).replace(b"c=IN IP4 10.0.0.1", b"c=ATM NSAP 47.0091.8100")
        for body, status in ((b"hello", 400), (atm, 488)):
            failure = self.failed(self.start(self.media.offer, A, body))
            self.assertEqual(self.refusal(failure), (status, ()), body)
        self.assertEqual((self.quota.held, self.quota.total), ({}, 0))
        self.assertEqual((relay.activeSessions(), udp.open), (0, {}))
        toB = parseSDP(self.succeeded(self.start(self.media.offer, A, sdp(4000))))
        self.assertEqual((toB.origin.username, toB.origin.address), ("sbc", "127.0.0.1"))
        self.assertIn(toB.media[0].port, udp.open)
        self.assertEqual(self.quota.heldBy(TRUNK.key), 4)

    def test_refusedRefunded(self) -> None:
        """When the parsed relay refuses the SDP (488), what was charged for it goes back."""
        self.media.owners[A] = TRUNK
        self.relay.refuse = True
        failure = self.failed(self.start(self.media.offer, A, sdp(4000)))
        self.assertEqual(self.refusal(failure), (488, ()))
        self.assertEqual((self.quota.held, self.quota.total), ({}, 0))
        self.relay.refuse = False
        self.succeeded(self.start(self.media.offer, A, sdp(4000)))
        self.assertEqual(self.quota.heldBy(TRUNK.key), 4)


class BytesRelayTests(MediaTestCase):
    """An engine that takes bytes only (rtpengine) gets the SDP as it came, or as filtered."""

    def setUp(self) -> None:
        self.relay = RecordingRelay()
        self.quota = PortQuota()

    def callMedia(self, codecs: frozenset[str] | None = None) -> CallMedia:
        """Call media that parse every SDP for their limits and quota."""
        made = CallMedia(
            self.relay,
            "call-1",
            lambda: None,
            codecs,
            self.quota,
            forbidden=IPSet(["127.0.0.1/32"]),
            maxStreams=2,
        )
        made.owners[A] = TRUNK
        return made

    def test_bodyAsItCame(self) -> None:
        """With no codec list the engine gets the body byte for byte, though the limits and the
        quota read it."""
        self.media = self.callMedia()
        self.succeeded(self.start(self.media.offer, A, UNTIDY))
        self.assertEqual(self.relay.bodies, [UNTIDY])
        self.assertEqual(self.quota.heldBy(TRUNK.key), 4)

    def test_filteredBody(self) -> None:
        """With a codec list the engine gets the filtered body."""
        self.media = self.callMedia(frozenset({"pcmu"}))
        self.succeeded(self.start(self.media.offer, A, codecSdp()))
        expected = filterCodecs(parseSDP(codecSdp()), {"pcmu"}).toBytes()
        self.assertEqual(self.relay.bodies, [expected])
        self.assertIn(b"m=audio 4000 RTP/AVP 0\r\n", expected)
        self.assertNotIn(b"rtpmap", expected)


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
