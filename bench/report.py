"""
The results as one table like the issue's (each figure with its ratio to sbc's), printed and written
as Markdown and JSON, with the machine they were measured on.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .anchored import ANCHORED
from .gate import GateResult
from .plan import Plan
from .rtp import RelayResult
from .stalls import INTERVAL, SLOW, StallResult
from .suite import SystemResult

RESULTS = Path(__file__).resolve().parent / "results"
DASH = "\u2013"
TIMES = "\u00d7"
ARROW = "\u2192"
AT_LEAST = "\u2265 "


def machine() -> dict[str, Any]:
    """The machine: CPU model, cores, memory, kernel, Python, and how busy it was."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) * 1024
    except OSError:
        pass
    return {
        "cpu": model or platform.processor(),
        "cores": os.cpu_count(),
        "memoryBytes": memory,
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "loadAverage": os.getloadavg(),
    }


@dataclass
class Report:
    """Everything one run measured."""

    plan: Plan
    started: float
    systems: list[SystemResult] = field(default_factory=list)
    gate: GateResult | None = None
    relays: list[RelayResult] = field(default_factory=list)
    stalls: StallResult | None = None
    notes: list[str] = field(default_factory=list)
    machineBefore: dict[str, Any] = field(default_factory=machine)

    def sbc(self) -> SystemResult | None:
        """The CPython sbc row, the one the ratios compare with."""
        return next((s for s in self.systems if s.key == "sbc" and s.status == "ok"), None)

    def rows(self) -> list[list[str]]:
        """The main table's rows (header first), figures with their ratio to sbc."""
        sbc = self.sbc()
        held = "RSS per held call" + ("" if sbc is None or sbc.held is None else f" ({self._heldWords(sbc)})")
        rate = self.plan.steadyRate
        rows = [
            [
                "system",
                "max CPS, 0 failed",
                f"CPU-seconds per 1,000 calls at {rate} CPS",
                f"INVITE{ARROW}200 p99 at {rate} CPS (exact; SIPp's rtd)",
                held,
            ]
        ]
        for result in self.systems:
            version = f" ({result.version})" if result.version and result.key != "sippy" else ""
            if result.key == "sipp" and result.version:
                version = f" (SIPp {result.version})"
            label = result.label + version
            if result.status != "ok":
                rows.append([label, f"not measured: {_oneLine(result.status)}", "", "", ""])
                continue
            ramp = result.rampResult
            bound = AT_LEAST if ramp is not None and ramp.atLeast else ""
            perCall = None if result.held is None else result.held.perCall
            base = sbc if sbc is not None and result is not sbc else None
            rows.append(
                [
                    label,
                    _figure(
                        result.maxCps,
                        None if base is None else base.maxCps,
                        _count(bound),
                    ),
                    _cpu(result, base),
                    _latency(result, base),
                    _figure(
                        perCall,
                        None if base is None or base.held is None else base.held.perCall,
                        _kilobytes,
                    ),
                ]
            )
        return rows

    def _heldWords(self, sbc: SystemResult) -> str:
        assert sbc.held is not None
        return f"{sbc.held.calls:,} concurrent {sbc.held.holdSeconds:g}-second calls"

    def extraRows(self) -> list[list[str]]:
        """The machine's stalls, the gate and the RTP figures, as a second table."""
        rows = [["also measured", "figure", "detail"]]
        stalls = self.stalls
        if stalls is not None and stalls.runs:
            every = stalls.secondsBetweenEpisodes
            rows.append(
                [
                    f"the machine's own stalls: {stalls.medianUs / 1000:.2g} ms of CPU work every "
                    f"{INTERVAL * 1000:g} ms for {stalls.seconds:g} s, before any system runs",
                    f"{stalls.slowShare:.1%} of runs took {AT_LEAST}{SLOW:g}{TIMES} the median",
                    f"the longest {stalls.worstFactor:.0f}{TIMES}; {stalls.episodes} episodes"
                    + ("" if every is None else f" (one every {every:.1f} s)")
                    + f", the longest {stalls.longestEpisode * 1000:.0f} ms",
                ]
            )
        gate = self.gate
        if gate is not None:
            if gate.status != "ok" or gate.alone is None:
                rows.append(["sbc whitelist gate", f"not measured: {_oneLine(gate.status)}", ""])
            else:
                alone = gate.alone
                perSecond = alone.seconds
                detail = (
                    f"flood alone: {alone.sent / perSecond:,.0f}/s sent, {alone.gated / perSecond:,.0f}/s "
                    f"reached the gate, {alone.kernelDrops / perSecond:,.0f}/s dropped by the kernel "
                    f"(socket full), sbc at {alone.cpuSeconds / perSecond:.0%} of a core"
                )
                name = "sbc whitelist gate: datagrams from a stranger dropped per CPU-second"
                rows.append([name, f"{gate.perCpuSecond or 0:,.0f}", detail])
            if gate.calls is not None and gate.withCalls is not None:
                calls = gate.calls
                flood = gate.withCalls
                detail = (
                    f"{calls.caller.successful:,} ok at the caller, {calls.callee.successful:,} at the "
                    f"callee, {calls.retransmissions} retransmissions; {flood.kernelDrops:,} datagrams "
                    "dropped by the kernel"
                )
                name = f"trunk calls at {calls.rate:g} CPS during a {flood.sent / flood.seconds:,.0f}/s flood"
                rows.append([name, f"{calls.caller.failed} failed of {calls.calls:,}", detail])
        base = next((r for r in self.relays if r.label.startswith("sbc") and r.perSecond), None)
        for relay in self.relays:
            if relay.status != "ok":
                rows.append(
                    [
                        f"RTP through {relay.label}",
                        f"not measured: {_oneLine(relay.status)}",
                        "",
                    ]
                )
                continue
            bound = AT_LEAST if relay.atLeast else ""
            other = base.perSecond if base is not None and relay is not base else None
            rows.append(
                [
                    f"RTP packets/s through {relay.label}, under 1% lost ({self.plan.rtpStreams} streams)",
                    _figure(relay.perSecond, other, _count(bound)),
                    f"{relay.perCpuSecond or 0:,.0f} packets per CPU-second of the relay at that rate",
                ]
            )
        return rows

    def systemNotes(self) -> list[str]:
        """What differs per system: held calls placed otherwise than sbc's, and each row's remarks."""
        notes = []
        sbc = self.sbc()
        for result in self.systems:
            held = result.held
            if held is not None and (sbc is None or sbc.held is None or held.calls != sbc.held.calls):
                notes.append(
                    f"{result.label}: {held.concurrent:,} calls held (placed at {held.rate} CPS, at most "
                    "half its max CPS, so that all are up before the first ends)."
                )
            notes.extend(
                f"{result.label}: {_oneLine(note, 300)}" for note in result.notes if "Traceback" not in note
            )
        return notes

    def result(self, key: str) -> SystemResult | None:
        """The measured row of C{key}, or C{None}."""
        return next((s for s in self.systems if s.key == key and s.status == "ok"), None)

    def targets(self) -> list[str]:
        """Issue 19's targets for anchored media, each with this run's figures and whether it is met.

        A verdict is "met" or "NOT met" only when the figures decide it: a row that ran and passed
        no ramp step has a max CPS of 0; a max CPS that is only a lower bound (no step above it
        failed), a CPU figure from a steady load that did not pass, or an anchored row whose RTP
        did not arrive (under `RTP_ARRIVED` of it) leaves a verdict it could change "undecided".
        """
        relay, engine, kamailio = (self.result(key) for key in ANCHORED)
        bypassed = self.sbc()
        ours = next((r for r in self.relays if r.label.startswith("sbc") and r.status == "ok"), None)
        theirs = next((r for r in self.relays if r.label.startswith("rtpengine") and r.status == "ok"), None)
        checks: list[tuple[str, _Operand, _Operand, float, bool]] = [
            # (what, value, reference, factor, whether the value must be at least factor x reference)
            (f"sbc with the built-in relay: max CPS at least 1.5{TIMES} Kamailio + topoh + rtpengine's",
             _cps(relay), _cps(kamailio), 1.5, True),
            ("sbc with the built-in relay: CPU per call at most Kamailio's plus rtpengine's",
             _cpuOf(relay), _cpuOf(kamailio), 1.0, False),
            (f"sbc with the built-in relay: CPU per call at most 2{TIMES} sbc with media bypassed",
             _cpuOf(relay), _cpuOf(bypassed), 2.0, False),
            ("the built-in relay: packets per CPU-second at least rtpengine's in userspace",
             _Operand(None if ours is None else ours.perCpuSecond),
             _Operand(None if theirs is None else theirs.perCpuSecond), 1.0, True),
            ("sbc with rtpengine: max CPS at least Kamailio + topoh + rtpengine's",
             _cps(engine), _cps(kamailio), 1.0, True),
        ]  # fmt: skip
        return [_verdict(*check) for check in checks]

    def markdown(self) -> str:
        """The whole report as Markdown."""
        info = self.machineBefore
        lines = [
            f"# sbc benchmark ({self.plan.name} run)",
            "",
            f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(self.started))} on {info['cpu']}, "
            f"{info['cores']} cores, {info['memoryBytes'] / 2**30:.0f} GiB, Linux {info['kernel']}, "
            f"Python {info['python']}; load average before the run "
            f"{', '.join(f'{v:.2f}' for v in info['loadAverage'])}. "
            f"Reproduce with `make bench{' QUICK=1' if self.plan.quick else ''}`.",
            "",
            _table(self.rows()),
            "",
            "Ratios are each figure divided by sbc's (on CPython, media bypassed).",
            "",
            _table(self.extraRows()),
            "",
            *(
                ["## Issue 19's targets (media anchored)", "", *[f"- {line}" for line in self.targets()], ""]
                if any(s.key in ANCHORED for s in self.systems)
                else []
            ),
            "## How",
            "",
            *[f"- {note}" for note in [*self.notes, *self.systemNotes()]],
        ]
        return "\n".join(lines) + "\n"

    def toJson(self) -> dict[str, Any]:
        """The whole report as JSON."""
        return {
            "plan": self.plan.__dict__,
            "started": self.started,
            "seconds": time.time() - self.started,
            "machine": self.machineBefore,
            "loadAverageAfter": os.getloadavg(),
            "systems": [s.toJson() for s in self.systems],
            "gate": None if self.gate is None else self.gate.toJson(),
            "stalls": None if self.stalls is None else self.stalls.toJson(),
            "rtp": [r.toJson() for r in self.relays],
            "notes": self.notes,
            "table": self.rows(),
            "alsoMeasured": self.extraRows(),
            "targets": self.targets(),
        }

    def write(self, directory: Path = RESULTS) -> tuple[Path, Path]:
        """Write C{latest.md} and C{latest.json} into C{directory}; their paths."""
        directory.mkdir(parents=True, exist_ok=True)
        markdown = directory / "latest.md"
        data = directory / "latest.json"
        markdown.write_text(self.markdown())
        data.write_text(json.dumps(self.toJson(), indent=2, default=str) + "\n")
        return markdown, data


