"""
Run SIPp once, to completion, from a chosen loopback address, and collect what it saw.

SIPp writes its logs into its working directory, so every run gets a temporary directory of its own
(deleted by the test's cleanup).  SIPp always stops on its own: C{-m 1} ends it after one call and
C{-timeout ... -timeout_error} after a deadline, with a non-zero exit code.  The process also runs
under a deadline of its own, and is killed should SIPp hang anyway.

Exit codes of SIPp 3.6: 0 when every call succeeded, 1 when a call failed, 255 (-1) on a fatal error or
when the global C{-timeout} expired with C{-timeout_error}.
"""

from __future__ import annotations

import csv
import datetime
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from .ports import TCP, UDP, freePort, tcpPortListening, udpPortBound
from .tools import requireTool

HERE = Path(__file__).resolve().parent

# What SIPp's -trace_msg log says in front of each message it received, e.g. "UDP message received [335]".
_RECEIVED_MARKERS = ("message received",)

# Seconds the process may outlive SIPp's own -timeout before we kill it.
_GRACE = 5.0

# Where -trace_stat writes its statistics (with -stf), in SIPp's working directory.
_STATISTICS_FILE = "stats.csv"

# The -trace_msg log puts a line of dashes and a time stamp before each message, then a line such as
# "UDP message sent (352 bytes):" or "UDP message received [587] bytes :", a blank line, the message.
_TRACE_SEPARATOR = re.compile(r"^-{20,} (\d{4}-\d\d-\d\d [0-9:.]+)$", re.MULTILINE)
_TRACE_HEADING = re.compile(r"^(\w+) message (sent|received)\b[^\n]*\n")
_STATUS_LINE = re.compile(r"^SIP/2\.0 (\d{3}) ")

# RFC 3261 section 7.3.3: the compact form of each header name that has one.
_COMPACT = {
    "call-id": "i",
    "contact": "m",
    "content-encoding": "e",
    "content-length": "l",
    "content-type": "c",
    "from": "f",
    "subject": "s",
    "supported": "k",
    "to": "t",
    "via": "v",
}


@dataclass(frozen=True)
class TracedMessage:
    """
    One SIP message from SIPp's C{-trace_msg} log.

    @ivar transport: how it travelled, as SIPp says it: C{"UDP"} or C{"TCP"}.
    @ivar sent: C{True} for a message SIPp sent, C{False} for one it received.
    @ivar text: the message, with C{\\n} line ends.
    @ivar time: when SIPp logged it, in seconds since the epoch (from SIPp's local-time stamp, so
        only differences between stamps on one host mean anything); C{None} when unknown.
    """

    transport: str
    sent: bool
    text: str
    time: float | None = None

    @property
    def statusCode(self) -> int | None:
        """
        The status code of a response, C{None} for a request.
        """
        match = _STATUS_LINE.match(self.text)
        return int(match.group(1)) if match else None

    @property
    def firstLine(self) -> str:
        """
        The request line or status line.
        """
        return self.text.split("\n", 1)[0]

    def headers(self, name: str) -> list[str]:
        """
        The values of every header field C{name} (case-insensitive, long or compact form), in order.

        Each header line is one value: a line holding a comma-separated list is not split.
        """
        names = {name.lower(), _COMPACT.get(name.lower(), name.lower())}
        head = self.text.split("\n\n", 1)[0]
        values = []
        for line in head.split("\n")[1:]:
            key, sep, value = line.partition(":")
            if sep and key.strip().lower() in names:
                values.append(value.strip())
        return values


