"""Tests for sbc.calls.limits: a trunk's calls per second, concurrent calls and accepted numbers,
on their own (`TrunkCounters`) and as a server answers a trunk's INVITEs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from netaddr import IPSet
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sbc.calls.limits import BUSY_RETRY_AFTER, TrunkCounters, registrantKey
from sbc.config import Trunk
from sbc.config.gateways import Gateway
from sbc.config.limits import CallLimits
from sbc.routing import CallRequest, Decision, TrunkTarget
from sbc.sip import Response
from tests.calls import ALICE, SDP, TRUNK, CallTestCase, answer, invite, withTrunk

CARRIER_GW = ("127.0.0.6", 5080)


def trunk(name: str = "demo", **limits: object) -> Trunk:
    """A trunk with these `CallLimits` (field names)."""
    return Trunk(
        name=name,
        whitelistPaths=(Path(f"{name}.txt"),),
        whitelist=IPSet(),
        limits=CallLimits(**limits),  # type: ignore[arg-type]
    )


class TrunkCountersTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.counters = TrunkCounters(self.clock)

    def test_burstThenRefused(self) -> None:
        """A bucket lets its burst through at once; the next INVITE gets 503 with Retry-After."""
        demo = trunk(maxCps=2.0, cpsBurst=3.0)
        self.assertEqual([self.counters.admit(demo, None) for _ in range(3)], [None, None, None])
        refusal = self.counters.admit(demo, None)
        assert refusal is not None
        self.assertEqual(refusal.status, 503)
        self.assertEqual(refusal.extra, (("Retry-After", "1"),))
        self.assertEqual(self.counters.counts["trunk_refused_cps"], 1)

    def test_registrantCountedApart(self) -> None:
        """A registration's limits count under its own key: a trunk of the same name shares
        neither its calls nor its bucket, and its refusals are counted as registrant_refused_*."""
        limits = CallLimits(maxCps=1.0, maxCalls=1)
        key = registrantKey("demo")
        self.assertIsNone(self.counters.admitUnder(key, limits, metric="registrant"))
        self.counters.hold("c1", key)
        refusal = self.counters.admitUnder(key, limits, metric="registrant")
        assert refusal is not None
        self.assertEqual((refusal.status, refusal.extra), (503, (("Retry-After", str(BUSY_RETRY_AFTER)),)))
        self.assertEqual(self.counters.counts["registrant_refused_calls"], 1)
        self.assertEqual(self.counters.calls("demo"), 0)
        self.assertIsNone(self.counters.admit(trunk(maxCps=1.0, maxCalls=1), None))
        self.counters.release("c1")
        self.clock.advance(1)
        self.assertIsNone(self.counters.admitUnder(key, limits, metric="registrant"))

    def test_refill(self) -> None:
        """Tokens come back at the rate: after half a second at 2 per second, one more fits."""
        demo = trunk(maxCps=2.0, cpsBurst=1.0)
        self.assertIsNone(self.counters.admit(demo, None))
        self.assertIsNotNone(self.counters.admit(demo, None))
        self.clock.advance(0.5)
        self.assertIsNone(self.counters.admit(demo, None))
        self.assertIsNotNone(self.counters.admit(demo, None))

    def test_retryAfterIsTheBucketsWait(self) -> None:
        """Retry-After is the whole seconds until the bucket has a token again (rounded up)."""
        demo = trunk(maxCps=0.2)  # one call every 5 seconds
        self.assertIsNone(self.counters.admit(demo, None))
        self.clock.advance(1.5)
        refusal = self.counters.admit(demo, None)
        assert refusal is not None
        self.assertEqual(refusal.extra, (("Retry-After", "4"),))  # 3.5 s left

    def test_maxCallsAcrossCallEnd(self) -> None:
        """At max_calls a new INVITE gets 503 with the fixed Retry-After; a call's end makes room."""
        demo = trunk(maxCalls=2)
        self.counters.hold("c1", "demo")
        self.counters.hold("c2", "demo")
        refusal = self.counters.admit(demo, None)
        assert refusal is not None
        self.assertEqual((refusal.status, refusal.extra), (503, (("Retry-After", str(BUSY_RETRY_AFTER)),)))
        self.assertEqual(self.counters.counts["trunk_refused_calls"], 1)
        self.counters.release("c1")
        self.assertIsNone(self.counters.admit(demo, None))
        self.assertEqual(self.counters.calls("demo"), 1)

    def test_busyRefusalTakesNoToken(self) -> None:
        """An INVITE refused for max_calls does not use up the calls-per-second bucket."""
        demo = trunk(maxCps=1.0, maxCalls=1)
        self.counters.hold("c1", "demo")
        self.assertIsNotNone(self.counters.admit(demo, None))
        self.counters.release("c1")
        self.assertIsNone(self.counters.admit(demo, None))

    def test_reloadKeepsCounters(self) -> None:
        """A reloaded trunk (a new object, same name) keeps its count and its bucket's level; the
        new limits hold for new INVITEs."""
        old = trunk(maxCps=1.0, maxCalls=5)
        self.assertIsNone(self.counters.admit(old, None))
        self.counters.hold("c1", "demo")
        new = trunk(maxCps=10.0, cpsBurst=10.0, maxCalls=1)
        refusal = self.counters.admit(new, None)
        assert refusal is not None
        self.assertEqual(refusal.metric, "trunk_refused_calls")  # the old call counts against the new limit
        self.counters.release("c1")
        self.assertIsNotNone(self.counters.admit(new, None))  # the bucket was not refilled by the reload
        self.clock.advance(0.1)
        self.assertIsNone(self.counters.admit(new, None))  # and refills at the new rate

    def test_releaseWithoutTrunk(self) -> None:
        """Releasing a call needs only its key: the trunk it was counted under may be gone."""
        self.counters.hold("c1", "gone")
        self.counters.release("c1")
        self.counters.release("c1")  # twice is harmless
        self.assertEqual(self.counters.calls("gone"), 0)

    def test_acceptList(self) -> None:
        """A number outside the trunk's accept list gets 404 (and is counted); one inside passes."""
        demo = trunk(accept=("+1555*",))
        refusal = self.counters.admit(demo, "+16660001")
        assert refusal is not None
        self.assertEqual(refusal.status, 404)
        self.assertEqual(self.counters.counts["trunk_refused_number"], 1)
        self.assertIsNone(self.counters.admit(demo, "+15550001"))

    def test_refusedNumbersSpendTokens(self) -> None:
        """INVITEs to numbers a trunk may not call count against its rate: no way around the limit."""
        demo = trunk(accept=("+1555*",), maxCps=1.0, cpsBurst=1.0)
        refusal = self.counters.admit(demo, "+16660001")
        assert refusal is not None
        self.assertEqual(refusal.status, 404)
        refusal = self.counters.admit(demo, "+15550001")
        assert refusal is not None
        self.assertEqual(refusal.status, 503)

    def test_outboundCountsOncePerCall(self) -> None:
        """A call's legs towards one trunk count once; a full trunk refuses other calls' legs."""
        carrier = trunk("carrier", maxCalls=1)
        self.assertTrue(self.counters.outbound(carrier, "c1"))
        self.assertTrue(self.counters.outbound(carrier, "c1"))  # its second gateway
        self.assertFalse(self.counters.outbound(carrier, "c2"))
        self.assertEqual(self.counters.counts["trunk_refused_outbound"], 1)
        self.counters.release("c1")
        self.assertTrue(self.counters.outbound(carrier, "c2"))

    def test_hairpinCountsTwice(self) -> None:
        """A call from a trunk back out to the same trunk holds two of its calls."""
        demo = trunk(maxCalls=2)
        self.counters.hold("c1", "demo")
        self.assertTrue(self.counters.outbound(demo, "c1"))
        self.assertEqual(self.counters.calls("demo"), 2)
        self.counters.release("c1")
        self.assertEqual(self.counters.calls("demo"), 0)

    def test_releaseOutbound(self) -> None:
        """A failed leg's trunk stops counting the call at once; the call's inbound count (a
        hairpin's) and other trunks stay."""
        demo, carrier = trunk(maxCalls=2), trunk("carrier", maxCalls=1)
        self.counters.hold("c1", "demo")
        self.assertTrue(self.counters.outbound(demo, "c1"))
        self.assertTrue(self.counters.outbound(carrier, "c1"))
        self.counters.releaseOutbound("c1", "carrier")
        self.counters.releaseOutbound("c1", "carrier")  # once only
        self.counters.releaseOutbound("c1", None)
        self.assertEqual((self.counters.calls("carrier"), self.counters.calls("demo")), (0, 2))
        self.assertTrue(self.counters.outbound(carrier, "c2"))
        self.counters.releaseOutbound("c1", "demo")
        self.assertEqual(self.counters.calls("demo"), 1)

    def test_keepOutbound(self) -> None:
        """Once a call is answered, only the answering trunk keeps counting it."""
        for name in ("a", "b"):
            self.assertTrue(self.counters.outbound(trunk(name), "c1"))
        self.counters.keepOutbound("c1", "b")
        self.assertEqual((self.counters.calls("a"), self.counters.calls("b")), (0, 1))


