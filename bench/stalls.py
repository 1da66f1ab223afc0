"""
How often the machine itself stalls: the context that tail latency needs.

A fixed piece of pure CPU work (about a third of a millisecond, no memory allocated, no system call)
is timed again and again, every few milliseconds, while nothing else of the benchmark runs.  On a
quiet machine every run takes about as long as the median.  On a virtual machine whose host runs
other work on the same physical cores, runs take several times longer in short episodes; a call
that is set up during one is slow whatever system carries it, and at 100 CPS one call in a hundred
is the p99.  The figures say how much of the time that happened during this run.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# A run at least this many times the median is a stalled one.
SLOW = 3.0
# Stalled runs closer together than this (seconds) belong to one episode.
EPISODE_GAP = 0.2
# Seconds between the starts of two runs.
INTERVAL = 0.005
# Iterations of the work: about a third of a millisecond of CPython 3.11 on a 2026 Xeon core.
WORK = 2400


@dataclass(frozen=True)
class StallResult:
    """
    What the probe saw.

    @ivar seconds: how long it ran.
    @ivar runs: how many times the work ran.
    @ivar medianUs: the median time of one run, in microseconds.
    @ivar slowShare: the share of runs that took at least L{SLOW} times the median.
    @ivar worstFactor: the longest run, as a multiple of the median.
    @ivar episodes: groups of stalled runs (those less than L{EPISODE_GAP} apart are one group).
    @ivar longestEpisode: seconds from the first stalled run of the longest episode to its last's end.
    """

    seconds: float
    runs: int
    medianUs: float
    slowShare: float
    worstFactor: float
    episodes: int
    longestEpisode: float

    @property
    def secondsBetweenEpisodes(self) -> float | None:
        """How often an episode came, on average; C{None} when none did."""
        return self.seconds / self.episodes if self.episodes else None

    def toJson(self) -> dict[str, Any]:
        return {**self.__dict__, "secondsBetweenEpisodes": self.secondsBetweenEpisodes}


def summarise(samples: Sequence[tuple[float, float]], seconds: float) -> StallResult:
    """Each run's (start, duration) in seconds, summarised."""
    durations = [duration for _, duration in samples]
    median = statistics.median(durations) if durations else 0.0
    stalled = [(start, duration) for start, duration in samples if median and duration >= SLOW * median]
    episodes: list[tuple[float, float]] = []
    for start, duration in stalled:
        if episodes and start - episodes[-1][1] < EPISODE_GAP:
            episodes[-1] = (episodes[-1][0], start + duration)
        else:
            episodes.append((start, start + duration))
    return StallResult(
        seconds=seconds,
        runs=len(samples),
        medianUs=median * 1e6,
        slowShare=len(stalled) / len(samples) if samples else 0.0,
        worstFactor=max(durations) / median if median else 0.0,
        episodes=len(episodes),
        longestEpisode=max((end - start for start, end in episodes), default=0.0),
    )


def _work(iterations: int) -> int:
    """Integer arithmetic in a loop: CPU time only, the same every time."""
    x = 1
    for _ in range(iterations):
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF
    return x


def measureStalls(seconds: float) -> StallResult:
    """Run the probe for C{seconds} in this process (the benchmark does nothing else meanwhile)."""
    clock = time.perf_counter
    for _ in range(50):
        _work(WORK)
    samples: list[tuple[float, float]] = []
    end = clock() + seconds
    while (start := clock()) < end:
        _work(WORK)
        samples.append((start, clock() - start))
        time.sleep(max(0.0, INTERVAL - (clock() - start)))
    return summarise(samples, seconds)
