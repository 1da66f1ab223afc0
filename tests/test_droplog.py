"""Tests for sbc.droplog: at most one line per source and minute, in a bounded table."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from twisted.internet.task import Clock
from twisted.logger import LogLevel
from twisted.trial.unittest import SynchronousTestCase

from sbc.config import loadConfig
from sbc.droplog import DropLog
from sbc.server import SIPServer
from tests.fakes import LogRecorder, RecordingTransport, writeConfig


class DropLogTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.drops = DropLog(self.clock, interval=60.0, maxSources=3)
        self.out = LogRecorder()

    def info(self, host: str) -> bool:
        return self.drops.info(self.out.log, host, "from {source}")

    def test_oneLinePerSourceAndMinute(self) -> None:
        """A source gets one line a minute; the next one says how many were held back."""
        self.assertTrue(self.info("192.0.2.1"))
        for _ in range(9):
            self.assertFalse(self.info("192.0.2.1"))
        self.clock.advance(60)
        self.assertTrue(self.info("192.0.2.1"))
        self.assertEqual(len(self.out.events), 2)
        self.assertEqual(self.out.events[1]["held"], 9)
        self.assertEqual(self.drops.suppressed, 9)

    def test_sourcesIndependent(self) -> None:
        """One noisy source does not silence another."""
        self.assertTrue(self.info("192.0.2.1"))
        self.assertTrue(self.info("192.0.2.2"))

    def test_levelsHaveTheirOwnMinute(self) -> None:
        """Info lines and drops from a source do not use up the minute of its first traceback."""
        self.drops.drop("junk", ("192.0.2.1", 5060))
        self.assertTrue(self.info("192.0.2.1"))
        self.assertFalse(self.info("192.0.2.1"))
        try:
            raise ZeroDivisionError("boom")
        except ZeroDivisionError:
            self.assertTrue(self.drops.failure(self.out.log, "192.0.2.1", "boom"))
            self.assertFalse(self.drops.failure(self.out.log, "192.0.2.1", "boom"))
        levels = [event["log_level"] for event in self.out.events]
        self.assertEqual(levels, [LogLevel.info, LogLevel.critical])
        self.assertEqual(self.drops.suppressed, 2)
        self.flushLoggedErrors(ZeroDivisionError)

    def test_infoFloodLeavesFailuresRoom(self) -> None:
        """Info lines from more sources than the table holds leave the tracebacks' table alone."""
        for i in range(10):
            self.info(f"192.0.2.{i}")
        try:
            raise ZeroDivisionError("boom")
        except ZeroDivisionError:
            for i in range(3):
                self.assertTrue(self.drops.failure(self.out.log, f"198.51.100.{i}", "boom"))
        self.flushLoggedErrors(ZeroDivisionError)

    def test_tableBounded(self) -> None:
        """Past the table's size, new sources share one line a minute; expired ones make room."""
        for i in range(3):
            self.assertTrue(self.info(f"192.0.2.{i}"))
        self.assertTrue(self.info("198.51.100.1"))  # the shared overflow line
        self.assertFalse(self.info("198.51.100.2"))
        self.assertLessEqual(len(self.drops._levels[LogLevel.info]), 4)
        self.clock.advance(61)
        self.assertTrue(self.info("198.51.100.3"))
        self.assertLessEqual(len(self.drops._levels[LogLevel.info]), 3)

    def test_failureLevel(self) -> None:
        """A traceback is logged as critical, with the failure attached."""
        try:
            raise ZeroDivisionError("boom")
        except ZeroDivisionError:
            self.drops.failure(self.out.log, "192.0.2.1", "boom")
        (event,) = self.out.events
        self.assertEqual(event["log_level"], LogLevel.critical)
        self.assertIsNotNone(event["log_failure"])
        self.flushLoggedErrors(ZeroDivisionError)


OPTIONS = (
    b"OPTIONS sip:sbc@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5062;branch=z9hG4bK%d\r\n"
    b"Max-Forwards: 70\r\nFrom: <sip:a@127.0.0.2>;tag=1\r\nTo: <sip:sbc@127.0.0.1>\r\n"
    b"Call-ID: c%d\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
)


class ServerLogTests(SynchronousTestCase):
    def test_handlerBugsLoggedOncePerMinute(self) -> None:
        """A message that trips a bug, sent 50 times by one source, logs one traceback a minute."""
        directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, directory)
        clock = Clock()
        server = SIPServer(loadConfig(writeConfig(directory)), clock)
        out = LogRecorder()
        self.patch(SIPServer, "log", out.log)

        def broken(*args: object) -> None:
            raise RuntimeError("a bug")

        server.methods["OPTIONS"] = broken
        udp = RecordingTransport()
        for i in range(50):
            server.messageReceived(OPTIONS % (i, i), udp, ("127.0.0.2", 5062))
        self.assertEqual(server.metrics["internal_errors"], 50)
        self.assertEqual(len(out.events), 1)
        self.assertEqual(len(udp.responses()), 50)  # each still answered 500
        self.flushLoggedErrors(RuntimeError)
