"""Tests for sbc.media.quota: relay ports held per trunk and per account."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from sbc.media.ports import PortPoolExhaustedError
from sbc.media.quota import PortOwner, PortQuota, PortQuotaExceededError

TRUNK = PortOwner("trunk:demo", 8)
ALICE = PortOwner("account:alice@example.com", 4)


class PortQuotaTests(SynchronousTestCase):
    def test_limitPerOwner(self) -> None:
        """An owner may hold up to its limit; one port more is refused and changes nothing."""
        quota = PortQuota()
        quota.charge(TRUNK, 4)
        quota.charge(TRUNK, 4)
        error = self.assertRaises(PortQuotaExceededError, quota.charge, TRUNK, 1)
        self.assertIn("trunk:demo", str(error))
        self.assertEqual((quota.heldBy("trunk:demo"), quota.total), (8, 8))

    def test_ownersApart(self) -> None:
        """One owner at its limit does not stop another, nor calls charged to nobody."""
        quota = PortQuota()
        quota.charge(ALICE, 4)
        quota.charge(TRUNK, 8)
        quota.charge(None, 100)
        self.assertEqual((quota.heldBy(ALICE.key), quota.heldBy(TRUNK.key), quota.total), (4, 8, 112))

    def test_release(self) -> None:
        """Released ports may be charged again; an owner holding nothing is forgotten."""
        quota = PortQuota()
        quota.charge(ALICE, 4)
        quota.release(ALICE, 4)
        self.assertEqual((quota.held, quota.total), ({}, 0))
        quota.charge(ALICE, 4)
        self.assertEqual(quota.heldBy(ALICE.key), 4)

    def test_isPoolExhaustion(self) -> None:
        """Exceeding a quota is a kind of pool exhaustion: the call layer answers 503 for both."""
        self.assertTrue(issubclass(PortQuotaExceededError, PortPoolExhaustedError))
