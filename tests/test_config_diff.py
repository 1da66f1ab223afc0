"""Tests for sbc.config.diff: what a reload changed about the trunks, as the log shows it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from netaddr import IPNetwork, IPSet
from twisted.trial.unittest import SynchronousTestCase

from sbc.config import Refer
from sbc.config.diff import registrantChanges, trunkChanges
from sbc.config.registrants import Registrant
from sbc.prefixes import Entry
from tests.calls import callConfig, withTrunk


def _entries(*networks: str) -> tuple[Entry, ...]:
    return tuple(Entry(IPNetwork(n), Path("demo.txt"), line) for line, n in enumerate(networks, 1))


class TrunkChangesTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.config = callConfig()

    def test_nothing(self) -> None:
        """The same trunks give no lines."""
        self.assertEqual(trunkChanges(self.config, callConfig()), [])

    def test_networks(self) -> None:
        """Networks added and removed are listed per trunk, in file order."""
        old = withTrunk(self.config, "demo", whitelistEntries=_entries("127.0.0.2/32", "192.0.2.0/24"))
        new = withTrunk(
            self.config, "demo", whitelistEntries=_entries("127.0.0.2/32", "198.51.100.0/24", "::1/128")
        )
        self.assertEqual(
            trunkChanges(old, new),
            [
                "trunk demo: networks added: 198.51.100.0/24, ::1/128",
                "trunk demo: networks removed: 192.0.2.0/24",
            ],
        )

    def test_networksOfBareSet(self) -> None:
        """A trunk built without entries is compared by its address set."""
        new = withTrunk(
            self.config, "demo", whitelist=IPSet(["127.0.0.2/32", "127.0.0.3/32", "127.0.0.9/32"])
        )
        self.assertEqual(trunkChanges(self.config, new), ["trunk demo: networks added: 127.0.0.9/32"])

    def test_settings(self) -> None:
        """Every changed setting shows by its config key, old and new value."""
        new = withTrunk(
            self.config, "demo", failoverTimeout=5.0, refer=Refer.RELAY, passHeaders=("x-a", "x-b")
        )
        self.assertEqual(
            trunkChanges(self.config, new),
            [
                "trunk demo: failover_timeout 2.0 -> 5.0",
                "trunk demo: pass_headers [] -> [x-a, x-b]",
                "trunk demo: refer reject -> relay",
            ],
        )

    def test_files(self) -> None:
        """A change of whitelist files shows the old and new lists."""
        new = withTrunk(self.config, "demo", whitelistPaths=(Path("a.txt"), Path("b.txt")))
        self.assertEqual(
            trunkChanges(self.config, new),
            ["trunk demo: whitelist_paths [etc/whitelist/demo.txt] -> [a.txt, b.txt]"],
        )

    def test_nestedSettings(self) -> None:
        """A setting that is itself a group (the limits) shows each changed member by a dotted key."""
        demo = self.config.trunk("demo")
        assert demo is not None
        new = withTrunk(self.config, "demo", limits=replace(demo.limits, maxCalls=10, maxCps=5.0))
        self.assertEqual(
            trunkChanges(self.config, new),
            ["trunk demo: limits.max_cps None -> 5.0", "trunk demo: limits.max_calls None -> 10"],
        )

    def test_trunksAddedAndRemoved(self) -> None:
        """A trunk added lists its networks; a removed one says its calls go on."""
        demo = self.config.trunk("demo")
        assert demo is not None
        peer = replace(demo, name="peer", whitelistEntries=_entries("192.0.2.0/24"))
        new = replace(self.config, trunks=(peer,))
        self.assertEqual(
            trunkChanges(self.config, new),
            [
                "trunk demo removed (its calls in progress go on to their end)",
                "trunk peer added: 192.0.2.0/24",
            ],
        )


class RegistrantChangesTests(SynchronousTestCase):
    def test_addedRemovedChanged(self) -> None:
        """Registrants added, removed and changed are named, with the keys that changed; never a
        password's value."""
        peer = Registrant(
            name="peer-b", registrar="sip:127.0.0.5", aor="sip:a@b.example", authUser="a", password="old-pw"
        )
        gone = replace(peer, name="gone")
        old = replace(callConfig(), registrants=(peer, gone))
        new = replace(
            callConfig(),
            registrants=(replace(peer, password="new-pw", expires=900), replace(peer, name="new")),
        )
        lines = registrantChanges(old, new)
        self.assertEqual(
            lines,
            [
                "registrant gone removed (it unregisters)",
                "registrant peer-b changed: password, expires",
                "registrant new added",
            ],
        )
        self.assertNotIn("pw", "\n".join(lines))
        self.assertEqual(registrantChanges(old, old), [])
