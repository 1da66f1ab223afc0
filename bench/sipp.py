"""
One SIPp load through a system under test: a callee on 127.0.0.3 answers, a caller on 127.0.0.2 calls.

Each call is the issue's: INVITE, 100, 180, 200 with SDP, ACK, (a hold), BYE, 200 (the scenarios are
in C{bench/scenarios/}).  Both SIPp processes count what they did in a C{-trace_stat} file written
every second; the caller also times INVITE to 200 (its response time repartition 1) and, when asked,
writes each call's time to a C{-trace_rtt} file, and every message it sends or receives, stamped in
microseconds, to a C{-trace_shortmsg} file.  Every process runs in a temporary directory of its
own, with SIPp's own timeouts and, above them, a deadline after which the harness stops it.
"""

from __future__ import annotations

import math
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from tests.interop.ports import UDP, freePort, udpPortBound
from tests.interop.sipp import parseStatistics

from .media import RTP_FILE, RTP_PACKET, RtpArrivals, mediaPort, pcmu
from .procfs import datagramSize

CALLER_HOST = "127.0.0.2"
CALLEE_HOST = "127.0.0.3"
SCENARIOS = Path(__file__).resolve().parent / "scenarios"
# The number the caller dials: any number takes the systems' default routes.
NUMBER = "15550100"
# A call whose next response does not come within this many seconds fails (SIPp's -recv_timeout).
RESPONSE_TIMEOUT = 6.0
# Retransmissions allowed in a passing step, as a share of its calls.
RETRANSMISSION_LIMIT = 0.01
_STATISTICS = "stats.csv"
_ERRORS = "errors.log"
_MESSAGES = "messages.csv"
# SIPp's cap on each of its logs; the message trace of a latency run (about 900 bytes a call) gets
# room for 20,000 calls.
_LOG_LIMIT = 1_000_000
_TRACE_LIMIT = 20_000_000
_GRACE = 3.0
# The scenarios of calls with RTP (caller, callee); the file they stream is bench.media's RTP_FILE.
RTP_SCENARIOS = ("rtp_uac.xml", "rtp_uas.xml")
# Large socket buffers (capped by net.core.rmem_max) and loops, so that SIPp's own socket is not what
# drops messages: without them SIPp alone fails near 2,000 CPS on a 2-core machine.
_TUNING = ("-buff_size", "4194304", "-max_recv_loops", "10000", "-max_sched_loops", "10000")


# How often a callee that exits at once is started again.
CALLEE_STARTS = 3
# Seconds a call with RTP lasts beyond its stream, so that the last packets arrive before the BYE.
RTP_TAIL = 0.5


@dataclass(frozen=True)
class Counts:
    """
    What one SIPp process counted (the cumulative columns of its statistics file).

    @ivar created: calls it created (placed, or answered for the callee).
    @ivar current: calls open when the row was written.
    @ivar successful: calls that reached the end of the scenario.
    @ivar failed: calls that failed (timeout, unexpected or missing message, ...).
    @ivar retransmissions: messages it retransmitted.
    """

    created: int = 0
    current: int = 0
    successful: int = 0
    failed: int = 0
    retransmissions: int = 0

    @classmethod
    def fromStatistics(cls, row: Mapping[str, str]) -> Counts:
        """The counts of one row of a C{-trace_stat} file, by column name."""

        def number(name: str) -> int:
            try:
                return int(row.get(name, "0") or 0)
            except ValueError:
                return 0

        return cls(
            created=number("TotalCallCreated"),
            current=number("CurrentCall"),
            successful=number("SuccessfulCall(C)"),
            failed=number("FailedCall(C)"),
            retransmissions=number("Retransmissions(C)"),
        )


