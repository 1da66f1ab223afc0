"""Tests for sbc.media.poller: relay sockets read in batches through one reactor reader.

Real loopback sockets are bound through ``QuietUDP(poller)``; the reactor is a fake that records
its readers and is the poller's clock. A test calls the poller's ``doRead`` itself, as the reactor
would when the epoll set turns readable, and advances the clock through the read window.
"""

from __future__ import annotations

import os
import socket
import types
from typing import Any, cast

from twisted.internet.error import CannotListenError, ConnectionDone
from twisted.internet.interfaces import IReadDescriptor
from twisted.internet.task import Clock
from twisted.logger import ILogObserver, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

import sbc.media.poller
from sbc.interfaces import Address
from sbc.media.poller import ROUNDS, MediaPoller, pollerFor
from sbc.media.sockets import QuietDatagramPort, QuietUDP
from tests.fakes import FakeFDReactor, Recorder, waitReadable

US = "127.0.0.1"
WINDOW = 0.001


class PollerTestCase(SynchronousTestCase):
    """A poller with a read window on a fake reactor, and a peer socket to send from."""

    window = WINDOW

    def setUp(self) -> None:
        self.reactor = FakeFDReactor()
        self.poller = MediaPoller(self.reactor, self.reactor, self.window)
        self.addCleanup(self.poller.connectionLost, Failure(ConnectionDone()))
        self.udp = QuietUDP(self.poller)
        self.peer = self.socket()

    def socket(self) -> socket.socket:
        skt = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(skt.close)
        skt.bind((US, 0))
        return skt

    def listen(self) -> tuple[QuietDatagramPort, Recorder]:
        """A relay port read through the poller."""
        protocol = Recorder()
        port = self.udp.listenUDP(0, protocol, US)
        self.addCleanup(port.stopListening)
        return port, protocol

    def send(self, port: QuietDatagramPort, *datagrams: bytes) -> None:
        """Send ``datagrams`` to ``port`` from the peer, and wait (bounded) until they are there."""
        address: Address = (US, port.getHost().port)
        for datagram in datagrams:
            self.peer.sendto(datagram, address)
        waitReadable(port)


def payloads(protocol: Recorder) -> list[bytes]:
    return [datagram for datagram, _ in protocol.received]


class Ordered(Recorder):
    """A recorder that also notes, in a list shared with others, the order protocols were handed datagrams."""

    def __init__(self, order: list[Recorder]) -> None:
        super().__init__()
        self.order = order

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.order.append(self)
        super().datagramReceived(datagram, addr)


class RegistrationTests(PollerTestCase):
    def test_interface(self) -> None:
        """The poller is an IReadDescriptor whose descriptor is its epoll set's."""
        self.assertTrue(verifyObject(IReadDescriptor, self.poller))
        self.assertIsInstance(self.poller.fileno(), int)
        self.assertEqual(self.poller.logPrefix(), "MediaPoller")

    def test_onlyReader(self) -> None:
        """Sockets bound through the poller join its set, not the reactor: the reactor has one reader."""
        self.assertEqual(self.reactor.readers, [])  # no socket yet: not in the reactor
        for _ in range(3):
            self.listen()
        self.assertEqual(self.reactor.readers, [self.poller])
        self.assertEqual(self.reactor.added, 1)
        self.assertEqual(self.poller.readers, 3)

    def test_removingLastLeavesReactor(self) -> None:
        """The poller leaves the reactor with its last socket, and comes back with the next one."""
        first, _ = self.listen()
        second, _ = self.listen()
        first.stopListening()
        self.assertEqual(self.reactor.readers, [self.poller])
        second.stopListening()
        self.assertEqual((self.reactor.readers, self.poller.readers), ([], 0))
        self.listen()
        self.assertEqual(self.reactor.readers, [self.poller])

    def test_removeUnknownIgnored(self) -> None:
        """Removing a socket the poller does not read changes nothing."""
        self.listen()
        stranger = QuietUDP(FakeFDReactor()).listenUDP(0, Recorder(), US)
        self.addCleanup(stranger.stopListening)
        self.poller.removeReader(stranger)
        self.assertEqual((self.reactor.readers, self.poller.readers), ([self.poller], 1))


