"""Tests for `bench.stalls`: how the machine's own stalls are summarised."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from bench.stalls import summarise


def quiet(start: float, count: int, duration: float = 0.001) -> list[tuple[float, float]]:
    """``count`` runs of ``duration``, 5 ms apart, from ``start``."""
    return [(start + i * 0.005, duration) for i in range(count)]


class SummariseTests(SynchronousTestCase):
    def test_quiet(self) -> None:
        """Runs that all take the median's time make no stall and no episode."""
        result = summarise(quiet(0.0, 100), 0.5)
        self.assertEqual((result.runs, result.slowShare, result.episodes), (100, 0.0, 0))
        self.assertAlmostEqual(result.medianUs, 1000.0)
        self.assertAlmostEqual(result.worstFactor, 1.0)
        self.assertIsNone(result.secondsBetweenEpisodes)

    def test_episodes(self) -> None:
        """Stalled runs close together are one episode; its length runs to the last one's end."""
        samples = quiet(0.0, 200)
        samples[10] = (samples[10][0], 0.010)  # ten times the median
        samples[12] = (samples[12][0], 0.004)
        samples[150] = (samples[150][0], 0.003)
        samples[151] = (samples[151][0], 0.002)  # twice: not stalled
        result = summarise(samples, 2.0)
        self.assertEqual(result.episodes, 2)
        self.assertAlmostEqual(result.slowShare, 3 / 200)
        self.assertAlmostEqual(result.worstFactor, 10.0)
        self.assertAlmostEqual(result.longestEpisode, 0.060 + 0.004 - 0.050)
        self.assertEqual(result.secondsBetweenEpisodes, 1.0)

    def test_empty(self) -> None:
        """No run at all is reported as such, not as a division by zero."""
        result = summarise([], 1.0)
        self.assertEqual((result.runs, result.slowShare, result.worstFactor), (0, 0.0, 0.0))
