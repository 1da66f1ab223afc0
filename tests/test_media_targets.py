"""Tests for sbc.media.targets: the forbidden networks as `Networks`, and `checkTargets`."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st
from netaddr import IPSet
from twisted.trial.unittest import SynchronousTestCase

from sbc.interfaces import NotAcceptableError
from sbc.media.targets import MAX_ADDRESS_TEXT, Networks, _parse, checkTargets, networksOf, unmapped
from sbc.sip.sdp import parseSDP
from tests.media import PROFILE, phone

DEFAULTS = IPSet(
    ["127.0.0.1/32", "224.0.0.0/4", "0.0.0.0/8", "::/128", "ff00::/8", "10.1.0.0/16", "10.3.0.0/16"]
)
# Both ends of each IPv4 range and their neighbours, where an off-by-one would show.
EDGES = sorted(
    {
        min(2**32 - 1, max(0, end + step))
        for block in DEFAULTS.iter_ipranges()
        if block.version == 4
        for end in (block.first, block.last)
        for step in (-1, 0, 1)
    }
)

addresses = st.one_of(
    st.ip_addresses(v=4),
    st.ip_addresses(v=6),
    st.sampled_from(EDGES).map(ipaddress.IPv4Address),
)


class NetworksTests(SynchronousTestCase):
    @PROFILE
    @given(addresses)
    def test_sameAsIPSet(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
        """Networks answers exactly as the IPSet it is built from, for either family."""
        self.assertEqual(Networks(DEFAULTS).contains(ip), str(ip) in DEFAULTS)

    def test_edges(self) -> None:
        """Both ends of a range are in it; the addresses just outside are not."""
        networks = Networks(DEFAULTS)
        inside = ["10.1.0.0", "10.1.255.255", "127.0.0.1", "0.0.0.0", "::", "ff00::1"]
        outside = ["10.0.255.255", "10.2.0.0", "127.0.0.2", "1.0.0.0", "::1", "feff::1"]
        self.assertEqual([networks.contains(ipaddress.ip_address(a)) for a in inside], [True] * 6)
        self.assertEqual([networks.contains(ipaddress.ip_address(a)) for a in outside], [False] * 6)

    def test_empty(self) -> None:
        """No set, or an empty one, forbids nothing and is false."""
        for networks in (Networks(), Networks(IPSet()), networksOf(None)):
            self.assertFalse(networks)
            self.assertFalse(networks.contains(ipaddress.ip_address("127.0.0.1")))
        self.assertTrue(Networks(DEFAULTS))

    def test_networksOfKeeps(self) -> None:
        """networksOf hands back Networks as they are (no conversion per call) and converts an IPSet."""
        networks = Networks(DEFAULTS)
        self.assertIs(networksOf(networks), networks)
        self.assertTrue(networksOf(DEFAULTS).contains(ipaddress.ip_address("224.0.0.1")))

    def test_checkTargetsTakesEither(self) -> None:
        """checkTargets refuses a forbidden address whether it is given Networks or an IPSet."""
        sdp = parseSDP(phone("10.1.2.3", 4000))
        for forbidden in (DEFAULTS, Networks(DEFAULTS)):
            self.assertRaises(NotAcceptableError, checkTargets, sdp, forbidden, None)
        checkTargets(parseSDP(phone("10.2.2.3", 4000)), Networks(DEFAULTS), None)


class UnmappedTests(SynchronousTestCase):
    def test_cached(self) -> None:
        """A host asked about again is not parsed again: the same address object comes back."""
        first = unmapped("192.0.2.77")
        hits = _parse.cache_info().hits
        self.assertIs(unmapped("192.0.2.77"), first)
        self.assertEqual(_parse.cache_info().hits, hits + 1)

    def test_longHostNotCached(self) -> None:
        """Host text longer than any IP address is no address and is never cached: a peer's long
        hostnames cannot fill memory through the cache."""
        longest = "[0000:0000:0000:0000:0000:ffff:255.255.255.255%abcdefghijklmno]"
        self.assertLessEqual(len(longest), MAX_ADDRESS_TEXT)
        self.assertEqual(unmapped(longest), ipaddress.IPv4Address("255.255.255.255"))
        _parse.cache_clear()
        for index in range(100):
            self.assertIsNone(unmapped(f"{index}." + "h" * 60_000))
        self.assertEqual(_parse.cache_info().currsize, 0)

    def test_mappedAndNames(self) -> None:
        """An IPv4-mapped IPv6 address is its IPv4 address; a name is no address."""
        self.assertEqual(unmapped("[::ffff:10.0.0.53]"), ipaddress.IPv4Address("10.0.0.53"))
        self.assertIsNone(unmapped("sbc.example"))
        self.assertIsNone(unmapped(None))
