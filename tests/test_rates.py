"""Tests for sbc.rates: token buckets and the bounded per-source table."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from sbc.rates import Rate, SourceRates, TokenBucket


class TokenBucketTests(SynchronousTestCase):
    """A bucket lets a burst through, then the rate."""

    def test_burstThenRate(self) -> None:
        """A full bucket takes ``burst`` events at once, then one per 1/rate seconds."""
        bucket = TokenBucket(Rate(perSecond=10, burst=3), now=0.0)
        self.assertEqual([bucket.take(0.0) for _ in range(4)], [True, True, True, False])
        self.assertFalse(bucket.take(0.05))
        self.assertTrue(bucket.take(0.1))
        self.assertFalse(bucket.take(0.1))

    def test_refillCapsAtBurst(self) -> None:
        """A long quiet spell refills to the burst, no further."""
        bucket = TokenBucket(Rate(perSecond=10, burst=2), now=0.0)
        self.assertTrue(bucket.take(0.0))
        self.assertEqual([bucket.take(100.0) for _ in range(3)], [True, True, False])

    def test_scaled(self) -> None:
        """``scale`` multiplies both the refill rate and the burst."""
        bucket = TokenBucket(Rate(perSecond=2, burst=2), now=0.0)
        self.assertEqual([bucket.take(100.0, scale=3) for _ in range(7)], [True] * 6 + [False])
        self.assertEqual([bucket.take(100.5, scale=3) for _ in range(4)], [True] * 3 + [False])
        self.assertEqual([bucket.take(200.0) for _ in range(3)], [True, True, False])

    def test_scaledSourceStartsFull(self) -> None:
        """A new source at scale N starts with N bursts."""
        rates = SourceRates(Rate(perSecond=1, burst=2))
        self.assertEqual([rates.take("a", 0.0, 3) for _ in range(7)], [True] * 6 + [False])

    def test_wait(self) -> None:
        """wait says how long until the next event fits, for Retry-After."""
        bucket = TokenBucket(Rate(perSecond=2, burst=1), now=0.0)
        self.assertEqual(bucket.wait(0.0), 0.0)
        bucket.take(0.0)
        self.assertAlmostEqual(bucket.wait(0.0), 0.5)
        self.assertAlmostEqual(bucket.wait(0.25), 0.25)

    def test_badRate(self) -> None:
        """A rate of zero or a burst under one is refused when it is made, not at the first call."""
        self.assertRaises(ValueError, Rate, 0, 5)
        self.assertRaises(ValueError, Rate, 5, 0.5)


class SourceRatesTests(SynchronousTestCase):
    """Each source has its own bucket, and the table stays bounded."""

    def test_perSource(self) -> None:
        """One source's flood does not use another source's allowance."""
        rates = SourceRates(Rate(perSecond=1, burst=2))
        self.assertEqual([rates.take("127.0.0.2", 0.0) for _ in range(3)], [True, True, False])
        self.assertTrue(rates.take("127.0.0.3", 0.0))

    def test_bounded(self) -> None:
        """Past the limit, the least recently seen source is forgotten (and starts afresh)."""
        rates = SourceRates(Rate(perSecond=1, burst=1), limit=2)
        rates.take("a", 0.0)
        rates.take("b", 0.0)
        rates.take("a", 0.0)  # a is now the most recent
        rates.take("c", 0.0)  # b goes
        self.assertEqual(len(rates), 2)
        self.assertTrue(rates.take("b", 0.0))
        self.assertFalse(rates.take("c", 0.0))

    def test_forget(self) -> None:
        """A forgotten source starts with a full bucket."""
        rates = SourceRates(Rate(perSecond=1, burst=1))
        rates.take("a", 0.0)
        rates.forget("a")
        self.assertTrue(rates.take("a", 0.0))
