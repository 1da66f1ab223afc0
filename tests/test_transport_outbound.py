"""Tests for sbc.transport.outbound: TCP/TLS connections we open to gateways, reused per destination,
holding messages until ready, reporting a connection that fails so its transactions end at once."""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from sbc.config.sip import Transport
from sbc.interfaces import ISIPTransport
from sbc.transport.outbound import (
    CONNECT_TIMEOUT,
    KEEPALIVE_INTERVAL,
    MAX_PENDING,
    STOP_GRACE,
    OutboundStream,
    OutboundStreams,
)
from tests.fakes import FakeController, LogRecorder

GATEWAY = ("127.0.0.3", 5061)
LOCAL = {Transport.TCP: ("127.0.0.1", 5060), Transport.TLS: ("127.0.0.1", 5061)}
MESSAGE = b"OPTIONS sip:127.0.0.3 SIP/2.0\r\nContent-Length: 0\r\n\r\n"


class OutboundTestCase(SynchronousTestCase):
    """A pool on a memory reactor, recording failures and the names TLS is asked to verify."""

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.controller = FakeController(allowed=("127.0.0.3",))
        self.failed: list[ISIPTransport] = []
        self.names: list[str] = []
        self.streams = OutboundStreams(
            self.reactor,
            self.reactor,
            self.controller,
            LOCAL,
            idleTimeout=60.0,
            maxSize=65535,
            clientTLS=self.creator,
            onFailure=self.failed.append,
        )

    def creator(self, name: str) -> Any:
        self.names.append(name)
        from twisted.internet.ssl import optionsForClientTLS

        return optionsForClientTLS(name)

    def stream(self, transport: Transport = Transport.TCP, name: str = "gw.peer.test") -> OutboundStream:
        stream = self.streams.stream(transport, GATEWAY, name)
        assert stream is not None
        return stream

    def connect(self) -> tuple[Any, StringTransport]:
        """Let the last connection attempt succeed; its protocol and the bytes it wrote."""
        host, port = self.reactor.tcpClients[-1][:2]
        factory: Any = self.reactor.tcpClients[-1][2]
        protocol = factory.buildProtocol(IPv4Address("TCP", host, port))
        wire = StringTransport(peerAddress=IPv4Address("TCP", host, port))
        protocol.makeConnection(wire)
        return protocol, wire


