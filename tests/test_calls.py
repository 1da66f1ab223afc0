"""Tests for sbc.calls (the call core, `sbc.calls.manager` down): calls bridged between trunks and
devices, on a Clock."""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger, LogPublisher

from sbc.calls.call import Call
from sbc.calls.caller import CallerSide
from sbc.config import Fork, MediaMode, Redirect, Refer, Trunk
from sbc.config.gateways import Gateway
from sbc.routing import Decision, UserTarget
from sbc.sip import Request, Response
from sbc.transaction.lifecycle import SPENT
from tests.calls import (
    ALICE,
    DOMAIN,
    ISUP,
    MIXED,
    SDP,
    TRUNK,
    CallTestCase,
    RelayedCallTestCase,
    answer,
    invite,
    sipI,
    typed,
    withCalls,
    withTrunk,
)

ALICE2 = ("127.0.0.5", 5070)


class TrunkToUserTests(CallTestCase):
    def test_fullCallCallerHangsUp(self) -> None:
        """Trunk → alice: 100 hop by hop, 180 and 200 relayed, ACK to B, BYE from the caller."""
        bInvite = self.connect()
        self.assertEqual(self.statuses(TRUNK), [100, 180, 200])
        self.assertEqual(len(self.requestsTo(ALICE, "ACK")), 1)
        self.receive(self.aRequest("BYE", 11, "z9hG4bKbye"), TRUNK)
        self.assertEqual(self.statuses(TRUNK)[-1], 200)
        (bye,) = self.requestsTo(ALICE, "BYE")
        self.assertEqual(bye.callId, bInvite.callId)
        self.receive(answer(bye, 200), ALICE)
        (cdr,) = self.cdrs.records
        self.assertEqual((cdr.status, cdr.disposition, cdr.releasedBy), (200, "answered", "caller"))
        self.assertEqual(cdr.bLeg.name if cdr.bLeg else None, f"alice@{DOMAIN}")

    def test_calleeHangsUp(self) -> None:
        """BYE from the callee reaches the caller, and the CDR says the callee released."""
        bInvite = self.connect()
        self.receive(self.bRequest(bInvite, "BYE", 1, "z9hG4bKbb"), ALICE)
        (bye,) = self.requestsTo(TRUNK, "BYE")
        self.assertEqual(bye.callId, "a-call-1@127.0.0.2")
        self.assertEqual(self.cdrs.records[0].releasedBy, "callee")

    def test_calleeInvitedBeforeTrying(self) -> None:
        """The callee's INVITE leaves before the caller's 100 Trying: the 100 delays nobody."""
        self.bind()
        self.receive(invite(), TRUNK)
        self.assertEqual([where for _, where in self.udp.sent], [ALICE, TRUNK])
        self.assertEqual(self.statuses(TRUNK), [100])

    def test_routeAnsweredAtOnce(self) -> None:
        """A route with its decision at hand (no Deferred) places the callee's INVITE at once."""
        self.bind()
        self.server.calls.decide = lambda call: Decision(targets=(UserTarget(f"alice@{DOMAIN}"),))
        self.receive(invite(), TRUNK)
        self.assertEqual(len(self.requestsTo(ALICE, "INVITE")), 1)
        self.assertEqual(self.statuses(TRUNK), [100])

    def test_placingFailsAtOnce(self) -> None:
        """An error placing the callee's leg on the synchronous path still answers the caller 500."""
        self.breakTrunkLegs()
        self.receive(invite(), TRUNK)
        self.assertEqual(self.statuses(TRUNK)[-1], 500)
        self.assertEqual(self.server.calls.index.invites, {})

    def test_answeringCallerFails(self) -> None:
        """An error relaying the callee's 2xx still ACKs and hangs up the callee, and answers A."""
        self.bind()
        self.receive(invite(), TRUNK)
        (bInvite,) = self.requestsTo(ALICE, "INVITE")

        def broken(caller: CallerSide, response: Response, body: bytes | None, _: Trunk | None) -> Response:
            raise RuntimeError("cannot build the answer")

        self.patch(CallerSide, "responseFor", broken)
        self.patch(Call, "log", Logger(observer=LogPublisher()))  # quiet: the failure is logged
        self.receive(answer(bInvite, 200, body=SDP, contact="<sip:alice@10.1.1.1:5070>"), ALICE)
        methods = [r.method for r in self.sentTo(ALICE) if isinstance(r, Request)]
        self.assertEqual(methods, ["INVITE", "ACK", "BYE"])
        self.assertEqual(self.statuses(TRUNK), [100, 488])

    def test_answerBeforeAck(self) -> None:
        """The callee's 2xx goes on to the caller before the callee gets its ACK."""
        self.bind()
        self.receive(invite(), TRUNK)
        (bInvite,) = self.requestsTo(ALICE, "INVITE")
        before = len(self.udp.sent)
        self.receive(answer(bInvite, 200, body=SDP, contact="<sip:alice@10.1.1.1:5070>"), ALICE)
        [(ok, toA), (ack, toB)] = self.udp.sent[before:]
        self.assertEqual((ok[:12], toA), (b"SIP/2.0 200 ", TRUNK))
        self.assertEqual((ack[:4], toB), (b"ACK ", ALICE))

    def test_okRetransmittedUntilAck(self) -> None:
        """Over UDP our 2xx to A is resent until A's ACK."""
        self.bind()
        self.receive(invite(), TRUNK)
        (bInvite,) = self.requestsTo(ALICE, "INVITE")
        self.receive(answer(bInvite, 200, body=SDP, contact="<sip:alice@10.1.1.1>"), ALICE)
        self.clock.advance(0.5)
        self.clock.advance(1.0)
        self.assertEqual(self.statuses(TRUNK).count(200), 3)

    def test_retransmitted2xxGetsSameAck(self) -> None:
        """A 2xx the callee resends (our ACK was lost) gets the very same ACK again."""
        bInvite = self.connect()
        self.receive(answer(bInvite, 200, body=SDP, contact="<sip:alice@10.1.1.1:5070>"), ALICE)
        acks = [data for data, where in self.udp.sent if where == ALICE and data.startswith(b"ACK")]
        self.assertEqual(len(acks), 2)
        self.assertEqual(acks[0], acks[1])

    def test_busyPassedBack(self) -> None:
        """486 from the callee goes back to the caller."""
        self.bind()
        self.receive(invite(), TRUNK)
        (bInvite,) = self.requestsTo(ALICE, "INVITE")
        self.receive(answer(bInvite, 486), ALICE)
        self.assertEqual(self.statuses(TRUNK)[-1], 486)
        self.assertEqual(self.cdrs.records[0].disposition, "busy")

    def test_notRegistered(self) -> None:
        """A user with no binding gets 480."""
        self.receive(invite(), TRUNK)
        self.assertEqual(self.statuses(TRUNK)[-1], 480)

    def test_rejectByRouting(self) -> None:
        """A routing reject goes back as is."""
        self.receive(invite("sip:nobody@127.0.0.1"), TRUNK)
        self.assertEqual(self.statuses(TRUNK)[-1], 404)

    def test_cancelBeforeAnswer(self) -> None:
        """CANCEL before the answer: 200 (with A's To tag) to the CANCEL, 487 to A, CANCEL to B."""
        self.bind()
        self.receive(invite(), TRUNK)
        (bInvite,) = self.requestsTo(ALICE, "INVITE")
        self.receive(answer(bInvite, 180), ALICE)
        ringingTag = self.responsesTo(TRUNK)[-1].toHeader().tag
        cancel = invite().replace(
            b"INVITE sip:alice@127.0.0.1 SIP/2.0", b"CANCEL sip:alice@127.0.0.1 SIP/2.0"
        )
        cancel = cancel.replace(b"CSeq: 10 INVITE", b"CSeq: 10 CANCEL").split(b"\r\n\r\n")[0]
        cancel = cancel.replace(f"Content-Length: {len(SDP)}".encode(), b"Content-Length: 0") + b"\r\n\r\n"
        self.receive(cancel, TRUNK)
        self.assertEqual(sorted(self.statuses(TRUNK))[-2:], [200, 487])
        finals = [r for r in self.responsesTo(TRUNK) if r.status in (200, 487)]
        self.assertEqual({r.toHeader().tag for r in finals}, {ringingTag})
        (bCancel,) = self.requestsTo(ALICE, "CANCEL")
        self.assertEqual(bCancel.topVia().branch, bInvite.topVia().branch)
        self.receive(answer(bCancel, 200), ALICE)
        self.receive(answer(bInvite, 487), ALICE)
        self.assertEqual(self.cdrs.records[0].disposition, "cancelled")

    def test_cancelAnswerRace(self) -> None:
        """A 2xx that crosses our CANCEL is ACKed and hung up with BYE."""
        self.bind()
        self.receive(invite(), TRUNK)
        (bInvite,) = self.requestsTo(ALICE, "INVITE")
        self.receive(answer(bInvite, 180), ALICE)
        self.server.calls.releaseAll()
        self.receive(answer(bInvite, 200, body=SDP, contact="<sip:alice@10.1.1.1>"), ALICE)
        self.assertEqual(len(self.requestsTo(ALICE, "ACK")), 1)
        self.assertEqual(len(self.requestsTo(ALICE, "BYE")), 1)

    def test_forkFirstAnswerWins(self) -> None:
        """Two bindings ring in parallel; the first 2xx wins and the other is CANCELled."""
        self.bind()
        self.bind(ALICE2, "sip:alice@10.1.1.2:5070")
        self.receive(invite(), TRUNK)
        (one,) = self.requestsTo(ALICE, "INVITE")
        (two,) = self.requestsTo(ALICE2, "INVITE")
        self.receive(answer(two, 180, tag="t2"), ALICE2)
        self.receive(answer(one, 200, body=SDP, contact="<sip:alice@10.1.1.1>"), ALICE)
        self.assertEqual(len(self.requestsTo(ALICE2, "CANCEL")), 1)
        self.assertEqual(self.statuses(TRUNK).count(200), 1)

    def test_noAnswerTimerC(self) -> None:
        """Ringing past the no-answer time cancels the callee and gives the caller 408."""
        self.bind()
        self.receive(invite(), TRUNK)
        (bInvite,) = self.requestsTo(ALICE, "INVITE")
        self.receive(answer(bInvite, 180), ALICE)
        self.clock.advance(181)
        self.assertEqual(self.statuses(TRUNK)[-1], 408)
        self.assertEqual(len(self.requestsTo(ALICE, "CANCEL")), 1)

    def test_reinviteFromCaller(self) -> None:
        """A re-INVITE (hold) from the caller is relayed on the B-leg, and its answer back."""
        bInvite = self.connect()
        hold = self.aRequest("INVITE", 11, "z9hG4bKre").replace(b"Content-Length: 0\r\n\r\n", b"")
        hold += b"Content-Type: application/sdp\r\nContent-Length: %d\r\n\r\n" % len(SDP) + SDP
        self.receive(hold, TRUNK)
        reinvites = self.requestsTo(ALICE, "INVITE")
        self.assertEqual(len(reinvites), 2)
        re = reinvites[1]
        self.assertEqual(re.callId, bInvite.callId)
        self.assertEqual(re.body, SDP)
        self.receive(answer(re, 200, body=SDP, contact="<sip:alice@10.1.1.1>"), ALICE)
        self.assertEqual(self.statuses(TRUNK)[-1], 200)
        self.assertEqual(len(self.requestsTo(ALICE, "ACK")), 2)

    def test_reinviteFromCallee(self) -> None:
        """A re-INVITE from the callee goes to the caller."""
        bInvite = self.connect()
        self.receive(self.bRequest(bInvite, "INVITE", 2, "z9hG4bKbr", SDP), ALICE)
        (re,) = self.requestsTo(TRUNK, "INVITE")
        self.assertEqual(re.callId, "a-call-1@127.0.0.2")
        self.receive(answer(re, 200, body=SDP, contact="<sip:caller@127.0.0.2>"), TRUNK)
        self.assertEqual(self.statuses(ALICE)[-1], 200)

    def test_glare(self) -> None:
        """A re-INVITE from a side we are still offering to gets 491."""
        bInvite = self.connect()
        self.receive(self.bRequest(bInvite, "INVITE", 2, "z9hG4bKg1", SDP), ALICE)
        hold = self.aRequest("INVITE", 11, "z9hG4bKg2")
        self.receive(hold, TRUNK)
        self.assertEqual(self.statuses(TRUNK)[-1], 491)

    def test_infoRelayed(self) -> None:
        """INFO (DTMF) is relayed and answered end to end."""
        bInvite = self.connect()
        self.receive(self.aRequest("INFO", 11, "z9hG4bKinfo"), TRUNK)
        (info,) = self.requestsTo(ALICE, "INFO")
        self.receive(answer(info, 200), ALICE)
        self.assertEqual(self.statuses(TRUNK)[-1], 200)
        self.assertEqual(info.callId, bInvite.callId)

    def test_referRejected(self) -> None:
        """REFER is refused by default."""
        self.connect()
        self.receive(self.aRequest("REFER", 11, "z9hG4bKref"), TRUNK)
        self.assertEqual(self.statuses(TRUNK)[-1], 403)

    def test_referRelayedWhenConfigured(self) -> None:
        """A trunk configured with refer = "relay" gets its REFER across."""
        self.server.setConfig(withTrunk(self.server.config, "demo", refer=Refer.RELAY))
        self.connect()
        self.receive(self.aRequest("REFER", 11, "z9hG4bKref"), TRUNK)
        (refer,) = self.requestsTo(ALICE, "REFER")
        self.receive(answer(refer, 202), ALICE)
        self.assertEqual(self.statuses(TRUNK)[-1], 202)

    def test_updateAndOptionsRelayed(self) -> None:
        """UPDATE and in-dialog OPTIONS cross to the other leg and their answers come back."""
        self.connect()
        for method, branch in (("UPDATE", "z9hG4bKup"), ("OPTIONS", "z9hG4bKop")):
            cseq = 11 if method == "UPDATE" else 12
            self.receive(self.aRequest(method, cseq, branch), TRUNK)
            (forwarded,) = self.requestsTo(ALICE, method)
            self.receive(answer(forwarded, 200), ALICE)
            self.assertEqual(self.statuses(TRUNK)[-1], 200)

    def test_unknownDialog(self) -> None:
        """A BYE for no dialog gets 481."""
        self.receive(self.aRequestWithoutCall(), TRUNK)
        self.assertEqual(self.statuses(TRUNK)[-1], 481)

    def aRequestWithoutCall(self) -> bytes:
        return (
            b"BYE sip:sbc@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5062;branch=z9hG4bKx;rport\r\n"
            b"Max-Forwards: 70\r\nFrom: <sip:a@127.0.0.2>;tag=1\r\nTo: <sip:b@127.0.0.1>;tag=2\r\n"
            b"Call-ID: nothing\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n"
        )

    def test_maxForwardsDecremented(self) -> None:
        """The B-leg's Max-Forwards is one less than A's."""
        self.bind()
        self.receive(invite(), TRUNK)
        (bInvite,) = self.requestsTo(ALICE, "INVITE")
        self.assertEqual(bInvite.headers.get("max-forwards"), "69")