class TrunkLimitCallTests(CallTestCase):
    """A server answering the demo trunk's INVITEs under its limits."""

    def limit(self, **limits: object) -> None:
        self.server.setConfig(withTrunk(self.server.config, "demo", limits=CallLimits(**limits)))  # type: ignore[arg-type]

    def finals(self) -> list[Response]:
        return [r for r in self.responsesTo(TRUNK) if r.status >= 200]

    def call(self, n: int, uri: str = "sip:alice@127.0.0.1") -> None:
        self.receive(invite(uri, callId=f"call-{n}", branch=f"z9hG4bKl{n}"), TRUNK)

    def test_cpsRefusalAnswered503(self) -> None:
        """Past the burst an INVITE gets 503 with Retry-After; no call is made for it."""
        self.bind()
        self.limit(maxCps=1.0, cpsBurst=2.0)
        for n in range(3):
            self.call(n)
        self.assertEqual(len(self.requestsTo(ALICE, "INVITE")), 2)
        (refused,) = self.finals()
        self.assertEqual((refused.status, refused.headers.get("retry-after")), (503, "1"))
        self.assertEqual(refused.callId, "call-2")
        self.assertEqual(len(self.server.calls.active()), 2)
        self.assertEqual(self.server.metrics["trunk_refused_cps"], 1)

    def test_maxCallsAcrossCallEnd(self) -> None:
        """With max_calls = 1 a second INVITE gets 503 while the first call is up, and is taken
        after it ends; the call up is not touched."""
        self.limit(maxCalls=1)
        bInvite = self.connect()
        self.call(2)
        self.assertEqual(self.finals()[-1].status, 503)
        self.assertEqual(self.finals()[-1].headers.get("retry-after"), str(BUSY_RETRY_AFTER))
        self.assertEqual(self.requestsTo(ALICE, "BYE"), [])
        self.receive(self.bRequest(bInvite, "BYE", 1, "z9hG4bKbb"), ALICE)
        self.call(3)
        self.assertEqual(len(self.requestsTo(ALICE, "INVITE")), 2)
        self.assertEqual(self.server.calls.limits.calls("demo"), 1)

    def test_refusedCallDoesNotCount(self) -> None:
        """Calls refused at admission (an unreadable body, routing's reject) hold no count."""
        self.limit(maxCalls=1)
        self.receive(invite("sip:nobody@127.0.0.1"), TRUNK)  # routing rejects: 404
        self.assertEqual(self.finals()[-1].status, 404)
        self.assertEqual(self.server.calls.limits.calls("demo"), 0)

    def test_removedTrunksCallUncounted(self) -> None:
        """A call whose trunk a reload removed ends normally and gives its count back."""
        bInvite = self.connect()
        self.assertEqual(self.server.calls.limits.calls("demo"), 1)
        self.server.setConfig(replace(self.server.config, trunks=()))
        self.receive(self.bRequest(bInvite, "BYE", 1, "z9hG4bKbb"), ALICE)
        self.assertEqual(len(self.requestsTo(TRUNK, "BYE")), 1)
        self.assertEqual(self.server.calls.limits.calls("demo"), 0)

    def test_reloadKeepsCount(self) -> None:
        """A reload that lowers max_calls counts the calls already up; they stay up."""
        self.connect()
        self.limit(maxCalls=1)
        self.call(2)
        self.assertEqual(self.finals()[-1].status, 503)
        self.assertEqual(len(self.server.calls.active()), 1)

    def test_acceptedNumbers(self) -> None:
        """A number outside accept gets 404 and makes no call; one inside is routed (E.164 as the
        number plan makes it)."""
        self.bind()
        self.limit(accept=("+1555*",))
        self.call(1, "sip:+16660001@127.0.0.1")
        self.assertEqual(self.finals()[-1].status, 404)
        self.assertEqual(self.server.metrics["trunk_refused_number"], 1)
        self.assertEqual(self.requestsTo(ALICE, "INVITE"), [])
        self.call(2, "sip:+15550001@127.0.0.1")
        self.assertEqual(len(self.requestsTo(ALICE, "INVITE")), 1)


