"""Tests for sbc.routing.gateways: a trunk's gateways as ordered hops (DNS names resolved, down,
unresolvable and unreachable ones left out), and the watch that pings them per trunk."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

from netaddr import IPNetwork, IPSet
from twisted.internet import defer
from twisted.internet.ssl import optionsForClientTLS
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.names import dns
from twisted.names.error import DNSQueryTimeoutError
from twisted.trial.unittest import SynchronousTestCase

from sbc.access import TRUNK, AccessPolicy, Peer
from sbc.config import Config, Trunk
from sbc.config.gateways import Gateway
from sbc.config.sip import Transport
from sbc.droplog import DropLog
from sbc.interfaces import Address, ISIPTransport
from sbc.locate import Hop, ServerLocator
from sbc.prefixes import Entry
from sbc.routing.gateways import GatewayAccess, Gateways, GatewayWatch, ordered
from sbc.routing.health import GatewayHealth
from sbc.sip import Request, parseMessage
from sbc.transaction import Timers, TransactionLayer
from sbc.transport.outbound import OutboundStreams
from tests.calls import callConfig, withTrunk
from tests.fakes import FakeController, FakeResolver, LogRecorder, NoUser, RecordingTransport, optionsAnswer

A: Address = ("127.0.0.2", 5080)
B: Address = ("127.0.0.3", 5080)
MISS = 64 * Timers.T1 + 1  # Timer F runs out


class OrderedTests(SynchronousTestCase):
    """The order a trunk's gateways are tried in."""

    def test_fileOrderWithoutWeights(self) -> None:
        """Gateways with neither priority nor weight keep the order they are written in."""
        gateways = [Gateway(f"192.0.2.{i}") for i in range(5)]
        self.assertEqual(ordered(gateways, random.Random(1)), gateways)

    def test_lowestPriorityFirst(self) -> None:
        """A lower priority goes first, whatever the file order."""
        late, early = Gateway("192.0.2.1", priority=20), Gateway("192.0.2.2", priority=10)
        self.assertEqual(ordered([late, early], random.Random(1)), [early, late])

    def test_weightsDrawn(self) -> None:
        """Within one priority the heavier gateway comes first about as often as its weight says,
        and a zero-weight one last."""
        heavy, light, spare = (
            Gateway("192.0.2.1", weight=90),
            Gateway("192.0.2.2", weight=10),
            Gateway("192.0.2.3"),
        )
        chance = random.Random(5)
        firsts = Counter(ordered([spare, light, heavy], chance)[0] for _ in range(1000))
        self.assertGreater(firsts[heavy], 800)
        self.assertGreater(firsts[light], 50)
        self.assertEqual(firsts[spare], 0)


