"""Call detail records: one JSON object per line per call attempt, made durable as each call ends.

A line looks like this (wrapped here)::

    {"callId":"b2b-1f3c...","aLeg":{"kind":"trunk","name":"demo"},
     "bLeg":{"kind":"user","name":"alice@demo.acme.sbc.test"},
     "fromUri":"sip:+4930999@198.51.100.7","toUri":"sip:+4930123456@sbc.example",
     "start":1700000000.0,"answer":1700000004.25,"end":1700000064.25,"duration":60.0,
     "status":200,"disposition":"answered","releasedBy":"caller","reason":null}

Times are epoch seconds from the clock the B2BUA runs on. A CDR holds no secrets and no SDP:
URI passwords and URI headers (``?...``, which can carry a body) are removed before writing.

`CDRWriter` opens its file once, in append mode, writes each line with one ``write`` and
``fsync``s it (grouped with the lines of calls ending within a tenth of a second). After
logrotate moves the file away, CDRs go to a new file at the path: at once on SIGHUP (``reopen()``,
which the service wires to the signal), and by themselves at the first call ending after the move
is noticed (the path's inode is compared with the open file's, at most once a second).
A failed write is logged (once per outage, then the recovery with the count lost) and never
raised: a full disk must not break calls.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IReactorThreads, IReactorTime
from twisted.logger import Logger

from sbc.access import Peer
from sbc.calls.parties import Party, partyOf
from sbc.routing import CallRequest
from sbc.sip.errors import SIPParseError
from sbc.sip.uri import parseURI

__all__ = [
    "CDR",
    "DISPOSITIONS",
    "RELEASERS",
    "CDRWriter",
    "CallRecord",
    "dispositionFor",
    "scrubURI",
]

DISPOSITIONS = ("answered", "busy", "no-answer", "cancelled", "failed", "rejected")
RELEASERS = ("caller", "callee", "sbc")

_BUSY = frozenset({486, 600})
_NO_ANSWER = frozenset({408, 480, 487})
_REASON_LIMIT = 200
# How long a CDR line waits in the page cache for the lines of other calls before one fsync
# makes them all durable.
SYNC_DELAY = 0.1
# Seconds between looks at whether the path still names the open file (log rotation).
ROTATION_CHECK = 1.0


def dispositionFor(status: int, cancelled: bool) -> str:
    """The disposition of a call that ended with final ``status``.

    ``cancelled`` means the caller gave up (CANCEL) before an answer; it wins over the status.
    2xx is answered; 486 and 600 busy; 408, 480 and 487 (our own no-answer timer) no-answer;
    other 4xx and 6xx rejected; 5xx, 3xx that were not followed, and no final response failed.
    """
    if cancelled:
        return "cancelled"
    if 200 <= status < 300:
        return "answered"
    if status in _BUSY:
        return "busy"
    if status in _NO_ANSWER:
        return "no-answer"
    if 400 <= status < 500 or 600 <= status < 700:
        return "rejected"
    return "failed"


@dataclass(frozen=True)
class CDR:
    """One call attempt. ``bLeg`` is None when the call was refused before any B-leg existed.

    ``answer`` is None for a call that was never answered; ``duration`` is then 0.
    """

    callId: str
    aLeg: Party
    bLeg: Party | None
    fromUri: str
    toUri: str
    start: float
    answer: float | None
    end: float
    status: int
    disposition: str
    releasedBy: str
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.disposition not in DISPOSITIONS:
            raise ValueError(f"unknown disposition {self.disposition!r}")
        if self.releasedBy not in RELEASERS:
            raise ValueError(f"releasedBy is caller, callee or sbc, not {self.releasedBy!r}")

    @property
    def duration(self) -> float:
        """Seconds from answer to end; 0 for an unanswered call."""
        if self.answer is None:
            return 0.0
        return max(0.0, self.end - self.answer)

    def toJSON(self) -> dict[str, Any]:
        """The line's object, URIs scrubbed and times in milliseconds' precision.

        Built once per record (the CDR file and the call's log line both read it); a copy, so a
        caller's change never reaches the other reader.
        """
        return dict(self._record)

    @cached_property
    def _record(self) -> dict[str, Any]:
        reason = self.reason
        if reason is not None and len(reason) > _REASON_LIMIT:
            reason = reason[:_REASON_LIMIT]
        return {
            "callId": self.callId,
            "aLeg": self.aLeg.toJSON(),
            "bLeg": None if self.bLeg is None else self.bLeg.toJSON(),
            "fromUri": scrubURI(self.fromUri),
            "toUri": scrubURI(self.toUri),
            "start": _time(self.start),
            "answer": None if self.answer is None else _time(self.answer),
            "end": _time(self.end),
            "duration": _time(self.duration),
            "status": self.status,
            "disposition": self.disposition,
            "releasedBy": self.releasedBy,
            "reason": reason,
        }

    def toLine(self) -> bytes:
        """One line of the CDR file: compact ASCII JSON ending in a newline."""
        return (
            json.dumps(self.toJSON(), separators=(",", ":"), ensure_ascii=True, allow_nan=False) + "\n"
        ).encode("ascii")


class CallRecord:
    """What a call's CDR will say, filled in as the call goes: who called whom, its times, final
    status, who released it and why (when the SBC ended or failed it)."""

    __slots__ = ("aLeg", "answer", "fromUri", "reason", "releasedBy", "start", "status", "toUri")

    def __init__(self, start: float, peer: Peer, request: CallRequest) -> None:
        self.start = start
        self.aLeg = partyOf(peer, request.authenticatedUser)
        self.fromUri = f"sip:{request.fromUser}@{request.fromDomain}"
        self.toUri = f"sip:{request.user}@{request.domain}"
        self.answer: float | None = None
        self.status = 0
        self.releasedBy = "sbc"
        self.reason: str | None = None

    def answered(self, at: float, status: int) -> None:
        """The call was answered, with ``status``, at ``at``."""
        self.answer = at
        self.status = status

    def cdr(self, callId: str, bLeg: Party | None, end: float, cancelled: bool) -> CDR:
        """The record, as it stands at ``end``."""
        return CDR(
            callId=callId,
            aLeg=self.aLeg,
            bLeg=bLeg,
            fromUri=self.fromUri,
            toUri=self.toUri,
            start=self.start,
            answer=self.answer,
            end=end,
            status=self.status,
            disposition=dispositionFor(self.status, cancelled),
            releasedBy=self.releasedBy,
            reason=self.reason,
        )


def _time(value: float) -> float:
    return round(value, 3)


_PASSWORD = re.compile(r"^(sips?:[^:@;?]*):[^@]*@", re.IGNORECASE)


def scrubURI(text: str) -> str:
    """``text`` without a password in its userinfo and without URI headers (``?...``)."""
    try:
        uri = parseURI(text)
    except SIPParseError:
        return _PASSWORD.sub(r"\1@", text).partition("?")[0]
    if uri.password is None and uri.headers is None:
        return text
    return str(replace(uri, password=None, headers=None))


class CDRWriter:
    """Appends CDR lines to ``path``: one ``write`` per call, each followed by an ``fsync``.

    Without ``threads`` the fsync runs inline, in the caller's thread. With ``threads`` (the
    reactor, in the service) it runs in a worker thread, grouped: calls that end while a flush is
    under way share the next one, and with ``clock`` too (the service's way) a flush waits
    ``syncDelay`` seconds first, so that a busy second needs only a few. Each line is written at
    once and on disk within about ``syncDelay`` of its call's end (and at ``close``), and the
    reactor thread never waits for the disk.
    """

    log = Logger()

    def __init__(
        self,
        path: Path,
        threads: IReactorThreads | None = None,
        clock: IReactorTime | None = None,
        syncDelay: float = SYNC_DELAY,
    ) -> None:
        self.path = Path(path)
        self.threads = threads
        self.clock = clock
        self.syncDelay = syncDelay
        self._scheduled: IDelayedCall | None = None
        self.written = 0
        self.lost = 0
        self.syncs = 0
        self._fd: int | None = None
        self._failing = False
        self._partial = False
        self._syncing = False
        self._dirty = False
        self._inode: tuple[int, int] | None = None  # (device, inode) of the open file
        self._nextCheck = float("-inf")
        self._generation = 0  # counts opens: a flush of an earlier file reports nothing
        self._open()

    def _open(self) -> bool:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
            status = os.fstat(self._fd)
        except OSError as e:
            self._fd = None
            self._fail(e)
            return False
        self._inode = (status.st_dev, status.st_ino)
        self._generation += 1
        return True

    def _followRotation(self) -> None:
        """Reopen when ``path`` no longer names the open file (moved or deleted by log rotation).

        One ``stat`` at most once per `ROTATION_CHECK` seconds of the clock (at each write when
        there is no clock).
        """
        if self._fd is None:
            return
        if self.clock is not None:
            now = self.clock.seconds()
            if now < self._nextCheck:
                return
            self._nextCheck = now + ROTATION_CHECK
        try:
            status = os.stat(self.path)
        except FileNotFoundError:
            status = None
        except OSError:
            return  # cannot tell: keep writing where we are
        if status is None or (status.st_dev, status.st_ino) != self._inode:
            self.log.info("{path} was moved away (log rotation?): CDRs go to a new file", path=str(self.path))
            self.reopen()

    def write(self, cdr: CDR) -> bool:
        """Append and fsync one CDR; False (and a log line) if it could not be written."""
        try:
            data = cdr.toLine()
        except (TypeError, ValueError) as e:  # a CDR built with odd values: lose it, not the call
            self.lost += 1
            self.log.error("CDR for {callId} not written: {error}", callId=cdr.callId, error=str(e))
            return False
        self._followRotation()
        if self._fd is None and not self._open():
            self.lost += 1
            return False
        assert self._fd is not None
        if self._partial:  # finish the torn line of a failed write, so this one parses
            data = b"\n" + data
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
                self._partial = bool(view)
            self._flush()
        except OSError as e:
            self.lost += 1
            self._fail(e)
            return False
        self._partial = False
        self.written += 1
        if self._failing:
            self._failing = False
            self.log.info(
                "CDRs are written to {path} again; {lost} lost so far", path=str(self.path), lost=self.lost
            )
        return True

    def _flush(self) -> None:
        if self.threads is None:
            assert self._fd is not None
            os.fsync(self._fd)
            self.syncs += 1
        elif self._syncing:
            self._dirty = True  # the flush under way may miss this line: one more will follow
        elif self._scheduled is not None:
            pass  # the flush already on its way takes this line too
        elif self.clock is not None:
            # Wait a moment, so that the calls ending meanwhile share this flush: a worker
            # thread's round trip per call cost a fifth of the CPU of a call at 100 CPS.
            self._scheduled = self.clock.callLater(self.syncDelay, self._startSync)
        else:
            self._startSync()

    def _startSync(self) -> None:
        self._scheduled = None
        self._syncing = True
        assert self.threads is not None
        self.threads.callInThread(self._syncInThread, self._fd, self._generation)

    def _syncInThread(self, fd: int | None, generation: int) -> None:
        error: OSError | None = None
        try:
            if fd is not None:
                os.fsync(fd)
        except OSError as e:
            error = e
        assert self.threads is not None
        self.threads.callFromThread(self._synced, error, generation)

    def _synced(self, error: OSError | None, generation: int | None = None) -> None:
        self._syncing = False
        self.syncs += 1
        # A file reopened meanwhile (rotation) was fsynced as it closed: its flush's error, such
        # as EBADF from the closed descriptor, says nothing about the file we write now.
        if error is not None and generation in (None, self._generation):
            self._fail(error)
        if self._dirty:
            self._dirty = False
            self._flush()

    def reopen(self) -> None:
        """Close the file and open ``path`` afresh: after log rotation moved the old one away."""
        self.close()
        self._partial = False
        self._open()

    def close(self) -> None:
        """Write out what is pending and close the file (service shutdown)."""
        # A flush under way in a worker may find the descriptor closed: fsync here as well.
        pending = self._dirty or self._scheduled is not None or self._syncing
        self._dirty = False
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        if pending and self._fd is not None:
            # Lines that no flush under way covers: make them durable now, before the file goes.
            try:
                os.fsync(self._fd)
                self.syncs += 1
            except OSError as e:
                self._fail(e)
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.close(fd)
            except OSError as e:
                self._fail(e)

    def _fail(self, error: OSError) -> None:
        if not self._failing:
            self._failing = True
            self.log.error(
                "cannot write CDRs to {path}: {error}; calls go on without CDRs until it works again",
                path=str(self.path),
                error=error.strerror or str(error),
            )
