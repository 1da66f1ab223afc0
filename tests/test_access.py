"""Tests for sbc.access: the gate in front of the parser, and bans."""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from netaddr import IPNetwork, IPSet
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sbc import access
from sbc.access import (
    DEVICE_NETWORK,
    DEVICES,
    PRUNE_INTERVAL,
    TRUNK,
    AccessPolicy,
    BanKind,
    Bans,
    BanSettings,
    Peer,
    PeerKind,
    sourceKey,
)
from sbc.ops.state import BanTable, openDatabase
from sbc.prefixes import Entry

PEER = Peer(TRUNK, "peer")
OTHER = Peer(TRUNK, "other")


class PeerKindTests(SynchronousTestCase):
    def test_aliases(self) -> None:
        """TRUNK and DEVICES are PeerKind's members, equal to the strings logs and CDRs show."""
        self.assertIs(TRUNK, PeerKind.TRUNK)
        self.assertIs(DEVICES, PeerKind.DEVICES)
        self.assertIs(DEVICE_NETWORK.kind, PeerKind.DEVICES)
        self.assertEqual((TRUNK, f"{DEVICES}"), ("trunk", "devices"))
        self.assertEqual(Peer(PeerKind("trunk"), "peer"), PEER)


class AccessPolicyTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.policy = AccessPolicy(
            {
                PEER: IPSet(["192.0.2.0/24", "2001:db8::/32"]),
                OTHER: IPSet(["127.0.0.2/32"]),
                DEVICE_NETWORK: IPSet(["127.0.0.0/29"]),
            }
        )

    def test_insideSubnet(self) -> None:
        """An address inside a trunk's subnet belongs to that trunk."""
        self.assertEqual(self.policy.classify("192.0.2.200"), PEER)
        self.assertEqual(self.policy.classify("127.0.0.2"), OTHER)

    def test_trunkBeforeDevices(self) -> None:
        """A trunk address inside a device network is still the trunk; the rest are devices."""
        self.assertEqual(self.policy.classify("127.0.0.2"), OTHER)
        self.assertEqual(self.policy.classify("127.0.0.4"), DEVICE_NETWORK)

    def test_outside(self) -> None:
        """An address outside every whitelist is a stranger."""
        self.assertIsNone(self.policy.classify("192.0.3.1"))
        self.assertIsNone(self.policy.classify("127.0.0.9"))
        self.assertIsNone(self.policy.classify("127.0.0.8"))

    def test_ipv6(self) -> None:
        """IPv6 sources are checked against IPv6 entries, zone index ignored."""
        self.assertEqual(self.policy.classify("2001:db8::1"), PEER)
        self.assertEqual(self.policy.classify("2001:db8::1%eth0"), PEER)
        self.assertIsNone(self.policy.classify("2001:db9::1"))

    def test_mappedIPv4(self) -> None:
        """An IPv4 source seen through a dual-stack socket is checked as IPv4."""
        self.assertEqual(self.policy.classify("::ffff:192.0.2.9"), PEER)

    def test_garbage(self) -> None:
        """Something that is not an address is a stranger, not an exception."""
        self.assertIsNone(self.policy.classify("not-an-address"))

    def test_cacheBounded(self) -> None:
        """The lookup cache cannot grow without bound under a spoofed-source flood."""
        self.patch(access, "_CACHE_LIMIT", 100)
        for i in range(1000):
            self.policy.classify(f"10.0.{i >> 8}.{i & 255}")
        self.assertLessEqual(len(self.policy._cache), 100)
        self.assertEqual(self.policy.classify("192.0.2.1"), PEER)


def _entries(path: str, *networks: str) -> tuple[Entry, ...]:
    """Whitelist entries of ``networks``, on lines 1, 2, ... of the file ``path``."""
    return tuple(Entry(IPNetwork(n), Path(path), line) for line, n in enumerate(networks, 1))


class OverlappingWhitelistTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.policy = AccessPolicy(
            {
                PEER: _entries("peer.txt", "192.0.2.0/24", "2001:db8::/32"),
                OTHER: _entries("other.txt", "192.0.2.128/25", "192.0.2.7", "2001:db8:1::/48"),
                DEVICE_NETWORK: _entries("devices.txt", "192.0.2.0/26", "198.51.100.0/24"),
            }
        )

    def test_longestPrefix(self) -> None:
        """A source that two trunks list goes to the trunk with the longer prefix, in either order."""
        self.assertEqual(self.policy.classify("192.0.2.1"), PEER)
        self.assertEqual(self.policy.classify("192.0.2.200"), OTHER)
        self.assertEqual(self.policy.classify("192.0.2.7"), OTHER)
        self.assertEqual(self.policy.classify("2001:db8::9"), PEER)
        self.assertEqual(self.policy.classify("2001:db8:1::9"), OTHER)
        flipped = AccessPolicy({OTHER: _entries("o", "192.0.2.128/25"), PEER: _entries("p", "192.0.2.0/24")})
        self.assertEqual(flipped.classify("192.0.2.200"), OTHER)
        self.assertEqual(flipped.classify("192.0.2.1"), PEER)

    def test_trunksBeforeDevices(self) -> None:
        """A trunk's address stays the trunk's even where a device network lists a longer prefix."""
        self.assertEqual(self.policy.classify("192.0.2.9"), PEER)
        self.assertEqual(self.policy.classify("198.51.100.9"), DEVICE_NETWORK)

    def test_why(self) -> None:
        """``why`` names the peer and the entry (file and line) that admitted a source."""
        found = self.policy.why("192.0.2.200")
        assert found is not None
        peer, entry = found
        self.assertEqual(peer, OTHER)
        self.assertEqual((entry.where, str(entry.network)), ("other.txt:1", "192.0.2.128/25"))
        found = self.policy.why("::ffff:198.51.100.3")
        assert found is not None
        self.assertEqual((found[0], found[1].where), (DEVICE_NETWORK, "devices.txt:2"))

    def test_whyStranger(self) -> None:
        """``why`` answers None for a stranger or something that is no address."""
        self.assertIsNone(self.policy.why("203.0.113.1"))
        self.assertIsNone(self.policy.why("not-an-address"))

    def test_strangerCached(self) -> None:
        """After the first packet, a stranger costs one dict lookup: the tables are not asked again."""
        self.assertIsNone(self.policy.classify("203.0.113.1"))
        asked: list[str] = []
        self.patch(AccessPolicy, "why", lambda policy, host: asked.append(host))
        for _ in range(3):
            self.assertIsNone(self.policy.classify("203.0.113.1"))
        self.assertEqual(asked, [])

    def test_bareSet(self) -> None:
        """A whitelist given as a bare IPSet works too; its entries name no file."""
        policy = AccessPolicy({PEER: IPSet(["192.0.2.0/24"])})
        found = policy.why("192.0.2.3")
        assert found is not None
        self.assertEqual((found[0], found[1].where), (PEER, "no file"))


class BansTestCase(SynchronousTestCase):
    settings = BanSettings(failures=3, failuresPerSource=5, window=60.0, duration=600.0)

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.told: list[Callable[[str], bool]] = []
        self.bans = Bans(self.clock, self.settings, onBan=self.told.append)