class GatewaysTestCase(SynchronousTestCase):
    """Gateways on a fake resolver, a Clock, a real health checker and a recording log."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.resolver = FakeResolver()
        self.udp = RecordingTransport()
        self.layer = TransactionLayer(self.clock, NoUser(), Timers())  # type: ignore[arg-type]
        self.health = GatewayHealth(self.clock, self.layer, self.transportFor, "sbc")
        self.events = LogRecorder()
        self.patch(Gateways, "log", self.events.log)
        self.gateways = Gateways(
            ServerLocator(self.resolver, self.clock), DropLog(self.clock), self.health, random.Random(3)
        )

    def transportFor(self, address: Address) -> ISIPTransport:
        """Every gateway is reached over the one UDP socket."""
        return self.udp

    def trunk(self, *gateways: Gateway) -> Trunk:
        """The demo trunk with these gateways."""
        demo = callConfig().trunk("demo")
        assert demo is not None
        return replace(demo, gateways=gateways)

    def hops(self, trunk: Trunk) -> list[Hop]:
        """The hops of ``trunk``, whether at once or through a fired Deferred."""
        result = self.gateways.hops(trunk)
        if isinstance(result, defer.Deferred):
            return self.successResultOf(result)
        return result

    def srv(self, name: str, *targets: tuple[int, int, int, str, str]) -> None:
        """SRV records (priority, weight, port, target, address) for ``name`` over UDP."""
        for priority, weight, port, target, address in targets:
            self.resolver.add(
                dns.SRV, f"_sip._udp.{name}", dns.Record_SRV(priority, weight, port, target), ttl=60
            )
            self.resolver.add(dns.A, target, dns.Record_A(address), ttl=60)

    def lines(self, text: str) -> list[dict[str, object]]:
        """The log events whose format holds ``text``."""
        return [e for e in self.events.events if text in str(e.get("log_format", ""))]


class HopsTests(GatewaysTestCase):
    """Which hops a call tries, in which order."""

    def test_addressesAtOnce(self) -> None:
        """Address gateways are hops at once (no Deferred, no DNS), in priority order."""
        result = self.gateways.hops(self.trunk(Gateway(*A, priority=2), Gateway(*B, priority=1)))
        self.assertIsInstance(result, list)
        self.assertEqual([(h.host, h.port) for h in result], [B, A])  # type: ignore[union-attr]
        self.assertEqual(self.resolver.queries, [])

    def test_nameBySrvPriority(self) -> None:
        """A name's SRV targets are hops of their own, lowest priority first."""
        self.srv(
            "peer.test", (20, 0, 5090, "b.peer.test", "127.0.0.6"), (10, 0, 5080, "a.peer.test", "127.0.0.5")
        )
        hops = self.hops(self.trunk(Gateway("peer.test", transport=Transport.UDP)))
        self.assertEqual([(h.host, h.port) for h in hops], [("127.0.0.5", 5080), ("127.0.0.6", 5090)])

    def test_cachedNameIsAPlainList(self) -> None:
        """Once resolved, a name's hops come at once until its TTL runs out."""
        self.srv("peer.test", (10, 0, 5080, "a.peer.test", "127.0.0.5"))
        trunk = self.trunk(Gateway("peer.test", transport=Transport.UDP))
        self.assertIsInstance(self.gateways.hops(trunk), defer.Deferred)
        self.assertIsInstance(self.gateways.hops(trunk), list)
        self.clock.advance(61)
        self.assertIsInstance(self.gateways.hops(trunk), defer.Deferred)

    def test_pendingNameKeepsItsPlace(self) -> None:
        """A name whose answer comes later keeps its place before the address written after it."""
        waiting: defer.Deferred[object] = defer.Deferred()
        self.resolver.lookupAddress = lambda name: waiting  # type: ignore[method-assign]
        self.resolver.lookupIPV6Address = lambda name: defer.succeed(([], [], []))  # type: ignore[method-assign]
        result = self.gateways.hops(self.trunk(Gateway("gw.peer.test", 5080), Gateway(*B)))
        assert isinstance(result, defer.Deferred)
        self.assertNoResult(result)
        header = dns.RRHeader(b"gw.peer.test", dns.A, dns.IN, 60, dns.Record_A("127.0.0.5"))
        waiting.callback(([header], [], []))
        self.assertEqual([(h.host, h.port) for h in self.successResultOf(result)], [("127.0.0.5", 5080), B])

    def test_unresolvableSkippedOnceLogged(self) -> None:
        """A name that does not resolve is left out, counts as unresolved, and is logged once a minute."""
        trunk = self.trunk(Gateway("nowhere.test", 5080), Gateway(*B))
        for _ in range(3):
            self.assertEqual([(h.host, h.port) for h in self.hops(trunk)], [B])
            self.clock.advance(31)  # past the negative cache: asked again
        self.assertEqual(len(self.lines("skipped: {why}")), 2)  # t=0 and t=62, not t=31
        self.assertIn(Gateway("nowhere.test", 5080), self.gateways.unresolved)

    def test_resolvingAgainClearsUnresolved(self) -> None:
        """A name that resolves again is no longer counted as down."""
        gateway = Gateway("gw.peer.test", 5080)
        self.hops(self.trunk(gateway))
        self.resolver.add(dns.A, "gw.peer.test", dns.Record_A("127.0.0.5"))
        self.clock.advance(31)
        self.assertEqual(len(self.hops(self.trunk(gateway))), 1)
        self.assertNotIn(gateway, self.gateways.unresolved)

    def test_tlsSkippedWithLogLine(self) -> None:
        """A TLS or TCP hop is left out when we cannot open that transport (no listener of it to
        name in our Via), with a log line."""
        trunk = self.trunk(Gateway("192.0.2.9", transport=Transport.TLS), Gateway(*B))
        self.assertEqual([(h.host, h.port) for h in self.hops(trunk)], [B])
        (line,) = self.lines("no {transport} listener")
        self.assertEqual(line["transport"], Transport.TLS)

    def test_downGatewaySkipped(self) -> None:
        """A gateway the pings took down is left out until it answers again."""
        trunk = self.trunk(Gateway(*A), Gateway(*B))
        self.health.watch({A: 1})
        self.health.pingAll()
        ping = self.lastRequest()
        self.clock.advance(MISS)
        self.assertEqual([(h.host, h.port) for h in self.hops(trunk)], [B])
        self.health.pingAll()
        ping = self.lastRequest()
        self.layer.receiveResponse(optionsAnswer(ping), self.udp, A)
        self.assertEqual([(h.host, h.port) for h in self.hops(trunk)], [A, B])

    def lastRequest(self) -> Request:
        """The newest OPTIONS sent."""
        message = parseMessage(self.udp.sent[-1][0])
        assert isinstance(message, Request)
        return message


