"""Tests for sbc.config.networks: device networks with their own digest algorithms, longest first."""

from __future__ import annotations

from netaddr import IPSet
from twisted.trial.unittest import SynchronousTestCase

from sbc.config.networks import DeviceNetwork, NetworkMap

WIDE = DeviceNetwork("wide", ("SHA-256",), IPSet(["10.0.0.0/8", "2001:db8::/32"]))
NARROW = DeviceNetwork("narrow", ("MD5",), IPSet(["10.1.2.0/24"]))
PHONE = DeviceNetwork("phone", ("SHA-256", "MD5"), IPSet(["10.1.2.3"]))


class NetworkMapTests(SynchronousTestCase):
    def test_longestPrefix(self) -> None:
        """The network with the longest prefix holding the source wins, whatever the order given."""
        for networks in [(WIDE, NARROW, PHONE), (PHONE, NARROW, WIDE)]:
            found = NetworkMap(networks)
            self.assertEqual(found.lookup("10.1.2.3"), PHONE)
            self.assertEqual(found.lookup("10.1.2.4"), NARROW)
            self.assertEqual(found.lookup("10.9.9.9"), WIDE)

    def test_outside(self) -> None:
        """A source in no network, or not an address, has none."""
        found = NetworkMap((WIDE, NARROW))
        self.assertIsNone(found.lookup("192.0.2.1"))
        self.assertIsNone(found.lookup("not-an-address"))
        self.assertIsNone(NetworkMap().lookup("10.1.2.3"))

    def test_ipv6(self) -> None:
        """IPv6 sources match IPv6 prefixes, zone index dropped; v4-mapped sources match IPv4 ones."""
        found = NetworkMap((WIDE, NARROW))
        self.assertEqual(found.lookup("2001:db8::1%eth0"), WIDE)
        self.assertEqual(found.lookup("::ffff:10.1.2.9"), NARROW)
