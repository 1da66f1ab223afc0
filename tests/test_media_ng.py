"""Tests for `sbc.media.ng`: the ng protocol client on a fake UDP reactor and a `Clock`."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from sbc.media.ng import (
    MAX_DATAGRAM,
    RtpengineClient,
    RtpengineError,
    RtpengineProtocolError,
    RtpengineRefusedError,
    RtpengineStoppedError,
    RtpengineTimeoutError,
    isUnknownCall,
    mediaOptions,
)
from tests.fakes import FakeUDPReactor
from tests.media import ANSWER_SDP, DAEMON, OFFER_SDP, PROFILE, RELAYED_SDP, ClientTestCase


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
        self.port.refuse = OSError("no buffer space")
        d = self.client.ping()
        self.assertEqual(self.port.written, [])
        self.port.refuse = None
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
        self.assertFalse(self.port.open)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.successResultOf(self.client.stop())

    def test_stopBeforeStart(self) -> None:
        """stop with no port is fine."""
        self.successResultOf(self.client.stop())
