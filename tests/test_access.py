"""Tests for sbc.access: the gate in front of the parser."""

from __future__ import annotations

from netaddr import IPSet
from twisted.trial.unittest import SynchronousTestCase

from sbc import access
from sbc.access import DEVICE_NETWORK, TRUNK, AccessPolicy, Peer

PEER = Peer(TRUNK, "peer")
OTHER = Peer(TRUNK, "other")


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
