"""One reactor reader for all of the relay's sockets, read in batches (issue 19).

Registered with the reactor one by one, each relay socket costs a reactor turn per datagram at the
rates calls run at (50 packets a second per socket): the epoll wait, Twisted's per-descriptor
logging context, a receive that finds the next datagram not there yet. That turn, not the relaying,
was most of the relay's CPU.

`MediaPoller` keeps the sockets in an epoll set of its own, which the reactor watches as a single
descriptor. When it is readable, the poller reads one datagram from each ready socket, asks the set
again, and so on until nothing is waiting (or `ROUNDS`: a flood yields to SIP and timers). Then,
rather than waking for the very next datagram, it steps out of the reactor for ``window`` seconds
and reads what gathered meanwhile: under load every wakeup carries many datagrams, one for each
socket that has one. A window that finds nothing puts it back in the reactor, so a lone packet waits
for no timer. The price is a delay of about ``window`` on a packet that arrives while it sleeps
(a millisecond by default; the reactor's timers round up to whole milliseconds, and a busy reactor
adds its turn): far inside any jitter buffer. The window is set at start (`sbc.tap`).

Linux only (``select.epoll``): elsewhere `pollerFor` gives None and each socket joins the reactor
itself.
"""

from __future__ import annotations

import contextlib
import select
from typing import Protocol

from twisted.internet.interfaces import IDelayedCall, IReactorFDSet, IReactorTime, IReadDescriptor
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

__all__ = ["BATCH", "ROUNDS", "BatchReader", "MediaPoller", "pollerFor"]

# Rounds of one datagram per ready socket, per wakeup: as `READS_PER_EVENT` bounds one socket, so
# that a flooded relay still lets the reactor run SIP and timers between batches.
ROUNDS = 64
# Datagrams read per wakeup at most, over all sockets: a flood spread over many ports stalls SIP
# and timers for a bounded time too (the rest waits for the next window). Far above what calls
# send in a window: 1,000 calls' RTP both ways is 100 datagrams a millisecond.
BATCH = 2048


class BatchReader(Protocol):
    """What the poller reads: a socket's descriptor, and one datagram at a time."""

    def fileno(self) -> int: ...

    def readOne(self) -> bool: ...

    def connectionLost(self, reason: Failure) -> None: ...


@implementer(IReadDescriptor)
class MediaPoller:
    """An epoll set of relay sockets, read in rounds, as one reader of ``reactor``.

    Sockets join and leave with `addReader` and `removeReader`, as they would the reactor's own:
    `sbc.media.sockets.QuietDatagramPort` takes either. ``window`` (seconds; 0: none) is how long
    the poller stays out of the reactor after a batch, on ``clock``.
    """

    log = Logger()

    def __init__(self, reactor: IReactorFDSet, clock: IReactorTime, window: float) -> None:
        self.reactor = reactor
        self.clock = clock
        self.window = window
        self._epoll = select.epoll()
        self._readers: dict[int, BatchReader] = {}
        self._watched = False  # registered with the reactor
        self._later: IDelayedCall | None = None  # the end of the current window

    # -- what sockets call

    def addReader(self, reader: BatchReader) -> None:
        """Read ``reader`` from now on."""
        fd = reader.fileno()
        known = self._readers.get(fd)
        if known is reader:
            return
        if known is not None:
            # A socket closed without leaving, its number now another's: the kernel dropped the
            # old registration with the socket, if it had not gone already.
            with contextlib.suppress(OSError):
                self._epoll.unregister(fd)
        self._epoll.register(fd, select.EPOLLIN)
        self._readers[fd] = reader
        if self._later is None:
            self._watch()

    def removeReader(self, reader: BatchReader) -> None:
        """Stop reading ``reader`` (before its socket closes: the descriptor must still be its own)."""
        fd = reader.fileno()
        if self._readers.get(fd) is not reader:
            return
        del self._readers[fd]
        self._epoll.unregister(fd)
        if not self._readers:
            self._unwatch()
            if self._later is not None:
                self._later.cancel()
                self._later = None

    @property
    def readers(self) -> int:
        """How many sockets it reads."""
        return len(self._readers)

    # -- IReadDescriptor, for the reactor

    def fileno(self) -> int:
        """The epoll set's descriptor: readable when any socket in it is."""
        return self._epoll.fileno()

    def doRead(self) -> None:
        """A socket has a datagram: read the batch, then let the window gather the next."""
        if self._read() and self.window > 0 and self._readers:
            self._unwatch()
            if self._later is not None:  # a socket joined from within the batch and woke us early
                self._later.cancel()
            self._later = self.clock.callLater(self.window, self._windowEnded)

    def connectionLost(self, reason: Failure) -> None:
        """The reactor lets go of us (at shutdown): each socket closes as it would there. A fresh
        epoll set takes the old one's place, so that a socket bound afterwards still gets read."""
        self._watched = False
        if self._later is not None:
            self._later.cancel()
            self._later = None
        for reader in list(self._readers.values()):
            reader.connectionLost(reason)
        self._readers.clear()
        self._epoll.close()
        self._epoll = select.epoll()

    def logPrefix(self) -> str:
        """Log as the relay's sockets do."""
        return "MediaPoller"

    # -- the batches

    def _windowEnded(self) -> None:
        self._later = None
        busy = False
        try:
            busy = self._read()
        finally:
            # Whatever happened, the poller goes on: on a timer while busy, else in the reactor.
            if busy and self._readers:
                self._later = self.clock.callLater(self.window, self._windowEnded)
            elif self._readers:
                self._watch()  # quiet: back to waking on the next datagram

    def _read(self) -> bool:
        """Read rounds of one datagram per ready socket; whether any socket was ready."""
        poll = self._epoll.poll
        readers = self._readers
        ready = poll(0)
        if not ready:
            return False
        budget = BATCH
        for _ in range(ROUNDS):
            for fd, _event in ready:
                reader = readers.get(fd)
                if reader is not None:  # else it left during this round
                    try:
                        reader.readOne()
                    except Exception:
                        self._failed(reader)
            budget -= len(ready)
            if budget <= 0:
                break
            ready = poll(0)
            if not ready:
                break
        return True

    def _failed(self, reader: BatchReader) -> None:
        """A socket whose read raised (a bug: a port catches what traffic can cause) leaves the
        set, said once, so that the others, and every call bound later, are still read."""
        self.log.failure("reading {reader} failed; it is read no more", reader=reader)
        self.removeReader(reader)

    def _watch(self) -> None:
        if not self._watched:
            self._watched = True
            self.reactor.addReader(self)

    def _unwatch(self) -> None:
        if self._watched:
            self._watched = False
            self.reactor.removeReader(self)


def pollerFor(reactor: object, clock: IReactorTime, window: float) -> MediaPoller | None:
    """A poller on ``reactor`` where the platform has epoll and the reactor takes readers, else None."""
    if not hasattr(select, "epoll") or not IReactorFDSet.providedBy(reactor):
        return None
    return MediaPoller(reactor, clock, window)
