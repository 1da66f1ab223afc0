"""Tests for sbc.media.ports: the pool of RTP/RTCP port pairs."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from sbc.media.ports import PortPool, PortPoolExhaustedError


class PortPoolTests(SynchronousTestCase):
    def test_pairs(self) -> None:
        """Every allocation is an even RTP port whose odd RTCP port also lies in the range."""
        pool = PortPool(20000, 20009)
        ports = [pool.allocate() for _ in range(pool.capacity)]
        self.assertEqual(ports, [20000, 20002, 20004, 20006, 20008])
        self.assertTrue(all(port % 2 == 0 and port + 1 <= 20009 for port in ports))

    def test_configuredRange(self) -> None:
        """The usual 20000-29999 range holds 5,000 pairs."""
        pool = PortPool(20000, 29999)
        self.assertEqual((pool.capacity, pool.available, pool.inUse), (5000, 5000, 0))

    def test_oddBounds(self) -> None:
        """An odd low bound is rounded up and an even high bound's top port stays unused."""
        pool = PortPool(20001, 20006)
        self.assertEqual([pool.allocate() for _ in range(pool.capacity)], [20002, 20004])

    def test_badRanges(self) -> None:
        """A reversed, out-of-range or pairless range is refused when the pool is built."""
        for low, high in [(20010, 20000), (0, 100), (65000, 65536), (20001, 20002), (20000, 20000)]:
            self.assertRaises(ValueError, PortPool, low, high)

    def test_exhausted(self) -> None:
        """Allocating from an empty pool raises an error that names the range."""
        pool = PortPool(20000, 20003)
        pool.allocate()
        pool.allocate()
        error = self.assertRaises(PortPoolExhaustedError, pool.allocate)
        self.assertIn("20000-20003", str(error))
        self.assertIn("2 RTP/RTCP port pairs", str(error))

    def test_release(self) -> None:
        """A released pair can be allocated again, and the counts follow."""
        pool = PortPool(20000, 20001)
        port = pool.allocate()
        self.assertIn(port, pool)
        self.assertEqual((pool.available, pool.inUse), (0, 1))
        pool.release(port)
        self.assertNotIn(port, pool)
        self.assertEqual((pool.available, pool.inUse), (1, 0))
        self.assertEqual(pool.allocate(), port)

    def test_releasedGoLast(self) -> None:
        """A released pair is reused only after every other free pair, so late packets miss new calls."""
        pool = PortPool(20000, 20005)
        first = pool.allocate()
        pool.release(first)
        self.assertEqual([pool.allocate() for _ in range(3)], [20002, 20004, first])

    def test_doubleRelease(self) -> None:
        """Releasing a pair twice, or one the pool never gave out, raises instead of corrupting the pool."""
        pool = PortPool(20000, 20009)
        port = pool.allocate()
        pool.release(port)
        self.assertRaises(ValueError, pool.release, port)
        self.assertRaises(ValueError, pool.release, 20001)
        self.assertRaises(ValueError, pool.release, 30000)
        self.assertEqual(pool.available, pool.capacity)

    def test_thousandCalls(self) -> None:
        """After 1,000 allocate/release cycles the pool is full again."""
        pool = PortPool(20000, 20019)
        for _ in range(1000):
            held = [pool.allocate(), pool.allocate()]
            for port in held:
                pool.release(port)
        self.assertEqual((pool.available, pool.inUse), (pool.capacity, 0))

    def test_repr(self) -> None:
        """The repr shows the range and the use, for logs and the status page."""
        pool = PortPool(20000, 20009)
        pool.allocate()
        self.assertEqual(repr(pool), "<PortPool 20000-20009: 1 of 5 pairs in use>")
