"""Tests for sbc.routing.registrars: our registrants' registrars (and outbound proxies) at the gate,
by address or by DNS name, after the trunks' whitelists and before the device networks."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from netaddr import IPNetwork, IPSet
from twisted.internet.task import Clock
from twisted.names import dns
from twisted.trial.unittest import SynchronousTestCase

from sbc.access import DEVICE_NETWORK, REGISTRANT, TRUNK, AccessPolicy, Peer
from sbc.config import Config
from sbc.config.registrants import Registrant
from sbc.droplog import DropLog
from sbc.locate import ServerLocator
from sbc.prefixes import Entry
from sbc.routing.gateways import GatewayAccess
from sbc.routing.registrars import RegistrarAccess, RegistrarWatch, addressOf, registrantsAt
from tests.calls import callConfig
from tests.fakes import FakeResolver, LogRecorder

PEER_B = Registrant(
    name="peer-b",
    registrar="sip:192.0.2.50:5060",
    aor="sip:sbc-demo@peer-b.example",
    authUser="sbc-demo",
    password="secret",
)
NAMED = Registrant(
    name="named",
    registrar="sip:registrar.peer.test",
    aor="sip:sbc@peer.test",
    authUser="sbc",
    password="secret",
    outboundProxy="sip:198.51.100.60:5070",
)


def withRegistrants(*registrants: Registrant) -> Config:
    """The call tests' config (the demo trunk on 127.0.0.2-3, devices on 127.0.0.4/30) with these
    registrants."""
    return replace(callConfig(), registrants=registrants)


class AddressOfTests(SynchronousTestCase):
    """Which registrar hosts are addresses, each in one spelling."""

    def test_spellings(self) -> None:
        """IPv4, bracketed and dual-stack spellings become one address; a name is None."""
        self.assertEqual(addressOf("192.0.2.50"), "192.0.2.50")
        self.assertEqual(addressOf("[2001:DB8::1]"), "2001:db8::1")
        self.assertEqual(addressOf("::ffff:192.0.2.50"), "192.0.2.50")
        self.assertIsNone(addressOf("registrar.peer.test"))


class RegistrarAccessTests(SynchronousTestCase):
    """The gate with registrars: trunks' whitelists first, then registrars, then devices."""

    def setUp(self) -> None:
        self.demo = Peer(TRUNK, "demo")
        base = AccessPolicy({self.demo: IPSet(["192.0.2.0/28"]), DEVICE_NETWORK: IPSet(["10.0.0.0/8"])})
        self.access = RegistrarAccess(
            base, {"198.51.100.5": ("peer-b", "peer-c"), "10.1.1.1": ("peer-d",), "192.0.2.5": ("peer-e",)}
        )

    def test_registrarAdmitted(self) -> None:
        """A registrar's address is admitted as the first registrant there; why says so."""
        self.assertEqual(self.access.classify("198.51.100.5"), Peer(REGISTRANT, "peer-b"))
        found = self.access.why("198.51.100.5")
        assert found is not None
        self.assertEqual(found[1].where, "registrant:peer-b")
        self.assertEqual(self.access.registrantsAt("198.51.100.5"), ("peer-b", "peer-c"))

    def test_strangerDropped(self) -> None:
        """A source that is neither whitelisted nor a registrar is not admitted."""
        self.assertIsNone(self.access.classify("198.51.100.6"))
        self.assertEqual(self.access.registrantsAt("198.51.100.6"), ())

    def test_trunkWhitelistWins(self) -> None:
        """A registrar address inside a trunk's whitelist stays the trunk's."""
        self.assertEqual(self.access.classify("192.0.2.5"), self.demo)

    def test_trunkGatewayNameWins(self) -> None:
        """An address a trunk's gateway name resolves to (whitelist_gateways) stays the trunk's."""
        entry = Entry(IPNetwork("203.0.113.9"), Path("dns:gw.peer.test"))
        gateways = GatewayAccess(AccessPolicy({}), {"203.0.113.9": (self.demo, entry)})
        access = RegistrarAccess(gateways, {"203.0.113.9": ("peer-b",)})
        self.assertEqual(access.classify("203.0.113.9"), self.demo)

    def test_registrarBeforeDevices(self) -> None:
        """A registrar address inside a device network is the registrar's; its neighbours stay
        devices."""
        self.assertEqual(self.access.classify("10.1.1.1"), Peer(REGISTRANT, "peer-d"))
        self.assertEqual(self.access.classify("10.1.1.2"), DEVICE_NETWORK)

    def test_registrantsAtWithoutRegistrars(self) -> None:
        """A config whose gate admits no registrar has no registrants at any source."""
        self.assertEqual(registrantsAt(callConfig(), "198.51.100.5"), ())


