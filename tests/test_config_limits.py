"""Tests for sbc.config.limits: a trunk's max_cps, cps_burst, max_calls and accept keys."""

from __future__ import annotations

from pathlib import Path

from sbc.config.limits import CallLimits
from tests.fakes import DEMO_TOML, ConfigTestCase

ETC = Path(__file__).resolve().parents[1] / "etc"
TRUNK = '[trunks.demo]\nwhitelist = "whitelist/demo.txt"\n'


def withKeys(keys: str) -> str:
    """The demo config with ``keys`` added to its trunk's table."""
    assert TRUNK in DEMO_TOML
    return DEMO_TOML.replace(TRUNK, TRUNK + keys)


class CallLimitsConfigTests(ConfigTestCase):
    def limits(self, keys: str) -> CallLimits:
        trunk = self.load(withKeys(keys)).trunk("demo")
        assert trunk is not None
        return trunk.limits

    def test_unlimitedByDefault(self) -> None:
        """A trunk without limit keys has no limits: no rate, no call count, any number."""
        limits = self.limits("")
        self.assertEqual((limits.cps, limits.maxCalls, limits.accept), (None, None, None))
        self.assertTrue(limits.accepts("+19995550000"))

    def test_keysRead(self) -> None:
        """max_cps, cps_burst, max_calls and accept are read (separators dropped from numbers)."""
        keys = 'max_cps = 2.5\ncps_burst = 7\nmax_calls = 30\naccept = ["+1 555*", "+15550001"]\n'
        limits = self.limits(keys)
        self.assertEqual(limits.cps, (2.5, 7))
        self.assertEqual(limits.maxCalls, 30)
        self.assertEqual(limits.accept, ("+1555*", "+15550001"))

    def test_burstDefaultsToOneSecond(self) -> None:
        """Without cps_burst the bucket holds one second's worth, and at least one call."""
        self.assertEqual(self.limits("max_cps = 10\n").cps, (10, 10))
        self.assertEqual(self.limits("max_cps = 0.2\n").cps, (0.2, 1))

    def test_ranges(self) -> None:
        """Limits out of range are refused, naming the trunk's key."""
        for keys, key in [
            ("max_cps = 0\n", "max_cps"),
            ("max_cps = -1\n", "max_cps"),
            ('max_cps = "10"\n', "max_cps"),
            ("max_cps = 10\ncps_burst = 0.5\n", "cps_burst"),
            ("max_calls = 0\n", "max_calls"),
            ("max_calls = 1.5\n", "max_calls"),
        ]:
            error = self.error(withKeys(keys))
            self.assertEqual(error.key, f"trunks.demo.{key}", keys)
            self.assertIn("sbc.toml", str(error))

    def test_burstNeedsRate(self) -> None:
        """cps_burst without max_cps is refused."""
        error = self.error(withKeys("cps_burst = 5\n"))
        self.assertEqual(error.key, "trunks.demo.cps_burst")
        self.assertIn("max_cps", error.reason)

    def test_badAcceptEntries(self) -> None:
        """accept entries must be numbers or prefixes ending in *; an empty list is refused too."""
        for value in ('["+1*555"]', '["alice"]', "[5550001]", '[""]', "[]", '"+1555*"'):
            error = self.error(withKeys(f"accept = {value}\n"))
            self.assertEqual(error.key, "trunks.demo.accept", value)

    def test_shippedExamplesLoad(self) -> None:
        """The commented limit examples of etc/sbc.toml load when uncommented."""
        text = (ETC / "sbc.toml").read_text()
        start = text.index("#[registrants.")  # a registrant's own examples (tests/test_config_registrants.py)
        text = text[:start] + text[text.index("\n\n", start) :]
        examples = [line for line in text.splitlines() if line.startswith(("#max_c", "#cps_b", "#accept"))]
        self.assertEqual(len(examples), 4)
        limits = self.limits("".join(line[1:] + "\n" for line in examples))
        self.assertEqual((limits.cps, limits.maxCalls), ((10, 20), 100))


class AcceptsTests(ConfigTestCase):
    def test_exactAndPrefix(self) -> None:
        """An exact entry matches only itself; a prefix entry every number starting with it."""
        limits = CallLimits(accept=("+1555*", "+4930123"))
        self.assertTrue(limits.accepts("+15559876"))
        self.assertTrue(limits.accepts("+4930123"))
        self.assertFalse(limits.accepts("+49301234"))
        self.assertFalse(limits.accepts("+1666"))

    def test_noNumber(self) -> None:
        """A Request-URI user that is no number is not accepted by a list (it is without one)."""
        self.assertFalse(CallLimits(accept=("+*",)).accepts(None))
        self.assertTrue(CallLimits().accepts(None))
