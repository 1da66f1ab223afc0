"""
Run Debian's Kamailio as a peer operator's record-routing proxy for one interop test.

Kamailio runs in the foreground (C{-DD -E}: no daemon, log to stderr) from a temporary directory of
its own (its runtime directory, C{-Y}, and its pid file), with the config shipped beside these tests,
C{kamailio_proxy.cfg}, whose sockets and peers come as C{-A} defines.  It is started in a session of
its own, and the test's cleanup sends that process group SIGTERM (the main process stops its
children), then SIGKILL should it linger.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from .ports import UDP, freePort, udpPortBound
from .tools import requireTool

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "kamailio_proxy.cfg"

START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


class KamailioProxy:
    """
    Kamailio between customers on C{customerHost} and the SBC, its trunk side on C{trunkHost}.

    @ivar trunkSide: (host, port) of its socket towards the SBC: the demo trunk's gateway.
    @ivar customerSide: (host, port) of its socket towards the customers: where they send calls.
    @ivar customer: (host, port) where it sends the calls that come from the SBC.
    """

    def __init__(
        self,
        testCase: SynchronousTestCase,
        *,
        trunkHost: str,
        customerHost: str,
        customer: tuple[str, int],
    ) -> None:
        """
        Pick its ports (so that the SBC's config can name it before it runs); L{start} runs it.
        """
        self.kamailio = requireTool("kamailio")
        self.directory = Path(tempfile.mkdtemp(prefix="kamailio-"))
        testCase.addCleanup(shutil.rmtree, self.directory, ignore_errors=True)
        testCase.addCleanup(self.stop)
        self.trunkSide = (trunkHost, freePort(trunkHost, (UDP,)))
        self.customerSide = (customerHost, freePort(customerHost, (UDP,), avoid={customer[1]}))
        self.customer = customer
        self.sbc = ("", 0)
        self.logPath = self.directory / "kamailio.log"
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        trunk = f"udp:{self.trunkSide[0]}:{self.trunkSide[1]}"
        customers = f"udp:{self.customerSide[0]}:{self.customerSide[1]}"
        defines = {
            "TRUNK_SOCKET": trunk,
            "CUSTOMER_SOCKET": customers,
            "SBC_IP": self.sbc[0],
            "SBC_HOSTPORT": f"{self.sbc[0]}:{self.sbc[1]}",
            "CUSTOMER_URI": f"sip:{self.customer[0]}:{self.customer[1]}",
        }
        return [
            self.kamailio,
            "-DD",  # stay in the foreground, as our child
            "-E",  # log to stderr
            "-f",
            str(CONFIG),
            "-l",
            trunk,
            "-l",
            customers,
            "-Y",
            str(self.directory),  # its runtime files, never /run/kamailio
            "-P",
            str(self.directory / "kamailio.pid"),
            "-w",
            str(self.directory),
            "-m",
            "16",  # MB of shared memory: plenty for a few calls
            "-M",
            "4",  # MB of private memory per process
            *(arg for name, value in defines.items() for arg in ("-A", f'{name}="{value}"')),
        ]

    def start(self, sbc: tuple[str, int], timeout: float = START_TIMEOUT) -> None:
        """
        Start Kamailio in front of the SBC's UDP listener C{sbc} and wait until both its sockets are
        bound; on failure raise with its log.
        """
        self.sbc = sbc
        with self.logPath.open("wb") as log:
            self.process = subprocess.Popen(
                self.command(),
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not all(udpPortBound(host, port) for host, port in (self.trunkSide, self.customerSide)):
            if self.process.poll() is not None:
                raise AssertionError(
                    f"kamailio exited with {self.process.returncode} before it listened\n{self.describe()}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"kamailio did not listen within {timeout}s\n{self.describe()}")
            time.sleep(0.05)

    def stop(self) -> None:
        """
        Stop Kamailio and its children: SIGTERM to its process group, SIGKILL if it lingers.
        """
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(STOP_TIMEOUT)

    def log(self) -> str:
        try:
            return self.logPath.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def describe(self) -> str:
        """
        Kamailio's command line and log, for a failure message.
        """
        return f"--- kamailio: {' '.join(self.command())}\n--- kamailio log:\n{self.log()[-6000:]}"
