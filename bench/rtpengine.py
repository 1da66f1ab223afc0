"""
Debian's rtpengine daemon in userspace (no kernel module) on loopback, as in
tests/interop/test_rtpengine.py: for the RTP rows (the harness speaks ng to it itself) and for the
anchored-media rows (sbc or Kamailio speak ng to it).  C{--delete-delay=0}: a deleted call's ports
go at once, as the issue asks.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from sbc.media.bencode import decode, encode
from tests.interop.ports import UDP, freePort
from tests.interop.processes import stopGroup

from .systems import LIFETIME, UnavailableError

RTPENGINE_HOST = "127.0.0.10"
# The anchored-media rows' media ports on RTPENGINE_HOST: below the kernel's ephemeral range and the
# interop tests' ports, on an address of its own, and wide enough for thousands of calls (four ports
# each) up at once.
SYSTEM_PORTS = (20000, 29999)
START_TIMEOUT = 10.0


def rtpengineCommand(
    binary: str, ng: tuple[str, int], ports: tuple[int, int], pidfile: Path, threads: int = 2
) -> list[str]:
    """The daemon's command line: foreground, userspace only, quiet, calls deleted at once."""
    return [
        "timeout", "--kill-after=5", str(LIFETIME), binary,
        "--config-file=none", "--foreground", "--log-stderr", "--log-level=4",
        f"--interface={ng[0]}", f"--listen-ng={ng[0]}:{ng[1]}",
        f"--port-min={ports[0]}", f"--port-max={ports[1]}",
        "--table=-1", f"--num-threads={threads}", "--delete-delay=0",
        f"--pidfile={pidfile}",
    ]  # fmt: skip


class Rtpengine:
    """
    One rtpengine daemon, started by the constructor (which raises L{UnavailableError} when it does not
    answer its ng ping) and stopped with its whole process group by L{stop}.

    @ivar ng: where its ng control socket listens.
    @ivar ports: its media port range, on the same address.
    """

    def __init__(self, ports: tuple[int, int] | None = None) -> None:
        binary = shutil.which("rtpengine")
        if binary is None:
            raise UnavailableError("rtpengine is not installed (apt-get install rtpengine-daemon)")
        self.directory = Path(tempfile.mkdtemp(prefix="sbc-bench-rtpengine-"))
        self.requests = 0
        self.ng = (RTPENGINE_HOST, freePort(RTPENGINE_HOST, (UDP,)))
        if ports is None:
            low = freePort(RTPENGINE_HOST, (UDP,), avoid=(self.ng[1],))
            low = min(low - low % 2, 65534 - 200)
            ports = (low, low + 199)
        self.ports = ports
        command = rtpengineCommand(binary, self.ng, ports, self.directory / "rtpengine.pid")
        with (self.directory / "rtpengine.log").open("wb") as output:
            self.process = subprocess.Popen(
                command,
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                if self.command({"command": "ping"}).get("result") == b"pong":
                    return
            except (TimeoutError, ValueError):
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                said = self.log()
                self.stop()
                raise UnavailableError(f"rtpengine did not answer its ng ping: {said[-400:]}")

    @property
    def pid(self) -> int:
        """The root of its process tree (the coreutils C{timeout} that runs it), for CPU and memory."""
        return self.process.pid

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

    def log(self) -> str:
        """What the daemon printed so far."""
        try:
            return (self.directory / "rtpengine.log").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the daemon (its whole process group) and remove its directory."""
        stopGroup(self.process)
        shutil.rmtree(self.directory, ignore_errors=True)


def rtpengineVersion() -> str:
    """The installed daemon's version (say C{10.5.3.5-1+deb12u1}), or empty."""
    try:
        done = subprocess.run(["rtpengine", "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    words = (done.stdout or done.stderr).strip().split()
    return words[-1] if words else ""
