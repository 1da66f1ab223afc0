"""
C{python -m bench}: install the anchors, measure every system, print the table and write
C{bench/results/latest.{md,json}}.  C{QUICK=1} in the environment (or C{--quick}) runs the short plan.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

from .anchored import anchoredSystems
from .gate import measureGate
from .install import installAnchors
from .plan import FULL, QUICK, Plan
from .procfs import strangers
from .report import RESULTS, Report
from .rtp import measureRtpengine, measureSbcRelay
from .sipp import RTP_TAIL
from .stalls import measureStalls
from .suite import SystemResult, measureSystem
from .systems import Ceiling, Kamailio, Sbc, Sippy, System, raiseFileLimit

# Programs whose presence, outside the benchmark, means another load shares the machine.
OTHER_LOADS = frozenset({"sipp", "kamailio", "twistd", "b2bua", "rtpengine", "sipsak"})

METHOD = [
    "Each call: a SIPp caller on 127.0.0.2 sends INVITE (SDP offer) through the system to a SIPp callee on "
    "127.0.0.3, which answers 100, 180 and 200 (SDP answer); then ACK, BYE, 200. No media (but in the "
    "anchored-media rows, below), no authentication. Each system listens on a loopback address of its own.",
    "Max CPS: the rate ramps up a ladder of steps; a step passes when every call succeeds at both ends, "
    "retransmissions (counted by SIPp at both ends) stay under 1% of its calls, and the rate is kept. "
    "A failed step restarts the system. The gap to the first failed rate is then bisected.",
    "CPU-seconds per 1,000 calls: user plus system time of the system's whole process tree (/proc) "
    "while it carries the calls at 100 CPS, right after a fresh start and a few warm-up calls.",
    "INVITE→200 p99 at 100 CPS, the nearest-rank 99th percentile of 3,000 calls: exact, from the "
    "caller's message trace (SIPp -trace_shortmsg: the first INVITE sent and the first 200 for it "
    "received, stamped in microseconds); after it, SIPp's own response time (rtd) of the same calls, "
    "which comes in steps of its coarse clock (the kernel's tick, 4 ms at 250 Hz, so a p99 of 4, 8 or "
    "12 ms). The ceiling row is SIPp's own floor. The machine's own stalls (the 'also measured' table) "
    "set how many calls fall into a slow episode, whatever system carries them.",
    "Memory per held call: after a fresh start and a few warm-up calls, many calls are placed and held "
    "at once; the PSS (proportional set size: shared pages counted once) of the system's process tree "
    "at the plateau, less before, divided by the calls held.",
    "sbc runs with two trunks and a transit route, media bypassed and no hook; it writes (and fsyncs) a "
    "CDR per call as it always does. Kamailio runs bench/kamailio.cfg (tm, sl, rr, maxfwd, textops; two "
    "UDP workers), with topoh for its second row. Sippy runs b2bua -u -A 0 with a static route and "
    "SIPLOG_BEND=none.",
    "Everything runs on one machine: the SIPp processes compete with the system under test for the "
    "same cores, and other processes on the machine (see the load average) may too.",
]


def anchoredMethod(plan: Plan) -> str:
    """How the anchored-media rows run, for the report's notes."""
    return (
        "The anchored-media rows (the last three) anchor each call's media, and their calls carry RTP: "
        "each SIPp names in its SDP a port of its own and streams PCMU from it (rtp_stream, 20 ms "
        f"packets) for {plan.rtpCallSeconds:g} s after the ACK, both ways, and each call lasts "
        f"{RTP_TAIL:g} s longer (so the last packets arrive before the BYE); a call whose SDP "
        "reaches the far SIPp still naming the other SIPp (media not anchored) "
        "fails. Held calls send the same at their start. sbc runs the bypassed row's config with media "
        '"relay" on both trunks and [media] engine "relay" (the built-in relay) or "rtpengine" (ng). '
        "Kamailio runs bench/kamailio_rtpengine.cfg: the topoh row's proxy plus the rtpengine module "
        "(rtpengine_manage() on INVITE, replies with SDP, BYE, CANCEL and failures). Both rtpengine rows "
        "start Debian's rtpengine daemon beside the system (userspace, --table=-1, --delete-delay=0, two "
        "threads, on 127.0.0.10), afresh with each start of the system; their CPU-seconds and memory are "
        "the system's and rtpengine's together, the two shares in brackets."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    quickDefault = os.environ.get("QUICK", "").strip().lower() not in ("", "0", "false", "no")
    parser.add_argument("--quick", action="store_true", default=quickDefault, help="the short run (QUICK=1)")
    keys = (
        "stalls, sipp, kamailio, kamailio-topoh, sippy, sbc, sbc-pypy, sbc-relay, sbc-rtpengine, "
        "kamailio-topoh-rtpengine, gate, rtp"
    )
    parser.add_argument("--only", action="append", default=[], metavar="KEY", help=f"measure only: {keys}")
    parser.add_argument("--no-install", action="store_true", help="use only what is installed already")
    parser.add_argument("--output", type=Path, default=RESULTS, help="where latest.md and latest.json go")
    options = parser.parse_args(argv)
    plan: Plan = QUICK if options.quick else FULL
    started = time.time()

    def log(message: str) -> None:
        print(f"[{time.time() - started:6.1f}s] {message}", flush=True)

    def wanted(key: str) -> bool:
        return not options.only or key in options.only

    log(f"sbc benchmark, {plan.name} run")
    anchors = installAnchors(log, install=not options.no_install)
    for note in anchors.notes:
        log(f"note: {note}")
    if shutil.which("sipp") is None:
        log("SIPp is not installed (apt-get install sip-tester): nothing can be measured")
        return 1

    report = Report(plan=plan, started=started, notes=list(METHOD))
    if plan.quick:
        report.notes.append(
            f"QUICK run: ramp steps of {plan.stepSeconds:g} s on a coarse ladder, {plan.steadyCalls} calls "
            f"at {plan.steadyRate} CPS, {plan.heldCalls} held calls of {plan.holdSeconds:g} s; the full "
            "run (make bench) uses 5 s steps, 3,000 calls and 2,000 calls of 30 s."
        )
    report.notes.extend(anchors.notes)
    report.notes.append(raiseFileLimit())  # before any system starts: they inherit it
    python = Path(sys.executable)
    systems: list[System] = [
        Ceiling(),
        Kamailio(topoh=False),
        Kamailio(topoh=True),
        Sippy(anchors.sippy, anchors.sippyVersion),
        Sbc(python, label="sbc on CPython"),
    ]
    if anchors.pypy is not None:
        systems.append(Sbc(anchors.pypy, label="sbc on PyPy", key="sbc-pypy", host="127.0.0.8"))
    anchored = anchoredSystems(python)
    if any(wanted(system.key) for system in anchored):
        report.notes.append(anchoredMethod(plan))
    seen: set[str] = set()

    def lookAround() -> None:
        others = strangers(OTHER_LOADS)
        if others and not seen.issuperset(others):
            log(f"note: other SIP or media processes run on this machine: {', '.join(others)}")
        seen.update(others)

    lookAround()
    if wanted("stalls"):
        log(f"the machine's own stalls ({plan.stallSeconds:g} s)")
        report.stalls = measureStalls(plan.stallSeconds)
    for system in systems:
        if not wanted(system.key):
            continue
        log(f"{system.label}")
        report.systems.append(measureSystem(system, plan, log))
        lookAround()
    if anchors.pypy is None and wanted("sbc-pypy"):
        note = next((n for n in anchors.notes if n.startswith("PyPy")), "PyPy: not installed")
        report.systems.append(SystemResult("sbc-pypy", "sbc on PyPy", status=note.removeprefix("PyPy: ")))
    for system in anchored:
        if not wanted(system.key):
            continue
        log(f"{system.label}")
        report.systems.append(measureSystem(system, plan, log))
        lookAround()
    if wanted("gate"):
        log("sbc whitelist gate")
        report.gate = measureGate(python, plan, log)
    if wanted("rtp"):
        log("RTP relays")
        report.relays.append(measureSbcRelay(python, plan, log))
        report.relays.append(measureRtpengine(plan, log))

    lookAround()
    if seen:
        names = sorted({entry.split()[0] for entry in seen})
        report.notes.append(
            f"Other processes ({', '.join(names)}: {len(seen)} in all) ran on this machine during the run, "
            "outside the benchmark; their load lowers the figures that depend on free cores (max CPS above "
            "all), and a SIPp load that one of them interrupted was run again."
        )
    markdown, data = report.write(options.output)
    print()
    print(report.markdown())
    log(f"wrote {markdown} and {data}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