class PolicyTests(CallTestCase):
    def reconfigure(self, **changes: Any) -> None:
        """Change the demo trunk as ``changes`` say (Trunk's field names)."""
        self.server.setConfig(withTrunk(self.server.config, "demo", **changes))

    def test_maxCallLength(self) -> None:
        """A call longer than the trunk's maximum is released with BYE on both legs."""
        self.reconfigure(maxCallLength=60.0)
        self.connect()
        self.clock.advance(61)
        self.assertEqual(len({b.topVia().branch for b in self.requestsTo(ALICE, "BYE")}), 1)
        self.assertEqual(len({b.topVia().branch for b in self.requestsTo(TRUNK, "BYE")}), 1)
        self.assertEqual(self.cdrs.records[0].releasedBy, "sbc")

    def test_shutdownReleasesCalls(self) -> None:
        """On shutdown every answered call gets BYE on both legs, and every call its CDR."""
        self.connect()
        self.server.calls.releaseAll()
        self.assertEqual(len(self.requestsTo(ALICE, "BYE")), 1)
        self.assertEqual(len(self.requestsTo(TRUNK, "BYE")), 1)
        self.assertEqual(len(self.cdrs.records), 1)

    def test_drainWaitsForCalls(self) -> None:
        """Draining waits for calls to end by themselves, up to the grace period."""
        self.connect()
        d = self.server.calls.drain(self.clock, 10)
        self.assertNoResult(d)
        self.clock.advance(11)
        self.successResultOf(d)

    def test_assertedIdentityOnlyFromTrusted(self) -> None:
        """P-Asserted-Identity crosses only from a trusted trunk."""
        pai = b"P-Asserted-Identity: <sip:+15551234@carrier.example>\r\n"
        self.bind()
        self.receive(invite().replace(b"Supported:", pai + b"Supported:"), TRUNK)
        (untrusted,) = self.requestsTo(ALICE, "INVITE")
        self.assertNotIn("p-asserted-identity", untrusted.headers)
        self.reconfigure(trusted=True)
        self.receive(
            invite(callId="c2", branch="z9hG4bKc2").replace(b"Supported:", pai + b"Supported:"), TRUNK
        )
        trusted = self.requestsTo(ALICE, "INVITE")[-1]
        self.assertIn("p-asserted-identity", trusted.headers)

    def test_passHeaders(self) -> None:
        """A trunk's pass_headers lets an extra header cross; others stay behind."""
        self.reconfigure(passHeaders=("x-internal-secret",))
        self.bind()
        self.receive(invite(), TRUNK)
        (bInvite,) = self.requestsTo(ALICE, "INVITE")
        self.assertEqual(bInvite.headers.get("x-internal-secret"), "a-side-only")

    def test_sequentialFork(self) -> None:
        """Sequential forking rings the best-q binding first and the next only after it fails."""
        self.server.setConfig(withCalls(self.server.config, fork=Fork.SEQUENTIAL))
        self.bind(q=0.5)
        self.bind(ALICE2, "sip:alice@10.1.1.2:5070", q=1.0)
        self.receive(invite(), TRUNK)
        self.assertEqual(self.requestsTo(ALICE, "INVITE"), [])
        (first,) = self.requestsTo(ALICE2, "INVITE")
        self.receive(answer(first, 486, tag="t2"), ALICE2)
        self.assertEqual(len(self.requestsTo(ALICE, "INVITE")), 1)

    def test_bypassLeavesSDP(self) -> None:
        """A trunk with media = "bypass" keeps its SDP untouched."""
        from sbc.media.ports import PortPool
        from sbc.media.relay import MediaRelay
        from tests.fakes import FakeUDPReactor

        self.server.calls.relay = MediaRelay(
            FakeUDPReactor(), self.clock, "127.0.0.1", PortPool(30000, 30099)
        )
        self.reconfigure(media=MediaMode.BYPASS)
        self.bind()
        self.receive(invite(), TRUNK)
        (bInvite,) = self.requestsTo(ALICE, "INVITE")
        self.assertEqual(bInvite.body, SDP)


