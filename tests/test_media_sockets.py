"""Tests for sbc.media.sockets: quiet UDP ports on real loopback sockets, read by a fake reactor.

The fake reactor only records which descriptors are registered; a test calls ``doRead`` itself, as
the reactor would when the socket turns readable.
"""

from __future__ import annotations

import errno
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any, cast

from twisted.internet import udp
from twisted.internet.error import CannotListenError, ConnectionDone, MessageLengthError
from twisted.internet.interfaces import (
    IListeningPort,
    IReactorUDP,
    IReadDescriptor,
    IUDPTransport,
)
from twisted.logger import ILogObserver, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from sbc.config import loadConfig
from sbc.interfaces import Address
from sbc.media.poller import MediaPoller
from sbc.media.ports import PortPool
from sbc.media.relay import MediaRelay, sparePairs
from sbc.media.sockets import IDLE_RECEIVE_BUFFER, READS_PER_EVENT, QuietDatagramPort, QuietUDP
from sbc.media.streams import MediaStats, RelaySocket
from sbc.tap import mediaRelay
from tests.fakes import DEMO_TOML, FakeFDReactor, Recorder, demoConfig, waitReadable, writeConfig

US = "127.0.0.1"


class SocketTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = FakeFDReactor()
        self.protocol = Recorder()
        self.port = QuietUDP(self.reactor).listenUDP(0, self.protocol, US)
        self.addCleanup(self.port.stopListening)
        self.address: Address = (US, self.port.getHost().port)
        self.peer = self.socket()

    def socket(self, family: socket.AddressFamily = socket.AF_INET, host: str = US) -> socket.socket:
        skt = socket.socket(family, socket.SOCK_DGRAM)
        self.addCleanup(skt.close)
        skt.bind((host, 0))
        return skt

    def capture(self) -> list[dict[str, Any]]:
        """Every log event from now until the test ends."""
        events: list[dict[str, Any]] = []
        observer = cast(ILogObserver, events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        return events


class BindTests(SocketTestCase):
    def test_interfaces(self) -> None:
        """A port is an IListeningPort, IUDPTransport and IReadDescriptor; QuietUDP is an IReactorUDP."""
        self.assertTrue(verifyObject(IListeningPort, self.port))
        self.assertTrue(verifyObject(IUDPTransport, self.port))
        self.assertTrue(verifyObject(IReadDescriptor, self.port))
        self.assertTrue(verifyObject(IReactorUDP, QuietUDP(self.reactor)))

    def test_neitherConnectsNorBroadcasts(self) -> None:
        """A relay socket refuses to connect or broadcast; turning broadcast off is a no-op."""
        self.assertRaises(RuntimeError, self.port.connect, "127.0.0.1", 9)
        self.assertRaises(RuntimeError, self.port.setBroadcastAllowed, True)
        self.port.setBroadcastAllowed(False)
        self.assertFalse(self.port.getBroadcastAllowed())

    def test_registersAndStarts(self) -> None:
        """listenUDP binds a non-blocking socket, starts the protocol and registers one reader."""
        self.assertEqual(self.reactor.readers, [self.port])
        self.assertEqual(self.protocol.started, 1)
        self.assertIs(self.protocol.transport, self.port)
        assert self.port.socket is not None
        self.assertFalse(self.port.socket.getblocking())
        self.assertEqual(self.port.getHost().host, US)
        self.assertNotEqual(self.port.getHost().port, 0)

    def test_bindFailure(self) -> None:
        """A port that is taken raises CannotListenError, and nothing is registered."""
        reactor = FakeFDReactor()
        with self.assertRaises(CannotListenError) as caught:
            QuietUDP(reactor).listenUDP(self.address[1], Recorder(), US)
        self.assertEqual(caught.exception.port, self.address[1])
        self.assertEqual(caught.exception.socketError.errno, errno.EADDRINUSE)
        self.assertEqual(reactor.readers, [])

    def test_ipv6(self) -> None:
        """On IPv6 a datagram's source is (host, port), without flow info and scope id."""
        try:
            peer = self.socket(socket.AF_INET6, "::1")
        except OSError:
            raise self.skipTest("no IPv6 loopback here") from None
        protocol = Recorder()
        port = QuietUDP(self.reactor).listenUDP(0, protocol, "::1")
        self.addCleanup(port.stopListening)
        self.assertEqual(port.getHost().host, "::1")
        peer.sendto(b"six", ("::1", port.getHost().port))
        waitReadable(port)
        port.doRead()
        self.assertEqual(protocol.received, [(b"six", peer.getsockname()[:2])])


class ReadTests(SocketTestCase):
    def test_datagramReachesProtocol(self) -> None:
        """A datagram sent to the port reaches datagramReceived, with its source, on doRead."""
        self.peer.sendto(b"hello", self.address)
        waitReadable(self.port)
        self.port.doRead()
        self.assertEqual(self.protocol.received, [(b"hello", self.peer.getsockname())])

    def test_drainsEveryWaitingDatagram(self) -> None:
        """One doRead hands on every datagram waiting, in order, and stops when none is left."""
        for n in range(5):
            self.peer.sendto(b"%d" % n, self.address)
        waitReadable(self.port)
        self.port.doRead()
        self.assertEqual([data for data, _ in self.protocol.received], [b"0", b"1", b"2", b"3", b"4"])
        self.port.doRead()  # nothing waiting: returns at once
        self.assertEqual(len(self.protocol.received), 5)

    def test_readsBoundedPerEvent(self) -> None:
        """One doRead reads at most READS_PER_EVENT datagrams; the rest wait for the next one."""
        for n in range(READS_PER_EVENT + 6):
            self.peer.sendto(b"%d" % n, self.address)
        waitReadable(self.port)
        self.port.doRead()
        self.assertEqual(len(self.protocol.received), READS_PER_EVENT)
        self.port.doRead()
        self.assertEqual(len(self.protocol.received), READS_PER_EVENT + 6)
        self.assertEqual(self.protocol.received[-1][0], b"%d" % (READS_PER_EVENT + 5))

    def test_icmpErrorIgnored(self) -> None:
        """An ICMP error reported by a read (port unreachable) does not stop the datagrams behind it."""
        assert self.port.socket is not None
        self.port.socket.setsockopt(socket.IPPROTO_IP, 11, 1)  # IP_RECVERR: Linux reports ICMP errors
        gone = self.socket()
        unreachable = gone.getsockname()
        gone.close()
        self.port.write(b"to nobody", unreachable)
        self.peer.sendto(b"after", self.address)
        waitReadable(self.port)
        self.port.doRead()
        self.assertEqual(self.protocol.received, [(b"after", self.peer.getsockname())])

    def test_protocolErrorLoggedAndReadingGoesOn(self) -> None:
        """A protocol that raises is logged (a bug), and the next datagram is still handed on."""
        received = self.protocol.received

        def fussy(datagram: bytes, addr: Any) -> None:
            received.append((datagram, addr))
            if datagram == b"bad":
                raise ZeroDivisionError()

        self.protocol.datagramReceived = fussy  # type: ignore[method-assign]
        self.peer.sendto(b"bad", self.address)
        self.peer.sendto(b"good", self.address)
        waitReadable(self.port)
        self.port.doRead()
        self.assertEqual([data for data, _ in received], [b"bad", b"good"])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_protocolErrorLoggedOnce(self) -> None:
        """A protocol failing on every datagram (a flood meeting a bug) is logged once, not per packet."""

        def broken(datagram: bytes, addr: Any) -> None:
            raise ZeroDivisionError()

        self.protocol.datagramReceived = broken  # type: ignore[method-assign]
        for _ in range(5):
            self.peer.sendto(b"bad", self.address)
        waitReadable(self.port)
        self.port.doRead()
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_readOne(self) -> None:
        """readOne says False when nothing waits, and True once it has handed one datagram on."""
        self.assertFalse(self.port.readOne())
        self.peer.sendto(b"one", self.address)
        self.peer.sendto(b"two", self.address)
        waitReadable(self.port)
        self.assertTrue(self.port.readOne())
        self.assertEqual(self.protocol.received, [(b"one", self.peer.getsockname())])
        self.assertTrue(self.port.readOne())
        self.assertFalse(self.port.readOne())
        self.assertEqual([data for data, _ in self.protocol.received], [b"one", b"two"])


class PauseTests(SocketTestCase):
    def test_pausedIsNotRead(self) -> None:
        """A paused port leaves the reactor: nothing registers it as a reader until it resumes."""
        self.port.pauseReading()
        self.port.pauseReading()  # twice is once
        self.assertEqual((self.reactor.readers, self.port.reading), ([], False))
        self.assertEqual(self.port.resumeReading(), 0)
        self.assertEqual((self.reactor.readers, self.port.reading), ([self.port], True))
        self.assertEqual(self.port.resumeReading(), 0)  # reading already: nothing to do
        self.assertEqual(self.reactor.added, 2)

    def test_resumeDiscardsWhatQueued(self) -> None:
        """Datagrams that queued while paused are thrown away at resume, none handed on; later ones are."""
        self.port.pauseReading()
        for n in range(3):
            self.peer.sendto(b"stale %d" % n, self.address)
        waitReadable(self.port)
        self.assertEqual(self.port.resumeReading(), 3)
        self.port.doRead()
        self.assertEqual(self.protocol.received, [])
        self.peer.sendto(b"fresh", self.address)
        waitReadable(self.port)
        self.port.doRead()
        self.assertEqual(self.protocol.received, [(b"fresh", self.peer.getsockname())])

    def test_resumeDiscardsBounded(self) -> None:
        """Resuming throws away at most ``discard`` datagrams: a flood cannot hold the reactor."""
        self.port.pauseReading()
        for n in range(4):
            self.peer.sendto(b"%d" % n, self.address)
        waitReadable(self.port)
        self.assertEqual(self.port.resumeReading(discard=3), 3)
        self.port.doRead()
        self.assertEqual([data for data, _ in self.protocol.received], [b"3"])

    def test_resumeLogsFailureAgain(self) -> None:
        """A socket reused for another call logs a protocol failure again (once per socket and call)."""

        def broken(datagram: bytes, addr: Any) -> None:
            raise ZeroDivisionError()

        self.protocol.datagramReceived = broken  # type: ignore[method-assign]
        for _ in range(2):
            self.peer.sendto(b"bad", self.address)
            waitReadable(self.port)
            self.port.doRead()
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.port.pauseReading()
        self.port.resumeReading()
        self.peer.sendto(b"bad", self.address)
        waitReadable(self.port)
        self.port.doRead()
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_idleReceiveBufferSmall(self) -> None:
        """A paused socket queues little (a stranger cannot pin kernel memory on idle ports); a
        resumed one reads with the receive buffer it had."""
        skt = self.port.socket
        assert skt is not None
        before = skt.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        self.port.pauseReading()
        idle = skt.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        self.assertLess(idle, before)
        self.assertLessEqual(idle, 4 * IDLE_RECEIVE_BUFFER)
        self.port.resumeReading()
        self.assertEqual(skt.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF), before)
        self.port.pauseReading()  # and again, call after call
        self.port.resumeReading()
        self.assertEqual(skt.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF), before)

    def test_closePaused(self) -> None:
        """A paused port closes without unregistering a reader it no longer is."""
        self.port.pauseReading()
        removed = self.reactor.removed
        self.port.stopListening()
        self.assertEqual((self.reactor.removed, self.port.fileno()), (removed, -1))
        self.assertEqual(self.port.resumeReading(), 0)  # closed: stays out of the reactor
        self.assertEqual(self.reactor.readers, [])