class BanCountingTests(BansTestCase):
    def test_perUsername(self) -> None:
        """``failures`` wrong passwords for one username from one source ban that source."""
        self.assertFalse(self.bans.failure("192.0.2.1", "victim"))
        self.assertFalse(self.bans.failure("192.0.2.1", "victim"))
        self.assertTrue(self.bans.failure("192.0.2.1", "victim"))
        self.assertTrue(self.bans.banned("192.0.2.1"))
        self.assertFalse(self.bans.banned("192.0.2.2"))

    def test_kindCounted(self) -> None:
        """An authentication ban counts under its kind, a ban by hand under "other"."""
        for _ in range(3):
            self.bans.failure("192.0.2.1", "victim")
        self.bans.ban("192.0.2.2", 60.0, "by hand")
        self.assertEqual(self.bans.banKinds, {BanKind.AUTH: 1, BanKind.OTHER: 1})

    def test_successClearsOnlyItsPair(self) -> None:
        """Good logins to the attacker's own account between guesses at another do not reset the count."""
        for _ in range(2):
            self.bans.failure("192.0.2.1", "victim")
            self.bans.success("192.0.2.1", "attacker")
        self.assertTrue(self.bans.failure("192.0.2.1", "victim"))

    def test_successClearsItsPair(self) -> None:
        """A good password clears that username's own count from that source."""
        self.bans.failure("192.0.2.1", "alice")
        self.bans.failure("192.0.2.1", "alice")
        self.bans.success("192.0.2.1", "alice")
        self.assertFalse(self.bans.failure("192.0.2.1", "alice"))
        self.assertFalse(self.bans.failure("192.0.2.1", "alice"))
        self.assertFalse(self.bans.banned("192.0.2.1"))

    def test_perSourceAcrossUsernames(self) -> None:
        """Guesses spread over many usernames, each below ``failures``, ban at ``failuresPerSource``."""
        results = [self.bans.failure("192.0.2.1", f"user{i}") for i in range(5)]
        self.assertEqual(results, [False, False, False, False, True])
        self.assertTrue(self.bans.banned("192.0.2.1"))

    def test_window(self) -> None:
        """Failures further apart than the window do not add up."""
        for _ in range(4):
            self.bans.failure("192.0.2.1", "alice")
            self.clock.advance(40)
            self.bans.success("192.0.2.1", "nobody")
        self.assertFalse(self.bans.banned("192.0.2.1"))

    def test_reloadedThreshold(self) -> None:
        """A reload that raises a threshold keeps counting against the new one."""
        self.bans.failure("192.0.2.1", "alice")
        self.bans.settings = BanSettings(failures=4, failuresPerSource=50)
        self.assertEqual([self.bans.failure("192.0.2.1", "alice") for _ in range(3)], [False, False, True])

    def test_onBanTold(self) -> None:
        """A new ban tells onBan, with a predicate that names the banned source and no other."""
        for _ in range(3):
            self.bans.failure("192.0.2.1", "alice")
        (refused,) = self.told
        self.assertTrue(refused("192.0.2.1"))
        self.assertFalse(refused("192.0.2.2"))


class BanIPv6Tests(BansTestCase):
    def test_prefixAggregated(self) -> None:
        """Failures from different addresses of one /64 add up, and the ban covers the whole /64."""
        self.bans.failure("2001:db8:1:2::1", "alice")
        self.bans.failure("2001:db8:1:2::2", "alice")
        self.assertTrue(self.bans.failure("2001:db8:1:2:ffff::3", "alice"))
        self.assertTrue(self.bans.banned("2001:db8:1:2::99"))
        self.assertTrue(self.bans.banned("2001:db8:1:2::99%eth0"))
        self.assertFalse(self.bans.banned("2001:db8:1:3::1"))
        self.assertEqual(list(self.bans.active), ["2001:db8:1:2::/64"])

    def test_prefixConfigurable(self) -> None:
        """With ipv6_prefix = 128 each address counts alone."""
        self.bans.settings = BanSettings(failures=3, ipv6Prefix=128)
        for i in range(3):
            self.assertFalse(self.bans.failure(f"2001:db8::{i + 1}", "alice"))
        self.assertFalse(self.bans.banned("2001:db8::1"))

    def test_mappedIPv4(self) -> None:
        """An IPv4 source seen through a dual-stack socket is banned as that IPv4 address."""
        for _ in range(3):
            self.bans.failure("::ffff:192.0.2.1", "alice")
        self.assertTrue(self.bans.banned("192.0.2.1"))

    def test_sourceKey(self) -> None:
        """sourceKey leaves IPv4 alone and cuts IPv6 to its prefix."""
        self.assertEqual(sourceKey("192.0.2.1", 64), "192.0.2.1")
        self.assertEqual(sourceKey("2001:db8::1", 64), "2001:db8::/64")
        self.assertEqual(sourceKey("2001:db8::1", 48), "2001:db8::/48")
        self.assertEqual(sourceKey("not:an:address", 64), "not:an:address")

    def test_keyCacheBounded(self) -> None:
        """The IPv6 key cache cannot grow without bound."""
        self.patch(access, "_CACHE_LIMIT", 100)
        for i in range(1000):
            self.bans.banned(f"2001:db8:{i:x}::1")
        self.assertLessEqual(len(self.bans._keys), 100)