class ReadTests(PollerTestCase):
    def test_datagramReachesProtocol(self) -> None:
        """A datagram sent to a port in the poller reaches its protocol, with its source, on doRead."""
        port, protocol = self.listen()
        self.send(port, b"hello")
        waitReadable(self.poller)
        self.poller.doRead()
        self.assertEqual(protocol.received, [(b"hello", self.peer.getsockname())])

    def test_everyReadySocketRead(self) -> None:
        """One wakeup reads every ready socket, in rounds of one datagram each, until none is left."""
        order: list[Recorder] = []
        protocols = [Ordered(order) for _ in range(3)]
        for protocol in protocols:
            port = self.udp.listenUDP(0, protocol, US)
            self.addCleanup(port.stopListening)
            self.send(port, b"1", b"2")
        self.poller.doRead()
        self.assertEqual([payloads(protocol) for protocol in protocols], [[b"1", b"2"]] * 3)
        self.assertCountEqual(order[:3], protocols)  # a round reads each socket once

    def test_floodBoundedPerWakeup(self) -> None:
        """One wakeup reads at most ROUNDS datagrams of a flooded socket, and still serves another
        ready socket; the rest of the flood waits for the next read."""
        flooded, floodProtocol = self.listen()
        other, otherProtocol = self.listen()
        self.send(flooded, *(b"%d" % n for n in range(ROUNDS + 6)))
        self.send(other, b"other")
        self.poller.doRead()
        self.assertEqual(len(floodProtocol.received), ROUNDS)
        self.assertEqual(payloads(otherProtocol), [b"other"])
        self.reactor.advance(WINDOW)
        self.assertEqual(payloads(floodProtocol), [b"%d" % n for n in range(ROUNDS + 6)])

    def test_spuriousWakeupStays(self) -> None:
        """A wakeup that finds nothing to read keeps the poller in the reactor, with no window."""
        self.listen()
        self.poller.doRead()
        self.assertEqual((self.reactor.readers, self.reactor.getDelayedCalls()), ([self.poller], []))


class WindowTests(PollerTestCase):
    def test_batchLeavesReactor(self) -> None:
        """After a batch the poller leaves the reactor, and reads what came meanwhile when the window ends."""
        port, protocol = self.listen()
        self.send(port, b"first")
        self.poller.doRead()
        self.assertEqual(payloads(protocol), [b"first"])
        self.assertEqual(self.reactor.readers, [])
        self.assertEqual([call.getTime() for call in self.reactor.getDelayedCalls()], [WINDOW])
        self.send(port, b"second")
        self.reactor.advance(WINDOW / 2)
        self.assertEqual(payloads(protocol), [b"first"])  # not before the window ends
        self.reactor.advance(WINDOW / 2)
        self.assertEqual(payloads(protocol), [b"first", b"second"])
        self.assertEqual(self.reactor.readers, [])  # that window found some: another one follows
        self.assertEqual(len(self.reactor.getDelayedCalls()), 1)

    def test_emptyWindowReturns(self) -> None:
        """A window that finds nothing puts the poller back in the reactor, with no timer left."""
        port, protocol = self.listen()
        self.send(port, b"first")
        self.poller.doRead()
        self.reactor.advance(WINDOW)
        self.assertEqual(self.reactor.readers, [self.poller])
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.send(port, b"later")
        self.poller.doRead()  # the reactor wakes it again
        self.assertEqual(payloads(protocol), [b"first", b"later"])

    def test_removingLastCancelsWindow(self) -> None:
        """Removing the last socket during a window cancels it; a new socket brings the poller back."""
        port, _ = self.listen()
        other, _ = self.listen()
        self.send(port, b"x")
        self.poller.doRead()
        self.assertEqual(len(self.reactor.getDelayedCalls()), 1)
        port.stopListening()
        self.assertEqual(len(self.reactor.getDelayedCalls()), 1)  # one socket left: the window runs
        other.stopListening()
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.assertEqual(self.reactor.readers, [])
        self.listen()
        self.assertEqual(self.reactor.readers, [self.poller])

    def test_socketJoiningDuringWindow(self) -> None:
        """A socket added during a window is read when it ends, and the poller does not rejoin early."""
        first, _ = self.listen()
        self.send(first, b"x")
        self.poller.doRead()
        port, protocol = self.listen()
        self.assertEqual(self.reactor.readers, [])
        self.send(port, b"new")
        self.reactor.advance(WINDOW)
        self.assertEqual(payloads(protocol), [b"new"])


class NoWindowTests(PollerTestCase):
    window = 0.0

    def test_neverLeavesReactor(self) -> None:
        """With window 0 the poller stays in the reactor after a batch and sets no timer."""
        port, protocol = self.listen()
        self.send(port, b"one")
        self.poller.doRead()
        self.send(port, b"two")
        self.poller.doRead()
        self.assertEqual(payloads(protocol), [b"one", b"two"])
        self.assertEqual(self.reactor.readers, [self.poller])
        self.assertEqual((self.reactor.removed, self.reactor.getDelayedCalls()), (0, []))