class GatewayWatchTests(GatewaysTestCase):
    """Pings per trunk, on each trunk's own interval, and the states they give."""

    def config(self, **changes: object) -> Config:
        """The call tests' config with the demo trunk changed."""
        return withTrunk(callConfig(), "demo", **changes)

    def watch(self, config: Config) -> GatewayWatch:
        """A watch on ``config``, with its gauges in ``self.gauges``."""
        self.gauges: dict[str, object] = {}
        return GatewayWatch(self.clock, self.gateways, self.health, config, self.gauges)  # type: ignore[arg-type]

    def pinged(self) -> list[Address]:
        """Where OPTIONS went, in order."""
        return [where for data, where in self.udp.sent if data.startswith(b"OPTIONS")]

    def test_noIntervalNoPings(self) -> None:
        """A trunk without ping_interval is neither watched nor pinged."""
        watch = self.watch(self.config())
        watch.tick()
        self.assertEqual(self.pinged(), [])
        self.assertEqual(self.health.states(), {})

    def test_pingsEveryInterval(self) -> None:
        """Each gateway gets an OPTIONS at once and then every ping_interval, not every tick."""
        watch = self.watch(self.config(pingInterval=10.0))
        watch.tick()
        self.assertEqual(sorted(self.pinged()), [A, B])
        for address in (A, B):
            self.layer.receiveResponse(optionsAnswer(self.requestTo(address)), self.udp, address)
        self.clock.advance(5)
        watch.tick()
        self.assertEqual(len(self.pinged()), 2)
        self.clock.advance(5)
        watch.tick()
        self.assertEqual(len(self.pinged()), 4)

    def test_trunkMissesTakeItDown(self) -> None:
        """ping_misses unanswered pings take a gateway down; states and gauges say so."""
        watch = self.watch(self.config(pingInterval=1.0, pingMisses=2))
        for _ in range(2):
            watch.tick()
            self.clock.advance(MISS)
        self.assertEqual(watch.states(), {"demo": {"127.0.0.2:5080": "down", "127.0.0.3:5080": "down"}})
        self.assertEqual(watch.down(), 2)
        gauge = self.gauges['gateway_up{trunk="demo",gateway="127.0.0.2:5080"}']
        self.assertEqual(gauge(), 0)  # type: ignore[operator]
        self.assertEqual(self.gauges["gateways_down"](), 2)  # type: ignore[operator]

    def test_unresolvableShowsDown(self) -> None:
        """A gateway name that does not resolve shows as down."""
        watch = self.watch(self.config(pingInterval=1.0, gateways=(Gateway("nowhere.test"), Gateway(*B))))
        watch.tick()
        self.assertEqual(watch.states(), {"demo": {"127.0.0.3:5080": "up", "nowhere.test": "down"}})
        self.assertEqual(self.pinged(), [B])

    def test_namesResolvedAndPinged(self) -> None:
        """A name's SRV targets are each watched and pinged."""
        self.srv(
            "peer.test", (10, 0, 5080, "a.peer.test", "127.0.0.5"), (20, 0, 5090, "b.peer.test", "127.0.0.6")
        )
        gateways = (Gateway("peer.test", transport=Transport.UDP),)
        watch = self.watch(self.config(pingInterval=1.0, gateways=gateways))
        watch.tick()
        self.assertEqual(sorted(self.pinged()), [("127.0.0.5", 5080), ("127.0.0.6", 5090)])

    def test_reloadUnwatches(self) -> None:
        """A reload that drops ping_interval stops watching (and gauging) the trunk's gateways."""
        watch = self.watch(self.config(pingInterval=1.0))
        watch.tick()
        self.assertEqual(set(self.health.states()), {A, B})
        watch.setConfig(self.config())
        self.assertEqual(self.health.states(), {})
        self.assertEqual([name for name in self.gauges if name.startswith("gateway_up")], [])

    def test_streamGatewayPingedOverItsTransport(self) -> None:
        """A TLS gateway's pings go over a TLS connection of ours that verifies the name it must
        prove; a UDP gateway's over UDP."""
        reactor = MemoryReactorClock()
        names: list[str] = []

        def creator(name: str) -> Any:
            names.append(name)
            return optionsForClientTLS(name)

        local = {Transport.TLS: ("127.0.0.1", 5061)}
        self.gateways.streams = OutboundStreams(
            reactor, self.clock, FakeController(), local, 60.0, 65535, creator
        )
        self.gateways.datagram = self.udp
        tls = Gateway("127.0.0.5", 5061, transport=Transport.TLS)
        watch = self.watch(
            self.config(pingInterval=1.0, gateways=(tls, Gateway(*B)), tlsIdentities=("gw.test",))
        )
        self.health.transportFor = watch.transportFor
        watch.tick()
        self.assertEqual(self.pinged(), [B])
        self.assertEqual([(h, p) for h, p, *_ in reactor.tcpClients], [("127.0.0.5", 5061)])
        self.assertEqual(names, ["gw.test"])
        stream = self.gateways.streams.stream(Transport.TLS, ("127.0.0.5", 5061), "gw.test")
        assert stream is not None
        (ping,) = stream.pending
        self.assertIn(b"Via: SIP/2.0/TLS 127.0.0.1:5061", ping)

    def requestTo(self, address: Address) -> Request:
        """The newest OPTIONS sent to ``address``."""
        data = [data for data, where in self.udp.sent if where == address][-1]
        message = parseMessage(data)
        assert isinstance(message, Request)
        return message