# The share of the RTP sent that must have arrived for an anchored row's CPU figure to count: a
# call whose media went missing cost its system less than one that carried it.
RTP_ARRIVED = 0.99


@dataclass(frozen=True)
class _Operand:
    """One side of a target: its figure (None: not measured), whether that is only a lower bound,
    and why a verdict cannot rest on it (empty when it can)."""

    value: float | None
    lowerBound: bool = False
    label: str = ""
    unusable: str = ""


def _cps(row: SystemResult | None) -> _Operand:
    """A row's max CPS: 0 when it ran its ramp and passed no step, a lower bound when no step failed."""
    ramp = None if row is None else row.rampResult
    if row is None or ramp is None or not ramp.steps:
        return _Operand(None)
    if ramp.maxCps is None:
        return _Operand(0.0, label=row.label)
    return _Operand(float(ramp.maxCps), ramp.atLeast, row.label)


def _cpuOf(row: SystemResult | None) -> _Operand:
    """A row's CPU per 1,000 calls, usable only if its steady load passed and, with media anchored,
    its RTP arrived."""
    if row is None or row.cpuPer1000 is None:
        return _Operand(None)
    steady = row.steady
    unusable = ""
    if steady is None or not steady.passed:
        problems = "; ".join(steady.problems) if steady is not None else "not run"
        unusable = f"the steady load of {row.label} did not pass ({_oneLine(problems, 100)})"
    elif row.key in ANCHORED:
        sent, arrived = row.rtpSentPerCall, row.rtpArrivedPerCall or 0.0
        if not sent:
            unusable = f"no RTP was counted in the steady load of {row.label}"
        elif arrived / sent < RTP_ARRIVED:
            unusable = f"only {arrived / sent:.1%} of the RTP sent through {row.label} arrived"
    return _Operand(row.cpuPer1000, label=row.label, unusable=unusable)