class OutboundLimitTests(CallTestCase):
    """Calls towards a trunk at its max_calls: the trunk is skipped as a failover step."""

    def setUp(self) -> None:
        super().setUp()
        self.carrier = Trunk(
            name="carrier",
            whitelistPaths=(Path("carrier.txt"),),
            whitelist=IPSet(),
            gateways=(Gateway(*CARRIER_GW),),
            limits=CallLimits(maxCalls=1),
        )
        config = self.server.config
        self.server.setConfig(replace(config, trunks=(*config.trunks, self.carrier)))

        def decide(call: CallRequest) -> Decision:
            return Decision(targets=(TrunkTarget("carrier", call.user), TrunkTarget("demo", call.user)))

        self.server.calls.decide = decide

    def test_fullTrunkSkipped(self) -> None:
        """A target trunk at its limit gets no INVITE; the next trunk does."""
        self.server.calls.limits.outbound(self.carrier, "another-call")
        self.receive(invite("sip:+15559999@127.0.0.1"), TRUNK)
        self.assertEqual(self.requestsTo(CARRIER_GW, "INVITE"), [])
        self.assertEqual(len(self.requestsTo(("127.0.0.2", 5080), "INVITE")), 1)
        self.assertEqual(self.server.metrics["trunk_refused_outbound"], 1)

    def test_onlyTargetFullGets503(self) -> None:
        """When every target trunk is full, the caller gets 503."""
        self.server.calls.decide = lambda call: Decision(targets=(TrunkTarget("carrier", call.user),))
        self.server.calls.limits.outbound(self.carrier, "another-call")
        self.receive(invite("sip:+15559999@127.0.0.1"), TRUNK)
        self.assertEqual(self.statuses(TRUNK)[-1], 503)
        self.assertEqual(self.server.calls.limits.calls("demo"), 0)  # the refused call gave its count back

    def test_failedLegUncountedAtOnce(self) -> None:
        """A 503 from the carrier gives its count back while the call fails over and rings on
        the next trunk: another call may use the carrier meanwhile."""
        self.receive(invite("sip:+15559999@127.0.0.1"), TRUNK)
        (first,) = self.requestsTo(CARRIER_GW, "INVITE")
        self.receive(answer(first, 503), CARRIER_GW)
        self.assertEqual(len(self.requestsTo(("127.0.0.2", 5080), "INVITE")), 1)  # rings there
        self.assertEqual(self.server.calls.limits.calls("carrier"), 0)
        self.receive(invite("sip:+15559999@127.0.0.1", callId="second-call", branch="z9hG4bKa2"), TRUNK)
        self.assertEqual(len(self.requestsTo(CARRIER_GW, "INVITE")), 2)
        self.assertEqual(self.server.metrics["trunk_refused_outbound"], 0)

    def test_silentLegUncountedAtOnce(self) -> None:
        """A carrier leg given up for no answer within failover_timeout gives its count back too."""
        self.receive(invite("sip:+15559999@127.0.0.1"), TRUNK)
        self.assertEqual(self.server.calls.limits.calls("carrier"), 1)
        self.clock.advance(self.carrier.failoverTimeout + 0.1)
        self.assertEqual(len(self.requestsTo(("127.0.0.2", 5080), "INVITE")), 1)
        self.assertEqual(self.server.calls.limits.calls("carrier"), 0)

    def test_outboundCountedUntilEnd(self) -> None:
        """A call answered by a trunk counts under it until it ends; a trunk it failed over from
        stops counting it."""
        self.receive(invite("sip:+15559999@127.0.0.1"), TRUNK)
        (first,) = self.requestsTo(CARRIER_GW, "INVITE")
        self.assertEqual(self.server.calls.limits.calls("carrier"), 1)
        self.receive(answer(first, 503), CARRIER_GW)
        (second,) = self.requestsTo(("127.0.0.2", 5080), "INVITE")
        self.receive(answer(second, 200, body=SDP, contact="<sip:gw@127.0.0.2:5080>"), ("127.0.0.2", 5080))
        limits = self.server.calls.limits
        self.assertEqual((limits.calls("carrier"), limits.calls("demo")), (0, 2))
        self.receive(self.aRequest("ACK", 10, "z9hG4bKack"), TRUNK)
        self.receive(self.aRequest("BYE", 11, "z9hG4bKbye"), TRUNK)
        self.assertEqual((limits.calls("carrier"), limits.calls("demo")), (0, 0))
