"""Tests for `sbc.media.rtpengine`: the ng client on a fake UDP reactor and a `Clock`, and the relay.

The recorded exchange (``tests/interop/rtpengine_exchange.json``) holds the bytes the real daemon
(Debian's rtpengine-daemon) sent to our requests; `RecordedExchangeTests` replays it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort, IReactorUDP
from twisted.internet.protocol import AbstractDatagramProtocol
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from sbc.interfaces import IMediaRelay
from sbc.media.bencode import Encodable, Value, decode, encode
from sbc.media.rtpengine import (
    MAX_DATAGRAM,
    RtpengineClient,
    RtpengineError,
    RtpengineProtocolError,
    RtpengineRefusedError,
    RtpengineRelay,
    RtpengineStoppedError,
    RtpengineTimeoutError,
    isUnknownCall,
    mediaOptions,
)

DAEMON = ("127.0.0.1", 22222)
EXCHANGE = Path(__file__).resolve().parent / "interop" / "rtpengine_exchange.json"

PROFILE = settings(
    database=None,
    deadline=None,
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

OFFER_SDP = (
    b"v=0\r\no=alice 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\n"
    b"m=audio 49170 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)
ANSWER_SDP = OFFER_SDP.replace(b"alice", b"bob").replace(b"127.0.0.2", b"127.0.0.3")
RELAYED_SDP = OFFER_SDP.replace(b"127.0.0.2", b"127.0.0.1").replace(b"49170", b"30000")


class FakeUDPPort:
    """A bound UDP port that keeps what is written to it."""

    def __init__(
        self, reactor: FakeUDPReactor, protocol: AbstractDatagramProtocol, interface: str, maxPacketSize: int
    ) -> None:
        self.reactor = reactor
        self.protocol = protocol
        self.interface = interface
        self.maxPacketSize = maxPacketSize
        self.written: list[tuple[bytes, Any]] = []
        self.stopped = False
        self.failWith: OSError | None = None

    def write(self, datagram: bytes, addr: Any) -> None:
        if self.failWith is not None:
            raise self.failWith
        self.written.append((datagram, addr))

    def getHost(self) -> IPv4Address:
        return IPv4Address("UDP", self.interface, 40000)

    def startListening(self) -> None:
        """Listening since construction."""

    def stopListening(self) -> None:
        self.stopped = True
        self.protocol.doStop()


@implementer(IReactorUDP)
class FakeUDPReactor:
    """`IReactorUDP` that binds nothing: `MemoryReactor` has no UDP."""

    def __init__(self) -> None:
        self.ports: list[FakeUDPPort] = []

    def listenUDP(
        self, port: int, protocol: AbstractDatagramProtocol, interface: str = "", maxPacketSize: int = 8192
    ) -> IListeningPort:
        fake = FakeUDPPort(self, protocol, interface, maxPacketSize)
        protocol.makeConnection(fake)  # type: ignore[arg-type]
        self.ports.append(fake)
        return fake  # type: ignore[return-value]

    def listenMulticast(self, *args: object, **kwargs: object) -> IListeningPort:
        raise NotImplementedError()


class ClientTestCase(SynchronousTestCase):
    """A client on a fake reactor and a clock, with helpers to read requests and answer them."""

    timeout = 1.0
    retries = 3

    def setUp(self) -> None:
        self.clock = Clock()
        self.reactor = FakeUDPReactor()
        self.client = RtpengineClient(
            self.reactor, self.clock, DAEMON, timeout=self.timeout, retries=self.retries
        )

    @property
    def port(self) -> FakeUDPPort:
        [port] = self.reactor.ports
        return port

    def parse(self, datagram: bytes, addr: Any) -> tuple[bytes, dict[bytes, Value]]:
        """One datagram sent to the daemon as (cookie, decoded dictionary)."""
        self.assertEqual(addr, DAEMON)
        cookie, space, body = datagram.partition(b" ")
        self.assertEqual(space, b" ")
        message = decode(body)
        assert isinstance(message, dict)
        return cookie, message

    def requests(self) -> list[tuple[bytes, dict[bytes, Value]]]:
        """Every datagram sent so far as (cookie, decoded dictionary)."""
        return [self.parse(datagram, addr) for datagram, addr in self.port.written]

    def lastRequest(self) -> tuple[bytes, dict[bytes, Value]]:
        return self.parse(*self.port.written[-1])

    def elapse(self, seconds: float, step: float = 0.125) -> None:
        """Let ``seconds`` pass in small steps, as a reactor would: each timer fires on time.

        (One big `Clock.advance` would schedule a retransmission relative to the end of the jump.)
        """
        for _ in range(round(seconds / step)):
            self.clock.advance(step)

    def reply(self, cookie: bytes, body: Encodable | bytes, source: Any = DAEMON, raw: bool = False) -> None:
        """rtpengine answers ``cookie`` with ``body`` (a dict to encode, or raw bytes)."""
        data = body if raw and isinstance(body, bytes) else encode(body)
        self.port.protocol.datagramReceived(cookie + b" " + data, source)

    def replyLast(self, body: Encodable) -> None:
        cookie, _ = self.lastRequest()
        self.reply(cookie, body)


class ClientFramingTests(ClientTestCase):
    """Requests go out as ``<cookie> <bencoded dictionary>`` to the daemon."""

    def test_framing(self) -> None:
        """A ping is one datagram to the daemon: a cookie, one space, and the bencoded command."""
        self.client.ping()
        [(datagram, addr)] = self.port.written
        self.assertEqual(addr, DAEMON)
        cookie, _, body = datagram.partition(b" ")
        self.assertTrue(cookie)
        self.assertNotIn(b" ", cookie)
        self.assertEqual(body, b"d7:command4:pinge")

    def test_portOpensOnFirstRequest(self) -> None:
        """No port until the first request; then one port on loopback, port 0, for big datagrams."""
        self.assertEqual(self.reactor.ports, [])
        self.client.ping()
        self.client.ping()
        self.assertEqual(self.port.interface, "127.0.0.1")
        self.assertEqual(self.port.maxPacketSize, MAX_DATAGRAM)

    def test_interfaceFollowsDaemon(self) -> None:
        """IPv6 loopback binds ::1; a daemon elsewhere gets the wildcard of its family."""
        for address, interface in (
            (("::1", 2223), "::1"),
            (("192.0.2.1", 2223), "0.0.0.0"),
            (("2001:db8::1", 1), "::"),
        ):
            reactor = FakeUDPReactor()
            RtpengineClient(reactor, self.clock, address).start()
            self.assertEqual(reactor.ports[0].interface, interface)

    def test_cookiesUnique(self) -> None:
        """Each request has a cookie of its own, and two clients never share a cookie prefix."""
        for _ in range(5):
            self.client.ping()
        cookies = [cookie for cookie, _ in self.requests()]
        self.assertEqual(len(set(cookies)), 5)
        other = RtpengineClient(FakeUDPReactor(), self.clock, DAEMON)
        self.assertNotEqual(other._prefix, self.client._prefix)

    def test_offerKeys(self) -> None:
        """offer sends call-id, from-tag, sdp and the options, spelled as the ng protocol spells them."""
        options = mediaOptions(
            flags=["SIP-source-address"],
            replace=["origin", "session-connection"],
            ICE="remove",
            direction=["internal", "external"],
            receivedFrom=("127.0.0.2", 5060),
        )
        self.client.offer("c1", "c1-A", OFFER_SDP, options)
        _, message = self.lastRequest()
        self.assertEqual(
            message,
            {
                b"command": b"offer",
                b"call-id": b"c1",
                b"from-tag": b"c1-A",
                b"sdp": OFFER_SDP,
                b"flags": [b"SIP-source-address"],
                b"replace": [b"origin", b"session-connection"],
                b"ICE": b"remove",
                b"direction": [b"internal", b"external"],
                b"received from": [b"IP4", b"127.0.0.2"],
            },
        )

    def test_receivedFromIPv6(self) -> None:
        """An IPv6 source is named IP6."""
        self.assertEqual(mediaOptions(receivedFrom=("::1", 5060)), {"received from": ["IP6", "::1"]})
        self.assertEqual(mediaOptions(), {})

    def test_answerDeleteQueryKeys(self) -> None:
        """answer carries both tags; delete and query the call-id (and delete optional tags)."""
        self.client.answer("c1", "c1-A", "c1-B", ANSWER_SDP)
        self.client.delete("c1")
        self.client.delete("c1", fromTag="c1-A", toTag="c1-B")
        self.client.query("c1")
        messages = [message for _, message in self.requests()]
        self.assertEqual(
            messages,
            [
                {
                    b"command": b"answer",
                    b"call-id": b"c1",
                    b"from-tag": b"c1-A",
                    b"to-tag": b"c1-B",
                    b"sdp": ANSWER_SDP,
                },
                {b"command": b"delete", b"call-id": b"c1"},
                {b"command": b"delete", b"call-id": b"c1", b"from-tag": b"c1-A", b"to-tag": b"c1-B"},
                {b"command": b"query", b"call-id": b"c1"},
            ],
        )

    def test_badArguments(self) -> None:
        """A timeout that is not positive, or negative retries, are refused at construction."""
        self.assertRaises(ValueError, RtpengineClient, self.reactor, self.clock, DAEMON, timeout=0)
        self.assertRaises(ValueError, RtpengineClient, self.reactor, self.clock, DAEMON, retries=-1)

    def test_tooBig(self) -> None:
        """A request that cannot fit one datagram fails at once, and nothing is sent."""
        d = self.client.offer("c1", "c1-A", b"x" * MAX_DATAGRAM)
        self.failureResultOf(d, RtpengineProtocolError)
        self.assertEqual(self.reactor.ports, [])


class ClientReplyTests(ClientTestCase):
    """Replies are matched by cookie, and their result decides the outcome."""

    def test_pong(self) -> None:
        """ping succeeds on "pong"."""
        d = self.client.ping()
        self.assertNoResult(d)
        self.replyLast({"result": "pong"})
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(self.client.pendingCount, 0)

    def test_offerSDP(self) -> None:
        """offer fires with the SDP of the reply."""
        d = self.client.offer("c1", "c1-A", OFFER_SDP)
        self.replyLast({"sdp": RELAYED_SDP, "result": "ok"})
        self.assertEqual(self.successResultOf(d), RELAYED_SDP)

    def test_matchedByCookie(self) -> None:
        """Replies in another order than the requests reach the right Deferreds."""
        first = self.client.query("one")
        second = self.client.query("two")
        (cookie1, _), (cookie2, _) = self.requests()
        self.reply(cookie2, {"result": "ok", "n": 2})
        self.reply(cookie1, {"result": "ok", "n": 1})
        self.assertEqual(self.successResultOf(first)[b"n"], 1)
        self.assertEqual(self.successResultOf(second)[b"n"], 2)

    def test_strangersIgnored(self) -> None:
        """A reply from another address, or with no cookie of ours, changes nothing."""
        d = self.client.ping()
        cookie, _ = self.lastRequest()
        self.reply(cookie, {"result": "pong"}, source=("127.0.0.9", 22222))
        self.reply(cookie, {"result": "pong"}, source=("127.0.0.1", 22223))
        self.reply(cookie, {"result": "pong"}, source=None)
        self.reply(b"other", {"result": "pong"})
        self.port.protocol.datagramReceived(b"nospace", DAEMON)
        self.port.protocol.datagramReceived(b"", DAEMON)
        self.assertNoResult(d)
        self.reply(cookie, {"result": "pong"})
        self.successResultOf(d)

    def test_duplicateReplyIgnored(self) -> None:
        """A second reply with the same cookie (to a retransmission) is dropped quietly."""
        d = self.client.ping()
        cookie, _ = self.lastRequest()
        self.reply(cookie, {"result": "pong"})
        self.reply(cookie, {"result": "error", "error-reason": "late"})
        self.successResultOf(d)

    def test_errorResult(self) -> None:
        """result "error" fails with RtpengineRefusedError carrying error-reason."""
        d = self.client.answer("c1", "c1-A", "c1-B", ANSWER_SDP)
        self.replyLast({"result": "error", "error-reason": "Unknown call-id"})
        failure = self.failureResultOf(d, RtpengineRefusedError)
        self.assertEqual(failure.value.reason, "Unknown call-id")
        self.assertEqual(failure.value.command, "answer")
        self.assertIn("Unknown call-id", str(failure.value))
        self.assertTrue(isUnknownCall(failure))

    def test_otherResults(self) -> None:
        """Any result but ok/pong fails, and so does a reply without a result or a reason."""
        for body, reason in (
            ({"result": "load limit"}, "result 'load limit'"),
            ({"sdp": b"v=0"}, "reply has no result"),
            ({"result": "error"}, "no error-reason given"),
        ):
            d = self.client.query("c1")
            self.replyLast(body)
            failure = self.failureResultOf(d, RtpengineRefusedError)
            self.assertEqual(failure.value.reason, reason)
            self.assertFalse(isUnknownCall(failure))

    def test_malformedReply(self) -> None:
        """A reply with our cookie that is not a bencoded dictionary fails the request at once."""
        for body in (b"not bencode", b"li1ee", b"d6:result2:ok"):
            d = self.client.query("c1")
            cookie, _ = self.lastRequest()
            self.reply(cookie, body, raw=True)
            self.failureResultOf(d, RtpengineProtocolError)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_noSDP(self) -> None:
        """An offer reply without an SDP is a protocol error."""
        d = self.client.offer("c1", "c1-A", OFFER_SDP)
        self.replyLast({"result": "ok"})
        self.failureResultOf(d, RtpengineProtocolError)

    def test_failuresShareABase(self) -> None:
        """Every failure of the client is an RtpengineError."""
        for cls in (
            RtpengineRefusedError,
            RtpengineTimeoutError,
            RtpengineProtocolError,
            RtpengineStoppedError,
        ):
            self.assertTrue(issubclass(cls, RtpengineError))
        self.assertFalse(isUnknownCall(RtpengineTimeoutError("query", 4, 4.0)))

    @PROFILE
    @given(st.binary(max_size=200))
    def test_randomDatagrams(self, datagram: bytes) -> None:
        """No datagram makes datagramReceived raise; a request it completes fails with RtpengineError."""
        d = self.client.ping()
        cookie, _ = self.lastRequest()
        self.port.protocol.datagramReceived(cookie + b" " + datagram, DAEMON)
        self.port.protocol.datagramReceived(datagram, DAEMON)
        outcome: list[Any] = []
        d.addBoth(outcome.append)
        if outcome and outcome[0] is not None:
            self.assertIsInstance(outcome[0].value, RtpengineError)
        d.cancel()
        self.assertEqual(self.client.pendingCount, 0)


class ClientRetransmissionTests(ClientTestCase):
    """Lost datagrams are sent again with the same cookie, and the request gives up in the end."""

    def test_retransmit(self) -> None:
        """Every ``timeout`` seconds the same datagram goes out again."""
        self.client.offer("c1", "c1-A", OFFER_SDP)
        self.clock.advance(0.999)
        self.assertEqual(len(self.port.written), 1)
        self.clock.advance(0.001)
        self.assertEqual(len(self.port.written), 2)
        self.elapse(1.0)
        first, second, third = (datagram for datagram, _ in self.port.written)
        self.assertEqual(first, second)
        self.assertEqual(second, third)

    def test_replyAfterRetransmission(self) -> None:
        """A reply to the retransmission completes the request and stops the timer."""
        d = self.client.ping()
        self.elapse(2.0)
        self.replyLast({"result": "pong"})
        self.successResultOf(d)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.elapse(10)
        self.assertEqual(len(self.port.written), 3)

    def test_timeout(self) -> None:
        """After 1 + retries tries and (1 + retries) * timeout seconds, RtpengineTimeoutError."""
        d = self.client.delete("c1")
        self.elapse(3.875)
        self.clock.advance(0.0625)
        self.assertNoResult(d)
        self.assertEqual(len(self.port.written), 4)
        self.clock.advance(0.0625)
        failure = self.failureResultOf(d, RtpengineTimeoutError)
        self.assertEqual(failure.value.tries, 4)
        self.assertIn("4 tries in 4s", str(failure.value))
        self.assertEqual(len(self.port.written), 4)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.client.pendingCount, 0)

    def test_lateReplyIgnored(self) -> None:
        """A reply after the request gave up is dropped."""
        d = self.client.ping()
        cookie, _ = self.lastRequest()
        self.elapse(4.0)
        self.failureResultOf(d, RtpengineTimeoutError)
        self.reply(cookie, {"result": "pong"})

    def test_noRetries(self) -> None:
        """retries=0 sends once and fails after one timeout."""
        client = RtpengineClient(FakeUDPReactor(), self.clock, DAEMON, timeout=0.5, retries=0)
        d = client.ping()
        self.clock.advance(0.5)
        self.failureResultOf(d, RtpengineTimeoutError)

    def test_sendErrorIsLoss(self) -> None:
        """An OSError from the socket counts as a lost datagram: the timer tries again."""
        self.client.start()
        self.port.failWith = OSError("no buffer space")
        d = self.client.ping()
        self.assertEqual(self.port.written, [])
        self.port.failWith = None
        self.clock.advance(1.0)
        self.replyLast({"result": "pong"})
        self.successResultOf(d)

    def test_cancel(self) -> None:
        """Cancelling the Deferred stops the retransmissions."""
        d = self.client.ping()
        d.cancel()
        self.failureResultOf(d)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.client.pendingCount, 0)

    def test_stop(self) -> None:
        """stop fails the waiting requests, cancels their timers and closes the port."""
        d = self.client.ping()
        self.successResultOf(self.client.stop())
        self.failureResultOf(d, RtpengineStoppedError)
        self.assertTrue(self.port.stopped)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.successResultOf(self.client.stop())

    def test_stopBeforeStart(self) -> None:
        """stop with no port is fine."""
        self.successResultOf(self.client.stop())


class RelayTestCase(ClientTestCase):
    pollInterval: float | None = 10.0

    def setUp(self) -> None:
        super().setUp()
        self.relay = RtpengineRelay(self.client, pollInterval=self.pollInterval)
        self.timedOut: list[str] = []

    def anchor(self, callId: str = "c1") -> None:
        """Offer from A and answer from B, both answered "ok"."""
        offered = self.relay.offer(callId, "A", OFFER_SDP, lambda: self.timedOut.append(callId))
        self.replyLast({"sdp": RELAYED_SDP, "result": "ok"})
        self.successResultOf(offered)
        answered = self.relay.answer(callId, "B", ANSWER_SDP)
        self.replyLast({"sdp": RELAYED_SDP, "result": "ok"})
        self.successResultOf(answered)


class RelayTests(RelayTestCase):
    """`RtpengineRelay` maps the SBC's sides onto ng tags and counts its calls."""

    def test_interface(self) -> None:
        """The relay provides IMediaRelay."""
        self.assertTrue(verifyObject(IMediaRelay, self.relay))

    def test_offer(self) -> None:
        """An offer from A goes with from-tag "<callId>-A", origin and session rewritten, ICE removed."""
        d = self.relay.offer("c1", "A", OFFER_SDP, lambda: None)
        _, message = self.lastRequest()
        self.assertEqual(
            message,
            {
                b"command": b"offer",
                b"call-id": b"c1",
                b"from-tag": b"c1-A",
                b"sdp": OFFER_SDP,
                b"replace": [b"origin", b"session-connection"],
                b"ICE": b"remove",
            },
        )
        self.assertEqual(self.relay.activeSessions(), 1)
        self.replyLast({"sdp": RELAYED_SDP, "result": "ok"})
        self.assertEqual(self.successResultOf(d), RELAYED_SDP)

    def test_answerSwapsTags(self) -> None:
        """The answer from B names the offerer A in from-tag and B in to-tag."""
        self.anchor()
        _, answer = self.lastRequest()
        self.assertEqual(
            (answer[b"command"], answer[b"from-tag"], answer[b"to-tag"]), (b"answer", b"c1-A", b"c1-B")
        )
        self.assertEqual(answer[b"sdp"], ANSWER_SDP)

    def test_reOfferFromB(self) -> None:
        """A re-INVITE from B: the offer goes from B to A, and A's answer to it from B to A too."""
        self.anchor()
        self.relay.offer("c1", "B", ANSWER_SDP, lambda: None)
        _, offer = self.lastRequest()
        self.assertEqual((offer[b"from-tag"], offer[b"to-tag"]), (b"c1-B", b"c1-A"))
        self.replyLast({"sdp": RELAYED_SDP, "result": "ok"})
        self.relay.answer("c1", "A", OFFER_SDP)
        _, answer = self.lastRequest()
        self.assertEqual((answer[b"from-tag"], answer[b"to-tag"]), (b"c1-B", b"c1-A"))
        self.assertEqual(self.relay.activeSessions(), 1)

    def test_flagsAndOptions(self) -> None:
        """Configured flags and extra ng keys go into every offer and answer."""
        relay = RtpengineRelay(self.client, flags=["SIP-source-address"], options={"record call": "no"})
        relay.offer("c1", "A", OFFER_SDP, lambda: None)
        _, message = self.lastRequest()
        self.assertEqual(message[b"flags"], [b"SIP-source-address"])
        self.assertEqual(message[b"record call"], b"no")
        relay.answer("c1", "B", ANSWER_SDP)
        _, message = self.lastRequest()
        self.assertEqual(message[b"flags"], [b"SIP-source-address"])

    def test_badSide(self) -> None:
        """A side other than "A" or "B" is a programming error."""
        self.assertRaises(ValueError, self.relay.offer, "c1", "C", OFFER_SDP, lambda: None)
        self.assertRaises(ValueError, self.relay.answer, "c1", "a", ANSWER_SDP)
        self.assertEqual(self.relay.activeSessions(), 0)

    def test_failedOfferStillCounts(self) -> None:
        """An offer that failed may have left state in rtpengine: the call counts until delete."""
        d = self.relay.offer("c1", "A", OFFER_SDP, lambda: None)
        self.elapse(4.0)
        self.failureResultOf(d, RtpengineTimeoutError)
        self.assertEqual(self.relay.activeSessions(), 1)
        deleted = self.relay.delete("c1")
        self.assertEqual(self.lastRequest()[1][b"command"], b"delete")
        self.replyLast({"result": "ok"})
        self.successResultOf(deleted)
        self.assertEqual(self.relay.activeSessions(), 0)

    def test_delete(self) -> None:
        """delete sends ng delete for the call and forgets it."""
        self.anchor()
        d = self.relay.delete("c1")
        self.assertEqual(self.relay.activeSessions(), 0)
        _, message = self.lastRequest()
        self.assertEqual(message, {b"command": b"delete", b"call-id": b"c1"})
        self.replyLast({"result": "ok"})
        self.assertIsNone(self.successResultOf(d))

    def test_deleteUnknown(self) -> None:
        """A call rtpengine does not know is no error, as a warning or as an error."""
        for reply in (
            {"result": "ok", "warning": "Call-ID not found or tags didn't match"},
            {"result": "error", "error-reason": "Call-ID not found or tags didn't match"},
            {"result": "error", "error-reason": "Unknown call-id"},
        ):
            self.anchor()
            d = self.relay.delete("c1")
            self.replyLast(reply)
            self.assertIsNone(self.successResultOf(d))

    def test_deleteNeverOffered(self) -> None:
        """delete of a call the relay never offered succeeds without a request."""
        self.successResultOf(self.relay.delete("nobody"))
        self.assertEqual(self.reactor.ports, [])

    def test_deleteFails(self) -> None:
        """When rtpengine does not answer, the caller hears of it, and the call is forgotten anyway."""
        self.anchor()
        d = self.relay.delete("c1")
        self.elapse(4.0)
        self.failureResultOf(d, RtpengineTimeoutError)
        self.assertEqual(self.relay.activeSessions(), 0)

    def test_thousandCalls(self) -> None:
        """After 1,000 calls set up and deleted, no session, request or timer is left."""
        for n in range(1000):
            self.anchor(f"call-{n}")
            deleted = self.relay.delete(f"call-{n}")
            self.replyLast({"result": "ok"})
            self.successResultOf(deleted)
        self.assertEqual(self.relay.activeSessions(), 0)
        self.assertEqual(self.client.pendingCount, 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class RelayPollTests(RelayTestCase):
    """A call rtpengine dropped (its --timeout) is found by polling with query, and reported once."""

    def queries(self) -> list[tuple[bytes, dict[bytes, Value]]]:
        return [(cookie, m) for cookie, m in self.requests() if m[b"command"] == b"query"]

    def test_noPollWithoutCalls(self) -> None:
        """No timer runs while no call is anchored, nor while the first offer waits for its reply."""
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.relay.offer("c1", "A", OFFER_SDP, lambda: None)
        self.clock.advance(0.5)
        self.assertEqual(self.queries(), [])

    def test_aliveCallStays(self) -> None:
        """Every pollInterval a query goes out; an "ok" keeps the call."""
        self.anchor()
        self.elapse(10.0)
        [(cookie, message)] = self.queries()
        self.assertEqual(message, {b"command": b"query", b"call-id": b"c1"})
        self.reply(cookie, {"result": "ok", "created": 1})
        self.elapse(10.0)
        self.assertEqual(len(self.queries()), 2)
        self.assertEqual(self.timedOut, [])
        self.assertEqual(self.relay.activeSessions(), 1)

    def test_droppedCallTimesOut(self) -> None:
        """ "Unknown call-id" runs onTimeout once, forgets the call, and polling stops."""
        self.anchor()
        self.elapse(10.0)
        [(cookie, _)] = self.queries()
        self.reply(cookie, {"result": "error", "error-reason": "Unknown call-id"})
        self.assertEqual(self.timedOut, ["c1"])
        self.assertEqual(self.relay.activeSessions(), 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        # The call layer hangs up and deletes: no request, no error.
        self.successResultOf(self.relay.delete("c1"))

    def test_unreachableKeepsCalls(self) -> None:
        """A query with no reply hangs up nothing; the next poll asks again."""
        self.anchor()
        self.elapse(10.0)
        self.elapse(4.0)  # the query gives up
        self.assertEqual(self.timedOut, [])
        self.assertEqual(self.relay.activeSessions(), 1)
        self.elapse(10.0)
        self.assertEqual(len({cookie for cookie, _ in self.queries()}), 2)

    def test_onlyDroppedOnes(self) -> None:
        """Of several calls, only those rtpengine dropped time out; poll fires with their Call-IDs."""
        self.anchor("c1")
        self.anchor("c2")
        self.anchor("c3")
        d = self.relay.poll()
        replies = {
            b"c1": {"result": "ok"},
            b"c2": {"result": "error", "error-reason": "Unknown call-id"},
            b"c3": {"result": "ok"},
        }
        for cookie, message in self.queries():
            self.reply(cookie, replies[message[b"call-id"]])  # type: ignore[index]
        self.assertEqual(self.successResultOf(d), ["c2"])
        self.assertEqual(self.timedOut, ["c2"])
        self.assertEqual(self.relay.activeSessions(), 2)

    def test_deletedWhileQuerying(self) -> None:
        """A call deleted while its query was out does not time out afterwards."""
        self.anchor()
        self.elapse(10.0)
        [(cookie, _)] = self.queries()
        self.relay.delete("c1")
        self.reply(cookie, {"result": "error", "error-reason": "Unknown call-id"})
        self.assertEqual(self.timedOut, [])

    def test_onTimeoutRaises(self) -> None:
        """An exception in onTimeout is logged and does not stop the polling of other calls."""
        self.anchor("c2")

        def broken() -> None:
            raise ZeroDivisionError()

        offered = self.relay.offer("c1", "A", OFFER_SDP, broken)
        self.replyLast({"sdp": RELAYED_SDP, "result": "ok"})
        self.successResultOf(offered)
        self.elapse(10.0)
        for cookie, message in self.queries():
            reason = "Unknown call-id" if message[b"call-id"] == b"c1" else "x"
            self.reply(cookie, {"result": "error", "error-reason": reason})
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertEqual(self.relay.activeSessions(), 1)
        self.elapse(10.0)
        self.assertEqual(len(self.queries()), 3)

    def test_stop(self) -> None:
        """stop cancels polling."""
        self.anchor()
        self.relay.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.anchor("c2")
        self.assertEqual(self.clock.getDelayedCalls(), [])


class NoPollTests(RelayTestCase):
    """pollInterval=None switches polling off."""

    pollInterval = None

    def test_noTimer(self) -> None:
        """No query, ever."""
        self.anchor()
        self.elapse(1000, step=1.0)
        self.assertEqual([m for _, m in self.requests() if m[b"command"] == b"query"], [])


class RecordedExchangeTests(ClientTestCase):
    """Replay of an exchange with the real daemon (rtpengine 10.5, userspace, loopback)."""

    def setUp(self) -> None:
        super().setUp()
        document = json.loads(EXCHANGE.read_text())
        self.steps = {step["name"]: step for step in document["steps"]}
        self.relay = RtpengineRelay(self.client, pollInterval=None)

    def expect(self, name: str, d: Deferred[Any] | None = None) -> Any:
        """Check the request is the recorded one, feed the recorded reply, return the outcome."""
        step = self.steps[name]
        cookie, _, body = self.port.written[-1][0].partition(b" ")
        self.assertEqual(body, step["request"].encode("latin-1"), name)
        self.reply(cookie, step["reply"].encode("latin-1"), raw=True)
        if d is None:
            return None
        outcome: list[Any] = []
        d.addBoth(outcome.append)
        self.assertEqual(len(outcome), 1, name)
        return outcome[0]

    def recorded(self, name: str, key: str = "request") -> dict[bytes, Value]:
        message = decode(self.steps[name][key].encode("latin-1"))
        assert isinstance(message, dict)
        return message

    def test_callLifecycle(self) -> None:
        """ping, offer, answer, query, delete: our bytes are the recorded ones, and so are the results."""
        self.assertIsNone(self.expect("ping", self.client.ping()))
        offer = self.recorded("offer")
        callId = offer[b"call-id"]
        assert isinstance(callId, bytes)
        call = callId.decode()
        sdpA = offer[b"sdp"]
        sdpB = self.recorded("answer")[b"sdp"]
        assert isinstance(sdpA, bytes) and isinstance(sdpB, bytes)

        toB = self.expect("offer", self.relay.offer(call, "A", sdpA, lambda: None))
        self.assertEqual(toB, self.recorded("offer", "reply")[b"sdp"])
        self.assertIn(b"c=IN IP4 127.0.0.1\r\n", toB)
        self.assertNotIn(b"a=candidate", toB)
        self.assertNotIn(b"127.0.0.2", toB)

        toA = self.expect("answer", self.relay.answer(call, "B", sdpB))
        self.assertEqual(toA, self.recorded("answer", "reply")[b"sdp"])
        self.assertNotIn(b"127.0.0.3", toA)

        state = self.expect("query", self.client.query(call))
        tags = state[b"tags"]
        self.assertEqual(sorted(tags), [f"{call}-A".encode(), f"{call}-B".encode()])

        self.assertEqual(self.relay.activeSessions(), 1)
        self.assertIsNone(self.expect("delete", self.relay.delete(call)))
        self.assertEqual(self.relay.activeSessions(), 0)

        gone = self.expect("query-deleted", self.client.query(call))
        self.assertTrue(isUnknownCall(gone))

        unknown = self.expect("delete-unknown", self.client.delete(call))
        self.assertTrue(isUnknownCall(unknown))

        refused = self.expect("answer-unknown", self.client.answer(call, "x", "y", sdpB))
        self.assertIsInstance(refused.value, RtpengineRefusedError)
        self.assertEqual(refused.value.reason, "Unknown call-id")

    def test_timeoutFoundByPolling(self) -> None:
        """The recorded "Unknown call-id" to a query is what makes polling run onTimeout."""
        relay = RtpengineRelay(self.client, pollInterval=5.0)
        timedOut: list[bool] = []
        offer = self.recorded("offer")
        call = offer[b"call-id"].decode()  # type: ignore[union-attr]
        self.expect("offer", relay.offer(call, "A", offer[b"sdp"], lambda: timedOut.append(True)))  # type: ignore[arg-type]
        self.elapse(5.0)
        self.expect("query-deleted")
        self.assertEqual(timedOut, [True])
        self.assertEqual(relay.activeSessions(), 0)