class OutboundStreamsTests(OutboundTestCase):
    """The pool of connections to gateways."""

    def test_isTransport(self) -> None:
        """A stream is an ISIPTransport: reliable, named as in Via, our listener's address as its own."""
        stream = self.stream(Transport.TLS)
        verifyObject(ISIPTransport, stream)
        self.assertTrue(stream.reliable)
        self.assertEqual(stream.name, "TLS")
        self.assertEqual(stream.localAddress, LOCAL[Transport.TLS])

    def test_reusedPerDestination(self) -> None:
        """One stream per transport, address and name: asked again, the same one comes back."""
        self.assertIs(self.stream(), self.stream())
        self.assertIsNot(self.stream(Transport.TLS, "a.test"), self.stream(Transport.TLS, "b.test"))
        self.assertEqual(len(self.streams), 3)

    def test_onlyTransportsWeListenOn(self) -> None:
        """Without a listener of a transport (our Via must name one), that transport is not opened."""
        streams = OutboundStreams(
            self.reactor, self.reactor, self.controller, {Transport.TCP: LOCAL[Transport.TCP]}, 60.0, 65535
        )
        self.assertEqual(streams.transports, frozenset({Transport.TCP}))
        self.assertIsNone(streams.stream(Transport.TLS, GATEWAY, "gw.peer.test"))

    def test_tlsNeedsClientContext(self) -> None:
        """A TLS listener alone is not enough: without a client context TLS is not opened."""
        streams = OutboundStreams(self.reactor, self.reactor, self.controller, LOCAL, 60.0, 65535)
        self.assertEqual(streams.transports, frozenset({Transport.TCP}))

    def test_connectsOnFirstSendAndHoldsUntilReady(self) -> None:
        """The first send opens the connection; what is sent meanwhile goes out once it is up, in order."""
        stream = self.stream()
        self.assertEqual(self.reactor.tcpClients, [])
        stream.send(MESSAGE, GATEWAY)
        stream.send(MESSAGE + b"2", GATEWAY)
        self.assertEqual([(h, p) for h, p, *_ in self.reactor.tcpClients], [GATEWAY])
        _, wire = self.connect()
        self.assertEqual(wire.value(), MESSAGE + MESSAGE + b"2")
        stream.send(b"3", GATEWAY)
        self.assertEqual(wire.value(), MESSAGE + MESSAGE + b"23")
        self.assertEqual(len(self.reactor.tcpClients), 1)

    def test_answersReachController(self) -> None:
        """What the gateway sends back is framed and gated like any stream, then handed on."""
        stream = self.stream()
        stream.send(MESSAGE, GATEWAY)
        protocol, _ = self.connect()
        protocol.dataReceived(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n")
        ((data, transport, source),) = self.controller.messages
        self.assertTrue(data.startswith(b"SIP/2.0 200 OK"))
        self.assertIs(transport, protocol)
        self.assertEqual(source, GATEWAY)
        self.assertEqual(protocol.localAddress, LOCAL[Transport.TCP])

    def test_refusedReportsFailure(self) -> None:
        """A refused connection drops what waited and reports the stream, once, so that its
        transactions end at once."""
        stream = self.stream()
        stream.send(MESSAGE, GATEWAY)
        factory: Any = self.reactor.tcpClients[-1][2]
        factory.clientConnectionFailed(None, Failure(ConnectionRefusedError()))
        self.assertEqual(self.failed, [stream])
        self.assertEqual(stream.pending, [])
        self.assertEqual(self.streams.failures, 1)
        self.assertEqual(len(self.streams), 0)

    def test_timeoutReportsFailure(self) -> None:
        """No connection within the timeout is a failure too."""
        stream = self.stream()
        stream.send(MESSAGE, GATEWAY)
        self.reactor.advance(CONNECT_TIMEOUT)
        self.assertEqual(self.failed, [stream])

    def test_handshakeTimeoutAborts(self) -> None:
        """Connected but never ready (a TLS handshake that hangs): aborted at the timeout, reported once."""
        stream = self.stream(Transport.TLS)
        stream.send(MESSAGE, GATEWAY)
        host, port = self.reactor.tcpClients[-1][:2]
        factory: Any = self.reactor.tcpClients[-1][2]
        protocol = factory.buildProtocol(IPv4Address("TCP", host, port))
        wire = StringTransport(peerAddress=IPv4Address("TCP", host, port))
        protocol.makeConnection(wire)
        self.reactor.advance(CONNECT_TIMEOUT)
        self.assertTrue(wire.disconnecting)
        protocol.connectionLost(Failure(ConnectionRefusedError()))
        self.assertEqual(self.failed, [stream])

    def test_tlsVerifiesName(self) -> None:
        """TLS wraps the connection with the client context made for the name the gateway must
        prove; nothing is sent until the handshake is done."""
        stream = self.stream(Transport.TLS, "gw.peer.test")
        stream.send(MESSAGE, GATEWAY)
        self.assertEqual(self.names, ["gw.peer.test"])
        factory: Any = self.reactor.tcpClients[-1][2]
        self.assertIsInstance(factory, TLSMemoryBIOFactory)
        inner = factory.wrappedFactory.buildProtocol(None)
        wire = StringTransport(peerAddress=IPv4Address("TCP", *GATEWAY))
        inner.makeConnection(wire)
        self.assertEqual(wire.value(), b"")  # connected, not yet verified
        inner.handshakeCompleted()
        self.assertEqual(wire.value(), MESSAGE)

    def test_lostBeforeHandshakeIsFailure(self) -> None:
        """A connection that closes before the handshake completed (a certificate that does not
        prove the name) is a failure: what waited is dropped, never sent in the clear."""
        stream = self.stream(Transport.TLS)
        stream.send(MESSAGE, GATEWAY)
        factory: Any = self.reactor.tcpClients[-1][2]
        inner = factory.wrappedFactory.buildProtocol(None)
        wire = StringTransport(peerAddress=IPv4Address("TCP", *GATEWAY))
        inner.makeConnection(wire)
        inner.connectionLost(Failure(ConnectionRefusedError()))
        self.assertEqual(self.failed, [stream])
        self.assertEqual(wire.value(), b"")

    def test_closedThenReconnects(self) -> None:
        """A ready connection that closes (idle, or by the peer) is no failure; the next message
        opens a new one."""
        stream = self.stream()
        stream.send(MESSAGE, GATEWAY)
        protocol, _ = self.connect()
        protocol.connectionLost(Failure(ConnectionRefusedError()))
        self.assertEqual(self.failed, [])
        self.assertEqual(self.controller.closed, [protocol])
        stream.send(b"BYE", GATEWAY)
        self.assertEqual(len(self.reactor.tcpClients), 2)
        _, wire = self.connect()
        self.assertEqual(wire.value(), b"BYE")

    def test_pendingBounded(self) -> None:
        """While connecting, at most MAX_PENDING messages wait."""
        stream = self.stream()
        for _ in range(MAX_PENDING + 10):
            stream.send(MESSAGE, GATEWAY)
        self.assertEqual(len(stream.pending), MAX_PENDING)

    def test_stopClosesAll(self) -> None:
        """Stopping the pool closes every connection and forgets them."""
        stream = self.stream()
        stream.send(MESSAGE, GATEWAY)
        _, wire = self.connect()
        self.streams.stop()
        self.assertTrue(wire.disconnecting)
        self.assertEqual(len(self.streams), 0)


class OutboundEdgeTests(OutboundTestCase):
    """The stream's edges: late reports, closing connections, streams the pool let go, shutdown."""

    def test_lateFailureAfterTimeoutReportedOnce(self) -> None:
        """A connect timeout, then the connector's own late failure: one report only."""
        stream = self.stream()
        stream.send(MESSAGE, GATEWAY)
        factory: Any = self.reactor.tcpClients[-1][2]
        self.reactor.advance(CONNECT_TIMEOUT)
        factory.clientConnectionFailed(None, Failure(ConnectionRefusedError()))
        self.assertEqual(self.failed, [stream])

    def test_closedAttemptThatConnectsLateIsAborted(self) -> None:
        """An attempt given up on (close) that connects after all is aborted and reports nothing."""
        stream = self.stream()
        stream.send(MESSAGE, GATEWAY)
        stream.close()
        protocol, wire = self.connect()
        self.assertTrue(wire.disconnecting)
        self.assertEqual(wire.value(), b"")
        protocol.connectionLost(Failure(ConnectionRefusedError()))
        self.assertEqual(self.failed, [])

    def test_sendWhileClosingOpensAFreshConnection(self) -> None:
        """A connection that is closing (idle timeout, broken framing) takes nothing new: the next
        message opens another, and the old one's end is no failure."""
        stream = self.stream()
        stream.send(MESSAGE, GATEWAY)
        old, _ = self.connect()
        old.close()
        stream.send(b"BYE", GATEWAY)
        self.assertEqual(len(self.reactor.tcpClients), 2)
        _, wire = self.connect()
        self.assertEqual(wire.value(), b"BYE")
        old.connectionLost(Failure(ConnectionRefusedError()))
        self.assertEqual(self.failed, [])
        self.assertIs(self.stream(), stream)

    def test_letGoStreamTakenBack(self) -> None:
        """A stream the pool let go (its connection closed) that a leg still sends on is taken back:
        one stream, one connection per destination."""
        stream = self.stream()
        stream.send(MESSAGE, GATEWAY)
        protocol, _ = self.connect()
        protocol.connectionLost(Failure(ConnectionRefusedError()))
        self.assertEqual(len(self.streams), 0)
        stream.send(b"BYE", GATEWAY)
        self.assertIs(self.stream(), stream)
        self.assertEqual(len(self.reactor.tcpClients), 2)

    def test_letGoStreamHandsOverToItsReplacement(self) -> None:
        """When a new stream replaced one the pool let go, the old one's messages go on the new one."""
        old = self.stream()
        old.send(MESSAGE, GATEWAY)
        protocol, _ = self.connect()
        protocol.connectionLost(Failure(ConnectionRefusedError()))
        new = self.stream()
        self.assertIsNot(new, old)
        new.send(MESSAGE, GATEWAY)
        _, wire = self.connect()
        old.send(b"BYE", GATEWAY)
        self.assertEqual(wire.value(), MESSAGE + b"BYE")
        self.assertEqual(len(self.reactor.tcpClients), 2)

    def test_stopFlushesThenCloses(self) -> None:
        """Shutdown closes a ready connection after what was written (the BYE) has gone, and waits
        for it to end; nothing reconnects afterwards."""
        stream = self.stream()
        stream.send(MESSAGE, GATEWAY)
        protocol, wire = self.connect()
        stream.send(b"BYE", GATEWAY)
        stopped = self.streams.stop()
        self.assertEqual(wire.value(), MESSAGE + b"BYE")
        self.assertTrue(wire.disconnecting)
        self.assertNoResult(stopped)
        protocol.connectionLost(Failure(ConnectionRefusedError()))
        self.successResultOf(stopped)
        stream.send(b"late", GATEWAY)
        self.assertEqual(len(self.reactor.tcpClients), 1)

    def test_stopDeliversWhatWaits(self) -> None:
        """A connection under way at shutdown still delivers what waits for it, then closes."""
        stream = self.stream()
        stream.send(b"BYE", GATEWAY)
        stopped = self.streams.stop()
        protocol, wire = self.connect()
        self.assertEqual(wire.value(), b"BYE")
        self.assertTrue(wire.disconnecting)
        protocol.connectionLost(Failure(ConnectionRefusedError()))
        self.successResultOf(stopped)

    def test_stopBounded(self) -> None:
        """A connection that never finishes closing is aborted after the grace: shutdown never hangs."""
        stream = self.stream()
        stream.send(MESSAGE, GATEWAY)
        self.connect()
        stopped = self.streams.stop()
        self.assertNoResult(stopped)
        self.reactor.advance(STOP_GRACE)
        self.successResultOf(stopped)

    def test_provesOnlyNamesItProved(self) -> None:
        """A verified gateway proves the name we asked of it, not any name; openedFor says whose
        gateway the connection was opened for."""
        stream = self.streams.stream(Transport.TLS, GATEWAY, "gw.a.test", "trunk-a")
        assert stream is not None
        stream.send(MESSAGE, GATEWAY)
        factory: Any = self.reactor.tcpClients[-1][2]
        inner = factory.wrappedFactory.buildProtocol(None)
        inner.makeConnection(StringTransport(peerAddress=IPv4Address("TCP", *GATEWAY)))
        inner.handshakeCompleted()
        self.assertTrue(inner.proves(("gw.a.test",)))
        self.assertFalse(inner.proves(("b.test",)))
        self.assertTrue(inner.openedFor("trunk-a"))
        self.assertFalse(inner.openedFor("trunk-b"))

    def test_boundToListenerHost(self) -> None:
        """Connections leave from the listener's own address when one is given."""
        streams = OutboundStreams(
            self.reactor,
            self.reactor,
            self.controller,
            LOCAL,
            60.0,
            65535,
            bindHosts={Transport.TCP: "127.0.0.7"},
        )
        stream = streams.stream(Transport.TCP, GATEWAY, "")
        assert stream is not None
        stream.send(MESSAGE, GATEWAY)
        self.assertEqual(self.reactor.tcpClients[-1][4], ("127.0.0.7", 0))

    def test_failuresLoggedOncePerMinute(self) -> None:
        """A dead gateway's failures make one log line a minute, not one per attempt."""
        events = LogRecorder()
        self.patch(OutboundStreams, "log", events.log)
        for _ in range(3):
            self.stream().send(MESSAGE, GATEWAY)
            factory: Any = self.reactor.tcpClients[-1][2]
            factory.clientConnectionFailed(None, Failure(ConnectionRefusedError()))
        self.assertEqual(len(self.failed), 3)
        self.assertEqual(len([e for e in events.events if "failed" in str(e.get("log_format"))]), 1)


class KeepaliveTests(OutboundTestCase):
    """Keepalives on a connection a registration keeps (RFC 5626 section 4.4.1)."""

    def test_keepaliveHoldsConnectionOpen(self) -> None:
        """A double CRLF goes out and restarts the idle timer: kept alive, the connection outlives
        the idle timeout; without it, it closes."""
        stream = self.stream()
        self.assertEqual(stream.keepaliveInterval, 30.0)  # half the idle timeout of 60 s
        stream.keepalive()  # not connected: nothing, no connection attempt
        self.assertEqual(self.reactor.tcpClients, [])
        stream.send(MESSAGE, GATEWAY)
        _, wire = self.connect()
        for _ in range(4):
            self.reactor.advance(stream.keepaliveInterval)
            stream.keepalive()
        self.assertTrue(wire.value().endswith(b"\r\n\r\n"))
        self.assertFalse(wire.disconnecting)
        self.reactor.advance(60.0)
        self.assertTrue(wire.disconnecting)

    def test_intervalAtMostRFC(self) -> None:
        """With a long idle timeout the interval is RFC 5626's 120 s."""
        streams = OutboundStreams(self.reactor, self.reactor, self.controller, LOCAL, 3600.0, 65535)
        stream = streams.stream(Transport.TCP, GATEWAY, "")
        assert stream is not None
        self.assertEqual(stream.keepaliveInterval, KEEPALIVE_INTERVAL)
