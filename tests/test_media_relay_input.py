"""Tests for sbc.media.relay against SDP numbers that are not ASCII digits."""

from __future__ import annotations

from tests.media import PHONE_A, RelayTestCase, phone


class RtcpAttributeTests(RelayTestCase):
    def test_rtcpPortNotAsciiDigits(self) -> None:
        """An a=rtcp port of non-ASCII digits (U+00B2) is ignored, not an error that fails the offer."""
        offer = self.offer(phone(*PHONE_A, "a=rtcp:\xb2", username="alice"))
        self.assertEqual(len(offer.media), 1)