class BanPrefixReloadTests(BansTestCase):
    settings = BanSettings(failures=2, failuresPerSource=5, window=60.0, duration=600.0)

    def reload(self, prefix: int) -> None:
        self.bans.settings = dataclasses.replace(self.settings, ipv6Prefix=prefix)

    def test_shorterPrefixKeepsBans(self) -> None:
        """A /64 ban holds after a reload to /56, and does not spread to the rest of the /56."""
        self.bans.failure("2001:db8:1:2::5", "alice")
        self.assertTrue(self.bans.failure("2001:db8:1:2::5", "alice"))
        self.reload(56)
        self.assertTrue(self.bans.banned("2001:db8:1:2::5"))
        self.assertTrue(self.bans.banned("2001:db8:1:2::99"))
        self.assertFalse(self.bans.banned("2001:db8:1:3::5"))
        self.assertEqual(self.bans.key("2001:db8:1:2::5"), "2001:db8:1::/56")

    def test_longerPrefixKeepsBans(self) -> None:
        """A /56 ban still covers the whole /56 after a reload to /64, until it ends."""
        self.reload(56)
        self.bans.failure("2001:db8:1:2::5", "alice")
        self.bans.failure("2001:db8:1:3::5", "alice")
        self.reload(64)
        self.assertTrue(self.bans.banned("2001:db8:1:ff::1"))
        self.assertFalse(self.bans.banned("2001:db8:2::1"))
        self.clock.advance(601)
        self.assertFalse(self.bans.banned("2001:db8:1:ff::1"))
        self.bans.prune()
        self.assertEqual((self.bans.active, self.bans._lengths), ({}, (64,)))

    def test_shorterPrefixAddsCounts(self) -> None:
        """After a reload to /56, failures counted under two /64s add up in their /56."""
        self.settings = BanSettings(failures=3, failuresPerSource=5)
        self.bans.settings = self.settings
        self.bans.failure("2001:db8:1:2::5", "alice")
        self.bans.failure("2001:db8:1:3::5", "alice")
        self.reload(56)
        self.assertTrue(self.bans.failure("2001:db8:1:4::5", "alice"))
        self.assertTrue(self.bans.banned("2001:db8:1:5::5"))

    def test_longerPrefixCarriesCounts(self) -> None:
        """After a reload to /64, a /56's failures carry on with the next /64 in it that fails."""
        self.reload(56)
        self.bans.failure("2001:db8:1:2::5", "alice")
        self.reload(64)
        self.assertTrue(self.bans.failure("2001:db8:1:3::5", "alice"))
        self.assertEqual(list(self.bans.active), ["2001:db8:1:3::/64"])
        self.assertEqual(list(self.bans.failures), [])

    def test_restartWithAnotherPrefix(self) -> None:
        """A stored /64 ban holds when the server restarts with ipv6_prefix = 56."""
        directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, directory)
        connection = openDatabase(directory / "sbc.sqlite")
        self.addCleanup(connection.close)
        table = BanTable(connection)
        Bans(self.clock, self.settings, table).ban("2001:db8:1:2::5", 100, "test")
        restarted = Bans(self.clock, dataclasses.replace(self.settings, ipv6Prefix=56), table)
        self.assertTrue(restarted.banned("2001:db8:1:2::99"))
        self.assertFalse(restarted.banned("2001:db8:1:3::5"))


