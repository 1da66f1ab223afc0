"""Tests for sbc.transport: framing, keepalives, timeouts and the gate at the socket."""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport, StringTransportWithDisconnection
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from sbc.access import sourceKey
from sbc.interfaces import Address, ISIPTransport
from sbc.transport import (
    GateFactory,
    SIPDatagramProtocol,
    SIPStreamFactory,
    SIPStreamProtocol,
    StreamConnections,
)
from sbc.transport.stream import CLOSE_GRACE
from tests.fakes import FakeController, FakeDatagramTransport, options


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

    def test_closeThatNeverEndsIsAborted(self) -> None:
        """A close the peer never lets finish (it stops reading; TLS waits for its close_notify) is
        cut off after CLOSE_GRACE, so it holds neither the connection nor its source's slot."""
        transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.2", 40002))
        protocol = self.factory.buildProtocol(IPv4Address("TCP", "127.0.0.2", 40002))
        assert isinstance(protocol, SIPStreamProtocol)
        protocol.makeConnection(transport)
        protocol.close()
        self.assertFalse(transport.disconnected)
        self.clock.advance(CLOSE_GRACE)
        self.assertTrue(transport.disconnected)

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


class StreamGateTests(StreamTestCase):
    def test_gatePerMessage(self) -> None:
        """A source refused after its connection opened: its next message dropped, the connection closed."""
        self.protocol.dataReceived(options(branch="z9hG4bKa"))
        self.controller.allowed = ()
        self.protocol.dataReceived(options(branch="z9hG4bKb"))
        self.assertEqual([m[0] for m in self.controller.messages], [options(branch="z9hG4bKa")])
        self.assertFalse(self.transport.connected)

    def test_gateBetweenMessagesOfOneChunk(self) -> None:
        """A refusal that comes while one message is handled stops the messages after it in the same read."""

        def refuseAfterFirst(data: bytes, transport: ISIPTransport, source: Address) -> None:
            messages.append(data)
            self.controller.allowed = ()

        messages: list[bytes] = []
        self.controller.messageReceived = refuseAfterFirst  # type: ignore[method-assign]
        self.protocol.dataReceived(options(branch="z9hG4bKa") + options(branch="z9hG4bKb"))
        self.assertEqual(messages, [options(branch="z9hG4bKa")])
        self.assertFalse(self.transport.connected)


class StreamConnectionsCase(SynchronousTestCase):
    """A stream factory whose connections are counted by source, and a way to connect to it."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.controller = FakeController(allowed=("127.0.0.2", "127.0.0.3"), limit=2)
        self.connections = StreamConnections()
        self.factory = SIPStreamFactory(
            self.controller, "TCP", self.clock, 30.0, 65536, connections=self.connections
        )
        self.transports: list[StringTransportWithDisconnection] = []

    def connect(self, host: str, port: int = 40000) -> SIPStreamProtocol | None:
        peer = IPv6Address("TCP", host, port) if ":" in host else IPv4Address("TCP", host, port)
        protocol = self.factory.buildProtocol(peer)
        if protocol is None:
            return None
        assert isinstance(protocol, SIPStreamProtocol)
        transport = StringTransportWithDisconnection(
            hostAddress=IPv4Address("TCP", "127.0.0.1", 5060), peerAddress=peer
        )
        transport.protocol = protocol
        protocol.makeConnection(transport)
        self.transports.append(transport)
        return protocol


class StreamConnectionsTests(StreamConnectionsCase):
    def test_registeredBySource(self) -> None:
        """Open connections are counted by source and forgotten when they close."""
        self.connect("127.0.0.2", 1)
        self.connect("127.0.0.2", 2)
        self.connect("127.0.0.3", 1)
        self.assertEqual((self.connections.count("127.0.0.2"), len(self.connections)), (2, 3))
        self.transports[0].loseConnection()
        self.assertEqual((self.connections.count("127.0.0.2"), len(self.connections)), (1, 2))

    def test_closeWhere(self) -> None:
        """closeWhere closes at once every connection of a refused source, and no other."""
        self.connect("127.0.0.2", 1)
        self.connect("127.0.0.2", 2)
        self.connect("127.0.0.3", 1)
        self.assertEqual(self.connections.closeWhere(lambda host: host == "127.0.0.2"), 2)
        self.assertEqual([t.connected for t in self.transports], [False, False, True])
        self.assertEqual(len(self.controller.closed), 2)
        self.assertEqual(len(self.connections), 1)

    def test_limitPerSource(self) -> None:
        """Past its limit a source's new connection is refused; another source, or a freed slot, is not."""
        self.assertIsNotNone(self.connect("127.0.0.2", 1))
        self.assertIsNotNone(self.connect("127.0.0.2", 2))
        self.assertIsNone(self.connect("127.0.0.2", 3))
        self.assertIsNotNone(self.connect("127.0.0.3", 1))
        self.transports[0].loseConnection()
        self.assertIsNotNone(self.connect("127.0.0.2", 4))
        self.assertEqual(self.connections.count("127.0.0.2"), 2)

    def test_limitAtConnectionMade(self) -> None:
        """A protocol built past the limit (built before others connected) closes as it connects."""
        first = self.factory.buildProtocol(IPv4Address("TCP", "127.0.0.2", 1))
        self.connect("127.0.0.2", 2)
        self.connect("127.0.0.2", 3)
        assert isinstance(first, SIPStreamProtocol)
        transport = StringTransportWithDisconnection(peerAddress=IPv4Address("TCP", "127.0.0.2", 1))
        transport.protocol = first
        first.makeConnection(transport)
        self.assertFalse(transport.connected)
        self.assertEqual(self.connections.count("127.0.0.2"), 2)
        self.assertEqual(self.connections.refused, 1)

    def test_gateFactoryLimit(self) -> None:
        """The gate in front of TLS refuses a source at its limit before the handshake costs anything."""
        built: list[Any] = []

        class Wrapped(SIPStreamFactory):
            def buildProtocol(self, addr: Any) -> Any:
                built.append(addr)
                return super().buildProtocol(addr)

        gate = GateFactory(
            self.controller, Wrapped(self.controller, "TLS", self.clock, 30.0, 65536), self.connections
        )
        self.connect("127.0.0.2", 1)
        self.assertIsNotNone(gate.buildProtocol(IPv4Address("TCP", "127.0.0.2", 2)))
        self.connect("127.0.0.2", 3)
        self.assertIsNone(gate.buildProtocol(IPv4Address("TCP", "127.0.0.2", 4)))
        self.assertEqual(len(built), 1)