class PauseTests(PollerTestCase):
    def test_pausedNotRead(self) -> None:
        """A paused port leaves the poller's set: what is sent to it is not read, and is thrown away
        when it resumes; after that it is read through the poller again."""
        port, protocol = self.listen()
        self.listen()  # another socket keeps the poller in the reactor
        port.pauseReading()
        self.assertEqual((self.poller.readers, self.reactor.readers), (1, [self.poller]))
        self.send(port, b"stale")
        self.poller.doRead()
        self.assertEqual(protocol.received, [])
        self.assertEqual(port.resumeReading(), 1)
        self.assertEqual(self.poller.readers, 2)
        self.send(port, b"fresh")
        self.poller.doRead()
        self.assertEqual(payloads(protocol), [b"fresh"])

    def test_pausingOnlySocketLeavesReactor(self) -> None:
        """Pausing the poller's only socket takes the poller out of the reactor; resuming brings it back."""
        port, _ = self.listen()
        port.pauseReading()
        self.assertEqual((self.poller.readers, self.reactor.readers), (0, []))
        port.resumeReading()
        self.assertEqual((self.poller.readers, self.reactor.readers), (1, [self.poller]))


class ConnectionLostTests(PollerTestCase):
    def test_stopsEveryPort(self) -> None:
        """When the reactor drops the poller (shutdown), every port closes, and the epoll set is
        replaced by a fresh one."""
        ports = [self.listen() for _ in range(2)]
        self.send(ports[0][0], b"x")
        self.poller.doRead()  # a window is pending
        self.reactor.removeAll()
        self.poller.connectionLost(Failure(ConnectionDone()))
        self.assertEqual([port.fileno() for port, _ in ports], [-1, -1])
        self.assertEqual([protocol.stopped for _, protocol in ports], [1, 1])
        self.assertEqual((self.poller.readers, self.reactor.getDelayedCalls()), (0, []))
        os.fstat(self.poller.fileno())  # a live descriptor: raises OSError if the set were closed

    def test_usableAfterLoss(self) -> None:
        """A port bound after the reactor dropped the poller is still read through it."""
        self.poller.connectionLost(Failure(ConnectionDone()))
        port, protocol = self.listen()
        self.assertEqual(self.reactor.readers, [self.poller])
        self.send(port, b"after")
        waitReadable(self.poller)
        self.poller.doRead()
        self.assertEqual([datagram for datagram, _ in protocol.received], [b"after"])


class FailureTests(PollerTestCase):
    def test_raisingSocketLeaves(self) -> None:
        """A socket whose read raises leaves the set, logged once; the others are read on."""
        events: list[dict[str, Any]] = []
        observer = cast(ILogObserver, events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        broken, _ = self.listen()
        good, protocol = self.listen()

        def boom() -> bool:
            raise RuntimeError("a bug")

        broken.readOne = boom  # type: ignore[method-assign]
        self.send(broken, b"x")
        self.send(good, b"y")
        self.poller.doRead()
        self.assertEqual((payloads(protocol), self.poller.readers), ([b"y"], 1))
        self.assertEqual(len([e for e in events if e.get("log_failure") is not None]), 1)
        self.flushLoggedErrors(RuntimeError)

    def test_refusedRegistrationClosesSocket(self) -> None:
        """A port the poller cannot take (its set closed under it) fails to listen, leaving no socket."""
        self.poller._epoll.close()
        self.assertRaises(CannotListenError, self.udp.listenUDP, 0, Recorder(), US)
        self.assertEqual(self.poller.readers, 0)


class BatchTests(PollerTestCase):
    def test_batchBoundsWakeup(self) -> None:
        """One wakeup reads about BATCH datagrams at most over all sockets, whatever their number."""
        self.patch(sbc.media.poller, "BATCH", 4)
        ports = [self.listen() for _ in range(3)]
        for port, _ in ports:
            self.send(port, b"a", b"b", b"c")
        self.poller.doRead()
        # Rounds of three (one per socket): the round that reaches the budget of 4 is the last.
        self.assertEqual(sum(len(protocol.received) for _, protocol in ports), 6)


class PollerForTests(SynchronousTestCase):
    def test_notAnFDReactor(self) -> None:
        """A reactor that takes no readers gets no poller."""
        clock = Clock()
        self.assertIsNone(pollerFor(clock, clock, WINDOW))
        self.assertIsNone(pollerFor(object(), clock, WINDOW))

    def test_noEpoll(self) -> None:
        """Where select has no epoll there is no poller."""
        self.patch(sbc.media.poller, "select", types.SimpleNamespace())
        self.assertIsNone(pollerFor(FakeFDReactor(), Clock(), WINDOW))

    def test_fdReactor(self) -> None:
        """A reactor that takes readers gets a poller on it, with the clock and window given."""
        reactor, clock = FakeFDReactor(), Clock()
        poller = pollerFor(reactor, clock, 0.005)
        assert poller is not None
        self.addCleanup(poller.connectionLost, Failure(ConnectionDone()))
        self.assertIsInstance(poller, MediaPoller)
        fields: tuple[Any, ...] = (poller.reactor, poller.clock, poller.window)
        self.assertEqual(fields, (reactor, clock, 0.005))
