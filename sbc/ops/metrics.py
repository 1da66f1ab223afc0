"""Counters the SBC keeps instead of logging per packet; later exported for Prometheus."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable


class Metrics:
    """Named monotonic counters, and gauges read when asked for.

    A counter is cheap enough for the per-packet path: one dict update. A gauge (say the relay
    ports in use) is a function of state someone else owns, so it costs nothing until read.

    Trunk limits (`sbc.calls.limits`) count each refused INVITE by reason: ``trunk_refused_cps``
    and ``trunk_refused_calls`` (503), ``trunk_refused_number`` (404), and a leg towards a trunk
    at its ``max_calls``, skipped as a failover step: ``trunk_refused_outbound``.
    """

    __slots__ = ("counts", "gauges")

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.gauges: dict[str, Callable[[], int]] = {}

    def gauge(self, name: str, read: Callable[[], int]) -> None:
        """Name a value that ``read`` gives each time it is asked for."""
        self.gauges[name] = read

    def __getitem__(self, name: str) -> int:
        read = self.gauges.get(name)
        return read() if read is not None else self.counts[name]

    def snapshot(self) -> dict[str, int]:
        """Every counter and gauge now, for a status page or an exporter."""
        values = dict(self.counts)
        values.update((name, read()) for name, read in self.gauges.items())
        return values
