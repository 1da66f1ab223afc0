"""Tests for sbc.scanners: known scanners recognised by their User-Agent."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from sbc.scanners import KNOWN_SCANNERS, ScannerFilter


class ScannerFilterTests(SynchronousTestCase):
    """Scanners are matched by substring, case-insensitively; ordinary phones are not."""

    def test_knownScanners(self) -> None:
        """The tools' usual banners are recognised, whatever their case and version."""
        scanners = ScannerFilter()
        banners = ("friendly-scanner", "sipvicious 0.3.4", "SIPVicious", "sipcli/v1.8", "VaxSIPUserAgent/3.1")
        for agent in banners:
            self.assertTrue(scanners.isScanner(agent), agent)

    def test_phonesPass(self) -> None:
        """Real phones, test tools we use, and a missing header are not scanners."""
        scanners = ScannerFilter()
        for agent in ("baresip v2.9.0", "Linphone/5.0", "sipsak 0.9.8", "Yealink SIP-T46S", None, ""):
            self.assertFalse(scanners.isScanner(agent), agent)

    def test_extended(self) -> None:
        """Config may add patterns; the built-in list stays unless replaced."""
        scanners = ScannerFilter((*KNOWN_SCANNERS, "EvilDialer"))
        self.assertTrue(scanners.isScanner("evildialer 2.0"))
        self.assertTrue(scanners.isScanner("friendly-scanner"))
        self.assertEqual(scanners.patterns.count("sipvicious"), 1)
