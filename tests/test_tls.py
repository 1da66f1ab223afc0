"""Tests for sbc.transport.tls: the server context from config, TLS 1.2 at least."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import Certificate, CertificateOptions, TLSVersion, optionsForClientTLS
from twisted.internet.task import Clock
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.test.iosim import FakeTransport, connectedServerAndClient
from twisted.trial.unittest import SynchronousTestCase

from sbc.config import TLSSettings
from sbc.config.errors import ConfigError
from sbc.transport import SIPStreamFactory
from sbc.transport.tls import serverContextFactory
from tests.certs import makeCertificate
from tests.fakes import FakeController, options

PEER = IPv4Address("TCP", "127.0.0.2", 40000)


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
