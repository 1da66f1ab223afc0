"""Tests for sbc.addresses: IPv6 hosts bracketed in SIP text and unbracketed for sockets."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from sbc.addresses import bracket, hostport, unbracket


class AddressTests(SynchronousTestCase):
    """Brackets go on IPv6 hosts only, once, and come off again."""

    def test_bracket(self) -> None:
        """An IPv6 host gains brackets once; an IPv4 host or a name is left alone."""
        self.assertEqual(bracket("2001:db8::1"), "[2001:db8::1]")
        self.assertEqual(bracket("[2001:db8::1]"), "[2001:db8::1]")
        self.assertEqual(bracket("127.0.0.1"), "127.0.0.1")
        self.assertEqual(bracket("sbc.example"), "sbc.example")

    def test_unbracket(self) -> None:
        """Brackets come off an IPv6 reference; anything else is returned as it is."""
        self.assertEqual(unbracket("[::1]"), "::1")
        self.assertEqual(unbracket("::1"), "::1")
        self.assertEqual(unbracket("127.0.0.1"), "127.0.0.1")

    def test_hostport(self) -> None:
        """host:port, with the IPv6 host in brackets so the port stays readable."""
        self.assertEqual(hostport(("::1", 5060)), "[::1]:5060")
        self.assertEqual(hostport(("127.0.0.2", 5061)), "127.0.0.2:5061")
