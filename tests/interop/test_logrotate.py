"""
Tests for contrib/logrotate/sbc with the real logrotate: CDRs written by sbc.calls.cdr keep their lines
through a rotation, and the next CDR goes to a new file.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sbc.calls.cdr import CDR, CDRWriter
from sbc.calls.parties import Party, PartyKind

from .tools import requireTool

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "contrib" / "logrotate" / "sbc"
INSTALLED_PATH = "/var/lib/sbc/cdr.jsonl"
RELOAD = "systemctl reload sbc.service >/dev/null 2>&1 || true"


def record(callId: str) -> CDR:
    return CDR(
        callId=callId,
        aLeg=Party(PartyKind.TRUNK, "demo"),
        bLeg=None,
        fromUri="sip:a@example.com",
        toUri="sip:b@example.com",
        start=1.0,
        answer=None,
        end=2.0,
        status=404,
        disposition="rejected",
        releasedBy="sbc",
    )


class LogrotateTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.logrotate = requireTool("logrotate")
        self.directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.directory)
        self.state = self.directory / "state"
        self.state.mkdir(mode=0o700)
        self.cdrs = self.state / "cdr.jsonl"
        self.hup = self.directory / "hup"
        text = SHIPPED.read_text()
        self.assertIn(INSTALLED_PATH, text)
        self.assertIn(RELOAD, text)
        self.assertNotIn("\n    copytruncate", text)
        # The shipped file with this test's paths, and a marker in place of the signal.
        conf = self.directory / "sbc.logrotate"
        conf.write_text(text.replace(INSTALLED_PATH, str(self.cdrs)).replace(RELOAD, f"touch {self.hup}"))
        conf.chmod(0o644)
        self.conf = conf

    def rotate(self) -> None:
        subprocess.run(
            [self.logrotate, "--force", "--state", str(self.directory / "status"), str(self.conf)],
            check=True,
            capture_output=True,
            timeout=30,
        )

    def callIds(self, path: Path) -> list[str]:
        return [json.loads(line)["callId"] for line in path.read_text().splitlines()]

    def test_rotationFollowed(self) -> None:
        """After logrotate renames the CDR file, nothing is lost and the next CDR starts a new file."""
        clock = Clock()
        writer = CDRWriter(self.cdrs, clock=clock)
        self.addCleanup(writer.close)
        writer.write(record("before"))
        self.rotate()
        self.assertTrue(self.hup.exists())  # the postrotate script ran
        (rotated,) = [p for p in self.state.iterdir() if p != self.cdrs]
        self.assertFalse(self.cdrs.exists())  # nocreate: sbc makes the new file itself
        clock.advance(1)
        writer.write(record("after"))
        self.assertEqual(self.callIds(rotated), ["before"])
        self.assertEqual(self.callIds(self.cdrs), ["after"])
