"""Counters the SBC keeps instead of logging per packet; later exported for Prometheus."""

from __future__ import annotations

from collections import Counter


class Metrics:
    """Named monotonic counters. Cheap enough for the per-packet path: one dict update."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def inc(self, name: str, amount: int = 1) -> None:
        self.counts[name] += amount

    def __getitem__(self, name: str) -> int:
        return self.counts[name]
