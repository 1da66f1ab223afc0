"""Tests for sbc.config's [bans] flood and scanner keys (loaded by sbc.config.registrar.loadBans)."""

from __future__ import annotations

from pathlib import Path

from sbc.access import BanSettings
from sbc.config import loadConfig
from tests.fakes import DEMO_TOML, ConfigTestCase


class FloodConfigTests(ConfigTestCase):
    def test_defaults(self) -> None:
        """Without the keys, the rate, burst, ban time and extra scanners are BanSettings' defaults."""
        bans = self.load(DEMO_TOML).bans
        self.assertEqual(
            (bans.requestRate, bans.requestBurst, bans.requestBanDuration, bans.scanners),
            (BanSettings.requestRate, BanSettings.requestBurst, BanSettings.requestBanDuration, ()),
        )

    def test_keys(self) -> None:
        """request_rate, request_burst, request_ban_duration and scanners are read as given."""
        bans = self.load(
            DEMO_TOML
            + "\n[bans]\nrequest_rate = 2.5\nrequest_burst = 9\nrequest_ban_duration = 120\n"
            + 'scanners = [" EvilDialer ", "x-probe"]\n'
        ).bans
        self.assertEqual((bans.requestRate, bans.requestBurst, bans.requestBanDuration), (2.5, 9, 120.0))
        self.assertEqual(bans.scanners, ("EvilDialer", "x-probe"))

    def test_zeroRateAllowed(self) -> None:
        """request_rate = 0 is accepted: it turns the flood limit off."""
        self.assertEqual(self.load(DEMO_TOML + "\n[bans]\nrequest_rate = 0\n").bans.requestRate, 0.0)

    def test_badValues(self) -> None:
        """A negative rate, a zero burst or ban time, and an empty or non-string scanner are refused."""
        for line, key in (
            ("request_rate = -1", "bans.request_rate"),
            ("request_burst = 0", "bans.request_burst"),
            ("request_ban_duration = 0", "bans.request_ban_duration"),
            ('scanners = [""]', "bans.scanners"),
            ("scanners = [1]", "bans.scanners"),
            ('scanners = "sipvicious"', "bans.scanners"),
        ):
            error = self.error(DEMO_TOML + f"\n[bans]\n{line}\n")
            self.assertEqual(error.key, key, line)

    def test_shippedConfigLoads(self) -> None:
        """The shipped etc/sbc.toml documents and sets every flood key."""
        bans = loadConfig(Path(__file__).resolve().parents[1] / "etc" / "sbc.toml").bans
        self.assertEqual((bans.requestRate, bans.requestBurst, bans.requestBanDuration), (20.0, 60, 60.0))
