"""Tests for sbc.flood: a device source past its request rate is banned for a while, in the ban store;
known scanners from devices are dropped; trunk sources pass untouched."""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from netaddr import IPSet
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sbc.access import DEVICE_NETWORK, TRUNK, AccessPolicy, BanKind, Bans, BanSettings, Peer
from sbc.flood import DeviceScreen, RequestLimit
from sbc.ops.state import BanTable, openDatabase
from sbc.sip.headers import HeaderField, Headers

SETTINGS = BanSettings(requestRate=10.0, requestBurst=5, requestBanDuration=30.0)


class RequestLimitTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_000_000)
        directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, directory)
        connection = openDatabase(directory / "sbc.sqlite")
        self.addCleanup(connection.close)
        self.table = BanTable(connection)
        self.told: list[Callable[[str], bool]] = []
        self.bans = Bans(self.clock, SETTINGS, self.table, onBan=self.told.append)
        self.limit = RequestLimit(self.clock, SETTINGS, self.bans)

    def allowed(self, host: str, count: int) -> list[bool]:
        return [self.limit.allow(host) for _ in range(count)]

    def test_burstThenBan(self) -> None:
        """The burst passes at once; the next message is refused and bans the source for the ban duration."""
        self.assertEqual(self.allowed("192.0.2.1", 6), [True] * 5 + [False])
        self.assertTrue(self.bans.banned("192.0.2.1"))
        self.assertEqual(self.bans.active["192.0.2.1"], self.clock.seconds() + 30.0)
        self.assertEqual(self.limit.banCount, 1)
        self.clock.advance(30)
        self.assertFalse(self.bans.banned("192.0.2.1"))

    def test_banReasonStored(self) -> None:
        """The ban is in the one ban table, with the request rate as its reason."""
        self.allowed("192.0.2.1", 6)
        until, reason = self.table.load()["192.0.2.1"]
        self.assertEqual(until, self.clock.seconds() + 30.0)
        self.assertIn("request rate", reason)
        self.assertIn("10/s", reason)

    def test_banKind(self) -> None:
        """A flood ban counts as a request-rate ban, for the metrics' bans by reason."""
        self.allowed("192.0.2.1", 6)
        self.assertEqual(self.bans.banKinds, {BanKind.REQUEST_RATE: 1})

    def test_banClosesConnections(self) -> None:
        """A flood ban tells onBan, as an authentication ban does, so open connections close."""
        self.allowed("192.0.2.1", 6)
        self.assertEqual(len(self.told), 1)
        self.assertTrue(self.told[0]("192.0.2.1"))
        self.assertFalse(self.told[0]("192.0.2.2"))

    def test_steadyRateNeverBanned(self) -> None:
        """A source that keeps to the rate is never refused, however long it goes on."""
        for _ in range(200):
            self.assertTrue(self.limit.allow("192.0.2.1"))
            self.clock.advance(0.1)
        self.assertEqual(self.bans.active, {})

    def test_sourcesCountedApart(self) -> None:
        """One source's flood leaves another source's bucket alone."""
        self.allowed("192.0.2.1", 6)
        self.assertEqual(self.allowed("192.0.2.2", 5), [True] * 5)
        self.assertFalse(self.bans.banned("192.0.2.2"))

    def test_ipv6CountedByPrefix(self) -> None:
        """IPv6 addresses of one /64 share a bucket, and the ban is on the /64."""
        hosts = [f"2001:db8::{n}" for n in range(1, 7)]
        self.assertEqual([self.limit.allow(host) for host in hosts], [True] * 5 + [False])
        self.assertTrue(self.bans.banned("2001:db8::99"))
        self.assertIn("2001:db8::/64", self.table.load())

    def test_budgetPerRegisteredDevice(self) -> None:
        """A source holding N registrations gets N times the burst (and rate): an office behind
        one NAT re-registering at once is not banned; past N bursts it still is."""
        self.limit.registered = {"192.0.2.1": 20}
        self.assertEqual(self.allowed("192.0.2.1", 100), [True] * 100)
        self.assertEqual(self.allowed("192.0.2.1", 1), [False])
        self.assertEqual(self.allowed("192.0.2.2", 6), [True] * 5 + [False])  # no registrations

    def test_registeredIPv6CountedByAddress(self) -> None:
        """A registered IPv6 address has its own budget, not its prefix's shared one."""
        self.limit.registered = {"2001:db8::1": 2}
        self.assertEqual(self.allowed("2001:db8::2", 5), [True] * 5)
        self.assertEqual(self.allowed("2001:db8::1", 10), [True] * 10)

    def test_freshBucketAfterBan(self) -> None:
        """A source whose ban ended starts again with a full burst."""
        self.allowed("192.0.2.1", 6)
        self.clock.advance(30)
        self.assertFalse(self.bans.banned("192.0.2.1"))
        self.assertEqual(self.allowed("192.0.2.1", 5), [True] * 5)

    def test_zeroRateTurnsOff(self) -> None:
        """request_rate 0 counts nothing and bans nobody."""
        self.limit.settings = dataclasses.replace(SETTINGS, requestRate=0.0)
        self.assertEqual(self.allowed("192.0.2.1", 100), [True] * 100)
        self.assertEqual(self.bans.active, {})

    def test_reloadedRate(self) -> None:
        """A reloaded rate applies at once; a reload that keeps the rate keeps the counts."""
        self.allowed("192.0.2.1", 4)
        self.limit.settings = dataclasses.replace(SETTINGS, duration=1.0)  # the rate unchanged
        self.assertEqual(self.allowed("192.0.2.1", 2), [True, False])
        self.limit.settings = dataclasses.replace(SETTINGS, requestBurst=2)
        self.assertEqual(self.allowed("192.0.2.3", 3), [True, True, False])


