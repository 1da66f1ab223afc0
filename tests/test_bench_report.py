"""Tests for `bench.report`: the anchored-media rows in the main table, and issue 19's targets."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from bench.anchored import ANCHORED
from bench.plan import QUICK
from bench.ramp import RampResult, Step
from bench.report import AT_LEAST, TIMES, Report
from bench.rtp import RelayResult, RtpStep
from bench.sipp import Counts, LoadResult
from bench.suite import SystemResult


class AnchoredRowsTests(SynchronousTestCase):
    def rows(self, *results: SystemResult) -> list[list[str]]:
        """The main table of a report with these results."""
        report = Report(plan=QUICK, started=0.0, systems=list(results))
        return report.rows()

    def test_rtpengineShare(self) -> None:
        """An rtpengine row's CPU: the total, its ratio to sbc's, then the system's and rtpengine's shares."""
        sbc = SystemResult("sbc", "sbc", cpuPer1000=2.0)
        anchored = SystemResult(
            "sbc-rtpengine", "sbc, media through rtpengine", cpuPer1000=5.0, mediaCpuPer1000=1.5
        )
        rows = self.rows(sbc, anchored)
        self.assertEqual(rows[2][0], "sbc, media through rtpengine")
        self.assertEqual(rows[2][2], f"5.00 (2.5{TIMES}) [3.50 + rtpengine 1.50]")

    def test_noEngine(self) -> None:
        """The relay row (no engine beside it) shows its CPU as every other row does."""
        sbc = SystemResult("sbc", "sbc", cpuPer1000=2.0)
        relay = SystemResult("sbc-relay", "sbc, media through the built-in relay", cpuPer1000=3.0)
        self.assertEqual(self.rows(sbc, relay)[2][2], f"3.00 (1.5{TIMES})")

    def test_json(self) -> None:
        """The JSON keeps rtpengine's share and the RTP packets sent, arrived and relayed per call."""
        result = SystemResult(
            "x", "x", cpuPer1000=5.0, mediaCpuPer1000=1.5, rtpSentPerCall=100.0, rtpArrivedPerCall=99.0
        )
        data = result.toJson()
        self.assertEqual(data["mediaEngineCpuSecondsPer1000Calls"], 1.5)
        self.assertEqual(data["rtpPerCall"], {"sent": 100.0, "arrived": 99.0, "relayedByEngine": None})


def load(passed: bool = True, rtpSent: int = 0, rtpArrived: int = 0) -> LoadResult:
    """A steady load of 100 calls at 100 CPS that passed, or whose caller saw one call fail."""
    done = Counts(created=100, successful=100)
    caller = done if passed else Counts(created=100, successful=99, failed=1)
    return LoadResult(100, 100.0, 0.0, caller, done, 1.0, True, rtpSent=rtpSent, rtpArrived=rtpArrived)


def measured(
    key: str, maxCps: int, cpu: float, lowerBound: bool = False, rtp: tuple[float, float] = (100.0, 100.0)
) -> SystemResult:
    """A row that passed its ramp up to C{maxCps} (the step above failed, unless C{lowerBound})
    and its steady load, which used C{cpu} CPU-seconds per 1,000 calls; an anchored row's RTP
    per call (sent, arrived) is C{rtp}."""
    steps = [Step(maxCps, 100, True, "", 0)]
    if not lowerBound:
        steps.append(Step(maxCps + 100, 100, False, "calls failed", 0))
    sent, arrived = rtp if key in ANCHORED else (None, None)
    return SystemResult(
        key,
        key,
        cpuPer1000=cpu,
        steady=load(),
        rtpSentPerCall=sent,
        rtpArrivedPerCall=arrived,
        rampResult=RampResult(steps=steps),
    )


def report(*systems: SystemResult) -> Report:
    return Report(plan=QUICK, started=0.0, systems=list(systems))


def relay(label: str, received: int, cpuSeconds: float) -> RelayResult:
    """An RTP row whose best rate relayed C{received} packets in C{cpuSeconds}."""
    return RelayResult(label, steps=[RtpStep(1000, received, received, cpuSeconds, 1.0)])


