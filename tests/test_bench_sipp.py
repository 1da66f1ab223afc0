"""Tests for `bench.sipp`: reading what SIPp wrote."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from bench.sipp import Sipp, percentile


def line(epoch: float, direction: str, callId: str, cseq: str, first: str) -> str:
    """One row of SIPp's -trace_shortmsg file."""
    return f"2026-11-26\t12:00:00.000000\t{epoch:.6f}\t{direction}\t{callId}\tCSeq:{cseq}\t{first}\n"


class ExactLatenciesTests(SynchronousTestCase):
    def setUp(self) -> None:
        directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, directory)
        self.sipp = Sipp([], "uac.xml", directory)

    def test_inviteTo200(self) -> None:
        """The first INVITE sent to the first 200 for it, in ms; other messages do not count."""
        (self.sipp.directory / "messages.csv").write_text(
            line(100.000000, "S", "a", "1 INVITE", "INVITE sip:1@127.0.0.1 SIP/2.0")
            + line(100.000900, "R", "a", "1 INVITE", "SIP/2.0 100 Trying")
            + line(100.500000, "S", "a", "1 INVITE", "INVITE sip:1@127.0.0.1 SIP/2.0")  # resent
            + line(100.501250, "R", "a", "1 INVITE", "SIP/2.0 200 OK")
            + line(100.502000, "R", "a", "1 INVITE", "SIP/2.0 200 OK")  # resent by the far end
            + line(100.600000, "S", "a", "2 BYE", "BYE sip:1@127.0.0.1 SIP/2.0")
            + line(100.600300, "R", "a", "2 BYE", "SIP/2.0 200 OK")
            + line(101.000000, "S", "b", "1 INVITE", "INVITE sip:1@127.0.0.1 SIP/2.0")
            + line(101.002000, "R", "b", "1 INVITE", "SIP/2.0 200 OK")
            + line(102.000000, "S", "c", "1 INVITE", "INVITE sip:1@127.0.0.1 SIP/2.0")  # never answered
            + "a torn last li"
        )
        latencies = sorted(self.sipp.exactLatencies())
        self.assertEqual(len(latencies), 2)
        self.assertAlmostEqual(latencies[0], 2.0, places=3)
        self.assertAlmostEqual(latencies[1], 501.25, places=3)

    def test_noTrace(self) -> None:
        """No trace file: no latencies (and no percentile), not an error."""
        self.assertEqual(self.sipp.exactLatencies(), [])
        self.assertIsNone(percentile([], 0.99))
