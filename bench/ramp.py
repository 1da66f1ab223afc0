"""
The rate ramp: the highest rate at which a system carries every call, with retransmissions under 1%.

Rates are tried from the plan's ladder upwards until a step fails; then the gap between the last
rate that passed and the first that failed is bisected a few times.  A failed step leaves a system
with a backlog (retransmissions, timers), so the system is restarted before the next step.  The
ramp is bounded by the plan's time budget: it stops there and says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .plan import Plan
from .sipp import LoadResult


@dataclass(frozen=True)
class Step:
    """
    One step of the ramp.

    @ivar rate: the rate asked for, in calls per second.
    @ivar calls: calls placed.
    @ivar passed: whether every call succeeded at both ends with retransmissions under 1%.
    @ivar detail: why it failed (empty when it passed).
    @ivar retransmissions: retransmissions at both ends.
    """

    rate: int
    calls: int
    passed: bool
    detail: str
    retransmissions: int


@dataclass
class RampResult:
    """
    The steps of one ramp and what they found.

    @ivar steps: every step, in the order run.
    @ivar stopped: why the ramp stopped before a step failed (top of the ladder, time budget), or empty.
    """

    steps: list[Step] = field(default_factory=list)
    stopped: str = ""

    @property
    def maxCps(self) -> int | None:
        """The highest rate that passed, or C{None} when none did."""
        rates = [step.rate for step in self.steps if step.passed]
        return max(rates) if rates else None

    @property
    def atLeast(self) -> bool:
        """Whether the maximum is only a lower bound (no step above it failed)."""
        best = self.maxCps
        return best is not None and not any(not s.passed and s.rate > best for s in self.steps)


def ramp(plan: Plan, runStep: Callable[[int, int], LoadResult], restart: Callable[[], None]) -> RampResult:
    """
    Run the ramp: C{runStep(rate, calls)} places one step's calls, C{restart()} restarts the system
    after a failed step (before the next step, if there is one).
    """
    result = RampResult()
    deadline = time.monotonic() + plan.rampBudget

    def attempt(rate: int) -> bool:
        if result.steps and not result.steps[-1].passed:
            restart()
        calls = max(plan.minStepCalls, int(rate * plan.stepSeconds))
        outcome = runStep(rate, calls)
        step = Step(rate, calls, outcome.passed, "; ".join(outcome.problems), outcome.retransmissions)
        result.steps.append(step)
        if step.passed:
            time.sleep(0.5)
        return step.passed

    failedAt: int | None = None
    for rate in plan.ladder:
        if time.monotonic() > deadline:
            result.stopped = f"time budget of {plan.rampBudget:g} s spent"
            return result
        if not attempt(rate):
            failedAt = rate
            break
    else:
        result.stopped = "top of the ladder reached"
        return result
    low = result.maxCps
    high = failedAt
    if low is None:
        return result
    for _ in range(plan.bisections):
        middle = _round((low + high) // 2)
        if middle <= low or middle >= high or time.monotonic() > deadline:
            break
        if attempt(middle):
            low = middle
        else:
            high = middle
    return result


def _round(rate: int) -> int:
    """A rate rounded to two significant digits, as a table shows it."""
    if rate < 100:
        return rate
    scale: int = 10 ** (len(str(rate)) - 2)
    return rate // scale * scale