class ExtensionTests(CallTestCase):
    def reliable(self, bInvite: Request, rseq: int) -> bytes:
        data = answer(bInvite, 183, body=SDP)
        return data.replace(b"Content-Type", b"Require: 100rel\r\nRSeq: %d\r\nContent-Type" % rseq, 1)

    def test_prackTowardsCallee(self) -> None:
        """A reliable 18x from the callee gets our PRACK with the right RAck, once."""
        self.bind()
        self.receive(invite(), TRUNK)
        (bInvite,) = self.requestsTo(ALICE, "INVITE")
        self.assertIn("100rel", bInvite.headers.getAll("supported"))
        self.receive(self.reliable(bInvite, 7), ALICE)
        self.receive(self.reliable(bInvite, 7), ALICE)
        pracks = self.requestsTo(ALICE, "PRACK")
        self.assertEqual({p.headers.get("rack") for p in pracks}, {"7 1 INVITE"})
        self.assertEqual(len({p.topVia().branch for p in pracks}), 1)

    def test_reliableTowardsCaller(self) -> None:
        """A caller that supports 100rel gets 18x reliably, resent until its PRACK."""
        self.bind()
        self.receive(invite(), TRUNK)
        (bInvite,) = self.requestsTo(ALICE, "INVITE")
        self.receive(answer(bInvite, 180), ALICE)
        (ringing,) = [r for r in self.responsesTo(TRUNK) if r.status == 180]
        self.assertEqual(ringing.headers.get("require"), "100rel")
        rseq = ringing.headers.get("rseq")
        self.clock.advance(0.5)
        self.assertEqual(self.statuses(TRUNK).count(180), 2)
        prack = self.aRequestEarly("PRACK", 11, "z9hG4bKpr", ringing, f"RAck: {rseq} 10 INVITE\r\n")
        self.receive(prack, TRUNK)
        self.assertEqual(self.statuses(TRUNK)[-1], 200)
        self.clock.advance(4)
        self.assertEqual(self.statuses(TRUNK).count(180), 2)

    def aRequestEarly(self, method: str, cseq: int, branch: str, response: Response, extra: str) -> bytes:
        return (
            f"{method} sip:sbc@127.0.0.1:5060 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.2:5062;branch={branch};rport\r\n"
            f'Max-Forwards: 70\r\nFrom: "Caller" <sip:+15551234@127.0.0.2>;tag=atag\r\n'
            f"To: {response.headers.get('to')}\r\nCall-ID: a-call-1@127.0.0.2\r\nCSeq: {cseq} {method}\r\n"
            f"{extra}Content-Length: 0\r\n\r\n"
        ).encode()

    def test_sessionTimerHonoured(self) -> None:
        """Session-Expires from the caller is confirmed in the 2xx; without refresh the call ends."""
        self.bind()
        data = invite().replace(b"Supported: 100rel, replaces", b"Supported: timer\r\nSession-Expires: 120")
        self.receive(data, TRUNK)
        (bInvite,) = self.requestsTo(ALICE, "INVITE")
        self.receive(answer(bInvite, 200, body=SDP, contact="<sip:alice@10.1.1.1>"), ALICE)
        ok = self.responsesTo(TRUNK)[-1]
        self.assertEqual(ok.headers.get("session-expires"), "120;refresher=uac")
        self.assertEqual(ok.headers.get("require"), "timer")
        self.receive(self.aRequest("ACK", 10, "z9hG4bKack"), TRUNK)
        self.clock.advance(60)
        self.assertEqual(self.requestsTo(ALICE, "BYE"), [])
        self.clock.advance(30)
        self.assertEqual(len({b.topVia().branch for b in self.requestsTo(ALICE, "BYE")}), 1)

    def test_weRefreshWhenAsked(self) -> None:
        """With refresher=uas we refresh the caller's session with an UPDATE at half the interval."""
        self.bind()
        data = invite().replace(b"Supported: 100rel, replaces", b"Session-Expires: 100;refresher=uas")
        self.receive(data, TRUNK)
        (bInvite,) = self.requestsTo(ALICE, "INVITE")
        self.receive(answer(bInvite, 200, body=SDP, contact="<sip:alice@10.1.1.1>"), ALICE)
        self.assertEqual(self.responsesTo(TRUNK)[-1].headers.get("session-expires"), "100;refresher=uas")
        self.receive(self.aRequest("ACK", 10, "z9hG4bKack"), TRUNK)
        self.clock.advance(51)
        (update,) = self.requestsTo(TRUNK, "UPDATE")
        self.assertEqual(update.callId, "a-call-1@127.0.0.2")

    def test_sessionTooShort(self) -> None:
        """A Session-Expires below our Min-SE gets 422 with Min-SE."""
        data = invite().replace(b"Supported: 100rel, replaces", b"Session-Expires: 30")
        self.receive(data, TRUNK)
        (response,) = [r for r in self.responsesTo(TRUNK) if r.status >= 200]
        self.assertEqual((response.status, response.headers.get("min-se")), (422, "90"))

    def test_redirectRejected(self) -> None:
        """A 3xx from the callee never reaches the caller: by default it becomes 480."""
        self.bind()
        self.receive(invite(), TRUNK)
        (bInvite,) = self.requestsTo(ALICE, "INVITE")
        self.receive(answer(bInvite, 302, contact="<sip:bob@10.9.9.9>"), ALICE)
        self.assertEqual(self.statuses(TRUNK)[-1], 480)
        self.assertNotIn(b"10.9.9.9", b"".join(d for d, w in self.udp.sent if w == TRUNK))

    def test_redirectFollowed(self) -> None:
        """With redirect = "follow", the 3xx Contact is routed like a dialled number."""
        self.server.setConfig(withCalls(self.server.config, redirect=Redirect.FOLLOW))
        self.bind()
        self.receive(invite(), TRUNK)
        (bInvite,) = self.requestsTo(ALICE, "INVITE")
        self.receive(answer(bInvite, 302, contact="<sip:+15550002@10.9.9.9>"), ALICE)
        self.assertEqual(len(self.requestsTo(("127.0.0.2", 5080), "INVITE")), 1)