def _verdict(what: str, value: _Operand, reference: _Operand, factor: float, atLeast: bool) -> str:
    """One target's line: the figures, their ratio, and met, NOT met, or undecided and why."""
    if value.value is None or reference.value is None:
        return f"{what}: not measured in this run"
    shown = [(AT_LEAST if side.lowerBound else "") + _plain(side.value or 0.0) for side in (value, reference)]
    ratio = f" ({value.value / reference.value:.2f}{TIMES})" if reference.value else ""
    figures = f"{shown[0]} against {shown[1]}{ratio}"
    unusable = value.unusable or reference.unusable
    if unusable:
        return f"{what}: {figures}: undecided: {unusable}"
    if atLeast:
        met = value.value >= factor * reference.value and value.value > 0  # nothing is never enough
    else:
        met = value.value <= factor * reference.value
    # A lower bound may be exceeded: the verdict stands only if a larger figure could not change it.
    # At least: a larger value keeps "met", a larger reference keeps "NOT met"; at most, the reverse.
    couldChange = [
        side for side in (value, reference) if side.lowerBound and (side is value) != (met == atLeast)
    ]
    if couldChange:
        names = " and ".join(side.label for side in couldChange)
        return (
            f"{what}: {figures}: undecided: the max CPS of {names} is only a lower bound "
            "(no ramp step above it failed)"
        )
    return f"{what}: {figures}: {'met' if met else 'NOT met'}"