class Sipp:
    """One SIPp process in a temporary directory of its own, stopped at its deadline at the latest."""

    def __init__(self, args: Sequence[str], scenario: str, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        shutil.copy(SCENARIOS / scenario, directory / scenario)
        self.args = ["sipp", "-sf", scenario, *args]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start SIPp; its screens go to C{output.log} in its directory."""
        with (self.directory / "output.log").open("wb") as output:
            self.process = subprocess.Popen(
                self.args,
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def exitCode(self) -> int | None:
        """SIPp's exit code, or C{None} while it runs."""
        return None if self.process is None else self.process.poll()

    def wait(self, deadline: float) -> bool:
        """Wait until SIPp exits or C{deadline} (monotonic) passes; whether it exited."""
        if self.process is None:
            return True
        try:
            self.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return False
        return True

    def stop(self) -> None:
        """Stop SIPp if it still runs: SIGTERM, then SIGKILL."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(_GRACE)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(_GRACE)

    def counts(self) -> Counts:
        """The last row of its statistics file (at most a second old while SIPp runs)."""
        try:
            text = (self.directory / _STATISTICS).read_text(errors="replace")
        except OSError:
            return Counts()
        return Counts.fromStatistics(parseStatistics(text))

    def latencies(self) -> list[float]:
        """
        Each call's INVITE to 200 time in milliseconds, from the C{-trace_rtt} file: whole milliseconds
        of SIPp's clock, which moves in kernel ticks (4 ms at 250 Hz).
        """
        values: list[float] = []
        for path in self.directory.glob("*_rtt.csv"):
            for line in path.read_text(errors="replace").splitlines()[1:]:
                parts = line.split(";")
                if len(parts) >= 3 and parts[2].strip() == "1":
                    try:
                        values.append(float(parts[1]))
                    except ValueError:
                        continue
        return values

    def exactLatencies(self) -> list[float]:
        """
        Each call's INVITE to 200 time in milliseconds, from the C{-trace_shortmsg} file: the same two
        events as the rtd (the first INVITE sent, the first 200 to it received), stamped in
        microseconds instead of SIPp's clock ticks.
        """
        sent: dict[str, float] = {}
        answered: dict[str, float] = {}
        try:
            lines = (self.directory / _MESSAGES).read_text(errors="replace").splitlines()
        except OSError:
            return []
        for line in lines:
            # date, time, epoch seconds, S or R, Call-ID, "CSeq:n METHOD", first line
            parts = line.split("\t")
            if len(parts) < 7 or not parts[5].endswith(" INVITE"):
                continue
            try:
                when = float(parts[2])
            except ValueError:
                continue
            if parts[3] == "S" and parts[6].startswith("INVITE "):
                sent.setdefault(parts[4], when)
            elif parts[3] == "R" and parts[6].startswith("SIP/2.0 200"):
                answered.setdefault(parts[4], when)
        return [(when - sent[callId]) * 1000 for callId, when in answered.items() if callId in sent]

    def errors(self, limit: int = 1500) -> str:
        """Its exit code, the start of its error log (the first failures) and the end of its screen."""
        parts = [f"exit code {self.exitCode}"]
        for name, fromEnd in ((_ERRORS, False), ("output.log", True)):
            try:
                text = (self.directory / name).read_text(errors="replace")
            except OSError:
                continue
            parts.append(text[-limit:] if fromEnd else text[:limit])
        return "\n".join(parts)


def percentile(values: Sequence[float], share: float) -> float | None:
    """The nearest-rank percentile (C{share} from 0 to 1) of C{values}; C{None} when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


@dataclass(frozen=True)
class LoadResult:
    """
    The outcome of one load.

    @ivar calls: calls the caller was to place.
    @ivar rate: the rate it was to place them at, in calls per second.
    @ivar holdSeconds: how long each call stayed up between ACK and BYE.
    @ivar caller: what the caller counted at the end.
    @ivar callee: what the callee counted at the end.
    @ivar seconds: how long the caller ran.
    @ivar finished: whether both SIPp processes ended by themselves before their deadlines.
    @ivar latenciesMs: INVITE to 200 of each call, when asked for: SIPp's rtd, in its clock's ticks.
    @ivar exactLatenciesMs: the same, from the caller's message trace (microsecond timestamps).
    @ivar errors: the start of the caller's error log, when the load did not pass.
    @ivar interrupted: the caller quit cleanly before placing all its calls: something else on the
        machine told it to (SIGUSR1, or a "q" on its control port), and the load says nothing about
        the system under test.
    @ivar rtpSent: with RTP, the packets the two SIPp processes were to send (both ways, all calls).
    @ivar rtpArrived: with RTP, the packets that reached their media sockets (see L{RtpArrivals}).
    """

    calls: int
    rate: float
    holdSeconds: float
    caller: Counts
    callee: Counts
    seconds: float
    finished: bool
    latenciesMs: tuple[float, ...] = ()
    exactLatenciesMs: tuple[float, ...] = ()
    errors: str = ""
    interrupted: bool = False
    rtpSent: int = 0
    rtpArrived: int = 0

    @property
    def retransmissions(self) -> int:
        """Retransmissions counted at both ends."""
        return self.caller.retransmissions + self.callee.retransmissions

    @property
    def problems(self) -> list[str]:
        """Why the load does not pass; empty when it does."""
        found = []
        if self.caller.successful != self.calls or self.caller.failed:
            found.append(f"caller: {self.caller.successful}/{self.calls} ok, {self.caller.failed} failed")
        if self.callee.successful != self.calls or self.callee.failed:
            found.append(f"callee: {self.callee.successful}/{self.calls} ok, {self.callee.failed} failed")
        if self.retransmissions >= RETRANSMISSION_LIMIT * self.calls:
            limit = f"{RETRANSMISSION_LIMIT:.0%}"
            found.append(f"{self.retransmissions} retransmissions (limit {limit} of calls)")
        slowest = self.calls / self.rate + self.holdSeconds + max(2.0, 0.15 * self.calls / self.rate)
        if self.seconds > slowest:
            found.append(f"took {self.seconds:.1f} s, rate not sustained (at most {slowest:.1f} s)")
        if not self.finished and not found:
            found.append("SIPp did not finish by itself")
        if self.interrupted:
            found.insert(0, "SIPp was told to quit by another process on the machine")
        return found

    @property
    def passed(self) -> bool:
        """Every call succeeded at both ends, at the rate asked, with retransmissions under 1%."""
        return not self.problems

    @property
    def p99Ms(self) -> float | None:
        """The 99th percentile of INVITE to 200 by SIPp's rtd, in milliseconds."""
        return percentile(self.latenciesMs, 0.99)

    @property
    def exactP99Ms(self) -> float | None:
        """The 99th percentile of INVITE to 200 by microsecond timestamps, in milliseconds."""
        return percentile(self.exactLatenciesMs, 0.99)


@dataclass
class CallLoad:
    """
    One load: start it, watch the caller's counts while it runs, and L{finish} it.

    @ivar target: where the caller sends its INVITEs (the system under test).
    @ivar calleePort: the callee's port on 127.0.0.3 (where the system sends them on).
    @ivar calls: how many calls to place.
    @ivar rate: at how many calls per second.
    @ivar holdSeconds: how long each call stays up.
    @ivar latency: whether to keep each call's INVITE to 200 time.
    @ivar callerArgs: more arguments for the caller (e.g. C{-set} for other scenarios).
    @ivar calleeArgs: more arguments for the callee.
    @ivar callerScenario: the caller's scenario file in C{bench/scenarios/}.
    @ivar calleeScenario: the callee's scenario file.
    @ivar rtpSeconds: when above zero, each side of each call sends this many seconds of RTP (50
        packets a second, from a port that its SDP names) through the system: the RTP scenarios
        replace the two above, and each call lasts at least this long.
    @ivar countRtp: with RTP, count the packets that arrive (L{RtpArrivals}), sampling /proc ten times
        a second while the load runs.
    """

    target: tuple[str, int]
    calleePort: int
    calls: int
    rate: float
    holdSeconds: float = 0.0
    latency: bool = False
    callerArgs: Sequence[str] = ()
    calleeArgs: Sequence[str] = ()
    callerScenario: str = "uac.xml"
    calleeScenario: str = "uas.xml"
    rtpSeconds: float = 0.0
    countRtp: bool = False
    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="sbc-bench-sipp-")))

    def __post_init__(self) -> None:
        callerMedia: list[str] = []
        calleeMedia: list[str] = []
        self.arrivals: RtpArrivals | None = None
        if self.rtpSeconds > 0:
            self.callerScenario, self.calleeScenario = RTP_SCENARIOS
            # The call outlasts its RTP by RTP_TAIL: the callee starts streaming only once the ACK
            # is in, and a BYE at the last packet would cut off what is still on its way.
            self.holdSeconds = max(self.holdSeconds, self.rtpSeconds + RTP_TAIL)
            # SIPp streams every call's RTP from its media port (-mp), which it binds with the one
            # two above it; it never reads what arrives there.
            ports = (mediaPort(CALLER_HOST), mediaPort(CALLEE_HOST, avoid=(self.calleePort,)))
            callerMedia = ["-mp", str(ports[0])]
            calleeMedia = ["-mp", str(ports[1])]
            if self.countRtp:
                self.arrivals = RtpArrivals(
                    ((CALLER_HOST, ports[0]), (CALLEE_HOST, ports[1])), datagramSize(CALLER_HOST, RTP_PACKET)
                )
        self.expected = self.calls / self.rate + self.holdSeconds
        budget = self.expected + RESPONSE_TIMEOUT * 2 + 5
        self.callerPort = freePort(CALLER_HOST, (UDP,))
        self.callee = Sipp(
            [
                "-i", CALLEE_HOST, "-p", str(self.calleePort), "-bind_local", "-ci", CALLEE_HOST,
                "-m", str(self.calls), "-nostdin",
                "-recv_timeout", f"{int((self.holdSeconds + RESPONSE_TIMEOUT) * 1000)}",
                "-timeout", f"{math.ceil(budget + _GRACE)}s",
                "-trace_stat", "-stf", _STATISTICS, "-fd", "1",
                *_TUNING,
                *calleeMedia,
                *self.calleeArgs,
            ],
            self.calleeScenario,
            self.directory / "callee",
        )  # fmt: skip
        self.caller = Sipp(
            [
                f"{self.target[0]}:{self.target[1]}",
                "-i", CALLER_HOST, "-p", str(self.callerPort), "-bind_local", "-ci", CALLER_HOST,
                "-s", NUMBER, "-m", str(self.calls), "-r", f"{self.rate:g}", "-rp", "1000",
                "-l", str(min(self.calls, 15000)), "-d", str(int(self.holdSeconds * 1000)), "-nostdin",
                "-recv_timeout", str(int(RESPONSE_TIMEOUT * 1000)),
                "-timeout", f"{math.ceil(budget)}s",
                # A 180 that a multi-process proxy passes after the 200 is ignored, not fatal.
                "-default_behaviors", "-abortunexp",
                "-trace_stat", "-stf", _STATISTICS, "-fd", "1",
                "-trace_err", "-error_file", _ERRORS,
                "-max_log_size", str(_TRACE_LIMIT if self.latency else _LOG_LIMIT),
                *_TUNING,
                *(
                    ["-trace_rtt", "-rtt_freq", "100", "-trace_shortmsg", "-shortmessage_file", _MESSAGES]
                    if self.latency
                    else []
                ),
                *callerMedia,
                *self.callerArgs,
            ],
            self.callerScenario,
            self.directory / "caller",
        )  # fmt: skip
        if self.rtpSeconds > 0:
            audio = pcmu(self.rtpSeconds)
            for side in (self.caller, self.callee):
                (side.directory / RTP_FILE).write_bytes(audio)
        self.deadline = 0.0
        self.started = 0.0

    def start(self) -> None:
        """Start the callee, wait until it listens, then start the caller.

        A callee that exits at once (a port of its own, chosen free a moment before, taken in
        between) is started again, twice at most, before the load counts as not run.
        """
        for attempt in range(CALLEE_STARTS):
            self.callee.start()
            listening = time.monotonic() + 5.0
            while not udpPortBound(CALLEE_HOST, self.calleePort) and self.callee.exitCode is None:
                if time.monotonic() > listening:
                    break
                time.sleep(0.02)
            if self.callee.exitCode is None and udpPortBound(CALLEE_HOST, self.calleePort):
                break
            self.callee.stop()
            if attempt == CALLEE_STARTS - 1:
                try:
                    output = (self.callee.directory / "output.log").read_text(errors="replace")[-400:]
                except OSError:
                    output = "(no output)"
                raise RuntimeError(
                    f"the callee SIPp did not listen on {CALLEE_HOST}:{self.calleePort}: {output}"
                )
            time.sleep(0.5)
        self.started = time.monotonic()
        self.deadline = self.started + self.expected + RESPONSE_TIMEOUT * 2 + 5
        self.caller.start()

    def _waitCaller(self, abortOnTrouble: bool) -> bool:
        """
        Wait for the caller to exit by itself (true) or until its deadline or trouble (false), counting
        the RTP that arrives meanwhile.
        """
        arrivals = self.arrivals
        if not abortOnTrouble and arrivals is None:
            return self.caller.wait(self.deadline)
        limit = RETRANSMISSION_LIMIT * self.calls
        every = 0.25 if arrivals is None else 0.1
        while not self.caller.wait(min(self.deadline, time.monotonic() + every)):
            if arrivals is not None:
                arrivals.sample()
            if time.monotonic() >= self.deadline:
                return False
            if not abortOnTrouble:
                continue
            caller, callee = self.caller.counts(), self.callee.counts()
            if caller.failed or callee.failed or caller.retransmissions + callee.retransmissions >= limit:
                return False
        return True

    def abandon(self) -> None:
        """Stop both ends now, whatever they are doing, and forget what they counted."""
        self.caller.stop()
        self.callee.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def callerCounts(self) -> Counts:
        """The caller's counts now (at most a second old)."""
        return self.caller.counts()

    def finish(self, abortOnTrouble: bool = False) -> LoadResult:
        """
        Wait for both ends (stopping either at its deadline) and collect what they counted.  With
        C{abortOnTrouble}, stop both as soon as a call fails or retransmissions pass the limit: the load
        cannot pass any more, and a ramp need not wait for every call to time out.
        """
        try:
            callerDone = self._waitCaller(abortOnTrouble)
            seconds = time.monotonic() - self.started
            calleeDone = self.callee.wait(time.monotonic() + (_GRACE if callerDone else 0.5))
        finally:
            self.caller.stop()
            self.callee.stop()
        caller = self.caller.counts()
        result = LoadResult(
            calls=self.calls,
            rate=self.rate,
            holdSeconds=self.holdSeconds,
            caller=caller,
            callee=self.callee.counts(),
            seconds=seconds,
            finished=callerDone and calleeDone,
            latenciesMs=tuple(self.caller.latencies()) if self.latency else (),
            exactLatenciesMs=tuple(self.caller.exactLatencies()) if self.latency else (),
            interrupted=callerDone and self.caller.exitCode == 0 and caller.created < self.calls,
            rtpSent=2 * self.calls * len(pcmu(self.rtpSeconds)) // 160 if self.rtpSeconds > 0 else 0,
            rtpArrived=0 if self.arrivals is None else self.arrivals.total,
        )
        if not result.passed:
            result = replace(result, errors=self.caller.errors())
        shutil.rmtree(self.directory, ignore_errors=True)
        return result


# How often a load that something else interrupted is run again.
RETRIES = 2


def runLoad(
    target: tuple[str, int],
    calleePort: int,
    calls: int,
    rate: float,
    *,
    abortOnTrouble: bool = False,
    rtpSeconds: float = 0.0,
) -> LoadResult:
    """
    Place C{calls} calls at C{rate} through C{target} and return the outcome (see L{CallLoad.finish} for
    C{abortOnTrouble}, L{CallLoad.rtpSeconds} for C{rtpSeconds}); run it again (twice at most) when
    something else on the machine interrupted SIPp.
    """
    for _ in range(RETRIES):
        load = CallLoad(target, calleePort, calls, rate, rtpSeconds=rtpSeconds)
        load.start()
        result = load.finish(abortOnTrouble)
        if not result.interrupted:
            return result
        time.sleep(1.0)
    load = CallLoad(target, calleePort, calls, rate, rtpSeconds=rtpSeconds)
    load.start()
    return load.finish(abortOnTrouble)
