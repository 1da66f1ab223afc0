"""
RTP packets per second through sbc's built-in relay, and through Debian's rtpengine in userspace.

Each relay gets one call whose two sides are sockets of the harness: side A on 127.0.0.2, side B on
127.0.0.3.  For sbc the call is a real SIP call through it (SIPp signals, with the harness's sockets
in the SDP, and C{media = "relay"} on both trunks); for rtpengine the harness speaks the ng protocol
(offer, answer) itself.  Then one process sends RTP from A to the relay's port for A as fast as it
can, another counts what reaches B, and the relay's CPU time is read from /proc.  What reaches B per
second and per CPU-second of the relay is the figure.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sbc.media.bencode import decode, encode
from tests.interop.ports import UDP, freePort

from .blast import Blast, rtpPackets
from .plan import Plan
from .procfs import cpuSeconds
from .sipp import CALLEE_HOST, CALLER_HOST, CallLoad
from .suite import Log
from .systems import LIFETIME, Sbc, UnavailableError

RTPENGINE_HOST = "127.0.0.10"


# A rate passes when at least this share of the packets sent reaches B.
DELIVERY = 0.99


@dataclass(frozen=True)
class RtpStep:
    """
    RTP at one rate through a relay.

    @ivar rate: packets per second asked of the sender.
    @ivar sent: packets sent.
    @ivar received: packets that reached B.
    @ivar cpuSeconds: CPU time of the relay's process tree meanwhile.
    @ivar seconds: how long the sender sent.
    """

    rate: int
    sent: int
    received: int
    cpuSeconds: float
    seconds: float

    @property
    def passed(self) -> bool:
        """The sender kept the rate and at least 99% of its packets came through."""
        return self.received >= DELIVERY * self.sent and self.sent >= 0.9 * self.rate * self.seconds


@dataclass
class RelayResult:
    """
    RTP through one relay: the paced rates tried, from low to high, until one lost packets.

    @ivar label: the relay, for the table.
    @ivar status: C{"ok"}, or why it was not measured.
    """

    label: str
    status: str = "ok"
    steps: list[RtpStep] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def best(self) -> RtpStep | None:
        """The highest rate that passed."""
        passed = [step for step in self.steps if step.passed]
        return max(passed, key=lambda step: step.rate) if passed else None

    @property
    def perSecond(self) -> float | None:
        """Packets relayed per second at the highest rate with under 1% loss."""
        best = self.best
        return best.received / best.seconds if best is not None and best.seconds else None

    @property
    def perCpuSecond(self) -> float | None:
        """Packets relayed per CPU-second of the relay, at that rate."""
        best = self.best
        return best.received / best.cpuSeconds if best is not None and best.cpuSeconds else None

    @property
    def atLeast(self) -> bool:
        """Whether no rate failed: the figure is a lower bound (the ladder or the sender ran out)."""
        return bool(self.steps) and all(step.passed for step in self.steps)

    def toJson(self) -> dict[str, Any]:
        """The figures and the steps behind them."""
        return {
            "label": self.label,
            "status": self.status,
            "relayedPerSecond": self.perSecond,
            "relayedPerCpuSecond": self.perCpuSecond,
            "isLowerBound": self.atLeast,
            "steps": [{**step.__dict__, "passed": step.passed} for step in self.steps],
            "notes": self.notes,
        }


def _ramp(
    result: RelayResult, pid: int, relay: tuple[str, int], a: tuple[str, int], b: tuple[str, int], plan: Plan
) -> None:
    """Send RTP from C{a} to C{relay} at each rate of the plan's ladder, counting what reaches C{b}."""
    packets = rtpPackets()
    for rate in plan.rtpLadder:
        blast = Blast()
        blast.receive(b, plan.rtpStepSeconds + 1.0)
        before = cpuSeconds(pid)
        blast.send(a, relay, packets, plan.rtpStepSeconds, rate)
        sent, received = blast.wait(plan.rtpStepSeconds + 10)
        step = RtpStep(rate, sent, received, cpuSeconds(pid) - before, plan.rtpStepSeconds)
        result.steps.append(step)
        if not step.passed:
            return
        time.sleep(0.3)


def measureSbcRelay(python: Path, plan: Plan, log: Log) -> RelayResult:
    """RTP through sbc's built-in relay, on a call through sbc; never raises."""
    result = RelayResult(label="sbc built-in relay")
    sbc = Sbc(python, key="sbc-relay", relay=True)
    calleePort = freePort(CALLEE_HOST, (UDP,))
    a = (CALLER_HOST, freePort(CALLER_HOST, (UDP,)))
    b = (CALLEE_HOST, freePort(CALLEE_HOST, (UDP,), avoid=(calleePort,)))
    try:
        target = sbc.start(calleePort)
        pid = sbc.measuredPid
        assert pid is not None
        call = CallLoad(
            target,
            calleePort,
            calls=1,
            rate=1,
            holdSeconds=len(plan.rtpLadder) * (plan.rtpStepSeconds + 2.0) + 5,
            callerScenario="media_uac.xml",
            calleeScenario="media_uas.xml",
            callerArgs=("-set", "mediaHost", a[0], "-set", "mediaPort", str(a[1])),
            calleeArgs=("-set", "mediaHost", b[0], "-set", "mediaPort", str(b[1])),
        )
        call.start()
        answer = call.caller.directory / "answer.txt"
        deadline = time.monotonic() + 5.0
        while not answer.exists():
            if time.monotonic() > deadline:
                outcome = call.finish()
                problems = "; ".join(outcome.problems)
                raise UnavailableError(
                    f"the call through sbc did not come up: {problems}\n{outcome.errors[:800]}"
                )
            time.sleep(0.05)
        host, port = answer.read_text().split()
        _ramp(result, pid, (host, int(port)), a, b, plan)
        call.abandon()
    except (UnavailableError, RuntimeError, AssertionError, OSError, ValueError) as e:
        result.status = f"not measured: {e}"
    finally:
        sbc.stop()
    log(f"  {result.label}: {_describe(result)}")
    return result