class TopologyTests(CallTestCase):
    def test_nothingOfACrossesToB(self) -> None:
        """Every byte sent to B is free of A's address, port, tags, Call-ID and internals."""
        bInvite = self.connect()
        self.receive(self.aRequest("BYE", 11, "z9hG4bKbye"), TRUNK)
        toB = b"".join(data for data, where in self.udp.sent if where == ALICE)
        for secret in (
            b"127.0.0.2",
            b"5062",
            b"atag",
            b"a-call-1",
            b"z9hG4bKa1",
            b"proxy.a.example",
            b"X-Internal",
        ):
            self.assertNotIn(secret, toB, secret)
        self.assertEqual(len(bInvite.headers.getAll("via")), 1)
        self.assertNotIn("record-route", bInvite.headers)
        self.assertIn(b"Caller", toB)  # display names pass

    def test_nothingOfBCrossesToA(self) -> None:
        """Every byte sent to A is free of B's address, tags, Call-ID, Server and Contact."""
        bInvite = self.connect()
        toA = b"".join(data for data, where in self.udp.sent if where == TRUNK)
        for secret in (
            b"127.0.0.4",
            b"5070",
            b"btag",
            bInvite.callId.encode(),
            b"10.1.1.1",
            b"far-end",
            b"b-internal",
        ):
            self.assertNotIn(secret, toA, secret)


class UserToTrunkTests(CallTestCase):
    def device(self, uri: str) -> bytes:
        return invite(uri, source=ALICE, callId="dev-call-1", fromTag="dtag").replace(
            b"sip:+15551234@127.0.0.4", f"sip:alice@{DOMAIN}".encode()
        )

    def test_deviceChallenged(self) -> None:
        """A device's INVITE is challenged with 407 Proxy-Authenticate, MD5 first."""
        self.receive(self.device("sip:+15559999@127.0.0.1"), ALICE)
        (response,) = [r for r in self.responsesTo(ALICE) if r.status >= 200]
        self.assertEqual(response.status, 407)
        self.assertIn("MD5", response.headers.getAll("proxy-authenticate")[0])

    def test_failover(self) -> None:
        """A silent first gateway is abandoned for the second, which answers."""
        self.receive(invite("sip:+15559999@127.0.0.1"), TRUNK)
        self.assertEqual(len(self.requestsTo(("127.0.0.2", 5080), "INVITE")), 1)
        self.assertEqual(self.requestsTo(("127.0.0.3", 5080), "INVITE"), [])
        self.clock.advance(2.1)
        (second,) = self.requestsTo(("127.0.0.3", 5080), "INVITE")
        self.assertTrue(second.uri.user == "+15559999")
        self.receive(answer(second, 200, body=SDP, contact="<sip:gw@127.0.0.3:5080>"), ("127.0.0.3", 5080))
        self.assertEqual(self.statuses(TRUNK)[-1], 200)

    def test_lateAnswerFromAbandonedGateway(self) -> None:
        """A gateway we gave up on that answers late is ACKed and hung up, not bridged."""
        self.receive(invite("sip:+15559999@127.0.0.1"), TRUNK)
        (first,) = self.requestsTo(("127.0.0.2", 5080), "INVITE")
        self.clock.advance(2.1)
        (second,) = self.requestsTo(("127.0.0.3", 5080), "INVITE")
        self.receive(answer(second, 180), ("127.0.0.3", 5080))
        self.receive(answer(first, 200, body=SDP, contact="<sip:gw@127.0.0.2:5080>"), ("127.0.0.2", 5080))
        self.assertEqual(len(self.requestsTo(("127.0.0.2", 5080), "BYE")), 1)
        self.assertNotIn(200, self.statuses(TRUNK))

    def test_singleGatewayWaits(self) -> None:
        """With nothing left to fail over to, a slow gateway is not abandoned after 2 s."""
        self.server.setConfig(withTrunk(self.server.config, "demo", gateways=(Gateway("127.0.0.2", 5080),)))
        self.receive(invite("sip:+15559999@127.0.0.1"), TRUNK)
        self.clock.advance(5)
        self.assertNotIn(480, self.statuses(TRUNK))
        first = self.requestsTo(("127.0.0.2", 5080), "INVITE")[0]  # retransmitted meanwhile
        self.receive(answer(first, 200, body=SDP, contact="<sip:gw@127.0.0.2:5080>"), ("127.0.0.2", 5080))
        self.assertEqual(self.statuses(TRUNK)[-1], 200)

    def test_failoverOn503(self) -> None:
        """503 from the first gateway moves the call to the next."""
        self.receive(invite("sip:+15559999@127.0.0.1"), TRUNK)
        (first,) = self.requestsTo(("127.0.0.2", 5080), "INVITE")
        self.receive(answer(first, 503), ("127.0.0.2", 5080))
        self.assertEqual(len(self.requestsTo(("127.0.0.3", 5080), "INVITE")), 1)

    def test_busyNotFailedOver(self) -> None:
        """486 from a gateway goes back; no other gateway is tried."""
        self.receive(invite("sip:+15559999@127.0.0.1"), TRUNK)
        (first,) = self.requestsTo(("127.0.0.2", 5080), "INVITE")
        self.receive(answer(first, 486), ("127.0.0.2", 5080))
        self.assertEqual(self.requestsTo(("127.0.0.3", 5080), "INVITE"), [])
        self.assertEqual(self.statuses(TRUNK)[-1], 486)