class WriteTests(SocketTestCase):
    def test_write(self) -> None:
        """write sends the datagram from the port's address."""
        self.port.write(b"out", self.peer.getsockname())
        self.assertEqual(self.peer.recvfrom(100), (b"out", self.address))

    def test_tooLong(self) -> None:
        """A datagram too long for UDP raises MessageLengthError, which the relay counts as dropped."""
        with self.assertRaises(MessageLengthError):
            self.port.write(b"x" * 70000, self.peer.getsockname())

    def test_sender(self) -> None:
        """sender() is the bound socket's own sendto: what it sends leaves from the port's address."""
        send = self.port.sender()
        assert self.port.socket is not None
        self.assertEqual(send, self.port.socket.sendto)
        send(b"bare", self.peer.getsockname())
        self.assertEqual(self.peer.recvfrom(100), (b"bare", self.address))

    def test_noAddress(self) -> None:
        """A relay socket is never connected, so a write without an address is refused."""
        with self.assertRaises(ValueError):
            self.port.write(b"out")


class CloseTests(SocketTestCase):
    def test_stopListening(self) -> None:
        """stopListening unregisters, stops the protocol and closes the socket before it returns."""
        result = self.port.stopListening()  # type: ignore[func-returns-value]
        self.assertIsNone(result)
        self.assertEqual(self.reactor.readers, [])
        self.assertEqual(self.reactor.removed, 1)
        self.assertEqual(self.protocol.stopped, 1)
        self.assertEqual(self.port.fileno(), -1)
        again = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(again.close)
        again.bind(self.address)  # the port is free at once

    def test_stopTwice(self) -> None:
        """A second stopListening does nothing: the protocol is stopped once."""
        self.port.stopListening()
        self.port.stopListening()
        self.assertEqual(self.protocol.stopped, 1)
        self.assertEqual(self.reactor.removed, 1)

    def test_connectionLost(self) -> None:
        """When the reactor drops the port (shutdown), the socket closes and the protocol stops."""
        self.reactor.removeAll()
        self.port.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.port.fileno(), -1)
        self.assertEqual(self.protocol.stopped, 1)

    def test_writeAfterClose(self) -> None:
        """A write on a closed port raises OSError (the relay counts it as dropped)."""
        self.port.stopListening()
        with self.assertRaises(OSError):
            self.port.write(b"late", self.peer.getsockname())