class _Rtpengine:
    """rtpengine in userspace mode (no kernel module) on loopback, as in tests/interop/test_rtpengine.py."""

    def __init__(self) -> None:
        binary = shutil.which("rtpengine")
        if binary is None:
            raise UnavailableError("rtpengine is not installed (apt-get install rtpengine-daemon)")
        self.directory = Path(tempfile.mkdtemp(prefix="sbc-bench-rtpengine-"))
        self.requests = 0
        self.ng = (RTPENGINE_HOST, freePort(RTPENGINE_HOST, (UDP,)))
        low = freePort(RTPENGINE_HOST, (UDP,), avoid=(self.ng[1],))
        low = min(low - low % 2, 65534 - 100)
        command = [
            "timeout", "--kill-after=5", str(LIFETIME), binary,
            "--config-file=none", "--foreground", "--log-stderr", "--log-level=4",
            f"--interface={RTPENGINE_HOST}", f"--listen-ng={self.ng[0]}:{self.ng[1]}",
            f"--port-min={low}", f"--port-max={low + 99}",
            "--table=-1", "--num-threads=2", "--delete-delay=0",
            f"--pidfile={self.directory / 'rtpengine.pid'}",
        ]  # fmt: skip
        with (self.directory / "rtpengine.log").open("wb") as log:
            self.process = subprocess.Popen(
                command, cwd=self.directory, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 10.0
        while True:
            try:
                if self.command({"command": "ping"}).get("result") == b"pong":
                    return
            except (TimeoutError, ValueError):
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise UnavailableError("rtpengine did not answer its ng ping")

    def command(self, message: dict[str, Any]) -> dict[str, Any]:
        """One ng request and its answer (a dict), over a fresh socket."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((RTPENGINE_HOST, 0))
            sock.settimeout(2.0)
            # rtpengine answers a repeated cookie from its cache: every request needs its own.
            self.requests += 1
            sock.sendto(f"bench-{self.requests} ".encode() + encode(message), self.ng)
            reply = sock.recv(65535)
        _, _, body = reply.partition(b" ")
        value = decode(body)
        if not isinstance(value, dict):
            raise ValueError(f"odd ng reply {reply!r}")
        return {key.decode() if isinstance(key, bytes) else str(key): item for key, item in value.items()}

    def stop(self) -> None:
        """Stop the daemon (its whole process group) and remove its directory."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        shutil.rmtree(self.directory, ignore_errors=True)


def _sdp(host: str, port: int) -> bytes:
    return (
        f"v=0\r\no=- 1 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
    ).encode()


def _media(sdp: Any) -> tuple[str, int]:
    text = sdp.decode() if isinstance(sdp, bytes) else str(sdp)
    connection = re.search(r"^c=IN IP4 (\S+)", text, re.MULTILINE)
    media = re.search(r"^m=audio (\d+) ", text, re.MULTILINE)
    if connection is None or media is None:
        raise ValueError(f"no c= or m=audio in {text!r}")
    return connection.group(1), int(media.group(1))


def measureRtpengine(plan: Plan, log: Log) -> RelayResult:
    """RTP through rtpengine in userspace, on a call set up over ng; never raises."""
    result = RelayResult(label="rtpengine (userspace)")
    a = (CALLER_HOST, freePort(CALLER_HOST, (UDP,)))
    b = (CALLEE_HOST, freePort(CALLEE_HOST, (UDP,)))
    daemon: _Rtpengine | None = None
    try:
        daemon = _Rtpengine()
        version = subprocess.run(["rtpengine", "--version"], capture_output=True, text=True, timeout=10)
        result.label = f"rtpengine {(version.stdout or version.stderr).strip().split()[-1]} (userspace)"
        call = {"call-id": "bench-rtp", "from-tag": "side-a"}
        # The offer's SDP goes to B (it names rtpengine's port for B); the answer's SDP goes to A and
        # names the port where A's RTP must go.
        _ok(daemon.command({**call, "command": "offer", "sdp": _sdp(*a), "replace": ["origin"]}))
        answer = _ok(daemon.command({**call, "command": "answer", "to-tag": "side-b", "sdp": _sdp(*b)}))
        relay = _media(answer["sdp"])
        _ramp(result, daemon.process.pid, relay, a, b, plan)
        daemon.command({**call, "command": "delete"})
    except (UnavailableError, RuntimeError, OSError, ValueError, subprocess.SubprocessError) as e:
        result.status = f"not measured: {e}"
    finally:
        if daemon is not None:
            daemon.stop()
    log(f"  {result.label}: {_describe(result)}")
    return result


def _ok(reply: dict[str, Any]) -> dict[str, Any]:
    """C{reply}, when rtpengine says C{result: ok}; else raise with what it said."""
    if reply.get("result") != b"ok":
        raise ValueError(f"rtpengine refused: {reply}")
    return reply


def _describe(result: RelayResult) -> str:
    if result.status != "ok":
        return result.status
    steps = ", ".join(
        f"{step.rate:,}/s {'ok' if step.passed else 'lost'} ({step.received:,}/{step.sent:,})"
        for step in result.steps
    )
    relayed = f"{result.perSecond or 0:,.0f} packets/s relayed"
    return f"{relayed}, {result.perCpuSecond or 0:,.0f} per CPU-second [{steps}]"