def _figure(value: float | None, base: float | None, show: Callable[[float], str]) -> str:
    """C{value} shown, with its ratio to C{base} when there is one; a dash when unmeasured."""
    if value is None:
        return DASH
    if not base:
        return show(value)
    return f"{show(value)} ({value / base:.2g}{TIMES})"


def _plain(value: float) -> str:
    """A count with thousands separators, or a small figure with two decimals."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.2f}"


def _cpu(result: SystemResult, base: SystemResult | None) -> str:
    """CPU-seconds per 1,000 calls with its ratio, and the media engine's share when one ran beside."""
    cell = _figure(result.cpuPer1000, None if base is None else base.cpuPer1000, "{:.2f}".format)
    if result.mediaCpuPer1000 is None or result.cpuPer1000 is None:
        return cell
    own = result.cpuPer1000 - result.mediaCpuPer1000
    return f"{cell} [{own:.2f} + rtpengine {result.mediaCpuPer1000:.2f}]"


def _latency(result: SystemResult, base: SystemResult | None) -> str:
    """The exact p99 with its ratio, then SIPp's own figure (in its clock's 4 ms ticks)."""
    exact = _figure(result.exactP99Ms, None if base is None else base.exactP99Ms, "{:.1f} ms".format)
    return exact if result.p99Ms is None else f"{exact}; rtd {result.p99Ms:.0f} ms"


def _count(prefix: str) -> Callable[[float], str]:
    """Shows a count with thousands separators after C{prefix} (say, "at least")."""
    return lambda value: f"{prefix}{value:,.0f}"


def _kilobytes(value: float) -> str:
    return f"{value / 1024:.1f} KB"


def _oneLine(text: str, limit: int = 140) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _table(rows: Sequence[Sequence[str]]) -> str:
    """Rows (header first) as a Markdown table."""

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return "\n".join([line(rows[0]), line(["---"] * len(rows[0])), *(line(row) for row in rows[1:])])