def parseTrace(log: str) -> list[TracedMessage]:
    """
    The messages of a C{-trace_msg} log, in the order SIPp sent or received them.
    """
    messages = []
    # With its capturing group, split() returns: text before the first separator, then each stamp
    # followed by the chunk after it.
    parts = _TRACE_SEPARATOR.split(log.replace("\r\n", "\n"))
    for stamp, chunk in zip(parts[1::2], parts[2::2], strict=True):
        chunk = chunk.lstrip("\n")
        heading = _TRACE_HEADING.match(chunk)
        if heading is None:
            continue
        text = chunk[heading.end() :].lstrip("\n").rstrip("\n") + "\n"
        try:
            time = datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp()
        except ValueError:
            time = None
        messages.append(TracedMessage(heading.group(1), heading.group(2) == "sent", text, time))
    return messages


@dataclass(frozen=True)
class SippRun:
    """
    The outcome of one SIPp run.

    @ivar args: the command line.
    @ivar exitCode: SIPp's exit code (see the module docstring).
    @ivar messages: the C{-trace_msg} log: every message sent and received, in order.
    @ivar errors: the C{-trace_err} log: unexpected messages and failed checks.
    @ivar output: what SIPp printed (its statistics screens), stdout and stderr together.
    @ivar local: the (host, port) SIPp was bound to.
    @ivar statistics: the last line of the C{-trace_stat} file, by column name (e.g.
        C{"SuccessfulCall(C)"}); empty unless the run asked for statistics.
    """

    args: tuple[str, ...]
    exitCode: int
    messages: str
    errors: str
    output: str
    local: tuple[str, int] | None = None
    statistics: dict[str, str] = field(default_factory=dict)

    @property
    def traced(self) -> list[TracedMessage]:
        """
        Every message in L{messages}, parsed, in order.
        """
        return parseTrace(self.messages)

    @property
    def responses(self) -> list[TracedMessage]:
        """
        The responses SIPp received, in order (retransmissions included).
        """
        return [m for m in self.traced if not m.sent and m.statusCode is not None]

    @property
    def received(self) -> bool:
        """
        Whether SIPp received any SIP message at all.
        """
        return any(marker in self.messages for marker in _RECEIVED_MARKERS)

    @property
    def receivedText(self) -> str:
        """
        Every message SIPp received, in full (start line, headers and body), one after another.
        """
        return "".join(m.text for m in self.traced if not m.sent)

    def count(self, name: str) -> int:
        """
        The cumulative counter C{name} of L{statistics}, e.g. C{count("SuccessfulCall")}.

        Raises C{AssertionError} when the run has no such statistic.
        """
        value = self.statistics.get(f"{name}(C)")
        if value is None:
            raise AssertionError(f"no statistic {name}(C) in {sorted(self.statistics)}")
        return int(value)

    def describe(self) -> str:
        """
        Everything about the run, for a failure message.
        """
        return (
            f"--- sipp exited with {self.exitCode}: {' '.join(self.args)}\n"
            f"--- messages:\n{self.messages}\n--- errors:\n{self.errors}\n"
            f"--- output (tail):\n{self.output[-3000:]}"
        )


def scenarioPath(name: str) -> Path:
    """
    The scenario file C{name} kept beside these tests, e.g. C{"options_uac.xml"}.
    """
    path = HERE / name
    if not path.exists():
        raise FileNotFoundError(path)
    return path


