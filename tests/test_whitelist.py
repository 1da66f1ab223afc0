"""Tests for sbc.config.whitelist: the files ops edit, and what a trunk's files may hold."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from netaddr import IPAddress, IPNetwork
from twisted.trial.unittest import SynchronousTestCase

from sbc.access import DEVICE_NETWORK, TRUNK, Peer
from sbc.config import Config, loadConfig
from sbc.config.errors import ConfigError
from sbc.config.table import Table
from sbc.config.whitelist import (
    Entry,
    checkTies,
    loadTrunkWhitelist,
    loadWhitelist,
    parseEntries,
    parseWhitelist,
    whitelistFiles,
)

PATH = Path("etc/whitelist/peer.txt")


class ParseWhitelistTests(SynchronousTestCase):
    def test_entries(self) -> None:
        """Addresses, IPv4 and IPv6 subnets and comments all parse."""
        addresses = parseWhitelist("# peer\n192.0.2.1\n198.51.100.0/24  # site B\n\n2001:db8::/32\n", PATH)
        self.assertIn(IPAddress("192.0.2.1"), addresses)
        self.assertIn(IPAddress("198.51.100.77"), addresses)
        self.assertIn(IPAddress("2001:db8::5"), addresses)
        self.assertNotIn(IPAddress("192.0.2.2"), addresses)
        self.assertNotIn(IPAddress("2001:db9::1"), addresses)

    def test_badLineNamed(self) -> None:
        """A bad entry raises an error naming the file and line."""
        with self.assertRaises(ConfigError) as caught:
            parseWhitelist("192.0.2.1\n# fine\nexample.com\n", PATH)
        self.assertEqual(caught.exception.line, 3)
        self.assertIn("etc/whitelist/peer.txt:3:", str(caught.exception))

    def test_twoOnALine(self) -> None:
        """Two entries on one line are refused rather than half read."""
        with self.assertRaises(ConfigError) as caught:
            parseWhitelist("192.0.2.1 192.0.2.2\n", PATH)
        self.assertEqual(caught.exception.line, 1)

    def test_missingFile(self) -> None:
        """A missing file is an error naming it."""
        with self.assertRaises(ConfigError) as caught:
            loadWhitelist(Path("/nonexistent/whitelist.txt"))
        self.assertIn("/nonexistent/whitelist.txt", str(caught.exception))


class HostBitsTests(SynchronousTestCase):
    def test_hostBitsRefused(self) -> None:
        """A CIDR with host bits set is refused, the message naming the network it should be."""
        with self.assertRaises(ConfigError) as caught:
            parseWhitelist("192.0.2.0/24\n203.0.113.5/24\n", PATH)
        self.assertEqual(caught.exception.line, 2)
        self.assertIn("203.0.113.0/24", str(caught.exception))
        self.assertIn("203.0.113.5/32", str(caught.exception))
        with self.assertRaises(ConfigError) as caught:
            parseWhitelist("2001:db8::1/32\n", PATH)
        self.assertIn("2001:db8::/32", str(caught.exception))

    def test_entriesKeepFileAndLine(self) -> None:
        """Each entry keeps its network (as a CIDR), file and line."""
        entries = parseEntries("# peer\n192.0.2.1\n\n198.51.100.0/24  # B\n", PATH)
        self.assertEqual(
            entries,
            (Entry(IPNetwork("192.0.2.1/32"), PATH, 2), Entry(IPNetwork("198.51.100.0/24"), PATH, 4)),
        )


class TrunkWhitelistTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.directory)

    def file(self, name: str, text: str) -> Path:
        path = self.directory / name
        path.write_text(text)
        return path


class LoadTrunkWhitelistTests(TrunkWhitelistTestCase):
    def test_severalFiles(self) -> None:
        """Entries of several files add up, each naming its own file and line."""
        a = self.file("a.txt", "192.0.2.0/24\n")
        b = self.file("b.txt", "# dr site\n198.51.100.0/24\n")
        entries = loadTrunkWhitelist((a, b), "peer", False)
        self.assertEqual([e.where for e in entries], [f"{a}:1", f"{b}:2"])

    def test_duplicateAcrossFiles(self) -> None:
        """A network listed twice in a trunk's files is refused, naming both lines."""
        a = self.file("a.txt", "192.0.2.0/24\n")
        b = self.file("b.txt", "198.51.100.0/24\n192.0.2.0/24\n")
        with self.assertRaises(ConfigError) as caught:
            loadTrunkWhitelist((a, b), "peer", False)
        self.assertEqual((caught.exception.path, caught.exception.line), (b, 2))
        self.assertIn(f"{a}:1", str(caught.exception))

    def test_duplicateInOneFile(self) -> None:
        """An address written twice (bare and as /32) in one file is a duplicate too."""
        a = self.file("a.txt", "192.0.2.1\n192.0.2.1/32\n")
        with self.assertRaises(ConfigError) as caught:
            loadTrunkWhitelist((a,), "peer", False)
        self.assertIn(
            f"{a}:2: 192.0.2.1/32 is listed twice for trunk peer, here and at {a}:1", str(caught.exception)
        )

    def test_anyRefused(self) -> None:
        """0.0.0.0/0 and ::/0 are refused unless the trunk says allow_any, and the error says how."""
        for network in ("0.0.0.0/0", "::/0"):
            a = self.file("a.txt", f"192.0.2.0/24\n{network}\n")
            with self.assertRaises(ConfigError) as caught:
                loadTrunkWhitelist((a,), "peer", False)
            self.assertEqual(caught.exception.line, 2)
            self.assertIn("allow_any = true in [trunks.peer]", str(caught.exception))
            self.assertEqual(len(loadTrunkWhitelist((a,), "peer", True)), 2)


