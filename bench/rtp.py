"""
RTP packets per second through sbc's built-in relay, and through Debian's rtpengine in userspace.

Each relay carries the same few calls (the plan's C{rtpStreams}), whose two sides are sockets of the
harness: side A on 127.0.0.2, side B on 127.0.0.3.  For sbc they are real SIP calls through it (SIPp
signals, with the harness's sockets in the SDP, and C{media = "relay"} on both trunks); for rtpengine
the harness speaks the ng protocol (offer, answer) itself.  One process sends RTP from each A to the
relay's port for it, in turn, at a rate that climbs a ladder; another counts what reaches the Bs.  The
highest rate at which at least 99% arrives, and the relay's CPU time there (from /proc), are the
figures.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.interop.ports import UDP, freePort

from .blast import Blast, Flow, rtpPackets
from .plan import Plan
from .procfs import cpuSeconds
from .rtpengine import Rtpengine, rtpengineVersion
from .sipp import CALLEE_HOST, CALLER_HOST, CallLoad
from .suite import Log
from .systems import Media, Sbc, UnavailableError

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
    def senderLimited(self) -> bool:
        """The sender could not keep the rate (the machine's cores are shared): the step says nothing."""
        return self.sent < 0.9 * self.rate * self.seconds

    @property
    def passed(self) -> bool:
        """The sender kept the rate and at least 99% of its packets came through."""
        return self.received >= DELIVERY * self.sent and not self.senderLimited


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
        """Whether no rate lost packets: the figure is a lower bound (the ladder or the sender ran out)."""
        return bool(self.steps) and all(step.passed or step.senderLimited for step in self.steps)

    def toJson(self) -> dict[str, Any]:
        """The figures and the steps behind them."""
        return {
            "label": self.label,
            "status": self.status,
            "relayedPerSecond": self.perSecond,
            "relayedPerCpuSecond": self.perCpuSecond,
            "isLowerBound": self.atLeast,
            "steps": [
                {**step.__dict__, "passed": step.passed, "senderLimited": step.senderLimited}
                for step in self.steps
            ],
            "notes": self.notes,
        }


def _ramp(
    result: RelayResult,
    pid: int,
    flows: Sequence[Flow],
    sinks: Sequence[tuple[str, int]],
    plan: Plan,
) -> None:
    """Send RTP on C{flows} at each rate of the plan's ladder in turn, counting what reaches C{sinks}."""
    packets = rtpPackets()
    for rate in plan.rtpLadder:
        blast = Blast()
        blast.receive(sinks, plan.rtpStepSeconds + 1.0)
        before = cpuSeconds(pid)
        blast.send(flows, packets, plan.rtpStepSeconds, rate)
        sent, received = blast.wait(plan.rtpStepSeconds + 10)
        step = RtpStep(rate, sent, received, cpuSeconds(pid) - before, plan.rtpStepSeconds)
        result.steps.append(step)
        if not step.passed:
            return
        time.sleep(0.3)


def _ports(host: str, count: int, avoid: Sequence[int] = ()) -> list[int]:
    """C{count} different free UDP ports on C{host}."""
    ports: list[int] = []
    while len(ports) < count:
        ports.append(freePort(host, (UDP,), avoid=(*avoid, *ports)))
    return ports


def _injection(directory: Path, name: str, ports: Sequence[int]) -> Path:
    """A SIPp injection file (-inf) with one port per line, read in order."""
    path = directory / name
    path.write_text("SEQUENTIAL\n" + "".join(f"{port};\n" for port in ports))
    return path


def measureSbcRelay(python: Path, plan: Plan, log: Log) -> RelayResult:
    """RTP through sbc's built-in relay, on calls through sbc; never raises."""
    result = RelayResult(label="sbc built-in relay")
    sbc = Sbc(python, key="sbc-rtp", media=Media.RELAY)
    calleePort = freePort(CALLEE_HOST, (UDP,))
    aPorts = _ports(CALLER_HOST, plan.rtpStreams)
    bPorts = _ports(CALLEE_HOST, plan.rtpStreams, avoid=(calleePort,))
    files = Path(tempfile.mkdtemp(prefix="sbc-bench-rtp-"))
    try:
        target = sbc.start(calleePort)
        pid = sbc.measuredPid
        assert pid is not None
        call = CallLoad(
            target,
            calleePort,
            calls=plan.rtpStreams,
            rate=max(1, plan.rtpStreams),
            holdSeconds=len(plan.rtpLadder) * (plan.rtpStepSeconds + 2.0) + 5,
            callerScenario="media_uac.xml",
            calleeScenario="media_uas.xml",
            callerArgs=(
                "-set",
                "mediaHost",
                CALLER_HOST,
                "-inf",
                str(_injection(files, "a.csv", aPorts)),
            ),
            calleeArgs=(
                "-set",
                "mediaHost",
                CALLEE_HOST,
                "-inf",
                str(_injection(files, "b.csv", bPorts)),
            ),
        )
        call.start()
        answers = call.caller.directory / "answers.txt"
        deadline = time.monotonic() + 10.0
        lines: list[str] = []
        while len(lines) < plan.rtpStreams:
            if time.monotonic() > deadline:
                outcome = call.finish()
                problems = "; ".join(outcome.problems)
                raise UnavailableError(
                    f"the calls through sbc did not come up: {problems}\n{outcome.errors[:800]}"
                )
            time.sleep(0.05)
            lines = answers.read_text().splitlines() if answers.exists() else []
        flows = []
        for line in lines:
            host, port, own = line.split()
            flows.append(((CALLER_HOST, int(own)), (host, int(port))))
        _ramp(result, pid, flows, [(CALLEE_HOST, port) for port in bPorts], plan)
        call.abandon()
    except (UnavailableError, RuntimeError, AssertionError, OSError, ValueError) as e:
        result.status = f"not measured: {e}"
    finally:
        sbc.stop()
        shutil.rmtree(files, ignore_errors=True)
    log(f"  {result.label}: {_describe(result)}")
    return result


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
    """RTP through rtpengine in userspace, on calls set up over ng; never raises."""
    result = RelayResult(label="rtpengine (userspace)")
    aPorts = _ports(CALLER_HOST, plan.rtpStreams)
    bPorts = _ports(CALLEE_HOST, plan.rtpStreams)
    daemon: Rtpengine | None = None
    try:
        daemon = Rtpengine()
        result.label = f"rtpengine {rtpengineVersion()} (userspace)"
        flows = []
        for index, (aPort, bPort) in enumerate(zip(aPorts, bPorts, strict=True)):
            call = {"call-id": f"bench-rtp-{index}", "from-tag": "side-a"}
            # The offer's SDP goes to B (it names rtpengine's port for B); the answer's SDP goes to A
            # and names the port where A's RTP must go.
            offer = {
                **call,
                "command": "offer",
                "sdp": _sdp(CALLER_HOST, aPort),
                "replace": ["origin"],
            }
            _ok(daemon.command(offer))
            answer = {
                **call,
                "command": "answer",
                "to-tag": "side-b",
                "sdp": _sdp(CALLEE_HOST, bPort),
            }
            flows.append(((CALLER_HOST, aPort), _media(_ok(daemon.command(answer))["sdp"])))
        _ramp(
            result,
            daemon.process.pid,
            flows,
            [(CALLEE_HOST, port) for port in bPorts],
            plan,
        )
    except (
        UnavailableError,
        RuntimeError,
        OSError,
        ValueError,
        subprocess.SubprocessError,
    ) as e:
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


def _verdict(step: RtpStep) -> str:
    return "ok" if step.passed else "sender too slow" if step.senderLimited else "lost"


def _describe(result: RelayResult) -> str:
    if result.status != "ok":
        return result.status
    steps = ", ".join(
        f"{step.rate:,}/s {_verdict(step)} ({step.received:,}/{step.sent:,})" for step in result.steps
    )
    relayed = f"{result.perSecond or 0:,.0f} packets/s relayed"
    return f"{relayed}, {result.perCpuSecond or 0:,.0f} per CPU-second [{steps}]"