class SippProcess:
    """
    One SIPp process, in a temporary working directory of its own.

    Construct it, L{start} it, and L{wait} for its outcome.  The test's cleanup kills it if it still runs
    and deletes its directory.  L{runSipp} does all three for a client scenario.

    @ivar localHost: the address SIPp binds (C{-i} with C{-bind_local}): the source address the service
        sees.
    @ivar localPort: the port SIPp binds (C{-p}).
    @ivar timeout: SIPp's global C{-timeout} in seconds.
    @ivar directory: SIPp's working directory, where its logs go.
    @ivar args: the command line.
    """

    def __init__(
        self,
        testCase: SynchronousTestCase,
        scenario: str | Path,
        remote: tuple[str, int] | None = None,
        *,
        transport: str = "u1",
        localHost: str = "127.0.0.2",
        localPort: int | None = None,
        timeout: float = 10.0,
        calls: int = 1,
        mediaPort: int | None = None,
        statistics: bool = False,
        extraArgs: Sequence[str] = (),
    ) -> None:
        """
        @param scenario: a scenario file beside these tests (by name) or anywhere (by path).
        @param remote: (host, port) to send to; C{None} for a server scenario that waits for requests.
        @param transport: SIPp's C{-t}: C{"u1"} for UDP, C{"t1"} for TCP (one socket each).
        @param localHost: the address SIPp binds.
        @param localPort: SIPp's C{-p}; a free port when C{None}.
        @param timeout: SIPp's global C{-timeout} in seconds, after which it stops with a failure.
        @param calls: SIPp's C{-m}: stop after this many calls.
        @param mediaPort: SIPp's C{-mp}, the port its scenarios write into SDP as C{[media_port]}
            (SIPp binds it, and the next ports, on C{localHost}); SIPp's default (6000) when C{None}.
        @param statistics: write C{-trace_stat} statistics, read into L{SippRun.statistics}.
        @param extraArgs: more command line arguments, e.g. C{("-set", "name", "value")}.
        """
        sipp = requireTool("sipp")
        source = scenarioPath(scenario) if isinstance(scenario, str) else scenario
        self.directory = Path(tempfile.mkdtemp(prefix="sipp-"))
        testCase.addCleanup(shutil.rmtree, self.directory, ignore_errors=True)
        testCase.addCleanup(self.kill)
        shutil.copy(source, self.directory / source.name)
        self.localHost = localHost
        self.localPort = (
            localPort
            if localPort is not None
            else freePort(
                localHost,
                (UDP if transport.startswith("u") else TCP,),
                # SIPp binds its media port and the one two above it too: never pick either.
                avoid=() if mediaPort is None else (mediaPort, mediaPort + 2),
            )
        )
        self.transport = transport
        self.timeout = timeout
        self.mediaPort = mediaPort
        self.process: subprocess.Popen[bytes] | None = None
        self.args: tuple[str, ...] = (
            sipp,
            "-sf",
            source.name,
            *([f"{remote[0]}:{remote[1]}"] if remote is not None else []),
            "-t",
            transport,
            "-i",
            localHost,
            "-p",
            str(self.localPort),
            "-bind_local",
            # The remote control socket binds 0.0.0.0:8888 (or the next free one) unless told otherwise.
            "-ci",
            localHost,
            "-m",
            str(calls),
            "-timeout",
            f"{timeout:g}s",
            "-timeout_error",
            "-nostdin",
            "-trace_msg",
            "-message_file",
            "messages.log",
            "-trace_err",
            "-error_file",
            "errors.log",
            *(["-mi", localHost, "-mp", str(mediaPort)] if mediaPort is not None else []),
            *(["-trace_stat", "-stf", _STATISTICS_FILE] if statistics else []),
            *extraArgs,
        )

    def start(self) -> None:
        """
        Start SIPp; its screen output goes to C{output.log} in its directory.
        """
        with (self.directory / "output.log").open("wb") as output:
            self.process = subprocess.Popen(
                self.args,
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )

    def waitUntilListening(self, timeout: float = 5.0) -> None:
        """
        Wait until SIPp has bound its local port (for a server scenario: until it can take requests).
        Raise, with what SIPp printed, when it exits first or takes longer than C{timeout} seconds.
        """
        if self.process is None:
            raise RuntimeError("SIPp was not started")
        deadline = time.monotonic() + timeout
        while True:
            if self.transport.startswith("u"):
                bound = udpPortBound(self.localHost, self.localPort)
            else:
                bound = tcpPortListening(self.localHost, self.localPort)
            if bound:
                return
            if self.process.poll() is not None:
                run = self._collect(self.process.returncode)
                raise AssertionError(f"sipp exited before it listened\n{run.describe()}")
            if time.monotonic() > deadline:
                self.kill()
                run = self._collect(-9)
                raise AssertionError(f"sipp did not listen within {timeout}s\n{run.describe()}")
            time.sleep(0.05)

    def wait(self) -> SippRun:
        """
        Wait until SIPp exits and return what it did.  Should it outlive its own C{-timeout} by more than
        a few seconds, kill it and raise.
        """
        if self.process is None:
            raise RuntimeError("SIPp was not started")
        try:
            exitCode = self.process.wait(self.timeout + _GRACE)
        except subprocess.TimeoutExpired as e:
            self.kill()
            run = self._collect(-9)
            raise AssertionError(
                f"sipp did not stop within {self.timeout + _GRACE}s\n{run.describe()}"
            ) from e
        return self._collect(exitCode)

    def kill(self) -> None:
        """
        Kill SIPp if it still runs.
        """
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(_GRACE)

    def _collect(self, exitCode: int) -> SippRun:
        def read(name: str) -> str:
            try:
                return (self.directory / name).read_text(encoding="utf-8", errors="replace")
            except FileNotFoundError:
                return ""

        return SippRun(
            args=self.args,
            exitCode=exitCode,
            messages=read("messages.log"),
            errors=read("errors.log"),
            output=read("output.log"),
            local=(self.localHost, self.localPort),
            statistics=parseStatistics(read(_STATISTICS_FILE)),
        )