class BoundsTests(CallTestCase):
    def test_thousandCallsLeaveNothing(self) -> None:
        """After 1,000 finished calls, no call, leg, transaction or timer remains."""
        self.bind()
        for i in range(1000):
            self.udp.sent.clear()
            self.receive(invite(callId=f"c{i}", branch=f"z9hG4bKc{i}", fromTag=f"f{i}"), TRUNK)
            (bInvite,) = self.requestsTo(ALICE, "INVITE")
            self.receive(answer(bInvite, 486), ALICE)
            self.clock.advance(0.01)
        self.drain()
        self.assertEqual(self.server.calls.index.invites, {})
        self.assertEqual(self.server.calls.index.legs, {})
        self.assertEqual(self.server.transactions.serverTransactions, {})
        self.assertEqual(self.server.transactions.clientTransactions, {})
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(len(self.cdrs.records), 1000)

    def test_heldCallKeepsNoParsedMessage(self) -> None:
        """A confirmed call keeps no parsed SIP message: A's INVITE and B's 2xx go once used."""
        self.connect()
        (call,) = {id(leg[0]): leg[0] for leg in self.server.calls.index.legs.values()}.values()
        self.clock.advance(40)  # the INVITE transactions linger out
        assert call.b is not None and call.forker is not None
        values = [*_slotted(call), *_slotted(call.b), *_slotted(call.forker.inputs)]
        held = [obj for obj in values if isinstance(obj, Request | Response) and obj is not SPENT]
        self.assertEqual(held, [])


class MediaTests(RelayedCallTestCase):
    """Calls whose media goes through the built-in relay (on a fake UDP reactor)."""

    def test_sdpAnchored(self) -> None:
        """Each side's SDP names the SBC and relay ports, never the other side's address or port."""
        bInvite = self.call()
        self.assertIn(b"c=IN IP4 127.0.0.1", bInvite.body)
        self.assertNotIn(b"127.0.0.2", bInvite.body)
        self.assertNotIn(b"6000", bInvite.body)
        ok = self.responsesTo(TRUNK)[-1]
        self.assertIn(b"c=IN IP4 127.0.0.1", ok.body)
        self.assertNotIn(b"10.1.1.1", ok.body)
        self.assertNotIn(b"7000", ok.body)
        self.assertIn(b"o=sbc ", ok.body)
        self.assertEqual(self.relay.activeSessions(), 1)

    def test_placingFailsAfterAnchoring(self) -> None:
        """An error building the callee's leg once the offer is anchored answers the caller 500."""
        self.breakTrunkLegs()
        self.receive(invite(body=self.aSDP), TRUNK)
        self.assertEqual(self.statuses(TRUNK)[-1], 500)
        self.assertEqual(self.server.calls.index.invites, {})

    def test_portsReleasedAtEnd(self) -> None:
        """Hanging up releases the call's relay ports."""
        self.call()
        self.receive(self.aRequest("BYE", 11, "z9hG4bKbye"), TRUNK)
        self.assertEqual(self.relay.activeSessions(), 0)

    def test_mediaTimeoutHangsUp(self) -> None:
        """No RTP for the media timeout releases both legs with BYE."""
        self.call()
        for _ in range(40):
            self.clock.advance(1)
        # One BYE on each leg (retransmitted over UDP while unanswered: one branch each).
        self.assertEqual(len({bye.topVia().branch for bye in self.requestsTo(ALICE, "BYE")}), 1)
        self.assertEqual(len({bye.topVia().branch for bye in self.requestsTo(TRUNK, "BYE")}), 1)
        self.assertEqual(self.cdrs.records[0].releasedBy, "sbc")

    def test_lateOffer(self) -> None:
        """An INVITE without SDP: B's 2xx offers, and A's ACK answer reaches B in our ACK."""
        self.bind()
        self.receive(invite(body=b""), TRUNK)
        (bInvite,) = self.requestsTo(ALICE, "INVITE")
        self.assertEqual(bInvite.body, b"")
        self.receive(answer(bInvite, 200, body=self.bSDP, contact="<sip:alice@10.1.1.1>"), ALICE)
        self.assertEqual(self.requestsTo(ALICE, "ACK"), [])
        ok = self.responsesTo(TRUNK)[-1]
        self.assertIn(b"127.0.0.1", ok.body)
        ack = self.aRequest("ACK", 10, "z9hG4bKack").replace(b"Content-Length: 0\r\n\r\n", b"")
        ack += b"Content-Type: application/sdp\r\nContent-Length: %d\r\n\r\n" % len(self.aSDP) + self.aSDP
        self.receive(ack, TRUNK)
        (bAck,) = self.requestsTo(ALICE, "ACK")
        self.assertIn(b"c=IN IP4 127.0.0.1", bAck.body)
        self.assertNotIn(b"127.0.0.2", bAck.body)

    def test_codecFilter(self) -> None:
        """A trunk's codec list filters the offer; nothing left gives 488."""
        self.server.setConfig(withTrunk(self.server.config, "demo", codecs=("g729",)))
        self.bind()
        self.receive(invite(body=self.aSDP), TRUNK)
        self.assertEqual(self.statuses(TRUNK)[-1], 488)
        self.assertEqual(self.requestsTo(ALICE, "INVITE"), [])


# A's proxy path as the trunk INVITE brings it: odd spacing, a lower-case name, a list on one line,
# a quoted parameter with a comma. RFC 3261 section 12.1.1 wants every value back unchanged.
A_RECORD_ROUTE = (
    b"Record-Route:   <sip:127.0.0.2:5090;lr;ftag=atag>\r\n"
    b'record-route: <sip:127.0.0.3;lr>,<sip:edge.a.example;lr>;x="p, q"\r\n'
)
A_ROUTES = ["<sip:127.0.0.2:5090;lr;ftag=atag>", "<sip:127.0.0.3;lr>", '<sip:edge.a.example;lr>;x="p, q"']
GATEWAY = ("127.0.0.2", 5080)
OUTSIDE = "sip:+15559999@127.0.0.1"


