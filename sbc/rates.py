"""Rate limits on an injected clock: a token bucket, and a bounded table of them per source.

A trunk's calls per second and a stranger's requests per second are both "so many per second,
with a burst": one `TokenBucket` each. `SourceRates` keeps a bucket per source address, bounded
so that a flood from many addresses cannot grow it: the source seen least recently goes first.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["Rate", "SourceRates", "TokenBucket"]


@dataclass(frozen=True, slots=True)
class Rate:
    """So many events per second on average, and up to ``burst`` at once."""

    perSecond: float
    burst: float

    def __post_init__(self) -> None:
        if self.perSecond <= 0 or self.burst < 1:
            raise ValueError("a rate needs a positive rate and a burst of at least 1")


class TokenBucket:
    """Tokens refill at the rate up to the burst; each event takes one or is refused."""

    __slots__ = ("rate", "stamp", "tokens")

    def __init__(self, rate: Rate, now: float) -> None:
        self.rate = rate
        self.tokens = rate.burst
        self.stamp = now

    def take(self, now: float, scale: float = 1.0) -> bool:
        """Whether one more event fits now; a refused event takes nothing. ``scale`` multiplies
        the rate and the burst (a source's budget per device it registered, say)."""
        rate = self.rate
        tokens = min(rate.burst * scale, self.tokens + (now - self.stamp) * rate.perSecond * scale)
        self.stamp = now
        if tokens < 1.0:
            self.tokens = tokens
            return False
        self.tokens = tokens - 1.0
        return True

    def wait(self, now: float) -> float:
        """Seconds until one event fits again (for Retry-After); 0 when one fits now."""
        tokens = min(self.rate.burst, self.tokens + (now - self.stamp) * self.rate.perSecond)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate.perSecond


class SourceRates:
    """A bucket per source, at most ``limit`` of them; the least recently seen source is forgotten first."""

    def __init__(self, rate: Rate, limit: int = 65536) -> None:
        self.rate = rate
        self.limit = limit
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, source: str, now: float, scale: float = 1.0) -> bool:
        """Whether ``source`` may send one more request now (at ``scale`` times the rate)."""
        buckets = self._buckets
        bucket = buckets.get(source)
        if bucket is None:
            if len(buckets) >= self.limit:
                buckets.popitem(last=False)
            bucket = buckets[source] = TokenBucket(self.rate, now)
            bucket.tokens *= scale  # a new source starts with its whole (scaled) burst
        else:
            buckets.move_to_end(source)
        return bucket.take(now, scale)

    def forget(self, source: str) -> None:
        """Drop a source's bucket (it was banned: the ban, not the bucket, holds it off now)."""
        self._buckets.pop(source, None)
