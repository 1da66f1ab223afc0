"""Tests for sbc.media.ports: the pool of RTP/RTCP port pairs."""

from __future__ import annotations

import itertools
import random

from twisted.trial.unittest import SynchronousTestCase

from sbc.media.ports import PortPool, PortPoolExhaustedError


class PortPoolTests(SynchronousTestCase):
    def test_pairs(self) -> None:
        """Every allocation is an even RTP port whose odd RTCP port also lies in the range."""
        pool = PortPool(20000, 20009)
        ports = [pool.allocate() for _ in range(pool.capacity)]
        self.assertEqual(sorted(ports), [20000, 20002, 20004, 20006, 20008])
        self.assertTrue(all(port % 2 == 0 and port + 1 <= 20009 for port in ports))

    def test_configuredRange(self) -> None:
        """The usual 20000-29999 range holds 5,000 pairs."""
        pool = PortPool(20000, 29999)
        self.assertEqual((pool.capacity, pool.available, pool.inUse), (5000, 5000, 0))

    def test_oddBounds(self) -> None:
        """An odd low bound is rounded up and an even high bound's top port stays unused."""
        pool = PortPool(20001, 20006)
        self.assertEqual(sorted(pool.allocate() for _ in range(pool.capacity)), [20002, 20004])

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
        self.assertEqual(sorted(pool.allocate() for _ in range(2)), sorted({20000, 20002, 20004} - {first}))
        self.assertEqual(pool.allocate(), first)

    def test_quarantine(self) -> None:
        """A released pair waits behind a quarter of the range before it is picked at random again."""
        pool = PortPool(20000, 20079)  # 40 pairs: a quarantine of 10
        self.assertEqual(pool.quarantine, 10)
        for _ in range(200):
            held = [pool.allocate() for _ in range(20)]
            for port in held:
                pool.release(port)
            recent = held[-10:]  # the last ten released are still in quarantine
            again = [pool.allocate() for _ in range(30)]
            self.assertFalse(set(recent) & set(again))
            for port in again:
                pool.release(port)

    def test_random(self) -> None:
        """Pairs come at random, not in sequence: the ports of one call do not tell the next call's."""
        pool = PortPool(20000, 29999)
        ports = [pool.allocate() for _ in range(100)]
        steps = {b - a for a, b in itertools.pairwise(ports)}
        self.assertGreater(len(steps), 50)  # in sequence, every step would be 2
        self.assertNotEqual(ports, sorted(ports))
        other = PortPool(20000, 29999)
        self.assertNotEqual([other.allocate() for _ in range(100)], ports)

    def test_randomSource(self) -> None:
        """The pick among free pairs is ``randbelow``'s, over every free pair."""
        asked: list[int] = []

        def last(n: int) -> int:
            asked.append(n)
            return n - 1

        pool = PortPool(20000, 20009, randbelow=last)
        self.assertEqual([pool.allocate() for _ in range(3)], [20008, 20006, 20004])
        self.assertEqual(asked, [5, 4, 3])

    def test_neverTwice(self) -> None:
        """Under random allocation and release, a pair in use is never handed out again."""
        rng = random.Random(15)
        pool = PortPool(20000, 20199)
        held: set[int] = set()
        for _ in range(20000):
            if held and (rng.random() < 0.5 or pool.available == 0):
                port = rng.choice(sorted(held))
                held.remove(port)
                pool.release(port)
            else:
                port = pool.allocate()
                self.assertNotIn(port, held)
                held.add(port)
            self.assertEqual((pool.inUse, pool.available), (len(held), pool.capacity - len(held)))

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

    def test_free(self) -> None:
        """free lists exactly the pairs neither in use nor in quarantine, and changes nothing."""
        pool = PortPool(20000, 20079)  # 40 pairs: a quarantine of 10
        self.assertEqual(sorted(pool.free()), list(range(20000, 20080, 2)))
        held = [pool.allocate() for _ in range(5)]
        pool.release(held[0])  # in quarantine
        self.assertEqual(set(pool.free()), set(range(20000, 20080, 2)) - set(held))
        self.assertEqual((pool.available, pool.inUse), (36, 4))
