"""Tests for `sbc.media.rtpengine`: `RtpengineRelay` on the ng client, a fake UDP reactor and a `Clock`.

The recorded exchange (``tests/interop/rtpengine_exchange.json``) holds the bytes the real daemon
(Debian's rtpengine-daemon) sent to our requests; `RecordedExchangeTests` replays it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from zope.interface.verify import verifyObject

from sbc.interfaces import IMediaRelay
from sbc.media.bencode import Value, decode
from sbc.media.ng import (
    RtpengineRefusedError,
    RtpengineTimeoutError,
    isUnknownCall,
)
from sbc.media.rtpengine import RtpengineRelay
from tests.media import ANSWER_SDP, OFFER_SDP, RELAYED_SDP, ClientTestCase

EXCHANGE = Path(__file__).resolve().parent / "interop" / "rtpengine_exchange.json"


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