class StreamConnectionsByPrefixTests(StreamConnectionsCase):
    """The limit counts an IPv6 source by its prefix, as bans do."""

    def setUp(self) -> None:
        super().setUp()
        self.prefix = 64
        self.connections.sourceKey = lambda host: sourceKey(host, self.prefix)
        self.controller.allowed = ("2001:db8:1:2::5", "2001:db8:1:2::6", "2001:db8:1:2::7", "2001:db8:1:3::5")

    def test_oneLimitPerPrefix(self) -> None:
        """Addresses of one IPv6 /64 share one limit; another /64 has its own."""
        self.assertIsNotNone(self.connect("2001:db8:1:2::5", 1))
        self.assertIsNotNone(self.connect("2001:db8:1:2::6", 1))
        self.assertIsNone(self.connect("2001:db8:1:2::7", 1))
        self.assertIsNotNone(self.connect("2001:db8:1:3::5", 1))
        self.assertEqual(self.connections.count("2001:db8:1:2::99"), 2)

    def test_prefixReloaded(self) -> None:
        """After the prefix changes, closeWhere regroups open connections, and closing them leaks nothing."""
        self.connect("2001:db8:1:2::5", 1)
        self.connect("2001:db8:1:3::5", 1)
        self.prefix = 56
        self.assertEqual(self.connections.closeWhere(lambda host: False), 0)
        self.assertEqual(self.connections.count("2001:db8:1:2::5"), 2)
        self.assertIsNone(self.connect("2001:db8:1:2::6", 2))
        self.prefix = 64
        self.transports[0].loseConnection()
        self.transports[1].loseConnection()
        self.assertEqual((len(self.connections), self.connections._bySource), (0, {}))

    def test_closeWhereAsksByHost(self) -> None:
        """closeWhere asks about each connection's own host, never a prefix."""
        self.connect("2001:db8:1:2::5", 1)
        self.connect("2001:db8:1:2::6", 1)
        asked: list[str] = []

        def refused(host: str) -> bool:
            asked.append(host)
            return False

        self.connections.closeWhere(refused)
        self.assertEqual(sorted(asked), ["2001:db8:1:2::5", "2001:db8:1:2::6"])


class MessageDeadlineTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.controller = FakeController()
        self.factory = SIPStreamFactory(self.controller, "TCP", self.clock, 30.0, 65536, messageDeadline=10.0)
        peer = IPv4Address("TCP", "127.0.0.2", 40000)
        protocol = self.factory.buildProtocol(peer)
        assert isinstance(protocol, SIPStreamProtocol)
        self.protocol = protocol
        self.transport = StringTransportWithDisconnection(peerAddress=peer)
        self.transport.protocol = protocol
        protocol.makeConnection(self.transport)

    def test_slowMessageClosed(self) -> None:
        """A message dripped byte by byte closes the connection at its deadline, whatever the idle timer."""
        data = options()
        for i in range(3):
            self.protocol.dataReceived(data[i : i + 1])
            self.clock.advance(4)
        self.assertFalse(self.transport.connected)
        self.assertEqual(self.controller.messages, [])
        self.assertEqual(self.controller.errors, ["message not complete within its deadline"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_completeInTime(self) -> None:
        """A message completed within the deadline cancels it; the next message gets a deadline of its own."""
        data = options()
        self.protocol.dataReceived(data[:10])
        self.clock.advance(9)
        self.protocol.dataReceived(data[10:] + data[:10])
        self.clock.advance(9)
        self.assertTrue(self.transport.connected)
        self.protocol.dataReceived(data[10:])
        self.clock.advance(9)
        self.assertTrue(self.transport.connected)
        self.assertEqual(len(self.controller.messages), 2)

    def test_keepaliveNoDeadline(self) -> None:
        """CRLF keepalives, even a lone one, start no message deadline."""
        self.protocol.dataReceived(b"\r\n")
        self.clock.advance(11)
        self.protocol.dataReceived(b"\r\n\r\n")
        self.clock.advance(11)
        self.assertTrue(self.transport.connected)