class BanCounterBoundTests(BansTestCase):
    settings = BanSettings(failures=3, failuresPerSource=12, window=60.0, duration=600.0)

    def setUp(self) -> None:
        super().setUp()
        self.patch(access, "_CACHE_LIMIT", 100)

    def test_fullTableEvictsOldest(self) -> None:
        """A flood of new sources evicts the oldest counters, not the counts of a source still failing."""
        self.bans.failure("2001:db8:1:2::5", "alice")
        for i in range(500):
            self.bans.failure(f"2001:db8:2:{i:x}::1", "x")
            if i % 50 == 0:
                self.bans.failure("2001:db8:1:2::5", f"bob{i}")  # the attacked source keeps failing
        self.assertLessEqual(max(len(self.bans.failures), len(self.bans.sourceFailures)), 100)
        self.assertIn("2001:db8:1:2::/64", self.bans.sourceFailures)
        self.assertNotIn("2001:db8:2::/64", self.bans.sourceFailures)
        self.assertTrue(self.bans.failure("2001:db8:1:2::6", "carol"))  # its 12th within the window
        self.assertTrue(self.bans.banned("2001:db8:1:2::5"))

    def test_pruneOldestFirst(self) -> None:
        """Pruning drops counters past the window and keeps those still in it."""
        self.bans.failure("192.0.2.1", "alice")
        self.clock.advance(30)
        self.bans.failure("192.0.2.2", "alice")
        self.clock.advance(31)
        self.bans.prune()
        self.assertEqual(list(self.bans.sourceFailures), ["192.0.2.2"])


class BanPruneTests(BansTestCase):
    def setUp(self) -> None:
        super().setUp()
        directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, directory)
        connection = openDatabase(directory / "sbc.sqlite")
        self.addCleanup(connection.close)
        self.table = BanTable(connection)
        self.bans = Bans(self.clock, self.settings, self.table)

    def test_endedBansPruned(self) -> None:
        """An ended ban leaves memory and the table on the clock, though its host never returns."""
        self.bans.ban("192.0.2.1", 100, "test")
        self.bans.ban("192.0.2.2", 10_000, "test")
        self.clock.advance(100 + PRUNE_INTERVAL)
        self.bans.failure("192.0.2.9", "alice")  # any later event prunes
        self.assertEqual(list(self.bans.active), ["192.0.2.2"])
        self.assertEqual(list(self.table.load()), ["192.0.2.2"])

    def test_prune(self) -> None:
        """prune drops ended bans and counters past the window; live ones stay."""
        self.bans.ban("192.0.2.1", 10, "test")
        self.bans.failure("192.0.2.3", "alice")
        self.clock.advance(61)
        self.bans.failure("192.0.2.4", "alice")
        self.bans.prune()
        self.assertEqual(self.bans.active, {})
        self.assertEqual(self.table.load(), {})
        self.assertEqual(list(self.bans.failures), [("192.0.2.4", "alice")])
        self.assertEqual(list(self.bans.sourceFailures), ["192.0.2.4"])

    def test_storedBansLoaded(self) -> None:
        """Bans in the table hold after a restart; one stored by exact IPv6 address covers its prefix."""
        self.table.save("2001:db8::1", self.clock.seconds() + 100, "old")
        self.bans.ban("192.0.2.1", 100, "test")
        restarted = Bans(self.clock, self.settings, self.table)
        self.assertTrue(restarted.banned("192.0.2.1"))
        self.assertTrue(restarted.banned("2001:db8::2"))

    def test_syncForgetsLiftedBans(self) -> None:
        """A ban whose row another process deleted (sbc-ctl unban) is forgotten by sync; others stay."""
        self.bans.ban("192.0.2.1", 100, "test")
        self.bans.ban("192.0.2.2", 100, "test")
        self.table.delete("192.0.2.1")
        self.assertEqual(self.bans.sync(), 1)
        self.assertFalse(self.bans.banned("192.0.2.1"))
        self.assertTrue(self.bans.banned("192.0.2.2"))
        self.assertEqual(self.bans.sync(), 0)

    def test_syncWithoutTable(self) -> None:
        """Without a table there is nothing to lift from: sync keeps every ban."""
        bans = Bans(self.clock, self.settings)
        bans.ban("192.0.2.1", 100, "test")
        self.assertEqual(bans.sync(), 0)
        self.assertTrue(bans.banned("192.0.2.1"))