class WhitelistFilesTests(TrunkWhitelistTestCase):
    def table(self, **data: object) -> Table:
        return Table(self.directory / "sbc.toml", "trunks.peer", dict(data))

    def test_oneOrMany(self) -> None:
        """``whitelist`` is one file name or a list of them, relative to the config; default NAME.txt."""
        base = self.directory
        self.assertEqual(whitelistFiles(self.table(whitelist="a.txt"), base, "peer"), (base / "a.txt",))
        self.assertEqual(
            whitelistFiles(self.table(whitelist=["a.txt", "b.txt"]), base, "peer"),
            (base / "a.txt", base / "b.txt"),
        )
        self.assertEqual(whitelistFiles(self.table(), base, "peer"), (base / "whitelist" / "peer.txt",))

    def test_bad(self) -> None:
        """An empty list, a non-string or the same file twice is an error naming the key."""
        for value in ([], ["a.txt", 3], ["a.txt", "a.txt"], 5):
            with self.assertRaises(ConfigError) as caught:
                whitelistFiles(self.table(whitelist=value), self.directory, "peer")
            self.assertEqual(caught.exception.key, "trunks.peer.whitelist")


class CheckTiesTests(SynchronousTestCase):
    def test_sameNetworkInTwoTrunks(self) -> None:
        """One network in two trunks is refused, naming both files and lines."""
        a = (Entry(IPNetwork("192.0.2.0/24"), Path("a.txt"), 3),)
        b = (
            Entry(IPNetwork("198.51.100.0/24"), Path("b.txt"), 1),
            Entry(IPNetwork("192.0.2.0/24"), Path("b.txt"), 2),
        )
        with self.assertRaises(ConfigError) as caught:
            checkTies({"one": a, "two": b})
        self.assertTrue(
            str(caught.exception).startswith(
                "b.txt:2: 192.0.2.0/24 is in trunk two here and in trunk one at a.txt:3"
            )
        )

    def test_overlapAllowed(self) -> None:
        """Overlapping but different networks in two trunks are fine: the longest prefix decides."""
        a = (Entry(IPNetwork("192.0.2.0/24"), Path("a.txt"), 1),)
        b = (Entry(IPNetwork("192.0.2.0/25"), Path("b.txt"), 1),)
        checkTies({"one": a, "two": b})


