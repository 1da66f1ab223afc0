"""Tests for sbc.config.whitelist: the files ops edit."""

from __future__ import annotations

from pathlib import Path

from netaddr import IPAddress
from twisted.trial.unittest import SynchronousTestCase

from sbc.config.errors import ConfigError
from sbc.config.whitelist import loadWhitelist, parseWhitelist

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