def freeMediaPort(host: str, avoid: Collection[int] = ()) -> int:
    """
    A port for SIPp's C{-mp} on C{host}: SIPp binds it and the port two above it (RTP echo for audio
    and video), so both must be free, and neither may be one of C{avoid} (ports chosen already but
    not bound yet, such as the same SIPp's own SIP port).
    """
    for _ in range(100):
        port = freePort(host, (UDP,), avoid=set(avoid))
        if port + 2 <= 65535 and port + 2 not in avoid and not udpPortBound(host, port + 2):
            return port
    raise RuntimeError(f"no free pair of media ports on {host}")


def parseStatistics(text: str) -> dict[str, str]:
    """
    The last row of a C{-trace_stat} file (semicolon-separated, a header row first), by column name.
    """
    rows = [row for row in csv.reader(text.splitlines(), delimiter=";") if row]
    if len(rows) < 2:
        return {}
    return {name: value for name, value in zip(rows[0], rows[-1], strict=False) if name}


def startSipp(
    testCase: SynchronousTestCase,
    scenario: str | Path,
    remote: tuple[str, int] | None = None,
    *,
    listening: bool = False,
    **options: Any,
) -> SippProcess:
    """
    Start SIPp in the background with L{SippProcess}'s parameters (C{options}), killed in the test's
    cleanup.  With C{listening}, return only once it has bound its port, so that a server scenario is
    ready for requests.  Collect its outcome later with L{SippProcess.wait}.
    """
    sipp = SippProcess(testCase, scenario, remote, **options)
    sipp.start()
    if listening:
        sipp.waitUntilListening()
    return sipp


def runSipp(
    testCase: SynchronousTestCase,
    scenario: str | Path,
    remote: tuple[str, int],
    *,
    transport: str = "u1",
    localHost: str = "127.0.0.2",
    localPort: int | None = None,
    timeout: float = 10.0,
    calls: int = 1,
    mediaPort: int | None = None,
    statistics: bool = False,
    extraArgs: Sequence[str] = (),
) -> SippRun:
    """
    Run the client scenario C{scenario} against C{remote} from C{localHost} and wait until SIPp exits;
    the parameters are those of L{SippProcess}.
    """
    sipp = SippProcess(
        testCase,
        scenario,
        remote,
        transport=transport,
        localHost=localHost,
        localPort=localPort,
        timeout=timeout,
        calls=calls,
        mediaPort=mediaPort,
        statistics=statistics,
        extraArgs=extraArgs,
    )
    sipp.start()
    return sipp.wait()
