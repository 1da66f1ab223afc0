"""Tests for sbc.prefixes: whitelist entries and the longest-prefix table."""

from __future__ import annotations

from pathlib import Path

from netaddr import IPAddress, IPNetwork
from twisted.trial.unittest import SynchronousTestCase

from sbc.prefixes import Entry, PrefixTable


class EntryTests(SynchronousTestCase):
    def test_where(self) -> None:
        """An entry names its file and line; one from no file says so."""
        entry = Entry(IPNetwork("192.0.2.0/24"), Path("etc/whitelist/peer.txt"), 7)
        self.assertEqual(entry.where, "etc/whitelist/peer.txt:7")
        self.assertEqual(str(entry), "192.0.2.0/24 (etc/whitelist/peer.txt:7)")
        self.assertEqual(Entry(IPNetwork("192.0.2.0/24"), Path("x.txt")).where, "x.txt")
        self.assertEqual(Entry(IPNetwork("192.0.2.0/24")).where, "no file")


class PrefixTableTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.table = PrefixTable(
            [
                (IPNetwork("192.0.2.0/24"), "wide"),
                (IPNetwork("192.0.2.128/25"), "narrow"),
                (IPNetwork("192.0.2.200/32"), "host"),
                (IPNetwork("2001:db8::/32"), "six"),
                (IPNetwork("2001:db8:1::/48"), "six-narrow"),
            ]
        )

    def test_longestPrefix(self) -> None:
        """The longest prefix holding the address wins, whatever the order given."""
        self.assertEqual(self.table.lookup(IPAddress("192.0.2.1")), "wide")
        self.assertEqual(self.table.lookup(IPAddress("192.0.2.129")), "narrow")
        self.assertEqual(self.table.lookup(IPAddress("192.0.2.200")), "host")
        self.assertEqual(self.table.lookup(IPAddress("2001:db8::1")), "six")
        self.assertEqual(self.table.lookup(IPAddress("2001:db8:1::1")), "six-narrow")

    def test_outside(self) -> None:
        """An address outside every network finds nothing, IPv4 and IPv6 kept apart."""
        self.assertIsNone(self.table.lookup(IPAddress("192.0.3.1")))
        self.assertIsNone(self.table.lookup(IPAddress("2001:db9::1")))
        self.assertIsNone(self.table.lookup(IPAddress("::c000:201")))  # 192.0.2.1's bits, as IPv6
        self.assertIsNone(PrefixTable([]).lookup(IPAddress("192.0.2.1")))

    def test_firstWins(self) -> None:
        """The same network given twice keeps its first value."""
        table = PrefixTable([(IPNetwork("192.0.2.0/24"), "a"), (IPNetwork("192.0.2.0/24"), "b")])
        self.assertEqual(table.lookup(IPAddress("192.0.2.9")), "a")

    def test_everything(self) -> None:
        """A /0 holds every address of its family, below every longer prefix."""
        table = PrefixTable([(IPNetwork("0.0.0.0/0"), "any"), (IPNetwork("192.0.2.0/24"), "peer")])
        self.assertEqual(table.lookup(IPAddress("203.0.113.1")), "any")
        self.assertEqual(table.lookup(IPAddress("192.0.2.1")), "peer")
        self.assertIsNone(table.lookup(IPAddress("2001:db8::1")))