class GatewayAccessTests(SynchronousTestCase):
    """The whitelists plus the addresses gateway names resolve to."""

    def setUp(self) -> None:
        self.demo, self.other = Peer(TRUNK, "demo"), Peer(TRUNK, "other")
        base = AccessPolicy({self.demo: IPSet(["192.0.2.0/24"]), self.other: IPSet(["198.51.100.7/32"])})
        entry = Entry(IPNetwork("198.51.100.7"), Path("dns:peer.test"))
        self.access = GatewayAccess(
            base, {"198.51.100.7": (self.demo, entry), "203.0.113.9": (self.demo, entry)}
        )

    def test_resolvedAddressAdmitted(self) -> None:
        """A resolved gateway address admits its trunk; why names the DNS name it came from."""
        self.assertEqual(self.access.classify("203.0.113.9"), self.demo)
        found = self.access.why("203.0.113.9")
        assert found is not None
        self.assertEqual(found[1].where, "dns:peer.test")

    def test_filesFirst(self) -> None:
        """An address a whitelist file names stays with that file's trunk."""
        self.assertEqual(self.access.classify("198.51.100.7"), self.other)
        self.assertEqual(self.access.classify("192.0.2.5"), self.demo)
        self.assertIsNone(self.access.classify("203.0.113.10"))


