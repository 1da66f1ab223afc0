"""What an anchored call costs the SBC: CPU-seconds per 1,000 calls and log lines per call (issue 19).

Starts ``twistd -n sbc`` with the bench's config (trunk 127.0.0.2 -> sbc -> trunk 127.0.0.3, a
transit route), media through the built-in relay (or bypassed, with ``--bypass``), and has SIPp
place ``--calls`` calls at ``--rate`` CPS (bench/scenarios/uac.xml, uas.xml). It reads the
process tree's CPU time from /proc before the first call and after the last, and counts the lines
the SBC logged meanwhile: a quicker, narrower measure than `make bench`, for one optimisation's
before/after figures. Run from the repository:

    .venv/bin/python -m bench.relaycost [--calls 2000] [--rate 100] [--bypass] [--rtp 1] [--repeat 2]

Before/after: ``--tree BEFORE --tree AFTER --repeat 2`` runs the two checkouts' code alternately.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tests.interop.ports import UDP, freePort, udpPortBound

from .procfs import cpuSeconds
from .sipp import CALLEE_HOST, CALLER_HOST, CallLoad

REPO = Path(__file__).resolve().parent.parent

HOST = "127.0.0.6"
CONFIG = """# sbc as relaycost.py runs it: the bench's trunks and route.
[state]
directory = "state"

[whitelist]
poll_interval = 60.0

[[listen]]
transport = "udp"
host = "{host}"
port = {port}

[[routing.routes]]
prefix = "*"
trunks = ["uas"]
transit = true

[media]
engine = "relay"
address = "{host}"
port_min = {low}
port_max = {high}

[trunks.uac]
whitelist = "whitelist/uac.txt"
media = "{media}"

[trunks.uas]
whitelist = "whitelist/uas.txt"
gateways = ["{callee}:{calleePort}"]
media = "{media}"
"""


def startSbc(
    directory: Path, calleePort: int, relay: bool, tree: Path = REPO
) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``twistd -n sbc`` (the code in ``tree``) in ``directory``; return it and its SIP port."""
    (directory / "whitelist").mkdir()
    (directory / "whitelist" / "uac.txt").write_text(f"{CALLER_HOST}/32\n")
    (directory / "whitelist" / "uas.txt").write_text(f"{CALLEE_HOST}/32\n")
    port = freePort(HOST, (UDP,))
    low = freePort(HOST, (UDP,))
    low = min(low - low % 2, 65000)
    (directory / "sbc.toml").write_text(
        CONFIG.format(
            host=HOST,
            port=port,
            low=low,
            high=min(low + 1999, 65535),
            media="relay" if relay else "bypass",
            callee=CALLEE_HOST,
            calleePort=calleePort,
        )
    )
    twistd = REPO / ".venv" / "bin" / "twistd"
    with (directory / "output.log").open("wb") as output:
        process = subprocess.Popen(
            [
                "timeout",
                "600",
                str(twistd),
                "-n",
                "--pidfile=",
                "sbc",
                "--config",
                str(directory / "sbc.toml"),
            ],
            cwd=directory,
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(tree)},
            start_new_session=True,
        )
    deadline = time.monotonic() + 20
    while not udpPortBound(HOST, port):
        if process.poll() is not None or time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            raise RuntimeError((directory / "output.log").read_text()[-800:])
        time.sleep(0.05)
    return process, port


def measure(
    calls: int, rate: float, relay: bool, tree: Path = REPO, rtpSeconds: float = 0.0
) -> dict[str, object]:
    """One run: start the SBC, place the calls, and return its CPU and log figures."""
    directory = Path(tempfile.mkdtemp(prefix="sbc-relaycost-"))
    log = directory / "output.log"
    calleePort = freePort(CALLEE_HOST, (UDP,))
    process, port = startSbc(directory, calleePort, relay, tree)
    try:
        time.sleep(1.0)  # let start-up work settle
        linesBefore = log.read_text().count("\n")
        cpuBefore = cpuSeconds(process.pid)
        load = CallLoad((HOST, port), calleePort, calls, rate, rtpSeconds=rtpSeconds)
        load.start()
        result = load.finish()
        time.sleep(0.5)  # the last BYEs' work
        cpu = cpuSeconds(process.pid) - cpuBefore
        text = log.read_text()
        lines = text.count("\n") - linesBefore
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)
        shutil.rmtree(directory, ignore_errors=True)
    return {
        "media": "relay" if relay else "bypass",
        "tree": str(tree),
        "calls": calls,
        "rate": rate,
        "rtpSeconds": rtpSeconds,
        "successful": result.caller.successful,
        "failed": result.caller.failed,
        "cpuSecondsPer1000Calls": round(cpu * 1000 / calls, 3),
        "logLinesPerCall": round(lines / calls, 3),
        "lastLogLine": text.splitlines()[-1][:160] if text else "",
    }


def main() -> None:
    """Parse the options, run, print one JSON line per run."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--bypass", action="store_true", help="media bypassed instead of relayed")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--rtp", type=float, default=0.0, help="seconds of RTP each side of each call sends (as make bench)"
    )
    parser.add_argument(
        "--tree",
        type=Path,
        action="append",
        help="run the sbc code of this checkout (repeatable: runs alternate)",
    )
    options = parser.parse_args()
    for _ in range(options.repeat):
        for tree in options.tree or [REPO]:
            print(
                json.dumps(measure(options.calls, options.rate, not options.bypass, tree, options.rtp)),
                flush=True,
            )


if __name__ == "__main__":
    main()
