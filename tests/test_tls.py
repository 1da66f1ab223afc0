"""Tests for sbc.transport.tls: the server context from config, TLS 1.2 at least, client certificates."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from OpenSSL import SSL
from twisted.internet.address import IPv4Address
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import (
    Certificate,
    CertificateOptions,
    PrivateCertificate,
    TLSVersion,
    optionsForClientTLS,
)
from twisted.internet.task import Clock
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.test.iosim import FakeTransport, IOPump, connectedServerAndClient
from twisted.trial.unittest import SynchronousTestCase

from sbc.config import TLSSettings
from sbc.config.errors import ConfigError
from sbc.transport import SIPStreamFactory
from sbc.transport.tls import clientTLS, peerProves, serverContextFactory
from tests.certs import makeCertificate
from tests.fakes import FakeController, options

PEER = IPv4Address("TCP", "127.0.0.2", 40000)


def exchange(
    server: TLSMemoryBIOFactory, clientFactory: TLSMemoryBIOFactory, clock: Clock
) -> tuple[Any, Any, IOPump]:
    """Connect a client of ``clientFactory`` to ``server`` in memory, send an OPTIONS over it,
    and pump the handshake and the request through."""
    clientProtocol, serverProtocol, pump = connectedServerAndClient(
        lambda: server.buildProtocol(PEER),
        lambda: clientFactory.buildProtocol(PEER),
        serverTransportFactory=lambda p: FakeTransport(p, isServer=True, peerAddress=PEER),
        clock=clock,
    )
    clientProtocol.write(options())
    for _ in range(3):
        pump.flush()
        clock.advance(0)
    return clientProtocol, serverProtocol, pump


class Collect(Protocol):
    def __init__(self) -> None:
        self.data = b""

    def dataReceived(self, data: bytes) -> None:
        self.data += data


class TLSTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.directory)
        self.cert, self.key = makeCertificate(self.directory)

    def handshake(self, client: CertificateOptions | Any) -> tuple[FakeController, Collect, Any]:
        controller = FakeController(allowed=("127.0.0.2", "192.168.1.1", "127.0.0.1"))
        self.clock = Clock()
        inner = SIPStreamFactory(controller, "TLS", self.clock, 30.0, 65536)
        context = serverContextFactory(TLSSettings(self.cert, self.key))
        server = TLSMemoryBIOFactory(context, False, inner, clock=self.clock)
        collect = Collect()
        clientFactory = TLSMemoryBIOFactory(
            client, True, Factory.forProtocol(lambda: collect), clock=self.clock
        )
        clientProtocol, _, pump = connectedServerAndClient(
            lambda: server.buildProtocol(PEER),
            lambda: clientFactory.buildProtocol(PEER),
            # The server side's peer is PEER: every message passes the gate by its source.
            serverTransportFactory=lambda p: FakeTransport(p, isServer=True, peerAddress=PEER),
            clock=self.clock,
        )
        return controller, collect, (clientProtocol, pump)

    def test_optionsOverTLS(self) -> None:
        """A client that trusts our certificate completes a handshake and its message arrives."""
        trust = Certificate.loadPEM(self.cert.read_bytes())
        controller, _, (client, pump) = self.handshake(optionsForClientTLS("sbc.test", trust))
        client.write(options())
        pump.flush()
        self.clock.advance(0)
        pump.flush()
        self.assertEqual([m[0] for m in controller.messages], [options()])

    def test_tls11Refused(self) -> None:
        """A client that offers nothing newer than TLS 1.1 gets no session."""
        old = CertificateOptions(
            insecurelyLowerMinimumTo=TLSVersion.TLSv1_0, lowerMaximumSecurityTo=TLSVersion.TLSv1_1
        )
        controller, _, (client, pump) = self.handshake(old)
        client.write(options())
        pump.flush()
        self.clock.advance(0)
        pump.flush()
        self.assertEqual(controller.messages, [])
        self.assertTrue(client._lostTLSConnection)

    def test_badCertificate(self) -> None:
        """A file that is not a certificate is a ConfigError naming it."""
        bad = self.directory / "bad.pem"
        bad.write_text("not a certificate")
        with self.assertRaises(ConfigError) as caught:
            serverContextFactory(TLSSettings(bad, self.key))
        self.assertEqual(caught.exception.path, bad)

    def test_mismatchedKey(self) -> None:
        """A key that does not belong to the certificate is refused."""
        other = self.directory / "other"
        other.mkdir()
        _, otherKey = makeCertificate(other)
        with self.assertRaises(ConfigError):
            serverContextFactory(TLSSettings(self.cert, otherKey))

    def test_missingFile(self) -> None:
        """A missing key file is a ConfigError naming it."""
        with self.assertRaises(ConfigError) as caught:
            serverContextFactory(TLSSettings(self.cert, self.directory / "none.pem"))
        self.assertIn("none.pem", str(caught.exception))


class ClientCertificateTests(SynchronousTestCase):
    """With ``[tls] ca`` the server asks for a client certificate, verifies it, and answers `proves`."""

    def setUp(self) -> None:
        self.directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.directory)
        self.cert, self.key = makeCertificate(self.directory)
        self.clients: dict[str, tuple[Path, Path]] = {}
        for name in ("pbx.peer.example", "evil.example", "untrusted.example"):
            folder = self.directory / name
            folder.mkdir()
            self.clients[name] = makeCertificate(folder, name)
        # The CA bundle trusts the first two (self-signed, so each is its own CA), not the third.
        self.ca = self.directory / "ca.pem"
        self.ca.write_bytes(
            b"".join(self.clients[n][0].read_bytes() for n in ("pbx.peer.example", "evil.example"))
        )

    def connect(self, clientName: str | None) -> tuple[FakeController, Any, Any, Any]:
        """A TLS connection from PEER presenting ``clientName``'s certificate (None: no certificate)."""
        controller = FakeController(allowed=("127.0.0.2",))
        self.clock = Clock()
        inner = SIPStreamFactory(controller, "TLS", self.clock, 30.0, 65536)
        context = serverContextFactory(TLSSettings(self.cert, self.key, ca=self.ca))
        server = TLSMemoryBIOFactory(context, False, inner, clock=self.clock)
        trust = Certificate.loadPEM(self.cert.read_bytes())
        identity = None
        if clientName is not None:
            cert, key = self.clients[clientName]
            identity = PrivateCertificate.loadPEM(cert.read_bytes() + key.read_bytes())
        options_ = optionsForClientTLS("sbc.test", trust, clientCertificate=identity)
        clientFactory = TLSMemoryBIOFactory(options_, True, Factory.forProtocol(Collect), clock=self.clock)
        clientProtocol, serverProtocol, pump = exchange(server, clientFactory, self.clock)
        return controller, clientProtocol, serverProtocol.wrappedProtocol, pump

    def test_namedCertificateProves(self) -> None:
        """A trusted client certificate for pbx.peer.example proves that name, and no other."""
        controller, _, stream, _ = self.connect("pbx.peer.example")
        self.assertEqual([m[0] for m in controller.messages], [options()])
        self.assertTrue(stream.proves(("other.example", "pbx.peer.example")))
        self.assertFalse(stream.proves(("evil.example",)))

    def test_otherTrustedNameDoesNotProve(self) -> None:
        """A certificate the CA trusts, for another name, proves none of the trunk's names."""
        _, _, stream, _ = self.connect("evil.example")
        self.assertFalse(stream.proves(("pbx.peer.example",)))

    def test_noCertificateStillConnects(self) -> None:
        """A device with no client certificate still gets its session; it proves no name."""
        controller, _, stream, _ = self.connect(None)
        self.assertEqual([m[0] for m in controller.messages], [options()])
        self.assertFalse(stream.proves(("pbx.peer.example",)))

    def test_untrustedCertificateRefused(self) -> None:
        """A client certificate that does not chain to the CA fails the handshake: no message passes."""
        controller, client, _, _ = self.connect("untrusted.example")
        self.assertEqual(controller.messages, [])
        self.assertTrue(client._lostTLSConnection)

    def test_noCANoRequest(self) -> None:
        """Without [tls] ca the server asks for no certificate, so even a named client proves nothing."""
        context = serverContextFactory(TLSSettings(self.cert, self.key)).getContext()
        self.assertEqual(context.get_verify_mode(), SSL.VERIFY_NONE)

    def test_badCA(self) -> None:
        """A CA file that is missing or not PEM is a ConfigError naming it."""
        bad = self.directory / "bad-ca.pem"
        bad.write_text("not a certificate")
        for path in (bad, self.directory / "missing.pem"):
            with self.assertRaises(ConfigError) as caught:
                serverContextFactory(TLSSettings(self.cert, self.key, ca=path))
            self.assertEqual(caught.exception.path, path)

    def test_plainTransportProvesNothing(self) -> None:
        """A transport with no TLS handle (TCP) proves no name."""
        self.assertFalse(peerProves(object(), ("pbx.peer.example",)))


