"""One reactor timer for the many timers of transactions and calls.

Every call starts a dozen RFC 3261 timers (A, B, C, D, K, L, M, the 2xx retransmission, the call
length) and cancels most of them within milliseconds. The reactor's `DelayedCall` is a large object
ordered by a Python ``__lt__``, and cancelling many of them makes the reactor rebuild its heap with
that comparison. `TimerQueue` keeps its timers in a heap of ``(time, sequence, timer)`` tuples,
which compare in C, with slotted timer objects, and asks the clock it wraps for one `DelayedCall`:
the earliest. Times stay exact: a timer fires when the wrapped clock says its time has come.

It provides `IReactorTime`, so the transaction layer and the calls take it where they took the
clock, and tests drive it with `twisted.internet.task.Clock` as before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from heapq import heapify, heappop, heappush
from itertools import count
from math import inf

from twisted.internet.error import AlreadyCalled, AlreadyCancelled
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

_Entry = tuple[float, int, "Timer"]


@implementer(IDelayedCall)
class Timer:
    """One pending call; cancelling it lets go of what it would have called at once."""

    __slots__ = ("_args", "_func", "_kw", "_queue", "called", "cancelled", "time")

    def __init__(
        self,
        queue: TimerQueue,
        time: float,
        func: Callable[..., object],
        args: tuple[object, ...],
        kw: dict[str, object],
    ) -> None:
        self._queue = queue
        self.time = time
        self._func: Callable[..., object] | None = func
        self._args: tuple[object, ...] = args
        self._kw = kw
        self.called = False
        self.cancelled = False

    def getTime(self) -> float:
        """When the timer is due, in the wrapped clock's seconds."""
        return self.time

    def active(self) -> bool:
        """Whether the timer is still pending: neither fired nor cancelled."""
        return not (self.called or self.cancelled)

    def cancel(self) -> None:
        """Stop the timer and drop its callable now; the heap entry is skipped later."""
        if self.cancelled:
            raise AlreadyCancelled()
        if self.called:
            raise AlreadyCalled()
        self.cancelled = True
        self._func, self._args, self._kw = None, (), {}
        self._queue._cancelled()

    def delay(self, secondsLater: float) -> None:
        """Push the due time back by ``secondsLater`` seconds."""
        self._move(self.time + secondsLater)

    def reset(self, secondsFromNow: float) -> None:
        """Make the timer due ``secondsFromNow`` seconds from now, as a restarted RFC 3261 timer is."""
        self._move(self._queue.seconds() + secondsFromNow)

    def _move(self, time: float) -> None:
        if self.cancelled:
            raise AlreadyCancelled()
        if self.called:
            raise AlreadyCalled()
        self.time = time  # the old heap entry no longer matches and is skipped
        self._queue._push(self)

    def __repr__(self) -> str:
        state = "called" if self.called else "cancelled" if self.cancelled else "pending"
        return f"<Timer {state} at {self.time:.3f} {self._func!r}>"


@implementer(IReactorTime)
class TimerQueue:
    """Timers on a heap of tuples, with one `DelayedCall` of ``clock`` armed for the earliest."""

    log = Logger()

    def __init__(self, clock: IReactorTime) -> None:
        self.clock = clock
        self._heap: list[_Entry] = []
        self._sequence = count()
        self._live = 0
        self._armed: IDelayedCall | None = None
        self._armedAt = inf

    def seconds(self) -> float:
        """Now, by the wrapped clock."""
        return self.clock.seconds()

    def callLater(self, delay: float, callable: Callable[..., object], *args: object, **kw: object) -> Timer:
        """Queue a call ``delay`` seconds from now, arming the wrapped clock if it is the earliest."""
        timer = Timer(self, self.clock.seconds() + delay, callable, args, kw)
        self._live += 1
        self._push(timer)
        return timer

    def getDelayedCalls(self) -> Sequence[IDelayedCall]:
        """The timers still pending, in no particular order (for tests and leak checks)."""
        return [timer for _, _, timer in self._heap if timer.active()]

    def _push(self, timer: Timer) -> None:
        time = timer.time
        heappush(self._heap, (time, next(self._sequence), timer))
        if time < self._armedAt:
            self._arm(time)

    def _arm(self, time: float) -> None:
        if self._armed is not None:
            self._armed.cancel()
        self._armedAt = time
        self._armed = self.clock.callLater(max(0.0, time - self.clock.seconds()), self._fire)

    def _cancelled(self) -> None:
        self._live -= 1
        if self._live == 0:
            # Nothing left to run: drop the dead entries and the reactor's timer with them.
            self._heap.clear()
            if self._armed is not None:
                self._armed.cancel()
                self._armed = None
                self._armedAt = inf

    def _fire(self) -> None:
        self._armed = None
        self._armedAt = inf
        now = self.clock.seconds()
        # Timers added while these run wait for the next turn, as the reactor's own would.
        last = next(self._sequence)
        heap = self._heap
        while heap and heap[0][0] <= now and heap[0][1] < last:
            time, _, timer = heappop(heap)
            if timer.called or timer.cancelled or timer.time != time:
                continue
            timer.called = True
            self._live -= 1
            func, args, kw = timer._func, timer._args, timer._kw
            timer._func, timer._args, timer._kw = None, (), {}
            try:
                func(*args, **kw)  # type: ignore[misc]
            except Exception:
                self.log.failure("timer {timer!r} failed", timer=func)
        self._rearm()

    def _rearm(self) -> None:
        heap = self._heap
        if self._live == 0:
            heap.clear()
            return
        if len(heap) > 64 and len(heap) > 2 * self._live:
            heap[:] = [entry for entry in heap if _alive(entry)]
            heapify(heap)
        while heap and not _alive(heap[0]):
            heappop(heap)
        if heap and heap[0][0] < self._armedAt:
            self._arm(heap[0][0])


def _alive(entry: _Entry) -> bool:
    timer = entry[2]
    return not (timer.called or timer.cancelled) and timer.time == entry[0]


__all__ = ["Timer", "TimerQueue"]
