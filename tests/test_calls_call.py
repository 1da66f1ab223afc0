"""Tests for sbc.calls.call: a call's order of events with a media engine that answers later, and
a call's cost with one that answers at once."""

from __future__ import annotations

from typing import cast

from twisted.internet.defer import Deferred

from sbc.calls.caller import CallerSide
from sbc.registrar.location import Binding
from sbc.scheduler import Timer
from sbc.sip import parseMessage
from tests.calls import ALICE, DOMAIN, SDP, TRUNK, CallTestCase, RelayedCallTestCase, answer, invite
from tests.fakes import RecordingRelay

GATEWAY = ("127.0.0.2", 5080)


class SlowEngineTests(CallTestCase):
    """With an engine on the network (rtpengine), each SDP waits for it, and order still holds."""

    def test_answersInOrder(self) -> None:
        """B's 183 with SDP, then its 180, reach A in that order, though the engine answers the
        183's SDP only later; B's 200 waits its turn the same way, and B's 2xx is ACKed at once."""
        relay = RecordingRelay(when="later")
        self.server.calls.relay = relay
        anchored = SDP.replace(b"192.0.2.77", b"127.0.0.1")
        self.receive(invite("sip:+15550002@127.0.0.1"), TRUNK)
        self.assertEqual((relay.asked(), self.requestsTo(GATEWAY, "INVITE")), ([("offer", "A")], []))
        relay.waiting[0].callback(anchored)
        (bInvite,) = self.requestsTo(GATEWAY, "INVITE")
        self.assertIn(b"o=sbc ", bInvite.body)
        contact = "<sip:gw@127.0.0.2:5080>"
        self.receive(answer(bInvite, 183, body=SDP, contact=contact), GATEWAY)
        self.receive(answer(bInvite, 180, contact=contact), GATEWAY)
        self.assertEqual(self.statuses(TRUNK), [100])
        relay.waiting[1].callback(anchored)
        self.assertEqual(self.statuses(TRUNK), [100, 183, 180])
        self.receive(answer(bInvite, 200, body=SDP, contact=contact), GATEWAY)
        self.assertEqual(relay.asked(), [("offer", "A"), ("answer", "B"), ("answer", "B")])
        self.assertEqual((len(self.requestsTo(GATEWAY, "ACK")), self.statuses(TRUNK)), (1, [100, 183, 180]))
        relay.waiting[2].callback(anchored)
        self.assertEqual(self.statuses(TRUNK), [100, 183, 180, 200])
        self.assertIn(b"o=sbc ", self.responsesTo(TRUNK)[-1].body)


def cancelOf(message: bytes) -> bytes:
    """A's CANCEL for the INVITE ``message`` (same Via branch, CSeq number, no body)."""
    head = message.split(b"\r\n\r\n")[0].replace(b"INVITE ", b"CANCEL ", 1)
    head = head.replace(b" INVITE\r\n", b" CANCEL\r\n").replace(b"Content-Type: application/sdp\r\n", b"")
    return head.replace(f"Content-Length: {len(SDP)}".encode(), b"Content-Length: 0") + b"\r\n\r\n"


