"""Tests for `sbc.scheduler`: many timers, one clock timer, exact times."""

from __future__ import annotations

from twisted.internet.error import AlreadyCalled, AlreadyCancelled
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from sbc.scheduler import TimerQueue


class TimerQueueTests(SynchronousTestCase):
    """A `TimerQueue` behaves as the clock it wraps would, with one clock timer at most."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.queue = TimerQueue(self.clock)
        self.fired: list[str] = []

    def test_interfaces(self) -> None:
        """The queue is an IReactorTime and its timers are IDelayedCalls."""
        self.assertTrue(verifyObject(IReactorTime, self.queue))
        self.assertTrue(verifyObject(IDelayedCall, self.queue.callLater(1, self.fired.append, "x")))

    def test_exactTimesInOrder(self) -> None:
        """Each timer fires when the clock reaches its time, not before, in time order."""
        self.queue.callLater(2.0, self.fired.append, "b")
        self.queue.callLater(0.5, self.fired.append, "a")
        self.queue.callLater(32.0, self.fired.append, "c")
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(0.5 - 1e-6)
        self.assertEqual(self.fired, [])
        self.clock.advance(1e-6)
        self.assertEqual(self.fired, ["a"])
        self.clock.advance(1.5)
        self.assertEqual(self.fired, ["a", "b"])
        self.clock.advance(30)
        self.assertEqual(self.fired, ["a", "b", "c"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_earlierTimerRearms(self) -> None:
        """A timer earlier than every other moves the one clock timer forward."""
        self.queue.callLater(32.0, self.fired.append, "late")
        self.queue.callLater(0.5, self.fired.append, "early")
        (armed,) = self.clock.getDelayedCalls()
        self.assertEqual(armed.getTime(), 1000.5)
        self.clock.advance(0.5)
        self.assertEqual(self.fired, ["early"])

    def test_cancelLetsGo(self) -> None:
        """A cancelled timer never fires and drops its callable and arguments at once."""
        payload = object()
        timer = self.queue.callLater(1, self.fired.append, payload)
        timer.cancel()
        self.assertFalse(timer.active())
        self.assertEqual(timer._args, ())
        self.assertIsNone(timer._func)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(2)
        self.assertEqual(self.fired, [])
        self.assertRaises(AlreadyCancelled, timer.cancel)

    def test_calledTimer(self) -> None:
        """A timer that fired is inactive and cannot be cancelled."""
        timer = self.queue.callLater(1, self.fired.append, "x")
        self.clock.advance(1)
        self.assertFalse(timer.active())
        self.assertRaises(AlreadyCalled, timer.cancel)

    def test_addedWhileFiringWaitsATurn(self) -> None:
        """A timer set with no delay by a firing timer is left for the next turn of the clock."""

        def first() -> None:
            self.fired.append("first")
            self.queue.callLater(0, self.fired.append, "second")

        self.queue.callLater(1, first)
        self.clock.pump([1])  # advance(1) runs both: the Clock fires what becomes due meanwhile
        self.assertEqual(self.fired, ["first", "second"])
        self.fired.clear()
        self.queue.callLater(1, first)
        self.clock.rightNow += 1
        self.queue._fire()  # one turn of the queue by itself
        self.assertEqual(self.fired, ["first"])
        self.assertEqual([t.getTime() for t in self.queue.getDelayedCalls()], [self.clock.seconds()])

    def test_failureDoesNotStopOthers(self) -> None:
        """A timer that raises is logged; the timers due with it still run."""

        def broken() -> None:
            raise ZeroDivisionError()

        self.queue.callLater(1, broken)
        self.queue.callLater(1, self.fired.append, "after")
        self.clock.advance(1)
        self.assertEqual(self.fired, ["after"])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_resetAndDelay(self) -> None:
        """reset and delay move a timer; it fires once, at its new time."""
        timer = self.queue.callLater(1, self.fired.append, "x")
        timer.reset(5)
        self.assertEqual(timer.getTime(), 1005)
        timer.delay(1)
        self.clock.advance(5)
        self.assertEqual(self.fired, [])
        self.clock.advance(1)
        self.assertEqual(self.fired, ["x"])
        self.clock.advance(10)
        self.assertEqual(self.fired, ["x"])

    def test_cancelledEntriesDoNotPileUp(self) -> None:
        """Timers cancelled long before their time are swept, so the heap tracks live timers."""
        keep = self.queue.callLater(3600, self.fired.append, "kept")
        for _ in range(10):
            timers = [self.queue.callLater(32, self.fired.append, "never") for _ in range(1000)]
            for timer in timers:
                timer.cancel()
            self.queue.callLater(0.01, self.fired.append, "tick")
            self.clock.advance(0.01)
        self.assertLess(len(self.queue._heap), 200)
        self.assertEqual(self.fired, ["tick"] * 10)
        self.assertEqual(self.queue.getDelayedCalls(), [keep])

    def test_seconds(self) -> None:
        """Time is the wrapped clock's."""
        self.assertEqual(self.queue.seconds(), 1000)