class ClientTLSTests(SynchronousTestCase):
    """`clientTLS`: our side of TLS to a gateway: it verifies the name, and shows our certificate."""

    def setUp(self) -> None:
        self.directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.directory)
        self.ours = makeCertificate(self.directory, "sbc.test")
        self.gateways: dict[str, tuple[Path, Path]] = {}
        for name in ("gw.peer.test", "untrusted.test"):
            folder = self.directory / name
            folder.mkdir()
            self.gateways[name] = makeCertificate(folder, name)
        # Our CA bundle trusts the gateway (self-signed: its own CA), and the gateway trusts us.
        self.ca = self.directory / "ca.pem"
        self.ca.write_bytes(self.gateways["gw.peer.test"][0].read_bytes())
        self.settings = TLSSettings(self.ours[0], self.ours[1], ca=self.ca)

    def connect(self, gateway: str, name: str) -> tuple[Collect, Any]:
        """A connection from us to a gateway holding ``gateway``'s certificate, verifying ``name``."""
        self.clock = Clock()
        controller = FakeController(allowed=("127.0.0.2",))
        inner = SIPStreamFactory(controller, "TLS", self.clock, 30.0, 65536)
        cert, key = self.gateways[gateway]
        context = serverContextFactory(TLSSettings(cert, key, ca=self.ours[0]))
        server = TLSMemoryBIOFactory(context, False, inner, clock=self.clock)
        collect = Collect()
        creator = clientTLS(self.settings)(name)
        clientFactory = TLSMemoryBIOFactory(
            creator, True, Factory.forProtocol(lambda: collect), clock=self.clock
        )
        clientProtocol, serverProtocol, _ = exchange(server, clientFactory, self.clock)
        return collect, (clientProtocol, serverProtocol, controller)

    def test_nameProvenAndOurCertificateShown(self) -> None:
        """A gateway whose certificate proves the name gets our message, and sees our certificate."""
        _, (_, server, controller) = self.connect("gw.peer.test", "gw.peer.test")
        self.assertEqual([m[0] for m in controller.messages], [options()])
        self.assertTrue(peerProves(server.wrappedProtocol.transport, ("sbc.test",)))

    def test_otherNameRefused(self) -> None:
        """A trusted certificate for another name is refused: nothing is sent."""
        _, (client, _, controller) = self.connect("gw.peer.test", "other.peer.test")
        self.assertEqual(controller.messages, [])
        self.assertTrue(client._lostTLSConnection)

    def test_untrustedRefused(self) -> None:
        """A certificate for the right name from outside [tls] ca is refused."""
        _, (client, _, controller) = self.connect("untrusted.test", "untrusted.test")
        self.assertEqual(controller.messages, [])
        self.assertTrue(client._lostTLSConnection)

    def test_creatorPerNameBuiltOnce(self) -> None:
        """The client context for a name is built once and reused."""
        creator = clientTLS(self.settings)
        self.assertIs(creator("gw.peer.test"), creator("gw.peer.test"))
        self.assertIsNot(creator("gw.peer.test"), creator("other.peer.test"))
