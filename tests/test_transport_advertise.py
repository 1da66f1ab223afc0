"""Tests for sbc.transport's ``advertise``: the host peers see in our Via and Contact."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from twisted.application import internet
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransportWithDisconnection
from twisted.trial.unittest import SynchronousTestCase

from sbc.config import loadConfig
from sbc.dialog import ourContact
from sbc.server import SIPServer
from sbc.transport import SIPDatagramProtocol, SIPStreamFactory, SIPStreamProtocol
from sbc.transport.listeners import DatagramListener, listenerServices
from tests.fakes import DEMO_TOML, FakeController, FakeDatagramTransport, writeConfig


class WildcardDatagram(FakeDatagramTransport):
    def getHost(self) -> IPv4Address:
        return IPv4Address("UDP", "0.0.0.0", 5060)


class AdvertiseTests(SynchronousTestCase):
    def test_datagramAdvertises(self) -> None:
        """A UDP socket bound to 0.0.0.0 names its `advertise` host, on its own port."""
        protocol = SIPDatagramProtocol(FakeController(), "192.0.2.10")
        protocol.makeConnection(WildcardDatagram())  # type: ignore[arg-type]
        self.assertEqual(protocol.localAddress, ("192.0.2.10", 5060))
        self.assertEqual(ourContact(protocol), "<sip:sbc@192.0.2.10:5060>")

    def test_datagramWithoutAdvertise(self) -> None:
        """Without `advertise`, the bound address is ours."""
        protocol = SIPDatagramProtocol(FakeController())
        protocol.makeConnection(WildcardDatagram())  # type: ignore[arg-type]
        self.assertEqual(protocol.localAddress, ("0.0.0.0", 5060))

    def test_streamAdvertises(self) -> None:
        """A TCP connection accepted by a listener with `advertise` names that host, on its port."""
        factory = SIPStreamFactory(FakeController(), "TCP", Clock(), 30.0, 65536, advertise="sbc.example.com")
        protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.2", 40000))
        assert isinstance(protocol, SIPStreamProtocol)
        transport = StringTransportWithDisconnection(
            hostAddress=IPv4Address("TCP", "10.0.0.5", 5060),
            peerAddress=IPv4Address("TCP", "127.0.0.2", 40000),
        )
        transport.protocol = protocol
        protocol.makeConnection(transport)
        self.assertEqual(protocol.localAddress, ("sbc.example.com", 5060))


class ListenerWiringTests(SynchronousTestCase):
    def test_advertisePassedToTransports(self) -> None:
        """Each [[listen]] table's `advertise` reaches the UDP protocol and the TCP factory it builds."""
        directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, directory)
        toml = DEMO_TOML.replace(
            'host = "127.0.0.1"\nport = 5060', 'host = "0.0.0.0"\nport = 5060\nadvertise = "192.0.2.10"'
        )
        toml += '\n[[listen]]\ntransport = "tcp"\nhost = "::"\nport = 5060\nadvertise = "sbc.example.com"\n'
        config = loadConfig(writeConfig(directory, toml))
        services = listenerServices(Clock(), config, SIPServer(config, Clock()), Clock(), None)
        (udp,) = [s for s in services if isinstance(s, DatagramListener)]
        (tcp,) = [s for s in services if isinstance(s, internet.TCPServer)]
        self.assertEqual(udp.protocol.advertise, "192.0.2.10")
        self.assertEqual(tcp.args[1].advertise, "sbc.example.com")
