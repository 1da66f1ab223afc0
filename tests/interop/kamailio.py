"""
Run Debian's Kamailio for one interop test: as a peer operator's record-routing proxy
(L{KamailioProxy}, C{kamailio_proxy.cfg}) or as a peer's registrar (L{KamailioRegistrar},
C{kamailio_registrar.cfg}).

Kamailio runs in the foreground (C{-DD -E}: no daemon, log to stderr) from a temporary directory of
its own (its runtime directory, C{-Y}, and its pid file), with a config shipped beside these tests,
whose sockets and peers come as C{-A} defines.  It is started in a session of its own, and the test's
cleanup sends that process group SIGTERM (the main process stops its children), then SIGKILL should
it linger.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from .ports import UDP, freePort, udpPortBound
from .processes import stopGroup
from .tools import requireTool

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "kamailio_proxy.cfg"
REGISTRAR_CONFIG = HERE / "kamailio_registrar.cfg"

START_TIMEOUT = 10.0


class Kamailio:
    """
    One Kamailio process for one test: its directory, its log, starting it and stopping it.
    Subclasses say which config it runs, with which defines, on which sockets (L{command},
    L{sockets}).
    """

    def __init__(self, testCase: SynchronousTestCase) -> None:
        self.kamailio = requireTool("kamailio")
        self.directory = Path(tempfile.mkdtemp(prefix="kamailio-"))
        testCase.addCleanup(shutil.rmtree, self.directory, ignore_errors=True)
        testCase.addCleanup(self.stop)
        self.logPath = self.directory / "kamailio.log"
        self.process: subprocess.Popen[bytes] | None = None

    def sockets(self) -> list[tuple[str, int]]:
        """
        The (host, port) of each UDP socket it listens on.
        """
        raise NotImplementedError

    def command(self) -> list[str]:
        raise NotImplementedError

    def commandFor(self, config: Path, defines: dict[str, str]) -> list[str]:
        """
        The command line that runs C{config} on L{sockets} with C{defines} (C{-A NAME="value"}).
        """
        listen = [arg for host, port in self.sockets() for arg in ("-l", f"udp:{host}:{port}")]
        return [
            self.kamailio,
            "-DD",  # stay in the foreground, as our child
            "-E",  # log to stderr
            "-f",
            str(config),
            *listen,
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

    def run(self, timeout: float = START_TIMEOUT) -> None:
        """
        Start Kamailio and wait until all its sockets are bound; on failure raise with its log.
        """
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
        while not all(udpPortBound(host, port) for host, port in self.sockets()):
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
        if process is not None:
            stopGroup(process)

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


class KamailioProxy(Kamailio):
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
        super().__init__(testCase)
        self.trunkSide = (trunkHost, freePort(trunkHost, (UDP,)))
        self.customerSide = (customerHost, freePort(customerHost, (UDP,), avoid={customer[1]}))
        self.customer = customer
        self.sbc = ("", 0)

    def sockets(self) -> list[tuple[str, int]]:
        return [self.trunkSide, self.customerSide]

    def command(self) -> list[str]:
        defines = {
            "TRUNK_SOCKET": f"udp:{self.trunkSide[0]}:{self.trunkSide[1]}",
            "CUSTOMER_SOCKET": f"udp:{self.customerSide[0]}:{self.customerSide[1]}",
            "SBC_IP": self.sbc[0],
            "SBC_HOSTPORT": f"{self.sbc[0]}:{self.sbc[1]}",
            "CUSTOMER_URI": f"sip:{self.customer[0]}:{self.customer[1]}",
        }
        return self.commandFor(CONFIG, defines)

    def start(self, sbc: tuple[str, int], timeout: float = START_TIMEOUT) -> None:
        """
        Start Kamailio in front of the SBC's UDP listener C{sbc} and wait until both its sockets are
        bound; on failure raise with its log.
        """
        self.sbc = sbc
        self.run(timeout)


class KamailioRegistrar(Kamailio):
    """
    Kamailio as a peer's registrar on one socket of C{host}, with one account (C{authUser},
    C{password}) that may register; calls to a registered AOR go to its binding, record-routed.

    @ivar address: (host, port) of its socket: the registrar URI's, and where callers call.
    """

    # What kamailio_registrar.cfg logs once it saved a binding.
    SAVED = "binding saved: "

    def __init__(self, testCase: SynchronousTestCase, *, host: str, authUser: str, password: str) -> None:
        """
        Pick its port (so that the SBC's config can name it before it runs); L{run} runs it.
        """
        super().__init__(testCase)
        self.address = (host, freePort(host, (UDP,)))
        self.authUser = authUser
        self.password = password

    def sockets(self) -> list[tuple[str, int]]:
        return [self.address]

    def command(self) -> list[str]:
        defines = {
            "SOCKET": f"udp:{self.address[0]}:{self.address[1]}",
            "AUTH_USER": self.authUser,
            "PASSWORD": self.password,
        }
        return self.commandFor(REGISTRAR_CONFIG, defines)

    def bindings(self) -> list[str]:
        """
        The "AOR -> CONTACT" of each binding it logged as saved, in order.
        """
        return [
            line.split(self.SAVED, 1)[1].strip() for line in self.log().splitlines() if self.SAVED in line
        ]

    def waitForBinding(self, timeout: float) -> str:
        """
        The first binding saved, once it is (polling its log); raise with its log after C{timeout}.
        """
        deadline = time.monotonic() + timeout
        while not self.bindings():
            if self.process is None or self.process.poll() is not None:
                raise AssertionError(f"kamailio is not running\n{self.describe()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no binding saved within {timeout}s\n{self.describe()}")
            time.sleep(0.1)
        return self.bindings()[0]
