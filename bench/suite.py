"""
The measurements of one system, in the issue's terms:

  - CPU-seconds per 1,000 calls and INVITE to 200 p99, both at 100 CPS, on a freshly started system
    (its CPU time plus, for the anchored-media rows, that of the rtpengine daemon beside it);
  - the highest rate with no failed call (the ramp);
  - memory per held call: a fresh start, then many long calls up at once, and the memory of the
    system's process tree (its PSS) at the plateau less before, divided by the calls held.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.interop.ports import UDP, freePort

from .plan import Plan
from .procfs import Memory, cpuSeconds, memory
from .ramp import RampResult, ramp
from .sipp import CALLEE_HOST, RETRIES, CallLoad, LoadResult, percentile, runLoad
from .systems import System, UnavailableError

# The percentiles of INVITE to 200 that the JSON keeps.
PERCENTILES = (0.5, 0.9, 0.99, 0.999)

WARMUP_RATE = 20

Log = Callable[[str], None]


@dataclass
class Held:
    """
    The memory measurement.

    @ivar calls: calls placed, each held for C{holdSeconds}.
    @ivar rate: the rate they were placed at.
    @ivar holdSeconds: how long each stayed up.
    @ivar concurrent: calls up at the callee when the plateau was sampled.
    @ivar before: PSS of the system's process tree before, in bytes (RSS in C{beforeRss}).
    @ivar plateau: PSS at the plateau, in bytes.
    @ivar problems: why the held calls did not all succeed (they are still measured).
    """

    calls: int
    rate: int
    holdSeconds: float
    concurrent: int = 0
    before: int = 0
    plateau: int = 0
    beforeRss: int = 0
    plateauRss: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def perCall(self) -> float | None:
        """Bytes per held call, or C{None} without a plateau."""
        if self.concurrent <= 0:
            return None
        return (self.plateau - self.before) / self.concurrent


@dataclass
class SystemResult:
    """
    Everything measured of one system.

    @ivar status: C{"ok"}, or why it has no figures (not installed, did not start, calls fail).
    @ivar cpuPer1000: CPU-seconds per 1,000 calls of the system and its media engine together.
    @ivar mediaCpuPer1000: the media engine's share of it (rtpengine), when one runs beside it.
    @ivar rtpSentPerCall: in the anchored-media rows, the RTP packets SIPp sent per call of that load
        (both ways).
    @ivar rtpArrivedPerCall: those that reached the far SIPp (at least; see L{bench.media.RtpArrivals}).
    @ivar rtpRelayedPerCall: those the media engine says it relayed, when it says (rtpengine does).
    """

    key: str
    label: str
    version: str = ""
    status: str = "ok"
    steady: LoadResult | None = None
    cpuPer1000: float | None = None
    mediaCpuPer1000: float | None = None
    rtpSentPerCall: float | None = None
    rtpArrivedPerCall: float | None = None
    rtpRelayedPerCall: float | None = None
    rampResult: RampResult | None = None
    held: Held | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def p99Ms(self) -> float | None:
        """INVITE to 200 p99 at the steady rate, in milliseconds."""
        return None if self.steady is None else self.steady.p99Ms

    @property
    def exactP99Ms(self) -> float | None:
        """The same p99 by microsecond timestamps (the caller's message trace)."""
        return None if self.steady is None else self.steady.exactP99Ms

    @property
    def maxCps(self) -> int | None:
        """The ramp's highest rate with no failed call."""
        return None if self.rampResult is None else self.rampResult.maxCps

    def toJson(self) -> dict[str, Any]:
        """A JSON-ready description, figures first, then the details behind them."""
        steady = self.steady
        held = self.held
        return {
            "key": self.key,
            "label": self.label,
            "version": self.version,
            "status": self.status,
            "maxCps": self.maxCps,
            "maxCpsIsLowerBound": bool(self.rampResult and self.rampResult.atLeast),
            "cpuSecondsPer1000Calls": self.cpuPer1000,
            "mediaEngineCpuSecondsPer1000Calls": self.mediaCpuPer1000,
            "rtpPerCall": {
                "sent": self.rtpSentPerCall,
                "arrived": self.rtpArrivedPerCall,
                "relayedByEngine": self.rtpRelayedPerCall,
            },
            "invite200P99Ms": self.p99Ms,
            "invite200P99ExactMs": self.exactP99Ms,
            "bytesPerHeldCall": None if held is None else held.perCall,
            "steady": None
            if steady is None
            else {
                "calls": steady.calls,
                "rate": steady.rate,
                "passed": steady.passed,
                "problems": steady.problems,
                "retransmissions": steady.retransmissions,
                "latencySamples": len(steady.latenciesMs),
                "meanMs": sum(steady.latenciesMs) / len(steady.latenciesMs) if steady.latenciesMs else None,
                "exactLatencySamples": len(steady.exactLatenciesMs),
                "exactPercentilesMs": {
                    str(share): percentile(steady.exactLatenciesMs, share) for share in PERCENTILES
                },
                "errors": steady.errors[:2000],
            },
            "ramp": None
            if self.rampResult is None
            else {
                "stopped": self.rampResult.stopped,
                "steps": [step.__dict__ for step in self.rampResult.steps],
            },
            "held": None if held is None else {**held.__dict__, "perCall": held.perCall},
            "notes": self.notes,
        }


def measureSystem(system: System, plan: Plan, log: Log) -> SystemResult:
    """Measure C{system}; a system that fails is reported as such, and never raises."""
    result = SystemResult(system.key, system.label)
    calleePort = freePort(CALLEE_HOST, (UDP,))
    try:
        result.version = system.version()
        target = _startWarm(system, calleePort, plan, log)
        _steady(system, target, calleePort, plan, result, log)
        _ramp(system, target, calleePort, plan, result, log)
        if system.measuredPid is not None:
            system.stop()
            target = _startWarm(system, calleePort, plan, log)
            result.held = _held(system, target, calleePort, plan, result.maxCps, log)
    except UnavailableError as e:
        result.status = str(e)
        log(f"  {system.label}: {e}")
    except Exception as e:  # a broken system must not end the run
        result.status = f"error: {e}"
        result.notes.append(traceback.format_exc(limit=4))
        log(f"  {system.label}: error: {e}")
    finally:
        system.stop()
    return result


def rtpSeconds(system: System, plan: Plan) -> float:
    """How many seconds of RTP each call through C{system} sends: none unless it anchors media."""
    return plan.rtpCallSeconds if system.sendsRtp else 0.0


def cpuSplit(system: System) -> tuple[float, float]:
    """CPU-seconds so far of the system's process tree and of its media engine's (0 when none)."""
    pid, mediaPid = system.measuredPid, system.mediaPid
    return (
        0.0 if pid is None else cpuSeconds(pid),
        0.0 if mediaPid is None else cpuSeconds(mediaPid),
    )


def memoryOf(system: System) -> Memory:
    """The memory of the system's process tree and of its media engine's, together."""
    parts = [memory(pid) for pid in (system.measuredPid, system.mediaPid) if pid is not None]
    return Memory(rss=sum(part.rss for part in parts), pss=sum(part.pss for part in parts))


def _startWarm(system: System, calleePort: int, plan: Plan, log: Log) -> tuple[str, int]:
    """Start the system and place a few calls through it, which must all succeed."""
    target = system.start(calleePort)
    warmup = runLoad(target, calleePort, plan.warmupCalls, WARMUP_RATE, rtpSeconds=rtpSeconds(system, plan))
    if not warmup.passed:
        raise UnavailableError(
            f"calls fail at {WARMUP_RATE} CPS: {'; '.join(warmup.problems)}\n{warmup.errors}"
        )
    return target


def _steady(
    system: System, target: tuple[str, int], calleePort: int, plan: Plan, result: SystemResult, log: Log
) -> None:
    """CPU-seconds per 1,000 calls and INVITE to 200 p99 at the steady rate."""
    rtp = rtpSeconds(system, plan)
    for _ in range(RETRIES + 1):
        relayed = system.relayedPackets()
        own, engine = cpuSplit(system)
        load = CallLoad(
            target, calleePort, plan.steadyCalls, plan.steadyRate, latency=True, rtpSeconds=rtp, countRtp=True
        )
        load.start()
        outcome = load.finish()
        if not outcome.interrupted:
            break
        result.notes.append("a steady run was interrupted by another process and run again")
    ownAfter, engineAfter = cpuSplit(system)
    relayedAfter = system.relayedPackets()
    if rtp:
        _rtpFigures(result, outcome, plan, relayed, relayedAfter)
    if system.measuredPid is not None:
        result.cpuPer1000 = (ownAfter - own + engineAfter - engine) / plan.steadyCalls * 1000
    if system.mediaPid is not None:
        result.mediaCpuPer1000 = (engineAfter - engine) / plan.steadyCalls * 1000
    result.steady = outcome
    if not outcome.passed:
        result.notes.append(f"at {plan.steadyRate} CPS: {'; '.join(outcome.problems)}")
    cpu = "" if result.cpuPer1000 is None else f", {result.cpuPer1000:.2f} CPU-s/1000 calls"
    if result.mediaCpuPer1000 is not None:
        cpu += f" (rtpengine's share {result.mediaCpuPer1000:.2f})"
    if result.rtpSentPerCall:
        cpu += f", RTP per call {result.rtpArrivedPerCall or 0:.1f} of {result.rtpSentPerCall:.0f} arrived"
    exact = "" if outcome.exactP99Ms is None else f" (exact {outcome.exactP99Ms:.2f} ms)"
    log(f"  {plan.steadyCalls} calls at {plan.steadyRate} CPS: p99 {outcome.p99Ms} ms{exact}{cpu}"
        f"{'' if outcome.passed else ' -- ' + '; '.join(outcome.problems)}")  # fmt: skip


def _rtpFigures(
    result: SystemResult, outcome: LoadResult, plan: Plan, relayed: int | None, relayedAfter: int | None
) -> None:
    """The RTP of the steady load, per call: sent, arrived, and relayed by the engine when it says."""
    calls = plan.steadyCalls
    result.rtpSentPerCall = outcome.rtpSent / calls
    result.rtpArrivedPerCall = outcome.rtpArrived / calls
    words = f"{result.rtpArrivedPerCall:.1f} reached the far SIPp"
    if relayed is not None and relayedAfter is not None:
        result.rtpRelayedPerCall = (relayedAfter - relayed) / calls
        words += f", rtpengine relayed {result.rtpRelayedPerCall:.1f}"
    result.notes.append(
        f"RTP at {plan.steadyRate} CPS, per call: SIPp sent {result.rtpSentPerCall:.0f} packets (both ways), "
        f"{words}"
    )


def _ramp(
    system: System, target: tuple[str, int], calleePort: int, plan: Plan, result: SystemResult, log: Log
) -> None:
    """The rate ramp, restarting the system after each failed step."""
    where = [target]

    def step(rate: int, calls: int) -> LoadResult:
        outcome = runLoad(
            where[0], calleePort, calls, rate, abortOnTrouble=True, rtpSeconds=rtpSeconds(system, plan)
        )
        verdict = "ok" if outcome.passed else "FAIL: " + "; ".join(outcome.problems)
        log(f"  ramp {rate:>6} CPS x {calls}: {verdict}")
        return outcome

    def restart() -> None:
        if system.measuredPid is None:
            time.sleep(1.0)
            return
        system.stop()
        where[0] = _startWarm(system, calleePort, plan, log)

    result.rampResult = ramp(plan, step, restart)
    if result.rampResult.stopped:
        result.notes.append(f"ramp: {result.rampResult.stopped}")


def _held(
    system: System, target: tuple[str, int], calleePort: int, plan: Plan, maxCps: int | None, log: Log
) -> Held:
    """Memory per held call: PSS of the process tree before, and at the plateau of held calls."""
    assert system.measuredPid is not None
    rate = plan.heldRate if maxCps is None else max(10, min(plan.heldRate, maxCps // 2))
    # Every call must be up before the first one ends: place them in at most 60% of the hold time.
    calls = min(plan.heldCalls, int(rate * plan.holdSeconds * 0.6))
    held = Held(calls=calls, rate=rate, holdSeconds=plan.holdSeconds)
    time.sleep(1.0)
    first = memoryOf(system)
    held.before, held.beforeRss = first.pss, first.rss
    for _ in range(RETRIES + 1):
        outcome = _holdCalls(held, system, target, calleePort, rtpSeconds(system, plan))
        if not outcome.interrupted:
            break
    if not outcome.passed:
        held.problems = outcome.problems
    perCall = held.perCall
    log(f"  {held.concurrent} held calls: {'-' if perCall is None else f'{perCall / 1024:.1f} KB'} per call"
        f"{'' if outcome.passed else ' -- ' + '; '.join(outcome.problems)}")  # fmt: skip
    return held


def _holdCalls(
    held: Held, system: System, target: tuple[str, int], calleePort: int, rtp: float
) -> LoadResult:
    """Place the held calls and sample memory at their plateau, into C{held}."""
    load = CallLoad(target, calleePort, held.calls, held.rate, holdSeconds=held.holdSeconds, rtpSeconds=rtp)
    load.start()
    plateauFrom = load.started + held.calls / held.rate + 1.5
    plateauUntil = load.started + held.holdSeconds - 0.5
    while time.monotonic() < plateauUntil:
        time.sleep(0.25)
        if time.monotonic() >= plateauFrom:
            sample = memoryOf(system)
            held.plateau, held.plateauRss = sample.pss, sample.rss
            held.concurrent = load.callee.counts().current
    return load.finish()