class RecordRouteTests(CallTestCase):
    """Record-Route on both legs: echoed to A, each leg's route set used inside its dialog."""

    def routedInvite(self, uri: str = "sip:alice@127.0.0.1", recordRoute: bytes = A_RECORD_ROUTE) -> bytes:
        return invite(uri).replace(b"Record-Route: <sip:proxy.a.example;lr>\r\n", recordRoute)

    def answerWithRoutes(self, request: Request, status: int, recordRoute: str, **kwargs: object) -> bytes:
        """``answer`` with Record-Route lines (as a proxy on B's path adds them) after To."""
        data = answer(request, status, **kwargs)  # type: ignore[arg-type]
        head, _, rest = data.partition(b"\r\nServer:")
        return head + b"\r\n" + recordRoute.encode() + b"Server:" + rest

    def rawTo(self, address: tuple[str, int], start: bytes) -> list[bytes]:
        return [data for data, where in self.udp.sent if where == address and data.startswith(start)]

    def test_echoedInProvisionalAndFinal(self) -> None:
        """A's Record-Route fields, byte for byte and in order, are in every 18x and 2xx, resends too."""
        self.bind()
        self.receive(self.routedInvite(), TRUNK)
        (bInvite,) = self.requestsTo(ALICE, "INVITE")
        self.receive(answer(bInvite, 180), ALICE)
        self.clock.advance(0.5)  # A supports 100rel: the 180 is resent until PRACKed
        self.receive(answer(bInvite, 200, body=SDP, contact="<sip:alice@10.1.1.1:5070>"), ALICE)
        self.clock.advance(0.5)  # no ACK yet: the 200 is resent
        ringing = self.rawTo(TRUNK, b"SIP/2.0 180 ")
        ok = self.rawTo(TRUNK, b"SIP/2.0 200 ")
        self.assertEqual((len(ringing), len(ok)), (2, 2))
        for data in ringing + ok:
            self.assertIn(b"\r\n" + A_RECORD_ROUTE, data)
            self.assertEqual(data.count(b"ecord-"), 2)
        (trying,) = self.rawTo(TRUNK, b"SIP/2.0 100 ")
        self.assertNotIn(b"ecord-", trying)

    def test_notInFailures(self) -> None:
        """A final failure makes no dialog, so it carries no Record-Route."""
        self.bind()
        self.receive(self.routedInvite(), TRUNK)
        (bInvite,) = self.requestsTo(ALICE, "INVITE")
        self.receive(answer(bInvite, 486), ALICE)
        (busy,) = self.rawTo(TRUNK, b"SIP/2.0 486 ")
        self.assertNotIn(b"ecord-", busy)

    def connectRouted(self) -> Request:
        self.bind()
        self.receive(self.routedInvite(), TRUNK)
        (bInvite,) = self.requestsTo(ALICE, "INVITE")
        self.receive(answer(bInvite, 200, body=SDP, contact="<sip:alice@10.1.1.1:5070>"), ALICE)
        self.receive(self.aRequest("ACK", 10, "z9hG4bKack"), TRUNK)
        return bInvite

    def test_callerRouteSetLoose(self) -> None:
        """Our BYE to A goes to A's first route, with A's routes in request order and A's Contact."""
        bInvite = self.connectRouted()
        self.receive(self.bRequest(bInvite, "BYE", 1, "z9hG4bKbb"), ALICE)
        self.assertEqual(self.requestsTo(TRUNK, "BYE"), [])  # not to where the INVITE came from
        (bye,) = self.requestsTo(("127.0.0.2", 5090), "BYE")
        self.assertEqual(str(bye.uri), "sip:caller@127.0.0.2:5062")
        self.assertEqual(bye.headers.getAll("route"), A_ROUTES)
        self.assertNotIn("record-route", bye.headers)

    def test_callerRouteSetStrict(self) -> None:
        """A strict first route on A's side becomes the Request-URI; A's Contact goes last in Route."""
        rr = (
            b"Record-Route: <sip:127.0.0.2:5090;ftag=atag;method=INVITE?X-Y=1>\r\n"
            b"Record-Route: <sip:127.0.0.3;lr>\r\n"
        )
        self.bind()
        self.receive(self.routedInvite(recordRoute=rr), TRUNK)
        (bInvite,) = self.requestsTo(ALICE, "INVITE")
        self.receive(answer(bInvite, 200, body=SDP, contact="<sip:alice@10.1.1.1:5070>"), ALICE)
        self.receive(self.bRequest(bInvite, "BYE", 1, "z9hG4bKbb"), ALICE)
        (bye,) = self.requestsTo(("127.0.0.2", 5090), "BYE")
        self.assertEqual(str(bye.uri), "sip:127.0.0.2:5090;ftag=atag")
        self.assertEqual(bye.headers.getAll("route"), ["<sip:127.0.0.3;lr>", "<sip:caller@127.0.0.2:5062>"])

    def test_callerRouteSetReachesNoOne(self) -> None:
        """A's Record-Route never crosses: B's INVITE, ACK and BYE carry none of it."""
        self.connectRouted()
        self.receive(self.aRequest("BYE", 11, "z9hG4bKbye"), TRUNK)
        toB = b"".join(data for data, where in self.udp.sent if where == ALICE)
        for secret in (b"5090", b"ftag", b"edge.a.example", b"127.0.0.3", b"ecord-", b"Route"):
            self.assertNotIn(secret, toB, secret)

    def outsideCall(self, recordRoute: str, contact: str = "<sip:gw@10.9.9.9:5080>") -> Request:
        """A trunk call out to the demo trunk, answered by its first gateway through a proxy."""
        self.receive(invite(OUTSIDE), TRUNK)
        (bInvite,) = self.requestsTo(GATEWAY, "INVITE")
        self.receive(self.answerWithRoutes(bInvite, 200, recordRoute, body=SDP, contact=contact), GATEWAY)
        return bInvite

    def test_calleeRouteSetLoose(self) -> None:
        """B's 2xx Record-Route, reversed, routes our ACK and BYE; they go to its first route."""
        rr = "Record-Route: <sip:127.0.0.3:5091;lr>, <sip:127.0.0.2:5066;lr;did=7>\r\n"
        self.outsideCall(rr)
        self.receive(self.aRequest("BYE", 11, "z9hG4bKbye"), TRUNK)
        hop = ("127.0.0.2", 5066)
        self.assertEqual(self.requestsTo(GATEWAY, "ACK"), [])
        (ack,) = self.requestsTo(hop, "ACK")
        (bye,) = self.requestsTo(hop, "BYE")
        for request in (ack, bye):
            self.assertEqual(str(request.uri), "sip:gw@10.9.9.9:5080")
            self.assertEqual(
                request.headers.getAll("route"), ["<sip:127.0.0.2:5066;lr;did=7>", "<sip:127.0.0.3:5091;lr>"]
            )
        # B's proxy path stays on B's side.
        self.assertNotIn(b"5066", b"".join(data for data, where in self.udp.sent if where == TRUNK))

    def test_calleeRouteSetStrict(self) -> None:
        """A strict router first on B's route set: Request-URI is its URI, B's Contact last in Route."""
        rr = "Record-Route: <sip:127.0.0.3:5091;lr>\r\nRecord-Route: <sip:127.0.0.2:5066;transport=udp>\r\n"
        self.outsideCall(rr)
        (ack,) = self.requestsTo(("127.0.0.2", 5066), "ACK")
        self.assertEqual(str(ack.uri), "sip:127.0.0.2:5066;transport=udp")
        self.assertEqual(ack.headers.getAll("route"), ["<sip:127.0.0.3:5091;lr>", "<sip:gw@10.9.9.9:5080>"])

    def assertByeToGateway(self, recordRoute: str) -> None:
        self.outsideCall(recordRoute)
        self.receive(self.aRequest("BYE", 11, "z9hG4bKbye"), TRUNK)
        (bye,) = self.requestsTo(GATEWAY, "BYE")
        self.assertEqual(len(bye.headers.getAll("route")), 1)

    def test_calleeRouteOutsideTrunk(self) -> None:
        """A first route outside the trunk's whitelist: requests keep going to the gateway."""
        self.assertByeToGateway("Record-Route: <sip:192.0.2.9;lr>\r\n")

    def test_calleeRouteByName(self) -> None:
        """A first route with a host name (no DNS here): requests keep going to the gateway."""
        self.assertByeToGateway("Record-Route: <sip:proxy.b.example;lr>\r\n")

    def test_earlyDialogRoutes(self) -> None:
        """A reliable 183's Record-Route routes our PRACK; a CANCEL still goes where the INVITE went."""
        self.receive(invite(OUTSIDE), TRUNK)
        (bInvite,) = self.requestsTo(GATEWAY, "INVITE")
        provisional = self.answerWithRoutes(bInvite, 183, "Record-Route: <sip:127.0.0.2:5066;lr>\r\n")
        provisional = provisional.replace(b"Server:", b"Require: 100rel\r\nRSeq: 1\r\nServer:", 1)
        self.receive(provisional, GATEWAY)
        (prack,) = self.requestsTo(("127.0.0.2", 5066), "PRACK")
        self.assertEqual(prack.headers.getAll("route"), ["<sip:127.0.0.2:5066;lr>"])
        cancel = invite(OUTSIDE).split(b"\r\n\r\n")[0].replace(b"INVITE ", b"CANCEL ", 1)
        cancel = cancel.replace(b"CSeq: 10 INVITE", b"CSeq: 10 CANCEL")
        cancel = cancel.replace(f"Content-Length: {len(SDP)}".encode(), b"Content-Length: 0") + b"\r\n\r\n"
        self.receive(cancel, TRUNK)
        (bCancel,) = self.requestsTo(GATEWAY, "CANCEL")
        self.assertEqual(str(bCancel.uri), str(bInvite.uri))
        self.assertNotIn("route", bCancel.headers)

    def test_targetRefreshKeepsRouteSet(self) -> None:
        """A re-INVITE's 2xx changes B's remote target, never its route set (section 12.2.1.2)."""
        self.outsideCall("Record-Route: <sip:127.0.0.2:5066;lr>\r\n")
        hold = self.aRequest("INVITE", 11, "z9hG4bKre")
        self.receive(hold, TRUNK)
        (re,) = self.requestsTo(("127.0.0.2", 5066), "INVITE")
        self.receive(
            self.answerWithRoutes(
                re, 200, "Record-Route: <sip:127.0.0.3:7777;lr>\r\n", contact="<sip:gw2@10.9.9.9:5080>"
            ),
            ("127.0.0.2", 5066),
        )
        self.receive(self.aRequest("BYE", 12, "z9hG4bKbye"), TRUNK)
        (bye,) = self.requestsTo(("127.0.0.2", 5066), "BYE")
        self.assertEqual(str(bye.uri), "sip:gw2@10.9.9.9:5080")
        self.assertEqual(bye.headers.getAll("route"), ["<sip:127.0.0.2:5066;lr>"])

    def test_deviceKeepsItsFlow(self) -> None:
        """A phone's Record-Route goes into our requests, but they still take the phone's flow."""
        self.bind()
        self.receive(invite(), TRUNK)
        (bInvite,) = self.requestsTo(ALICE, "INVITE")
        rr = "Record-Route: <sip:127.0.0.5:5099;lr>\r\n"
        self.receive(
            self.answerWithRoutes(bInvite, 200, rr, body=SDP, contact="<sip:alice@10.1.1.1:5070>"), ALICE
        )
        (ack,) = self.requestsTo(ALICE, "ACK")
        self.assertEqual(ack.headers.getAll("route"), ["<sip:127.0.0.5:5099;lr>"])


