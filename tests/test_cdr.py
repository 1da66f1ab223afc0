"""Tests for sbc.calls.cdr: CDR values, dispositions, and the appending, fsyncing, reopening writer."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from twisted.internet.task import Clock
from twisted.logger import Logger, LogLevel
from twisted.trial.unittest import SynchronousTestCase

from sbc.calls.cdr import DISPOSITIONS, CDRWriter, dispositionFor, scrubURI
from sbc.calls.parties import Party
from tests.fakes import LogRecorder, answered

KEYS = [
    "callId",
    "aLeg",
    "bLeg",
    "fromUri",
    "toUri",
    "start",
    "answer",
    "end",
    "duration",
    "status",
    "disposition",
    "releasedBy",
    "reason",
]


class DispositionTests(SynchronousTestCase):
    def test_table(self) -> None:
        """Final codes map to dispositions; a caller's CANCEL wins over the code."""
        cases = {
            (200, False): "answered",
            (202, False): "answered",
            (486, False): "busy",
            (600, False): "busy",
            (408, False): "no-answer",
            (480, False): "no-answer",
            (487, False): "no-answer",
            (487, True): "cancelled",
            (200, True): "cancelled",
            (403, False): "rejected",
            (404, False): "rejected",
            (603, False): "rejected",
            (500, False): "failed",
            (503, False): "failed",
            (302, False): "failed",
            (0, False): "failed",
        }
        for (status, cancelled), disposition in cases.items():
            self.assertEqual(dispositionFor(status, cancelled), disposition, (status, cancelled))
            self.assertIn(disposition, DISPOSITIONS)


class CDRTests(SynchronousTestCase):
    def test_duration(self) -> None:
        """Duration runs from answer to end, and is 0 when unanswered."""
        self.assertEqual(answered().duration, 60.0)
        self.assertEqual(replace(answered(), answer=None, status=486, disposition="busy").duration, 0.0)

    def test_json(self) -> None:
        """A line is one compact JSON object with every field, in a fixed order, ending in a newline."""
        line = answered().toLine()
        self.assertTrue(line.endswith(b"\n"))
        self.assertEqual(line.count(b"\n"), 1)
        data = json.loads(line)
        self.assertEqual(list(data), KEYS)
        self.assertEqual(data["aLeg"], {"kind": "trunk", "name": "demo"})
        self.assertEqual(data["bLeg"], {"kind": "user", "name": "alice@demo.acme.sbc.test"})
        self.assertEqual((data["duration"], data["status"], data["reason"]), (60.0, 200, None))

    def test_refusedBeforeBLeg(self) -> None:
        """A call refused by routing has no B-leg and no answer."""
        record = replace(
            answered(), bLeg=None, answer=None, status=404, disposition="rejected", releasedBy="sbc"
        )
        data = json.loads(record.toLine())
        self.assertEqual((data["bLeg"], data["answer"], data["duration"]), (None, None, 0.0))

    def test_noSecrets(self) -> None:
        """URI passwords and URI headers (which can carry a body) never reach the file."""
        record = replace(
            answered(),
            fromUri="sip:alice:s3cret@example.com;transport=tcp",
            toUri="sip:bob@example.com?body=v%3D0%0Do%3D-&Subject=x",
        )
        line = record.toLine().decode()
        self.assertNotIn("s3cret", line)
        self.assertNotIn("body", line)
        data = json.loads(line)
        self.assertEqual(data["fromUri"], "sip:alice@example.com;transport=tcp")
        self.assertEqual(data["toUri"], "sip:bob@example.com")
        self.assertEqual(scrubURI("sip:a:pw@bad host?x"), "sip:a@bad host")

    def test_ascii(self) -> None:
        """Non-ASCII text is escaped, long reasons are cut, and NaN is refused."""
        record = replace(answered(), reason="Ärger " * 100)
        line = record.toLine()
        self.assertTrue(line.isascii())
        self.assertEqual(len(json.loads(line)["reason"]), 200)
        self.assertRaises(ValueError, replace(answered(), end=float("nan")).toLine)

    def test_validation(self) -> None:
        """Unknown dispositions, releasers and leg kinds are refused."""
        self.assertRaises(ValueError, replace, answered(), disposition="ok")
        self.assertRaises(ValueError, replace, answered(), releasedBy="network")
        self.assertRaises(ValueError, Party, "device", "x")


class CDRWriterTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.directory)
        self.path = self.directory / "state" / "cdr.jsonl"
        self.fsyncs: list[int] = []
        realFsync = os.fsync

        def fsync(fd: int) -> None:
            self.fsyncs.append(fd)
            realFsync(fd)

        self.patch(os, "fsync", fsync)
        self.events = LogRecorder()
        self.patch(CDRWriter, "log", Logger(observer=self.events))

    def writer(self, clock: Clock | None = None) -> CDRWriter:
        writer = CDRWriter(self.path, clock=clock)
        self.addCleanup(writer.close)
        return writer

    def moveAway(self, writer: CDRWriter) -> Path:
        """Write a CDR "before", then move the file away as logrotate does; return where it went."""
        writer.write(answered("before"))
        rotated = self.directory / "cdr.jsonl.1"
        self.path.rename(rotated)
        return rotated

    def lines(self, path: Path | None = None) -> list[dict[str, Any]]:
        return [json.loads(line) for line in (path or self.path).read_text().splitlines()]

    def test_oneLinePerCall(self) -> None:
        """Each call adds one valid JSON line, fsynced before write returns."""
        writer = self.writer()
        for index in range(3):
            self.assertTrue(writer.write(answered(f"b2b-{index}")))
            self.assertEqual(len(self.fsyncs), index + 1)
        self.assertEqual([line["callId"] for line in self.lines()], ["b2b-0", "b2b-1", "b2b-2"])
        self.assertEqual(writer.written, 3)

    def test_openedOnceAppending(self) -> None:
        """The file is opened once, in append mode, keeping earlier lines; it is not world-readable."""
        self.path.parent.mkdir()
        self.path.write_bytes(answered("old").toLine())
        opens: list[str] = []
        realOpen = os.open

        def countingOpen(path: Any, flags: int, mode: int = 0o777) -> int:
            opens.append(str(path))
            self.assertTrue(flags & os.O_APPEND)
            return realOpen(path, flags, mode)

        self.patch(os, "open", countingOpen)
        writer = self.writer()
        writer.write(answered("new-1"))
        writer.write(answered("new-2"))
        self.assertEqual(opens, [str(self.path)])
        self.assertEqual([line["callId"] for line in self.lines()], ["old", "new-1", "new-2"])
        newPath = self.directory / "fresh.jsonl"
        CDRWriter(newPath).close()
        self.assertEqual(newPath.stat().st_mode & 0o007, 0)

    def test_reopen(self) -> None:
        """After the file is moved away (log rotation), reopen() (SIGHUP) starts a new one at once."""
        clock = Clock()
        writer = self.writer(clock)
        rotated = self.moveAway(writer)
        writer.write(answered("late"))  # within the second: the move is not noticed yet
        writer.reopen()
        writer.write(answered("after"))
        self.assertEqual([line["callId"] for line in self.lines(rotated)], ["before", "late"])
        self.assertEqual([line["callId"] for line in self.lines()], ["after"])

    def test_rotationFollowed(self) -> None:
        """Without SIGHUP, the first write a second after the file was moved goes to a new file."""
        clock = Clock()
        writer = self.writer(clock)
        rotated = self.moveAway(writer)
        clock.advance(1)
        writer.write(answered("after"))
        self.assertEqual([line["callId"] for line in self.lines(rotated)], ["before"])
        self.assertEqual([line["callId"] for line in self.lines()], ["after"])

    def test_deletedFileRecreated(self) -> None:
        """A CDR file deleted under the writer is made again by the next write (each write looks)."""
        writer = self.writer()
        writer.write(answered("before"))
        self.path.unlink()
        writer.write(answered("after"))
        self.assertEqual([line["callId"] for line in self.lines()], ["after"])

    def test_rotationCheckIsCheap(self) -> None:
        """With a clock, the path is looked at no more than once a second, however many calls end."""
        clock = Clock()
        writer = self.writer(clock)
        looks: list[object] = []
        realStat = os.stat

        def countingStat(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
            looks.append(path)
            return realStat(path, *args, **kwargs)

        self.patch(os, "stat", countingStat)
        for _ in range(50):
            writer.write(answered())
            clock.advance(0.1)
        self.assertLessEqual(len(looks), 6)

    def test_flushOfRotatedFileReportsNothing(self) -> None:
        """A worker's fsync of a file closed by rotation (EBADF) is no CDR outage."""
        threads, clock = FakeThreads(), Clock()
        self.patch(os, "fsync", lambda fd: None)
        writer = CDRWriter(self.path, threads=threads, clock=clock)  # type: ignore[arg-type]
        self.addCleanup(writer.close)
        writer.write(answered("c1"))
        clock.advance(writer.syncDelay)
        f, args = threads.queued.pop(0)
        writer.reopen()

        def badDescriptor(fd: int) -> None:
            raise OSError(9, "Bad file descriptor")

        self.patch(os, "fsync", badDescriptor)
        f(*args)  # type: ignore[operator]
        self.assertEqual([e for e in self.events.events if e["log_level"] >= LogLevel.error], [])
        self.assertEqual(writer.lost, 0)

    def test_writeFailureNotRaised(self) -> None:
        """A full disk loses the CDR and logs once per outage; the recovery is logged with the count."""
        writer = self.writer()

        def full(fd: int, data: Any) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

        realWrite = os.write
        self.patch(os, "write", full)
        self.assertFalse(writer.write(answered("lost-1")))
        self.assertFalse(writer.write(answered("lost-2")))
        self.assertEqual(writer.lost, 2)
        self.assertEqual([e["log_level"] for e in self.events.events], [LogLevel.error])
        self.assertIn("No space left", self.events.events[0]["error"])
        self.patch(os, "write", realWrite)
        self.assertTrue(writer.write(answered("back")))
        self.assertEqual(self.events.events[-1]["lost"], 2)
        self.assertEqual([line["callId"] for line in self.lines()], ["back"])

    def test_tornLineRepaired(self) -> None:
        """After a write that stopped half way, the next line still starts on a line of its own."""
        writer = self.writer()
        realWrite = os.write
        calls: list[int] = []

        def halfThenFail(fd: int, data: Any) -> int:
            calls.append(1)
            if len(calls) == 1:
                return realWrite(fd, bytes(data[: len(data) // 2]))
            raise OSError(errno.EIO, "I/O error")

        self.patch(os, "write", halfThenFail)
        self.assertFalse(writer.write(answered("torn")))
        self.patch(os, "write", realWrite)
        self.assertTrue(writer.write(answered("whole")))
        lines = self.path.read_text().splitlines()
        self.assertEqual(len(lines), 2)
        self.assertEqual(json.loads(lines[1])["callId"], "whole")

    def test_cannotOpen(self) -> None:
        """A path that cannot be opened is logged, not raised; writes report failure."""
        self.path = self.directory / "dir"
        self.path.mkdir()
        writer = self.writer()
        self.assertFalse(writer.write(answered()))
        self.assertEqual(writer.lost, 1)
        self.assertEqual(len(self.events.events), 1)

    def test_closeThenWrite(self) -> None:
        """A write after close() opens the file again rather than failing."""
        writer = self.writer()
        writer.close()
        writer.close()
        self.assertTrue(writer.write(answered()))
        self.assertEqual(len(self.lines()), 1)


class FakeThreads:
    """Runs "threaded" work only when asked, and calls back into the reactor at once."""

    def __init__(self) -> None:
        self.queued: list[tuple[object, tuple[object, ...]]] = []

    def callInThread(self, f: object, *args: object) -> None:
        self.queued.append((f, args))

    def callFromThread(self, f: object, *args: object) -> None:
        f(*args)  # type: ignore[operator]

    def runOne(self) -> None:
        f, args = self.queued.pop(0)
        f(*args)  # type: ignore[operator]


class GroupCommitTests(SynchronousTestCase):
    def test_fsyncOffThreadGrouped(self) -> None:
        """With threads, fsync runs off the reactor thread, and lines written meanwhile share one."""
        import tempfile
        from pathlib import Path

        directory = Path(tempfile.mkdtemp())
        threads = FakeThreads()
        syncs: list[int] = []
        self.patch(os, "fsync", lambda fd: syncs.append(fd))
        writer = CDRWriter(directory / "cdr.jsonl", threads=threads)  # type: ignore[arg-type]
        self.addCleanup(writer.close)
        for i in range(3):
            self.assertTrue(writer.write(answered(f"c{i}")))
        self.assertEqual(syncs, [])  # nothing flushed in the reactor thread
        self.assertEqual(len(threads.queued), 1)
        threads.runOne()  # the first flush; the two later lines ask for one more
        self.assertEqual(len(threads.queued), 1)
        threads.runOne()
        self.assertEqual((len(syncs), writer.syncs, threads.queued), (2, 2, []))
        self.assertEqual(len((directory / "cdr.jsonl").read_bytes().splitlines()), 3)

    def delayedWriter(self) -> tuple[CDRWriter, FakeThreads, Clock, list[int], Path]:
        """A writer with fake threads and a clock, and the list of fsyncs it asks for."""
        directory = Path(tempfile.mkdtemp())
        threads, clock = FakeThreads(), Clock()
        syncs: list[int] = []
        self.patch(os, "fsync", lambda fd: syncs.append(fd))
        writer = CDRWriter(directory / "cdr.jsonl", threads=threads, clock=clock)  # type: ignore[arg-type]
        return writer, threads, clock, syncs, directory / "cdr.jsonl"

    def test_delayedFlushGroupsCalls(self) -> None:
        """With a clock, one flush a moment later covers every call ending meanwhile."""
        writer, threads, clock, syncs, path = self.delayedWriter()
        self.addCleanup(writer.close)
        for i in range(5):
            self.assertTrue(writer.write(answered(f"c{i}")))
            clock.advance(0.01)
        self.assertEqual(len(path.read_bytes().splitlines()), 5)  # written at once
        self.assertEqual(threads.queued, [])
        clock.advance(writer.syncDelay)
        self.assertEqual(len(threads.queued), 1)
        threads.runOne()
        self.assertEqual((len(syncs), writer.syncs, clock.getDelayedCalls()), (1, 1, []))

    def test_closeFlushesWhatWaits(self) -> None:
        """Closing with a flush still to come makes the last lines durable first."""
        writer, threads, clock, syncs, _ = self.delayedWriter()
        self.assertTrue(writer.write(answered()))
        writer.close()
        self.assertEqual((len(syncs), clock.getDelayedCalls(), threads.queued), (1, [], []))

    def test_closeFlushesLinesAfterAFlushUnderWay(self) -> None:
        """Lines written while a flush is under way are made durable by close, not lost with it."""
        writer, threads, clock, syncs, _ = self.delayedWriter()
        self.assertTrue(writer.write(answered("c1")))
        clock.advance(writer.syncDelay)
        self.assertEqual(len(threads.queued), 1)  # the flush is under way in a worker
        self.assertTrue(writer.write(answered("c2")))
        writer.close()
        self.assertEqual(len(syncs), 1)  # c2's, inline, before the file was closed