class QuietTests(SocketTestCase):
    def test_twistedPortLogs(self) -> None:
        """The capture sees the two lines Twisted's udp.Port logs on bind and close: silence is real."""
        events = self.capture()
        port = udp.Port(0, Recorder(), US, reactor=self.reactor)
        port.startListening()
        port.stopListening()
        self.reactor.advance(0)
        self.assertEqual(len(events), 2)

    def test_nothingLogged(self) -> None:
        """Bind, traffic both ways and close log nothing at all."""
        events = self.capture()
        protocol = Recorder()
        port = QuietUDP(self.reactor).listenUDP(0, protocol, US)
        port.write(b"out", self.peer.getsockname())
        self.peer.sendto(b"in", (US, port.getHost().port))
        waitReadable(port)
        port.doRead()
        port.stopListening()
        self.assertEqual(len(protocol.received), 1)
        self.assertEqual(self.peer.recv(100), b"out")
        self.assertEqual(events, [])


def phone(port: int) -> bytes:
    lines = ["v=0", f"o=- 1 1 IN IP4 {US}", "s=-", f"c=IN IP4 {US}", "t=0 0", f"m=audio {port} RTP/AVP 0"]
    return "".join(line + "\r\n" for line in lines).encode()


def mediaPort(sdp: bytes) -> int:
    return next(int(line.split()[1]) for line in sdp.decode().splitlines() if line.startswith("m="))