TRUNKS_TOML = """
[state]
directory = "state"

[[listen]]
transport = "udp"
host = "127.0.0.1"
port = 5060

[devices]
whitelist = "devices.txt"

[trunks.wide]
whitelist = ["wide-a.txt", "wide-b.txt"]
gateways = ["127.0.0.2:5080"]

[trunks.narrow]
whitelist = "narrow.txt"
gateways = ["127.0.0.9:5080", "sip.peer.example"]
"""


class TrunkWhitelistConfigTests(TrunkWhitelistTestCase):
    """What loadConfig makes of trunks' whitelists: several files, overlaps, ties, warnings."""

    def setUp(self) -> None:
        super().setUp()
        self.file("wide-a.txt", "127.0.0.0/29\n")
        self.file("wide-b.txt", "# second site\n127.0.1.0/24\n")
        self.file("narrow.txt", "127.0.0.3\n")
        self.file("devices.txt", "127.0.0.0/24\n")

    def load(self, toml: str = TRUNKS_TOML) -> Config:
        return loadConfig(self.file("sbc.toml", toml))

    def test_severalFilesAndLongestPrefix(self) -> None:
        """Both files of a trunk admit; the longest prefix picks the trunk; devices come last."""
        config = self.load()
        access = config.access
        self.assertEqual(access.classify("127.0.1.9"), Peer(TRUNK, "wide"))
        self.assertEqual(access.classify("127.0.0.2"), Peer(TRUNK, "wide"))
        self.assertEqual(access.classify("127.0.0.3"), Peer(TRUNK, "narrow"))
        self.assertEqual(access.classify("127.0.0.100"), DEVICE_NETWORK)
        found = access.why("127.0.1.9")
        assert found is not None
        self.assertEqual(found[1].where, f"{self.directory / 'wide-b.txt'}:2")
        found = access.why("127.0.0.100")
        assert found is not None
        self.assertEqual(found[1].where, f"{self.directory / 'devices.txt'}:1")

    def test_allFilesWatched(self) -> None:
        """Every whitelist file of every trunk triggers a reload when it changes."""
        watched = self.load().watchedFiles()
        for name in ("wide-a.txt", "wide-b.txt", "narrow.txt", "devices.txt"):
            self.assertIn(self.directory / name, watched)

    def test_tieRefused(self) -> None:
        """The same network in two trunks stops the load, naming both files and lines."""
        self.file("narrow.txt", "127.0.1.0/24\n")
        with self.assertRaises(ConfigError) as caught:
            self.load()
        text = str(caught.exception)
        self.assertIn(f"{self.directory / 'narrow.txt'}:1: 127.0.1.0/24 is in trunk narrow", text)
        self.assertIn(f"trunk wide at {self.directory / 'wide-b.txt'}:2", text)

    def test_allowAny(self) -> None:
        """``allow_any = true`` lets a trunk's file hold 0.0.0.0/0; without it the load stops."""
        self.file("narrow.txt", "0.0.0.0/0\n")
        with self.assertRaises(ConfigError) as caught:
            self.load()
        self.assertEqual((caught.exception.path, caught.exception.line), (self.directory / "narrow.txt", 1))
        config = self.load(TRUNKS_TOML + "allow_any = true\n")
        self.assertTrue(config.trunk("narrow").allowAny)  # type: ignore[union-attr]
        self.assertEqual(config.access.classify("203.0.113.1"), Peer(TRUNK, "narrow"))
        self.assertEqual(config.access.classify("127.0.0.2"), Peer(TRUNK, "wide"))

    def test_gatewayOutsideWhitelistWarns(self) -> None:
        """A gateway address outside its trunk's whitelist is a warning, not an error; names are unchecked."""
        config = self.load()
        (warning,) = config.warnings
        self.assertIn("trunk narrow: gateway 127.0.0.9:5080 is not in the trunk's whitelist", warning)
        self.assertIn(str(self.directory / "narrow.txt"), warning)
