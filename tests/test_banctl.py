"""Tests for sbc.ops.banctl: ``sbc-ctl bans`` lists the ban table, ``sbc-ctl unban IP`` lifts a ban."""

from __future__ import annotations

import io
import shutil
import sys
import tempfile
from pathlib import Path

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sbc.access import Bans, BanSettings
from sbc.ops import ctl
from sbc.ops.banctl import coveringKeys, formatBans
from sbc.ops.state import BanTable, openDatabase
from tests.fakes import writeConfig

# Far in the future (2096), so that the tests need no clock: sbc-ctl reads the wall clock.
LATER = 4_000_000_000.0


class FormatBansTests(SynchronousTestCase):
    def test_lines(self) -> None:
        """Each ban in force is one line: source, end in UTC, seconds left, reason; soonest end first."""
        lines = formatBans({"192.0.2.2": (1100.0, "flood"), "192.0.2.1": (1050.0, "5 failed")}, 1000.0)
        self.assertEqual(
            lines,
            [
                f"{'192.0.2.1':<24} until 1970-01-01 00:17:30 UTC (50s left)  5 failed",
                f"{'192.0.2.2':<24} until 1970-01-01 00:18:20 UTC (100s left)  flood",
            ],
        )

    def test_endedLeftOut(self) -> None:
        """A ban that has ended is not listed."""
        self.assertEqual(formatBans({"192.0.2.1": (1000.0, "old")}, 1000.0), [])


class CoveringKeysTests(SynchronousTestCase):
    def test_covering(self) -> None:
        """An address is covered by its own ban and by its IPv6 network's; a network covers bans inside it."""
        keys = ["192.0.2.1", "192.0.2.9", "2001:db8::/64", "2001:db8:1::/64"]
        self.assertEqual(coveringKeys("192.0.2.1", keys), ["192.0.2.1"])
        self.assertEqual(coveringKeys("2001:db8::5", keys), ["2001:db8::/64"])
        self.assertEqual(coveringKeys("192.0.2.0/28", keys), ["192.0.2.1", "192.0.2.9"])

    def test_invalid(self) -> None:
        """Something that is no address nor network is a ValueError."""
        self.assertRaises(ValueError, coveringKeys, "not-an-ip", [])


class BanCommandTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.directory)
        self.config = writeConfig(self.directory)

    def table(self) -> BanTable:
        connection = openDatabase(self.directory / "state" / "sbc.sqlite")
        self.addCleanup(connection.close)
        return BanTable(connection)

    def sbcCtl(self, *argv: str) -> tuple[int, str, str]:
        """Run sbc-ctl with the test's config; returns (status, stdout, stderr)."""
        out, err = io.StringIO(), io.StringIO()
        self.patch(sys, "stdout", out)
        self.patch(sys, "stderr", err)
        status = ctl.main([*argv, "--config", str(self.config)])
        return status, out.getvalue(), err.getvalue()

    def test_listBans(self) -> None:
        """bans lists each ban in force with its reason; ended ones are left out."""
        table = self.table()
        table.save("192.0.2.1", LATER, "request rate: more than 20/s (burst 60)")
        table.save("2001:db8::/64", LATER + 1, "5 failed authentications as 'alice'")
        table.save("192.0.2.3", 1.0, "long over")
        status, out, err = self.sbcCtl("bans")
        self.assertEqual((status, err), (0, ""))
        lines = out.splitlines()
        self.assertEqual(len(lines), 2, out)
        self.assertRegex(
            lines[0], r"^192\.0\.2\.1 +until 2096-\S+ \S+ UTC \(\d+s left\)  request rate: more than 20/s"
        )
        self.assertRegex(lines[1], r"^2001:db8::/64 .* 5 failed authentications as 'alice'$")

    def test_noDatabase(self) -> None:
        """Without a state database there are no bans, and none is created."""
        status, out, _ = self.sbcCtl("bans")
        self.assertEqual(status, 0)
        self.assertIn("no bans", out)
        self.assertFalse((self.directory / "state" / "sbc.sqlite").exists())

    def test_badConfig(self) -> None:
        """A config that does not load is reported, with status 1."""
        self.config.write_text("[sip\n")
        status, _, err = self.sbcCtl("bans")
        self.assertEqual(status, 1)
        self.assertIn("sbc.toml", err)

    def test_unban(self) -> None:
        """unban deletes the ban covering the address (its IPv6 network's too) and says so."""
        table = self.table()
        table.save("192.0.2.1", LATER, "flood")
        table.save("2001:db8::/64", LATER, "guesses")
        table.save("192.0.2.2", LATER, "flood")
        status, out, _ = self.sbcCtl("unban", "2001:db8::7")
        self.assertEqual(status, 0)
        self.assertIn("lifted the ban on 2001:db8::/64 (guesses)", out)
        status, out, _ = self.sbcCtl("unban", "192.0.2.1")
        self.assertEqual(status, 0)
        self.assertEqual(sorted(table.load()), ["192.0.2.2"])

    def test_unbanNothing(self) -> None:
        """unban of an address no ban covers fails with status 1 and changes nothing."""
        table = self.table()
        table.save("192.0.2.2", LATER, "flood")
        status, _, err = self.sbcCtl("unban", "192.0.2.1")
        self.assertEqual(status, 1)
        self.assertIn("no ban on 192.0.2.1", err)
        self.assertEqual(list(table.load()), ["192.0.2.2"])

    def test_unbanInvalid(self) -> None:
        """unban of something that is not an address is a usage error (status 2)."""
        status, _, err = self.sbcCtl("unban", "example.com")
        self.assertEqual(status, 2)
        self.assertIn("not an IP address", err)

    def test_runningServerForgets(self) -> None:
        """A running server's Bans on the same database lets the source in after its next sync."""
        clock = Clock()
        clock.advance(LATER - 1000)
        bans = Bans(clock, BanSettings(), self.table())
        bans.ban("192.0.2.1", 600, "request rate")
        status, _, _ = self.sbcCtl("unban", "192.0.2.1")
        self.assertEqual(status, 0)
        self.assertTrue(bans.banned("192.0.2.1"))  # until it syncs
        bans.sync()
        self.assertFalse(bans.banned("192.0.2.1"))
