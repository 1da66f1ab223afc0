"""Tests for sbc.ops.metrics: counters and gauges."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from sbc.ops.metrics import Metrics


class MetricsTests(SynchronousTestCase):
    def test_gaugeReadWhenAsked(self) -> None:
        """A gauge gives its function's value at each read, beside the counters."""
        metrics = Metrics()
        value = [3]
        metrics.gauge("media_ports_in_use", lambda: value[0])
        metrics.counts["bad_requests"] += 1
        self.assertEqual(metrics["media_ports_in_use"], 3)
        value[0] = 7
        self.assertEqual(metrics["media_ports_in_use"], 7)
        self.assertEqual(metrics.snapshot(), {"bad_requests": 1, "media_ports_in_use": 7})
        self.assertEqual(metrics["never"], 0)