class RegistrarWatchTests(SynchronousTestCase):
    """The registrars' addresses follow the config given, and their names' DNS answers."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.resolver = FakeResolver()
        self.resolver.add(dns.A, "registrar.peer.test", dns.Record_A("203.0.113.9"), ttl=60)
        self.changes = 0
        self.watch = RegistrarWatch(
            self.clock, ServerLocator(self.resolver, self.clock), DropLog(self.clock), self.changed
        )

    def changed(self) -> None:
        """Counts the watch's news."""
        self.changes += 1

    def test_addressAdmittedAtOnce(self) -> None:
        """A registrar given by address is admitted by ``admit`` itself, with no lookup."""
        config = self.watch.admit(withRegistrants(PEER_B))
        self.assertEqual(config.access.classify("192.0.2.50"), Peer(REGISTRANT, "peer-b"))
        self.watch.tick()
        self.assertEqual((self.resolver.queries, self.changes), ([], 0))

    def test_noRegistrantsNoWrapping(self) -> None:
        """Without registrants the config's own access policy stays (nothing more per datagram)."""
        config = callConfig()
        self.assertIs(self.watch.admit(config), config)

    def test_removedRegistrantDropped(self) -> None:
        """A config without the registrant (a reload) no longer admits its registrar."""
        self.watch.admit(withRegistrants(PEER_B))
        config = self.watch.admit(withRegistrants())
        self.assertIsNone(config.access.classify("192.0.2.50"))

    def test_nameAdmittedOnceResolved(self) -> None:
        """A registrar's name is admitted once a tick resolved it, and the change is told; the
        outbound proxy's address is admitted from the start."""
        config = self.watch.admit(withRegistrants(NAMED))
        self.assertIsNone(config.access.classify("203.0.113.9"))
        self.assertEqual(config.access.classify("198.51.100.60"), Peer(REGISTRANT, "named"))
        self.watch.tick()
        self.assertEqual(self.changes, 1)
        config = self.watch.admit(withRegistrants(NAMED))
        self.assertEqual(config.access.classify("203.0.113.9"), Peer(REGISTRANT, "named"))

    def test_refreshedOnTTL(self) -> None:
        """Once the TTL has run out the name is asked again; a new address replaces the old."""
        self.watch.admit(withRegistrants(NAMED))
        self.watch.tick()
        asked = len(self.resolver.queries)
        self.watch.tick()
        self.assertEqual((len(self.resolver.queries), self.changes), (asked, 1))
        self.resolver.records.clear()
        self.resolver.add(dns.A, "registrar.peer.test", dns.Record_A("203.0.113.10"), ttl=60)
        self.clock.advance(61)
        self.watch.tick()
        self.assertEqual(self.changes, 2)
        config = self.watch.admit(withRegistrants(NAMED))
        self.assertIsNone(config.access.classify("203.0.113.9"))
        self.assertEqual(config.access.classify("203.0.113.10"), Peer(REGISTRANT, "named"))

    def test_unresolvedNameLogged(self) -> None:
        """A name that does not resolve admits nothing, and says so in the log."""
        recorder = LogRecorder()
        self.patch(RegistrarWatch, "log", recorder.log)
        self.watch.admit(withRegistrants(replace(NAMED, registrar="sip:nowhere.peer.test")))
        self.watch.tick()
        self.assertEqual(self.changes, 0)
        formats = [event["log_format"] for event in recorder.events]
        self.assertTrue(any("not admitted" in text for text in formats), formats)

    def test_failedSwapTriedAgain(self) -> None:
        """When applying new addresses fails, the next tick tries again."""
        failures = [RuntimeError("swap failed")]

        def apply() -> None:
            if failures:
                raise failures.pop()
            self.changed()

        self.watch.onChanged = apply
        self.watch.admit(withRegistrants(NAMED))
        self.watch.tick()
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.watch.tick()
        self.assertEqual(self.changes, 1)
