"""
sbc's whitelist gate under a flood of datagrams from a stranger (127.0.0.9, on no whitelist).

Two phases, each on a running sbc:
  1. the flood alone, as fast as the senders go: datagrams the gate dropped per CPU-second of the sbc
     process.  The gate saw every datagram sent less those the kernel dropped because sbc's socket
     buffer was full (its drops counter in /proc/net/udp);
  2. a flood at the plan's rate (100,000 datagrams per second, the issue's target) and trunk calls at
     100 CPS together: whether every call still succeeds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.interop.ports import UDP, freePort

from .blast import Blast, sipProbe
from .plan import Plan
from .procfs import cpuSeconds, udpDrops
from .sipp import CALLEE_HOST, CallLoad, LoadResult, runLoad
from .suite import Log
from .systems import Sbc, UnavailableError

STRANGER = "127.0.0.9"
CALL_RATE = 100


@dataclass
class Flood:
    """
    One flood.

    @ivar seconds: how long it lasted.
    @ivar sent: datagrams sent.
    @ivar kernelDrops: datagrams the kernel dropped at sbc's full socket (never seen by the gate).
    @ivar cpuSeconds: CPU time of the sbc process meanwhile.
    """

    seconds: float
    sent: int
    kernelDrops: int
    cpuSeconds: float

    @property
    def gated(self) -> int:
        """Datagrams that reached the gate (and were dropped there)."""
        return max(0, self.sent - self.kernelDrops)

    def toJson(self) -> dict[str, Any]:
        """The figures, and the rates derived from them."""
        return {
            **self.__dict__,
            "sentPerSecond": self.sent / self.seconds,
            "gatedPerSecond": self.gated / self.seconds,
            "gatedPerCpuSecond": self.gated / self.cpuSeconds if self.cpuSeconds else None,
        }


@dataclass
class GateResult:
    """Both phases, or why they did not run."""

    status: str = "ok"
    alone: Flood | None = None
    withCalls: Flood | None = None
    calls: LoadResult | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def perCpuSecond(self) -> float | None:
        """Datagrams dropped by the gate per CPU-second of sbc, with the flood alone."""
        if self.alone is None or not self.alone.cpuSeconds:
            return None
        return self.alone.gated / self.alone.cpuSeconds

    def toJson(self) -> dict[str, Any]:
        """A JSON-ready description."""
        calls = self.calls
        return {
            "status": self.status,
            "droppedPerCpuSecond": self.perCpuSecond,
            "alone": None if self.alone is None else self.alone.toJson(),
            "withCalls": None if self.withCalls is None else self.withCalls.toJson(),
            "calls": None
            if calls is None
            else {
                "calls": calls.calls,
                "rate": calls.rate,
                "successful": calls.caller.successful,
                "failed": calls.caller.failed,
                "calleeSuccessful": calls.callee.successful,
                "retransmissions": calls.retransmissions,
                "passed": calls.passed,
                "problems": calls.problems,
            },
            "notes": self.notes,
        }


def _flood(pid: int, target: tuple[str, int], plan: Plan, seconds: float, rate: float | None) -> Flood:
    """
    Flood C{target} from the stranger for C{seconds} (at C{rate} datagrams per second in all, or as fast
    as the senders can), measuring sbc (C{pid}) meanwhile.
    """
    blast = Blast()
    dropsBefore = udpDrops(*target) or 0
    cpuBefore = cpuSeconds(pid)
    for _ in range(plan.floodSenders):
        source = (STRANGER, freePort(STRANGER, (UDP,)))
        share = None if rate is None else rate / plan.floodSenders
        blast.send([(source, target)], [sipProbe(target, source)], seconds, share)
    sent, _ = blast.wait(seconds + 10)
    time.sleep(0.5)  # let sbc drain what its socket still holds
    return Flood(
        seconds=seconds,
        sent=sent,
        kernelDrops=(udpDrops(*target) or 0) - dropsBefore,
        cpuSeconds=cpuSeconds(pid) - cpuBefore,
    )


def measureGate(python: Path, plan: Plan, log: Log) -> GateResult:
    """Both phases against a fresh sbc on C{python}; never raises."""
    result = GateResult()
    sbc = Sbc(python, key="sbc-gate")
    calleePort = freePort(CALLEE_HOST, (UDP,))
    try:
        target = sbc.start(calleePort)
        pid = sbc.measuredPid
        assert pid is not None
        warmup = runLoad(target, calleePort, plan.warmupCalls, 20)
        if not warmup.passed:
            raise UnavailableError(f"calls fail: {'; '.join(warmup.problems)}")
        result.alone = _flood(pid, target, plan, plan.floodSeconds, None)
        log(f"  flood alone: {result.alone.toJson()['gatedPerCpuSecond'] or 0:,.0f} dropped per CPU-second "
            f"({result.alone.sent / result.alone.seconds:,.0f} sent/s, "
            f"{result.alone.kernelDrops:,} dropped by the kernel)")  # fmt: skip
        calls = CallLoad(target, calleePort, int(CALL_RATE * (plan.floodSeconds + 2)), CALL_RATE)
        calls.start()
        time.sleep(1.0)
        result.withCalls = _flood(pid, target, plan, plan.floodSeconds, plan.floodRate)
        result.calls = calls.finish()
        outcome = result.calls
        log(f"  flood of {result.withCalls.sent / plan.floodSeconds:,.0f}/s with {outcome.calls} calls at "
            f"{CALL_RATE} CPS: {outcome.caller.successful} ok, "
            f"{outcome.caller.failed} failed, {outcome.retransmissions} retransmissions")  # fmt: skip
    except (UnavailableError, RuntimeError, AssertionError, OSError) as e:
        result.status = f"not measured: {e}"
        log(f"  gate: {result.status}")
    finally:
        sbc.stop()
    return result
