"""Tests for sbc.calls.legs' trunk attempts and sbc.calls.forking's stepwise attempts: calls to
gateways by DNS name (each SRV target one failover step) and past gateways the pings took down."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.ssl import optionsForClientTLS
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.names import dns
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure

from sbc.config.gateways import Gateway
from sbc.config.sip import Transport
from sbc.interfaces import Address
from sbc.server import SIPServer
from sbc.sip import Request, parseMessage
from sbc.transaction import Timers
from sbc.transport.outbound import OutboundStreams
from tests.calls import SDP, TRUNK, CallTestCase, answer, callConfig, invite, route, withTrunk
from tests.fakes import FakeResolver

A: Address = ("127.0.0.2", 5080)
B: Address = ("127.0.0.3", 5090)
NAME = Gateway("peer.test", transport=Transport.UDP)


class GatewayCallTestCase(CallTestCase):
    """The call tests' server on a fake resolver: peer.test's SRV names A (priority 10) and B (20)."""

    def setUp(self) -> None:
        super().setUp()
        self.resolver = FakeResolver()
        for priority, (host, port), target in ((20, B, "b.peer.test"), (10, A, "a.peer.test")):
            self.resolver.add(dns.SRV, "_sip._udp.peer.test", dns.Record_SRV(priority, 0, port, target))
            self.resolver.add(dns.A, target, dns.Record_A(host))
        self.server = SIPServer(
            callConfig(),
            self.clock,
            route=route,
            cdrs=self.cdrs,  # type: ignore[arg-type]
            resolver=self.resolver,  # type: ignore[arg-type]
        )
        self.server.transportStarted(self.udp)

    def gateways(self, *gateways: Gateway, **changes: object) -> None:
        """Give the demo trunk these gateways."""
        self.server.setConfig(withTrunk(self.server.config, "demo", gateways=gateways, **changes))

    def call(self) -> None:
        """A trunk INVITE routed back to the demo trunk."""
        self.receive(invite("sip:+15559999@127.0.0.1"), TRUNK)

    def invites(self, address: Address) -> list[Request]:
        """The INVITEs sent to ``address``."""
        return self.requestsTo(address, "INVITE")


class NamedGatewayTests(GatewayCallTestCase):
    """A gateway given by DNS name."""

    def test_firstByPriority(self) -> None:
        """The call goes to the SRV target of the lowest priority, and only there."""
        self.gateways(NAME)
        self.call()
        self.assertEqual(len(self.invites(A)), 1)
        self.assertEqual(self.invites(B), [])

    def test_eachTargetAFailoverStep(self) -> None:
        """A silent first target is abandoned after failover_timeout for the second, which answers."""
        self.gateways(NAME)
        self.call()
        self.clock.advance(2.1)
        (second,) = self.invites(B)
        self.receive(answer(second, 200, body=SDP, contact="<sip:gw@127.0.0.3:5090>"), B)
        self.assertEqual(self.statuses(TRUNK)[-1], 200)

    def test_503MovesToNextTarget(self) -> None:
        """A failover code from the first target moves the call to the second at once."""
        self.gateways(NAME)
        self.call()
        (first,) = self.invites(A)
        self.receive(answer(first, 503), A)
        self.assertEqual(len(self.invites(B)), 1)

    def test_waitsForDNS(self) -> None:
        """While DNS has not answered nothing is sent; its answer places the call."""
        pending: defer.Deferred[object] = defer.Deferred()
        self.resolver.lookupService = lambda name: pending  # type: ignore[method-assign]
        self.gateways(NAME)
        self.call()
        self.assertEqual(self.invites(A), [])
        header = dns.RRHeader(
            b"_sip._udp.peer.test", dns.SRV, dns.IN, 300, dns.Record_SRV(10, 0, 5080, "a.peer.test")
        )
        pending.callback(([header], [], []))
        self.assertEqual(len(self.invites(A)), 1)

    def test_unresolvableFallsThrough(self) -> None:
        """A name that does not resolve is skipped: the next gateway gets the call."""
        self.gateways(Gateway("nowhere.test", 5080), Gateway(*B))
        self.call()
        self.assertEqual(len(self.invites(B)), 1)

    def test_nothingResolvesFails(self) -> None:
        """With no gateway left, the caller gets a final failure rather than silence."""
        self.gateways(Gateway("nowhere.test", 5080))
        self.call()
        self.assertEqual(self.statuses(TRUNK)[-1], 480)


class DownGatewayTests(GatewayCallTestCase):
    """Gateways the OPTIONS pings took down."""

    def takeDown(self, address: Address) -> None:
        """Let one ping to ``address`` go unanswered with a threshold of one."""
        self.server.health.watch({address: 1})
        self.server.health.pingAll()
        self.clock.advance(64 * Timers.T1 + 1)

    def test_downSkipped(self) -> None:
        """The next call skips a down gateway and goes straight to the next."""
        self.gateways(Gateway(*A), Gateway(*B))
        self.takeDown(A)
        self.call()
        self.assertEqual(self.invites(A), [])
        self.assertEqual(len(self.invites(B)), 1)

    def test_usedAgainOnceItAnswers(self) -> None:
        """A gateway that answers a ping again gets the next call."""
        self.gateways(Gateway(*A), Gateway(*B))
        self.takeDown(A)
        self.server.health.pingAll()
        options = [r for r in self.requestsTo(A, "OPTIONS")][-1]
        self.receive(answer(options, 200), A)
        self.call()
        self.assertEqual(len(self.invites(A)), 1)


class WhitelistGatewaysTests(GatewayCallTestCase):
    """whitelist_gateways: the server's gate admits what a trunk's gateway names resolve to."""

    def test_resolvedAddressPassesTheGate(self) -> None:
        """Once resolved, a gateway name's address is admitted as its trunk, across a reload of
        the same config; with whitelist_gateways turned off it is dropped again."""
        self.resolver.add(dns.A, "gw.peer.test", dns.Record_A("127.0.0.9"))
        self.gateways(Gateway("gw.peer.test", 5080), whitelistGateways=True)
        self.assertFalse(self.server.admit("127.0.0.9"))
        self.server.gatewayWatch.tick()
        self.assertTrue(self.server.admit("127.0.0.9"))
        peer = self.server.config.access.classify("127.0.0.9")
        self.assertEqual(peer.name if peer is not None else None, "demo")
        self.server.setConfig(self.server.loaded)
        self.assertTrue(self.server.admit("127.0.0.9"))
        self.gateways(Gateway("gw.peer.test", 5080), whitelistGateways=False)
        self.server.gatewayWatch.tick()
        self.assertFalse(self.server.admit("127.0.0.9"))

    def test_refreshSwapsOnlyTheAccessPolicy(self) -> None:
        """A gateway name that resolves elsewhere changes the gate's policy alone: the routing
        chain (and its hook file) is not built again, and the loaded config stays."""
        self.resolver.add(dns.A, "gw.peer.test", dns.Record_A("127.0.0.9"))
        self.gateways(Gateway("gw.peer.test", 5080), whitelistGateways=True)
        chain, loaded = self.server.chain, self.server.loaded
        self.server.gatewayWatch.tick()
        self.assertTrue(self.server.admit("127.0.0.9"))
        self.assertIs(self.server.calls.config.access, self.server.config.access)
        self.assertIs(self.server.chain, chain)
        self.assertIs(self.server.loaded, loaded)


class StreamGatewayTests(GatewayCallTestCase):
    """Gateways over TCP or TLS: connections of our own (sbc.transport.outbound), opened per call's need."""

    def setUp(self) -> None:
        super().setUp()
        self.reactor = MemoryReactorClock()
        self.names: list[str] = []
        local = {Transport.TCP: ("127.0.0.1", 5060), Transport.TLS: ("127.0.0.1", 5061)}
        self.server.gateways.streams = OutboundStreams(
            self.reactor,
            self.clock,
            self.server,
            local,
            60.0,
            65535,
            clientTLS=self.creator,
            onFailure=self.server.transactions.transportFailed,
        )
        self.resolver.add(dns.A, "gw.peer.test", dns.Record_A("127.0.0.3"))

    def creator(self, name: str) -> Any:
        self.names.append(name)
        return optionsForClientTLS(name)

    def connected(self, handshake: bool = True) -> StringTransport:
        """Let the last connection attempt succeed (and its TLS handshake); the bytes it carries."""
        host, port = self.reactor.tcpClients[-1][:2]
        factory: Any = self.reactor.tcpClients[-1][2]
        inner = getattr(factory, "wrappedFactory", factory)
        protocol = inner.buildProtocol(None)
        wire = StringTransport(peerAddress=IPv4Address("TCP", host, port))
        protocol.makeConnection(wire)
        if handshake and isinstance(factory, TLSMemoryBIOFactory):
            protocol.handshakeCompleted()
        return wire

    def test_tlsGatewayByName(self) -> None:
        """A TLS gateway by name gets the INVITE over a TLS connection that verifies that name (not
        the address it resolved to): Request-URI, Via and Contact all say TLS, our Via and Contact
        name our TLS listener."""
        self.gateways(Gateway("gw.peer.test", 5061, transport=Transport.TLS))
        self.call()
        self.assertEqual(self.names, ["gw.peer.test"])
        self.assertEqual([(h, p) for h, p, *_ in self.reactor.tcpClients], [("127.0.0.3", 5061)])
        sent = parseMessage(self.connected().value())
        assert isinstance(sent, Request)
        self.assertEqual(sent.method, "INVITE")
        self.assertEqual(sent.uri.param("transport"), "tls")
        self.assertEqual(sent.topVia().transport, "TLS")
        self.assertEqual((sent.topVia().host, sent.topVia().port), ("127.0.0.1", 5061))
        self.assertIn("127.0.0.1:5061;transport=tls", sent.headers.get("contact") or "")

    def test_addressGatewayProvesTrunkIdentity(self) -> None:
        """A TLS gateway by address must prove the trunk's first TLS identity."""
        self.gateways(Gateway("127.0.0.3", 5061, transport=Transport.TLS), tlsIdentities=("carrier.test",))
        self.call()
        self.assertEqual(self.names, ["carrier.test"])

    def test_refusedFailsOverAtOnce(self) -> None:
        """A TLS gateway that refuses the connection is a failed step now, not after Timer B: the
        call goes on to the next gateway at once."""
        self.gateways(Gateway("gw.peer.test", 5061, transport=Transport.TLS), Gateway(*B))
        self.call()
        factory: Any = self.reactor.tcpClients[-1][2]
        factory.clientConnectionFailed(None, Failure(ConnectionRefusedError()))
        self.assertEqual(len(self.invites(B)), 1)

    def test_refusedIs503(self) -> None:
        """A connection that cannot be opened counts as a 503 (RFC 3261 section 8.1.3.1), not a
        timeout: with no gateway left the caller hears 503."""
        self.gateways(Gateway("gw.peer.test", 5061, transport=Transport.TLS))
        self.call()
        factory: Any = self.reactor.tcpClients[-1][2]
        factory.clientConnectionFailed(None, Failure(ConnectionRefusedError()))
        self.assertEqual(self.statuses(TRUNK)[-1], 503)

    def test_tcpGateway(self) -> None:
        """A TCP gateway gets the INVITE as soon as TCP connects, and its answer completes the call."""
        self.gateways(Gateway("127.0.0.3", 5070, transport=Transport.TCP))
        self.call()
        wire = self.connected()
        sent = parseMessage(wire.value())
        assert isinstance(sent, Request)
        self.assertEqual(sent.topVia().transport, "TCP")
        self.assertEqual(self.names, [])