class TargetsTests(SynchronousTestCase):
    def test_verdicts(self) -> None:
        """Each target gets this run's two figures, their ratio, and whether it is met."""
        report = Report(
            plan=QUICK,
            started=0.0,
            systems=[
                measured("sbc", 1400, 1.5),
                measured("sbc-relay", 1200, 3.5),
                measured("sbc-rtpengine", 700, 3.0),
                measured("kamailio-topoh-rtpengine", 775, 3.2),
            ],
            relays=[
                relay("sbc built-in relay", 150_000, 1.0),
                relay("rtpengine 10.5 (userspace)", 147_000, 1.0),
            ],
        )
        targets = report.targets()
        self.assertEqual(len(targets), 5)
        self.assertTrue(targets[0].endswith(f"1,200 against 775 (1.55{TIMES}): met"), targets[0])
        self.assertTrue(targets[1].endswith(f"3.50 against 3.20 (1.09{TIMES}): NOT met"), targets[1])
        self.assertTrue(targets[2].endswith(f"3.50 against 1.50 (2.33{TIMES}): NOT met"), targets[2])
        self.assertTrue(targets[3].endswith(f"150,000 against 147,000 (1.02{TIMES}): met"), targets[3])
        self.assertTrue(targets[4].endswith(f"700 against 775 (0.90{TIMES}): NOT met"), targets[4])
        self.assertIn("## Issue 19's targets (media anchored)", report.markdown())

    def test_unmeasured(self) -> None:
        """A target whose rows did not run says so; a run without anchored rows has no such section."""
        report = Report(plan=QUICK, started=0.0, systems=[measured("sbc", 1400, 1.5)])
        self.assertTrue(all(line.endswith("not measured in this run") for line in report.targets()))
        self.assertNotIn("Issue 19", report.markdown())

    def test_noStepPassedIsNotMet(self) -> None:
        """A row that ran its ramp and passed no step has a max CPS of 0: NOT met, not unmeasured."""
        relay = measured("sbc-relay", 100, 3.0)
        assert relay.rampResult is not None
        relay.rampResult.steps = [Step(100, 100, False, "calls failed", 0)]
        targets = report(relay, measured("kamailio-topoh-rtpengine", 775, 3.2)).targets()
        self.assertTrue(targets[0].endswith(f"0.00 against 775 (0.00{TIMES}): NOT met"), targets[0])
        both = report(relay, measured("sbc-rtpengine", 100, 3.0))
        engine = both.result("sbc-rtpengine")
        assert engine is not None and engine.rampResult is not None
        engine.rampResult.steps = relay.rampResult.steps
        kamailio = measured("kamailio-topoh-rtpengine", 0, 3.2)
        assert kamailio.rampResult is not None
        kamailio.rampResult.steps = relay.rampResult.steps
        both.systems.append(kamailio)
        self.assertTrue(both.targets()[4].endswith(": NOT met"), both.targets()[4])  # 0 against 0

    def test_lowerBoundUndecided(self) -> None:
        """A max CPS that is only a lower bound leaves undecided a verdict a higher figure could
        change, and decides one it could not."""
        kamailio = measured("kamailio-topoh-rtpengine", 775, 3.2, lowerBound=True)
        enough = report(measured("sbc-relay", 1200, 3.0), kamailio).targets()[0]
        self.assertIn(f"1,200 against {AT_LEAST}775 (1.55{TIMES}): undecided: ", enough)
        self.assertIn("kamailio-topoh-rtpengine is only a lower bound", enough)
        short = report(measured("sbc-relay", 1000, 3.0), kamailio).targets()[0]
        self.assertTrue(short.endswith(f"1,000 against {AT_LEAST}775 (1.29{TIMES}): NOT met"), short)
        relayBound = measured("sbc-relay", 1200, 3.0, lowerBound=True)
        exact = measured("kamailio-topoh-rtpengine", 775, 3.2)
        self.assertTrue(report(relayBound, exact).targets()[0].endswith(f"(1.55{TIMES}): met"))
        low = report(measured("sbc-relay", 1000, 3.0, lowerBound=True), exact).targets()[0]
        self.assertIn("undecided: the max CPS of sbc-relay is only a lower bound", low)

    def test_cpuNeedsPassedLoadAndRtp(self) -> None:
        """CPU verdicts use only rows whose steady load passed and, with media anchored, whose RTP
        arrived (99% of it); otherwise they are undecided, saying why."""
        kamailio = measured("kamailio-topoh-rtpengine", 775, 3.2)
        failed = measured("sbc-relay", 1200, 3.0)
        failed.steady = load(passed=False)
        line = report(failed, kamailio).targets()[1]
        self.assertIn("undecided: the steady load of sbc-relay did not pass (caller: 99/100 ok", line)
        lost = measured("sbc-relay", 1200, 3.0, rtp=(100.0, 98.0))
        line = report(lost, kamailio).targets()[1]
        self.assertTrue(line.endswith(": undecided: only 98.0% of the RTP sent through sbc-relay arrived"))
        theirs = measured("kamailio-topoh-rtpengine", 775, 3.2, rtp=(100.0, 0.0))
        line = report(measured("sbc-relay", 1200, 3.0), theirs).targets()[1]
        self.assertIn("undecided: only 0.0% of the RTP sent through kamailio-topoh-rtpengine", line)
        bypassed = measured("sbc", 1400, 1.5)
        bypassed.steady = None
        line = report(measured("sbc-relay", 1200, 3.0), bypassed).targets()[2]
        self.assertIn("undecided: the steady load of sbc did not pass (not run)", line)
        fine = report(measured("sbc-relay", 1200, 3.0, rtp=(100.0, 99.0)), kamailio).targets()[1]
        self.assertTrue(fine.endswith(f"3.00 against 3.20 (0.94{TIMES}): met"), fine)