class WhitelistGatewaysTests(GatewaysTestCase):
    """whitelist_gateways: a trunk's gateway names' addresses, refreshed as DNS answers change."""

    def setUp(self) -> None:
        super().setUp()
        self.resolver.add(dns.A, "gw.peer.test", dns.Record_A("203.0.113.9"), ttl=60)
        self.changes = 0

    def watch(self, **changes: object) -> GatewayWatch:
        """A watch on the demo trunk, with a name and an address gateway, changed as given."""
        gateways = (Gateway("gw.peer.test", 5060), Gateway("192.0.2.1"))
        config = withTrunk(callConfig(), "demo", gateways=gateways, **changes)
        watch = GatewayWatch(self.clock, self.gateways, self.health, config)
        watch.onAdmitted = self.changed
        return watch

    def changed(self, admitted: object) -> None:
        """Counts the watch's news."""
        self.changes += 1

    def test_keptThroughDNSOutage(self) -> None:
        """When DNS stops answering, the name's last addresses stay admitted, and its gateway
        is not counted as unresolved."""
        watch = self.watch(whitelistGateways=True)
        watch.tick()
        self.resolver.failures[(dns.A, "gw.peer.test")] = DNSQueryTimeoutError("gw.peer.test")
        self.clock.advance(61)
        watch.tick()
        self.assertEqual((set(watch.admitted), self.changes), ({"203.0.113.9"}, 1))
        self.assertEqual(self.gateways.unresolved, set())

    def test_admittedOnlyOnceApplied(self) -> None:
        """When applying new addresses fails, ``admitted`` keeps the old ones and the next tick
        tries again (and the tick's timer lives on)."""
        watch = self.watch(whitelistGateways=True)
        failures = [RuntimeError("swap failed")]

        def apply(admitted: object) -> None:
            if failures:
                raise failures.pop()
            self.changed(admitted)

        watch.onAdmitted = apply
        watch.tick()
        self.assertEqual((watch.admitted, self.changes), ({}, 0))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        watch.tick()
        self.assertEqual((set(watch.admitted), self.changes), ({"203.0.113.9"}, 1))

    def test_namesAdmitted(self) -> None:
        """With whitelist_gateways, a name's addresses are admitted for its trunk (not the
        address gateways: the files decide those), and the news is told once."""
        watch = self.watch(whitelistGateways=True)
        watch.tick()
        self.assertEqual(set(watch.admitted), {"203.0.113.9"})
        self.assertEqual(watch.admitted["203.0.113.9"][0], Peer(TRUNK, "demo"))
        watch.tick()
        self.assertEqual(self.changes, 1)

    def test_offByDefault(self) -> None:
        """Without whitelist_gateways nothing is admitted and no name is looked up."""
        watch = self.watch()
        watch.tick()
        self.assertEqual((watch.admitted, self.changes, self.resolver.queries), ({}, 0, []))

    def test_refreshedWithTheTTL(self) -> None:
        """When the TTL runs out the name is asked again, and a new address replaces the old."""
        watch = self.watch(whitelistGateways=True)
        watch.tick()
        self.resolver.records[(dns.A, "gw.peer.test")] = [
            dns.RRHeader(b"gw.peer.test", dns.A, dns.IN, 60, dns.Record_A("203.0.113.10"))
        ]
        self.clock.advance(30)
        watch.tick()
        self.assertEqual(set(watch.admitted), {"203.0.113.9"})  # still cached
        self.clock.advance(31)
        watch.tick()
        self.assertEqual(set(watch.admitted), {"203.0.113.10"})
        self.assertEqual(self.changes, 2)
