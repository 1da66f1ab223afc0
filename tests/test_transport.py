"""Tests for sbc.transport: framing, keepalives, timeouts and the gate at the socket."""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransportWithDisconnection
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from sbc.interfaces import Address, ISIPTransport
from sbc.transport import GateFactory, SIPDatagramProtocol, SIPStreamFactory, SIPStreamProtocol
from tests.fakes import options


class FakeController:
    def __init__(self, allowed: tuple[str, ...] = ("127.0.0.2", "::1")) -> None:
        self.allowed = allowed
        self.messages: list[tuple[bytes, ISIPTransport, Address]] = []
        self.errors: list[str] = []
        self.closed: list[ISIPTransport] = []
        self.started: list[ISIPTransport] = []

    def admit(self, host: str) -> bool:
        return host in self.allowed

    def messageReceived(self, data: bytes, transport: ISIPTransport, source: Address) -> None:
        self.messages.append((data, transport, source))

    def streamError(self, transport: ISIPTransport, source: Address, reason: str) -> None:
        self.errors.append(reason)

    def connectionClosed(self, transport: ISIPTransport) -> None:
        self.closed.append(transport)

    def transportStarted(self, transport: ISIPTransport) -> None:
        self.started.append(transport)


class FakeDatagramTransport:
    """What SIPDatagramProtocol needs of a UDP port."""

    def __init__(self) -> None:
        self.written: list[tuple[bytes, Address]] = []
        self.socket = self
        self.refuse = False

    def sendto(self, data: bytes, addr: Address) -> None:
        if self.refuse:
            raise ConnectionRefusedError("ICMP port unreachable")
        self.written.append((data, addr))

    def getHost(self) -> IPv4Address:
        return IPv4Address("UDP", "127.0.0.1", 5060)


class DatagramTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.controller = FakeController()
        self.protocol = SIPDatagramProtocol(self.controller)
        self.transport = FakeDatagramTransport()
        self.protocol.makeConnection(self.transport)  # type: ignore[arg-type]

    def test_interface(self) -> None:
        """The UDP protocol provides ISIPTransport and is unreliable."""
        self.assertTrue(verifyObject(ISIPTransport, self.protocol))
        self.assertFalse(self.protocol.reliable)
        self.assertEqual(self.protocol.localAddress, ("127.0.0.1", 5060))

    def test_started(self) -> None:
        """The controller hears when the socket is up."""
        self.assertEqual(self.controller.started, [self.protocol])

    def test_whitelisted(self) -> None:
        """A datagram from a whitelisted source reaches the controller whole."""
        self.protocol.datagramReceived(options(), ("127.0.0.2", 5062))
        self.assertEqual(self.controller.messages, [(options(), self.protocol, ("127.0.0.2", 5062))])

    def test_strangerNotParsed(self) -> None:
        """A datagram from a stranger never reaches the controller's parser."""
        self.protocol.datagramReceived(options(), ("127.0.0.9", 5062))
        self.assertEqual(self.controller.messages, [])

    def test_send(self) -> None:
        """send writes one datagram to the given address."""
        self.protocol.send(b"x", ("127.0.0.2", 5062))
        self.assertEqual(self.transport.written, [(b"x", ("127.0.0.2", 5062))])

    def test_sendFailureCounted(self) -> None:
        """A refused UDP send is a lost datagram: counted, never raised."""
        self.transport.refuse = True
        self.protocol.send(b"x", ("127.0.0.2", 5062))
        self.assertEqual(self.protocol.sendFailures, 1)


class StreamTestCase(SynchronousTestCase):
    maxSize = 65536

    def setUp(self) -> None:
        self.clock = Clock()
        self.controller = FakeController()
        self.factory = SIPStreamFactory(self.controller, "TCP", self.clock, 30.0, self.maxSize)
        self.protocol = self.connect(IPv4Address("TCP", "127.0.0.2", 40000))

    def connect(self, peer: Any) -> SIPStreamProtocol:
        protocol = self.factory.buildProtocol(peer)
        assert isinstance(protocol, SIPStreamProtocol)
        self.transport = StringTransportWithDisconnection(
            hostAddress=IPv4Address("TCP", "127.0.0.1", 5060), peerAddress=peer
        )
        self.transport.protocol = protocol
        protocol.makeConnection(self.transport)
        return protocol


