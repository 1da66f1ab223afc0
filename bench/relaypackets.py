"""What one relayed packet costs the built-in relay, without SIP: CPU-microseconds per packet (issue 19).

A child process builds the relay as the service does (`sbc.tap.mediaRelay`'s parts: QuietUDP on a
MediaPoller when the tree has one), anchors ``--streams`` calls by offer and answer
(127.0.0.2 -> relay on 127.0.0.6 -> 127.0.0.3), and runs the reactor; bench.blast sends RTP at
``--rate`` packets a second on every stream for ``--seconds`` and counts what arrives. The figure is
the child's CPU time over the packets that arrived: narrower than `make bench`'s RTP rows, for one
optimisation's before/after. Run from the repository:

    .venv/bin/python -m bench.relaypackets [--rate 20000] [--seconds 3] [--tree A --tree B --repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RELAY_HOST, A_HOST, B_HOST = "127.0.0.6", "127.0.0.2", "127.0.0.3"
# Ports: the relay's range, then where each side's streams live (both sides' hosts are loopback
# addresses of their own, so the same numbers cannot collide with the relay's).
RELAY_PORTS = (40000, 40999)
A_BASE, B_BASE = 41000, 42000


def _sdp(host: str, port: int) -> bytes:
    return (
        f"v=0\r\no=- 1 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
    ).encode()


def serve(streams: int, window: float) -> None:
    """The child: anchor the calls, print where A must send, and relay until killed."""
    from twisted.internet import epollreactor

    epollreactor.install()
    from twisted.internet import reactor

    from sbc.media.ports import PortPool
    from sbc.media.relay import MediaRelay, sparePairs
    from sbc.media.sockets import QuietUDP

    readers: object = reactor
    try:
        from sbc.media.poller import pollerFor

        readers = pollerFor(reactor, reactor, window) or reactor
    except ImportError:  # a tree from before the poller
        pass
    pool = PortPool(*RELAY_PORTS)
    relay = MediaRelay(
        QuietUDP(readers),  # type: ignore[arg-type]
        reactor,
        RELAY_HOST,
        pool,
        timeout=600,
        forbidden=None,
        maxStreams=None,
        spare=sparePairs(pool.capacity),
    )
    flows = []
    for index in range(streams):
        a, b = A_BASE + 2 * index, B_BASE + 2 * index
        relay.offer(f"call-{index}", "A", _sdp(A_HOST, a), lambda: None, A_HOST)
        towardsA = relay.answer(f"call-{index}", "B", _sdp(B_HOST, b), B_HOST)
        found = re.search(rb"m=audio (\d+)", towardsA)
        assert found is not None
        flows.append((a, int(found.group(1)), b))
    print(json.dumps(flows), flush=True)
    reactor.run()


def measure(tree: Path, rate: float, seconds: float, streams: int, window: float) -> dict[str, object]:
    """One run of the relay in ``tree``: packets sent and received, and CPU-microseconds per packet."""
    from .blast import Blast, rtpPackets  # here: the child runs this file as a script, on ``tree``
    from .procfs import cpuSeconds

    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(streams), "--window", str(window)],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(tree)},
    )
    try:
        assert child.stdout is not None
        flows = json.loads(child.stdout.readline())
        blast = Blast()
        blast.receive([(B_HOST, b) for _, _, b in flows], seconds + 1)
        time.sleep(0.2)
        before = cpuSeconds(child.pid)
        blast.send([((A_HOST, a), (RELAY_HOST, port)) for a, port, _ in flows], rtpPackets(), seconds, rate)
        sent, received = blast.wait(seconds + 10)
        cpu = cpuSeconds(child.pid) - before
    finally:
        child.kill()
        child.wait(5)
    return {
        "tree": str(tree),
        "rate": rate,
        "sent": sent,
        "received": received,
        "cpuSeconds": round(cpu, 3),
        "microsecondsPerPacket": round(cpu / max(received, 1) * 1e6, 2),
    }


def main() -> None:
    """Parse the options; run (alternating trees) and print one JSON line per run, then medians."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=20000.0, help="packets a second, all streams")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--window", type=float, default=0.001, help="the poller's read window")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--tree", type=Path, action="append", help="the sbc code of this checkout")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.serve is not None:
        serve(options.serve, options.window)
        return
    figures: dict[str, list[float]] = {}
    for _ in range(options.repeat):
        for tree in options.tree or [REPO]:
            result = measure(tree, options.rate, options.seconds, options.streams, options.window)
            print(json.dumps(result), flush=True)
            figures.setdefault(str(tree), []).append(float(str(result["microsecondsPerPacket"])))
    for tree, values in figures.items():
        print(f"{tree}: median {statistics.median(values)} CPU-us per packet, runs {sorted(values)}")


if __name__ == "__main__":
    main()
