"""Tests for `bench.suite`: what an anchored-media row's loads send, and whose CPU and memory count."""

from __future__ import annotations

import os
from collections.abc import Sequence

from twisted.trial.unittest import SynchronousTestCase

from bench.plan import FULL
from bench.procfs import cpuSeconds, memory
from bench.sipp import Counts, LoadResult
from bench.suite import SystemResult, _rtpFigures, cpuSplit, memoryOf, rtpSeconds
from bench.systems import System


class Stub(System):
    """A system that is this test process, with this process as its media engine when asked."""

    key = "stub"
    label = "stub"
    host = "127.0.0.99"

    def __init__(self, running: bool = True, engine: bool = False, rtp: bool = False) -> None:
        super().__init__()
        self.running = running
        self.engine = engine
        self.sendsRtp = rtp

    @property
    def measuredPid(self) -> int | None:
        return os.getpid() if self.running else None

    @property
    def mediaPid(self) -> int | None:
        return os.getpid() if self.engine else None

    def command(self, calleePort: int) -> Sequence[str]:
        return ()


class RtpSecondsTests(SynchronousTestCase):
    def test_onlyAnchored(self) -> None:
        """Only a system that anchors media gets calls with RTP, for the plan's seconds."""
        self.assertEqual(rtpSeconds(Stub(rtp=True), FULL), FULL.rtpCallSeconds)
        self.assertEqual(rtpSeconds(Stub(), FULL), 0.0)


class CpuSplitTests(SynchronousTestCase):
    def test_withEngine(self) -> None:
        """The media engine's CPU time is read from its own process tree, beside the system's."""
        own, engine = cpuSplit(Stub(engine=True))
        self.assertGreater(own, 0.0)
        self.assertGreater(engine, 0.0)
        self.assertLessEqual(own, cpuSeconds(os.getpid()))

    def test_withoutEngine(self) -> None:
        """No media engine: its share is zero; no process at all (the ceiling): both are."""
        self.assertEqual(cpuSplit(Stub())[1], 0.0)
        self.assertEqual(cpuSplit(Stub(running=False)), (0.0, 0.0))


class MemoryOfTests(SynchronousTestCase):
    def test_engineAdds(self) -> None:
        """The media engine's memory adds to the system's."""
        alone = memoryOf(Stub())
        both = memoryOf(Stub(engine=True))
        self.assertGreater(alone.rss, 0)
        self.assertGreater(both.rss, alone.rss)
        self.assertGreater(both.rss, memory(os.getpid()).rss)


class RtpFiguresTests(SynchronousTestCase):
    def outcome(self) -> LoadResult:
        """A steady load of the full plan's calls whose RTP was sent and counted at the far ends."""
        calls = FULL.steadyCalls
        return LoadResult(
            calls, 100, 1.0, Counts(), Counts(), 31.0, True, rtpSent=100 * calls, rtpArrived=99 * calls
        )

    def test_perCall(self) -> None:
        """Sent and arrived per call; the engine's relayed count when it gave one, as a difference."""
        result = SystemResult("x", "x")
        _rtpFigures(result, self.outcome(), FULL, 1000, 1000 + 98 * FULL.steadyCalls)
        self.assertEqual((result.rtpSentPerCall, result.rtpArrivedPerCall), (100.0, 99.0))
        self.assertEqual(result.rtpRelayedPerCall, 98.0)
        self.assertIn(
            "SIPp sent 100 packets (both ways), 99.0 reached the far SIPp, rtpengine relayed 98.0",
            result.notes[0],
        )

    def test_noEngineCount(self) -> None:
        """The built-in relay gives no count: arrivals only."""
        result = SystemResult("x", "x")
        _rtpFigures(result, self.outcome(), FULL, None, None)
        self.assertIsNone(result.rtpRelayedPerCall)
        self.assertNotIn("rtpengine", result.notes[0])