class StreamTests(StreamTestCase):
    def test_interface(self) -> None:
        """The stream protocol provides ISIPTransport and is reliable."""
        self.assertTrue(verifyObject(ISIPTransport, self.protocol))
        self.assertTrue(self.protocol.reliable)

    def test_oneByteAtATime(self) -> None:
        """Messages fed one byte at a time come out whole, in order."""
        data = options(branch="z9hG4bKa") + b"\r\n\r\n" + options(branch="z9hG4bKb")
        for i in range(len(data)):
            self.protocol.dataReceived(data[i : i + 1])
        expected = [options(branch="z9hG4bKa"), options(branch="z9hG4bKb")]
        self.assertEqual([m[0] for m in self.controller.messages], expected)
        self.assertEqual([m[2] for m in self.controller.messages], [("127.0.0.2", 40000)] * 2)

    def test_keepalivePong(self) -> None:
        """A double-CRLF ping gets a single CRLF pong (RFC 5626 section 4.4.1)."""
        self.protocol.dataReceived(b"\r\n\r\n")
        self.assertEqual(self.transport.value(), b"\r\n")
        self.assertEqual(self.controller.messages, [])

    def test_responseOnSameConnection(self) -> None:
        """What the controller sends back goes on the request's own connection."""
        self.protocol.dataReceived(options())
        _, transport, source = self.controller.messages[0]
        transport.send(b"SIP/2.0 200 OK\r\n\r\n", source)
        self.assertEqual(self.transport.value(), b"SIP/2.0 200 OK\r\n\r\n")

    def test_idleTimeout(self) -> None:
        """A silent connection is closed after the idle timeout; traffic resets the timer."""
        self.clock.advance(20)
        self.protocol.dataReceived(b"\r\n\r\n")
        self.clock.advance(20)
        self.assertTrue(self.transport.connected)
        self.clock.advance(11)
        self.assertFalse(self.transport.connected)
        self.assertEqual(self.controller.closed, [self.protocol])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_missingContentLength(self) -> None:
        """On a stream, a message without Content-Length closes the connection."""
        self.protocol.dataReceived(b"OPTIONS sip:a SIP/2.0\r\nVia: SIP/2.0/TCP x\r\n\r\n")
        self.assertFalse(self.transport.connected)
        self.assertEqual(len(self.controller.errors), 1)

    def test_strangerRefused(self) -> None:
        """The factory builds no protocol for a stranger, so the connection closes at once."""
        self.assertIsNone(self.factory.buildProtocol(IPv4Address("TCP", "127.0.0.9", 40000)))

    def test_ipv6Peer(self) -> None:
        """An IPv6 peer is admitted by its address and reported as (host, port)."""
        protocol = self.connect(IPv6Address("TCP", "::1", 40001))
        protocol.dataReceived(options())
        self.assertEqual(self.controller.messages[-1][2], ("::1", 40001))


class StreamLimitTests(StreamTestCase):
    maxSize = 2000

    def test_oversizeHeadRefused(self) -> None:
        """A header section past the limit closes the connection without buffering more."""
        self.protocol.dataReceived(b"OPTIONS sip:a SIP/2.0\r\n" + b"X: " + b"a" * 2100)
        self.assertFalse(self.transport.connected)
        self.assertLessEqual(self.protocol.framer.buffered, 2200)

    def test_oversizeBodyRefused(self) -> None:
        """A Content-Length that passes the limit is refused before the body arrives."""
        self.protocol.dataReceived(options().replace(b"Content-Length: 0", b"Content-Length: 5000"))
        self.assertFalse(self.transport.connected)


class GateFactoryTests(SynchronousTestCase):
    def test_gate(self) -> None:
        """A wrapping factory refuses strangers before the wrapped one (such as TLS) runs."""
        built: list[Any] = []

        class Wrapped(SIPStreamFactory):
            def buildProtocol(self, addr: Any) -> Any:
                built.append(addr)
                return super().buildProtocol(addr)

        controller = FakeController()
        gate = GateFactory(controller, Wrapped(controller, "TLS", Clock(), 30.0, 65536))
        self.assertIsNone(gate.buildProtocol(IPv4Address("TCP", "127.0.0.9", 1)))
        self.assertEqual(built, [])
        self.assertIsNotNone(gate.buildProtocol(IPv4Address("TCP", "127.0.0.2", 1)))