class DeviceScreenTests(SynchronousTestCase):
    def setUp(self) -> None:
        clock = Clock()
        self.counts: Counter[str] = Counter()
        self.bans = Bans(clock, SETTINGS)
        access = AccessPolicy(
            {Peer(TRUNK, "demo"): IPSet(["127.0.0.2/32"]), DEVICE_NETWORK: IPSet(["127.0.0.4/30"])}
        )
        self.screen = DeviceScreen(clock, access, SETTINGS, self.bans, self.counts)

    def test_trunkAndUnknownPass(self) -> None:
        """Trunk sources, and sources no whitelist holds (a removed trunk's, for its calls), pass."""
        agent = Headers([HeaderField("user-agent", "friendly-scanner")])
        for host in ("127.0.0.2", "127.0.0.9"):
            self.assertEqual([self.screen.drops(agent, host) for _ in range(20)], [False] * 20)
        self.assertEqual(self.counts, Counter())
        self.assertEqual(self.bans.active, {})

    def test_deviceScreened(self) -> None:
        """A device's scanner request is dropped and counted; past the burst the source is banned."""
        agent = Headers([HeaderField("user-agent", "friendly-scanner")])
        self.assertTrue(self.screen.drops(agent, "127.0.0.4"))
        self.assertEqual(self.counts["scanners_dropped"], 1)
        results = [self.screen.drops(None, "127.0.0.4") for _ in range(5)]
        self.assertEqual(results, [False] * 4 + [True])
        self.assertEqual(self.counts["rate_banned"], 1)
        self.assertTrue(self.bans.banned("127.0.0.4"))

    def test_update(self) -> None:
        """update takes a new access policy and scanner list."""
        self.screen.update(
            AccessPolicy({DEVICE_NETWORK: IPSet(["127.0.0.2/32"])}),
            dataclasses.replace(SETTINGS, scanners=("Zoiper",)),
        )
        self.assertTrue(self.screen.drops(Headers([HeaderField("user-agent", "Zoiper 5")]), "127.0.0.2"))