class EndedCallTests(CallTestCase):
    """Work that finishes after the call ended (a slow engine, a slow lookup) changes nothing."""

    def test_queuedRingingAfterCancel(self) -> None:
        """A 180 queued behind the engine's answer to a 183's SDP, whose call A CANCELs meanwhile,
        never reaches A once the engine answers: no 18x after the 487, and no reliable-provisional
        (RFC 3262) resend timer left on the clock."""
        relay = RecordingRelay(when="later")
        self.server.calls.relay = relay
        anchored = SDP.replace(b"192.0.2.77", b"127.0.0.1")
        message = invite("sip:+15550002@127.0.0.1")
        self.receive(message, TRUNK)
        relay.waiting[0].callback(anchored)
        (bInvite,) = self.requestsTo(GATEWAY, "INVITE")
        contact = "<sip:gw@127.0.0.2:5080>"
        self.receive(answer(bInvite, 183, body=SDP, contact=contact), GATEWAY)
        self.receive(answer(bInvite, 180, contact=contact), GATEWAY)
        self.receive(cancelOf(message), TRUNK)
        self.assertEqual(self.statuses(TRUNK)[-1], 487)
        relay.waiting[1].callback(anchored)
        self.assertEqual(self.statuses(TRUNK)[-1], 487)
        timers = [cast("Timer", t)._func for t in self.server.timerQueue.getDelayedCalls()]
        self.assertEqual([f for f in timers if isinstance(getattr(f, "__self__", None), CallerSide)], [])

    def test_closedCallerStartsNothing(self) -> None:
        """Once its call ended, A's side takes no provisional or 2xx: no RSeq outstanding, no 2xx
        to resend, no timer of its own."""
        self.bind()
        message = invite()
        self.receive(message, TRUNK)
        (call,) = self.server.calls.index.calls()
        (bInvite,) = self.requestsTo(ALICE, "INVITE")
        self.receive(cancelOf(message), TRUNK)
        caller = call.caller
        caller.provisional(caller.responseFor(parseMessage(answer(bInvite, 180)), None, None))  # type: ignore[arg-type]
        caller.answer(caller.responseFor(parseMessage(answer(bInvite, 200)), None, None))  # type: ignore[arg-type]
        caller.refreshed()
        self.assertEqual((caller.unackedRseq, caller.ok), (None, None))
        timers = [cast("Timer", t)._func for t in self.server.timerQueue.getDelayedCalls()]
        self.assertEqual([f for f in timers if isinstance(getattr(f, "__self__", None), CallerSide)], [])

    def test_cancelDuringLookup(self) -> None:
        """A CANCEL while alice's bindings are looked up: once the lookup answers, no INVITE goes
        to her, and the ended call leaves nothing in the dialog index."""
        self.bind()
        legs = self.server.calls.legs
        bindings: list[Binding] = self.successResultOf(legs.lookup(f"alice@{DOMAIN}"))
        pending: Deferred[list[Binding]] = Deferred()
        self.patch(legs, "lookup", lambda aor: pending)
        message = invite()
        self.receive(message, TRUNK)
        self.receive(cancelOf(message), TRUNK)
        self.assertEqual(self.statuses(TRUNK)[-1], 487)
        pending.callback(bindings)
        self.assertEqual(self.requestsTo(ALICE, "INVITE"), [])
        self.assertEqual((len(self.server.calls.index), self.server.calls.index.legs), (0, {}))

    def test_byeOnEarlyDialog(self) -> None:
        """A's BYE in the early dialog of B's 180 (RFC 3261 section 15.1.1): 200 to the BYE, 487
        to A's INVITE (15.1.2), CANCEL to B, nothing left in the index; the caller released it."""
        self.bind()
        self.receive(invite(), TRUNK)
        (bInvite,) = self.requestsTo(ALICE, "INVITE")
        self.receive(answer(bInvite, 180), ALICE)
        ringing = self.responsesTo(TRUNK)[-1]
        self.assertEqual(ringing.status, 180)
        bye = (
            "BYE sip:sbc@127.0.0.1:5060 SIP/2.0\r\n"
            "Via: SIP/2.0/UDP 127.0.0.2:5062;branch=z9hG4bKbye;rport\r\n"
            'Max-Forwards: 70\r\nFrom: "Caller" <sip:+15551234@127.0.0.2>;tag=atag\r\n'
            f"To: {ringing.headers.get('to')}\r\nCall-ID: a-call-1@127.0.0.2\r\nCSeq: 11 BYE\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()
        self.receive(bye, TRUNK)
        finals = {r.cseq().method: r.status for r in self.responsesTo(TRUNK) if r.status >= 200}
        self.assertEqual(finals, {"BYE": 200, "INVITE": 487})
        (bCancel,) = self.requestsTo(ALICE, "CANCEL")
        self.assertEqual(bCancel.topVia().branch, bInvite.topVia().branch)
        self.assertEqual(self.requestsTo(ALICE, "BYE"), [])
        self.assertEqual((len(self.server.calls.index), self.server.calls.index.legs), (0, {}))
        (cdr,) = self.cdrs.records
        self.assertEqual((cdr.releasedBy, cdr.disposition), ("caller", "cancelled"))


class QuickEngineTests(RelayedCallTestCase):
    """With the built-in relay, which answers at once, a call makes no Deferred of its own."""

    def test_noDeferredPerCall(self) -> None:
        """A relayed trunk-to-trunk call, from INVITE to BYE, creates not one Deferred (another
        call is up, so that the relay's own timer already runs)."""
        self.receive(invite("sip:+15550002@127.0.0.1", body=self.aSDP, callId="up"), TRUNK)
        (first,) = self.requestsTo(GATEWAY, "INVITE")
        self.receive(answer(first, 200, body=self.bSDP, contact="<sip:gw@127.0.0.2:5080>"), GATEWAY)
        made: list[object] = []
        original = Deferred.__init__

        def counting(d: Deferred[object], *args: object, **kwargs: object) -> None:
            made.append(d)
            original(d, *args, **kwargs)  # type: ignore[arg-type]

        self.patch(Deferred, "__init__", counting)
        self.receive(invite("sip:+15550002@127.0.0.1", body=self.aSDP, branch="z9hG4bKa2"), TRUNK)
        bInvite = self.requestsTo(GATEWAY, "INVITE")[-1]
        self.receive(answer(bInvite, 180), GATEWAY)
        self.receive(answer(bInvite, 200, body=self.bSDP, contact="<sip:gw@127.0.0.2:5080>"), GATEWAY)
        upTo, ok = self.responsesTo(TRUNK)[1].headers.get("to") or "", self.responsesTo(TRUNK)[-1]
        for method, cseq in (("ACK", 10), ("BYE", 11)):
            request = self.aRequest(method, cseq, f"z9hG4bK{method}")
            self.receive(request.replace(upTo.encode(), (ok.headers.get("to") or "").encode()), TRUNK)
        self.assertEqual(len(self.requestsTo(GATEWAY, "BYE")), 1)
        self.assertEqual(self.statuses(TRUNK)[-4:], [100, 180, 200, 200])
        self.assertEqual(made, [])