class RelayTests(SocketTestCase):
    def test_tapWiresQuietUDP(self) -> None:
        """The service's built-in relay binds its sockets through QuietUDP."""
        directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, directory)
        relay = mediaRelay(self.reactor, demoConfig(directory))
        assert isinstance(relay, MediaRelay)
        self.assertIsInstance(relay.reactor, QuietUDP)

    def test_tapReadsThroughPoller(self) -> None:
        """The service's built-in relay binds its sockets through a MediaPoller with the configured
        read window, on the service's reactor."""
        directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, directory)
        config = loadConfig(writeConfig(directory, DEMO_TOML + "[media]\nread_window = 0.005\n"))
        relay = mediaRelay(self.reactor, config)
        assert isinstance(relay, MediaRelay) and isinstance(relay.reactor, QuietUDP)
        poller = relay.reactor.reactor
        assert isinstance(poller, MediaPoller)
        self.addCleanup(poller.connectionLost, Failure(ConnectionDone()))
        self.assertEqual((poller.window, poller.reactor, poller.clock), (0.005, self.reactor, self.reactor))
        relay.offer("call", "A", phone(self.peer.getsockname()[1]), lambda: None)
        self.addCleanup(relay.close)
        self.assertEqual(poller.readers, 4)  # the call's four sockets are the poller's,
        self.assertEqual(self.reactor.readers, [self.port, poller])  # and the reactor has only it

    def test_relaySocketSendsThroughSender(self) -> None:
        """A RelaySocket on a QuietDatagramPort sends with the port's bare sendto, not its write,
        and a datagram relayed that way arrives from the twin's port."""
        facingA, facingB = (RelaySocket(self.reactor.seconds, 2.0) for _ in range(2))
        portA = QuietUDP(self.reactor).listenUDP(0, facingA, US)
        self.addCleanup(portA.stopListening)
        portB = QuietUDP(self.reactor).listenUDP(0, facingB, US)
        self.addCleanup(portB.stopListening)
        assert portB.socket is not None
        self.assertEqual(facingB.send, portB.socket.sendto)
        self.assertNotEqual(facingB.send, portB.write)
        phoneA, phoneB = self.socket(), self.socket()
        facingA.twin, facingB.twin = facingB, facingA
        facingA.learn(phoneA.getsockname())
        facingB.learn(phoneB.getsockname())
        phoneA.sendto(b"rtp", (US, portA.getHost().port))
        waitReadable(portA)
        portA.doRead()
        self.assertEqual(phoneB.recvfrom(100), (b"rtp", (US, portB.getHost().port)))
        self.assertEqual((facingA.packets, facingA.dropped), (1, 0))

    def test_callLogsNothing(self) -> None:
        """A call's media, built the production way, opens, relays and closes without a log line."""
        events = self.capture()
        pool = PortPool(41000, 41199)
        relay = MediaRelay(QuietUDP(self.reactor), self.reactor, US, pool)
        phoneA, phoneB = self.socket(), self.socket()
        offer = relay.offer("call", "A", phone(phoneA.getsockname()[1]), lambda: None)
        toA = mediaPort(offer)  # where B sends
        answer = relay.answer("call", "B", phone(phoneB.getsockname()[1]))
        toB = mediaPort(answer)  # where A sends
        self.assertEqual(len(self.reactor.readers), 5)  # four relay sockets and the test's own port

        phoneA.sendto(b"rtp", (US, toB))
        facingA = next(r for r in self.reactor.readers if r is not self.port and _port(r) == toB)
        waitReadable(facingA)
        facingA.doRead()
        self.assertEqual(phoneB.recvfrom(100), (b"rtp", (US, toA)))

        relay.delete("call")
        self.assertEqual(self.reactor.readers, [self.port])
        self.assertEqual(pool.inUse, 0)  # released at once: no close waits a reactor turn
        self.assertEqual(events, [])

    def test_takenPortSkipped(self) -> None:
        """A port another program holds is stepped over when the relay binds: the call gets other pairs."""
        taken = self.socket()  # the other program: it holds a port of the pair tried first
        blocked = taken.getsockname()[1] & ~1  # that pair's RTP port
        # Ten pairs, the highest free one first: the blocked pair is tried first.
        pool = PortPool(blocked - 18, blocked + 1, randbelow=lambda free: free - 1)
        relay = MediaRelay(QuietUDP(self.reactor), self.reactor, US, pool, spare=pool.capacity)
        self.addCleanup(relay.close)
        offer = relay.offer("call", "A", phone(self.peer.getsockname()[1]), lambda: None)
        relay.answer("call", "B", phone(self.peer.getsockname()[1]))
        ports = {_port(reader) for reader in self.reactor.readers if reader is not self.port}
        self.assertFalse({blocked, blocked + 1} & ports)
        self.assertEqual(len(ports), 4)
        self.assertIn(mediaPort(offer), ports)
        self.assertEqual((pool.inUse, blocked in pool), (2, False))
        relay.delete("call")
        self.assertEqual((pool.inUse, relay.idlePairs), (0, 2))

    def test_idlePairNotReadAndDrained(self) -> None:
        """An ended call's idle pairs are not read; what a peer sent them meanwhile, even from an
        address the next call allows, is thrown away when the next call takes them: never latched."""
        pool = PortPool(41200, 41203)  # two pairs: the next call reuses both
        relay = MediaRelay(QuietUDP(self.reactor), self.reactor, US, pool, spare=pool.capacity)
        self.addCleanup(relay.close)
        phoneA, phoneB = self.socket(), self.socket()
        relay.offer("old", "A", phone(phoneA.getsockname()[1]), lambda: None)
        relay.answer("old", "B", phone(phoneB.getsockname()[1]))
        relay.delete("old")
        self.assertEqual((self.reactor.readers, relay.idlePairs), ([self.port], 2))
        for port in (41200, 41202):
            phoneA.sendto(b"stale", (US, port))
            phoneB.sendto(b"stale", (US, port))
        probe = self.socket()
        probe.sendto(b"sync", (US, 41200))  # loopback delivers in order: once this is there, all are
        offer = relay.offer("new", "A", phone(phoneA.getsockname()[1]), lambda: None)
        relay.answer("new", "B", phone(phoneB.getsockname()[1]))
        readers = [reader for reader in self.reactor.readers if reader is not self.port]
        self.assertEqual(sorted(_port(reader) for reader in readers), [41200, 41201, 41202, 41203])
        for reader in readers:
            reader.doRead()  # nothing left to read: the stale datagrams were thrown away
        self.assertEqual(relay.stats("new"), MediaStats(0, 0, 0, 0, 0, 0))
        toA = mediaPort(offer)  # where B sends: the pair facing B
        phoneB.sendto(b"rtp", (US, toA))
        facingB = next(reader for reader in readers if _port(reader) == toA)
        waitReadable(facingB)
        facingB.doRead()
        self.assertEqual(phoneA.recvfrom(100)[0], b"rtp")

    def test_tapKeepsPairsBound(self) -> None:
        """The service's relay keeps ended calls' pairs bound for later calls, as descriptors allow."""
        directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, directory)
        relay = mediaRelay(self.reactor, demoConfig(directory))
        assert isinstance(relay, MediaRelay)
        self.assertEqual(relay.spare, sparePairs(relay.pool.capacity))
        self.assertGreater(relay.spare, 0)


def _port(reader: IReadDescriptor) -> int:
    assert isinstance(reader, QuietDatagramPort)
    return reader.getHost().port