class BodyTests(RelayedCallTestCase):
    """Bodies other than plain SDP: multipart/mixed (SIP-I), and bodies sbc cannot read."""

    GATEWAY = ("127.0.0.2", 5080)

    def passIsup(self) -> None:
        self.server.setConfig(withTrunk(self.server.config, "demo", passIsup=True))

    def assertAnchored(self, body: bytes, hidden: bytes, port: bytes) -> None:
        self.assertIn(b"c=IN IP4 127.0.0.1", body)
        self.assertNotIn(hidden, body)
        self.assertNotIn(port, body)

    def trunkCall(self, body: bytes, callId: str = "a-call-1@127.0.0.2") -> Request:
        """The demo trunk calls through the demo trunk with a SIP-I body; the gateway's INVITE."""
        request = invite("sip:+15550002@127.0.0.1", callId=callId, branch=f"z9hG4bK{callId}", body=body)
        self.receive(typed(request, MIXED), TRUNK)
        return self.requestsTo(self.GATEWAY, "INVITE")[-1]

    def test_multipartOfferAndAnswerAnchored(self) -> None:
        """A SIP-I offer is anchored: B gets plain SDP with our address; B's SIP-I 2xx likewise."""
        self.bind()
        self.receive(typed(invite(body=sipI(self.aSDP)), MIXED), TRUNK)
        (bInvite,) = self.requestsTo(ALICE, "INVITE")
        self.assertEqual(bInvite.headers.get("content-type"), "application/sdp")
        self.assertAnchored(bInvite.body, b"127.0.0.2", b"6000")
        self.assertNotIn(ISUP, bInvite.body)
        self.assertEqual(self.relay.activeSessions(), 1)
        ok = typed(answer(bInvite, 200, body=sipI(self.bSDP), contact="<sip:alice@10.1.1.1>"), MIXED)
        self.receive(ok, ALICE)
        okToA = self.responsesTo(TRUNK)[-1]
        self.assertEqual((okToA.status, okToA.headers.get("content-type")), (200, "application/sdp"))
        self.assertAnchored(okToA.body, b"10.1.1.1", b"7000")
        self.assertEqual(self.relay.activeSessions(), 1)

    def test_multipartWithoutSDP(self) -> None:
        """A SIP-I INVITE without SDP is a late offer: B gets no body at all, not the ISUP."""
        self.bind()
        self.receive(typed(invite(body=sipI(None)), MIXED), TRUNK)
        (bInvite,) = self.requestsTo(ALICE, "INVITE")
        self.assertEqual(bInvite.body, b"")
        self.assertNotIn("content-type", bInvite.headers)
        self.receive(answer(bInvite, 200, body=self.bSDP, contact="<sip:alice@10.1.1.1>"), ALICE)
        self.assertAnchored(self.responsesTo(TRUNK)[-1].body, b"10.1.1.1", b"7000")

    def test_isupDroppedUnlessTrunkOptsIn(self) -> None:
        """Between trunks without pass_isup, the ISUP part stays behind."""
        bInvite = self.trunkCall(sipI(self.aSDP))
        self.assertEqual(bInvite.headers.get("content-type"), "application/sdp")
        self.assertNotIn(ISUP, bInvite.body)
        self.assertAnchored(bInvite.body, b"127.0.0.2", b"6000")

    def test_isupPassedBetweenTrunksThatOptIn(self) -> None:
        """With pass_isup, ISUP crosses unchanged beside our SDP in a fresh multipart, both ways."""
        from sbc.sip.multipart import parseMultipart

        self.passIsup()
        bInvite = self.trunkCall(sipI(self.aSDP))
        contentType = bInvite.headers.get("content-type") or ""
        self.assertTrue(contentType.startswith("multipart/mixed;boundary=sbc-"), contentType)
        self.assertNotIn(b"caller-boundary-77", bInvite.body)
        sdp, isup = parseMultipart(bInvite.body, contentType)
        self.assertAnchored(sdp.body, b"127.0.0.2", b"6000")
        self.assertEqual(isup.body, ISUP)
        self.assertEqual(
            isup.headers,
            (
                ("Content-Type", "application/isup;version=itu-t92+;base=itu-t92+"),
                ("Content-Disposition", "signal;handling=optional"),
            ),
        )  # the part's other headers stay behind
        ok = typed(answer(bInvite, 200, body=sipI(self.bSDP), contact="<sip:gw@127.0.0.2:5080>"), MIXED)
        self.receive(ok, self.GATEWAY)
        okToA = self.responsesTo(TRUNK)[-1]
        sdp, isup = parseMultipart(okToA.body, okToA.headers.get("content-type") or "")
        self.assertAnchored(sdp.body, b"10.1.1.1", b"7000")
        self.assertEqual(isup.body, ISUP)

    def test_isupNeverReachesADevice(self) -> None:
        """pass_isup on the calling trunk does not send ISUP to a registered device."""
        self.passIsup()
        self.bind()
        self.receive(typed(invite(body=sipI(self.aSDP)), MIXED), TRUNK)
        (bInvite,) = self.requestsTo(ALICE, "INVITE")
        self.assertEqual(bInvite.headers.get("content-type"), "application/sdp")
        self.assertNotIn(ISUP, bInvite.body)

    def test_failureResponseBodyOnlyIsup(self) -> None:
        """A gateway's 486 with an unreadable body reaches A without it; its ISUP (REL) crosses."""
        self.passIsup()
        first = self.trunkCall(sipI(self.aSDP))
        busy = typed(answer(first, 486, body=b"internal: gw7 port 3"), "text/plain")
        self.receive(busy, self.GATEWAY)
        final = self.responsesTo(TRUNK)[-1]
        self.assertEqual((final.status, final.body), (486, b""))
        self.assertNotIn("content-type", final.headers)
        second = self.trunkCall(sipI(self.aSDP), "c2")
        rel = typed(answer(second, 486, body=ISUP), "application/isup;version=itu-t92+")
        disposition = b"Content-Disposition: signal;handling=optional\r\n"
        self.receive(rel.replace(b"Content-Length", disposition + b"Content-Length"), self.GATEWAY)
        final = self.responsesTo(TRUNK)[-1]
        self.assertEqual((final.status, final.body), (486, ISUP))
        self.assertEqual(final.headers.get("content-disposition"), "signal;handling=optional")

    def test_unknownBodyType(self) -> None:
        """An INVITE whose body is neither SDP nor SIP-I gets 415 with Accept; nothing crosses."""
        self.bind()
        self.receive(typed(invite(body=b"hello"), "text/plain"), TRUNK)
        response = self.responsesTo(TRUNK)[-1]
        self.assertEqual(response.status, 415)
        self.assertEqual(response.headers.get("accept"), "application/sdp, multipart/mixed, application/isup")
        self.assertEqual(self.requestsTo(ALICE, "INVITE"), [])

    def test_unknownPartType(self) -> None:
        """A multipart with a part of another type (here text/plain) gets 415 too."""
        self.bind()
        body = sipI(self.aSDP).replace(b"application/isup;version=itu-t92+;base=itu-t92+", b"text/plain")
        self.receive(typed(invite(body=body), MIXED), TRUNK)
        self.assertEqual(self.statuses(TRUNK)[-1], 415)
        self.assertEqual(self.requestsTo(ALICE, "INVITE"), [])

    def test_bodyWithoutType(self) -> None:
        """A body without Content-Type gets 400; a malformed multipart too."""
        self.bind()
        self.receive(typed(invite(body=self.aSDP), None), TRUNK)
        self.assertEqual(self.statuses(TRUNK)[-1], 400)
        broken = sipI(self.aSDP).replace(b"--caller-boundary-77--", b"")
        self.receive(typed(invite(body=broken, callId="c2", branch="z9hG4bKc2"), MIXED), TRUNK)
        self.assertEqual(self.statuses(TRUNK)[-1], 400)
        self.assertEqual(self.requestsTo(ALICE, "INVITE"), [])

    def withBody(self, request: bytes, body: bytes, contentType: str | None) -> bytes:
        head = request.replace(b"Content-Length: 0\r\n\r\n", b"")
        if contentType is not None:
            head += f"Content-Type: {contentType}\r\n".encode()
        return head + b"Content-Length: %d\r\n\r\n" % len(body) + body

    def test_reinviteMultipartAnchored(self) -> None:
        """A SIP-I re-INVITE is anchored and crosses as plain SDP; an unreadable one gets 415 or 400."""
        self.bind()
        self.receive(invite(body=self.aSDP), TRUNK)
        (bInvite,) = self.requestsTo(ALICE, "INVITE")
        self.receive(answer(bInvite, 200, body=self.bSDP, contact="<sip:alice@10.1.1.1>"), ALICE)
        self.receive(self.aRequest("ACK", 10, "z9hG4bKack"), TRUNK)
        moved = self.aSDP.replace(b"6000", b"6100")
        self.receive(self.withBody(self.aRequest("INVITE", 11, "z9hG4bKre"), sipI(moved), MIXED), TRUNK)
        re = self.requestsTo(ALICE, "INVITE")[-1]
        self.assertEqual(re.headers.get("content-type"), "application/sdp")
        self.assertAnchored(re.body, b"127.0.0.2", b"6100")
        self.receive(answer(re, 200, body=self.bSDP, contact="<sip:alice@10.1.1.1>"), ALICE)
        self.receive(self.withBody(self.aRequest("UPDATE", 12, "z9hG4bKup"), b"hello", "text/plain"), TRUNK)
        self.assertEqual(self.statuses(TRUNK)[-1], 415)
        self.receive(self.withBody(self.aRequest("INVITE", 13, "z9hG4bKr2"), moved, None), TRUNK)
        self.assertEqual(self.statuses(TRUNK)[-1], 400)
        self.assertEqual(len(self.requestsTo(ALICE, "INVITE")), 2)
        self.assertEqual(self.requestsTo(ALICE, "UPDATE"), [])

    def test_infoBodyStillCrosses(self) -> None:
        """INFO keeps carrying its own body type (DTMF relay) unchanged."""
        self.bind()
        self.receive(invite(body=self.aSDP), TRUNK)
        (bInvite,) = self.requestsTo(ALICE, "INVITE")
        self.receive(answer(bInvite, 200, body=self.bSDP, contact="<sip:alice@10.1.1.1>"), ALICE)
        self.receive(self.aRequest("ACK", 10, "z9hG4bKack"), TRUNK)
        dtmf = b"Signal=5\r\nDuration=160\r\n"
        self.receive(
            self.withBody(self.aRequest("INFO", 11, "z9hG4bKinfo"), dtmf, "application/dtmf-relay"), TRUNK
        )
        (info,) = self.requestsTo(ALICE, "INFO")
        self.assertEqual((info.headers.get("content-type"), info.body), ("application/dtmf-relay", dtmf))


def _slotted(obj: object) -> list[object]:
    """The values of an object's slots (what it holds), for looking for what it should not hold."""
    names = [name for cls in type(obj).__mro__ for name in getattr(cls, "__slots__", ())]
    return [getattr(obj, name) for name in names if hasattr(obj, name)]
