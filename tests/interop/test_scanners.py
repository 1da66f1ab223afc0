# Twisted's trial assertions carry no annotations.
# mypy: disable-error-code="no-untyped-call"
"""
SIPVicious (PyPI C{sipvicious}), the scanner behind most toll-fraud probing, against the real service.

From an address outside every whitelist (127.0.0.9), C{sipvicious_svmap} (OPTIONS and INVITE sweeps)
and C{sipvicious_svwar} (extension guessing by REGISTER and INVITE) must find nothing on any listener
they can reach: the SBC drops a stranger's packets before parsing them and never answers. A control
run of each from the demo trunk's address (127.0.0.2) shows that the same tools do reach the SBC
where it is allowed to talk, so the silence is the SBC's and not a broken scan.

SIPVicious OSS speaks SIP over UDP only: svmap has no transport option, and svwar refuses C{tcp://}
and C{tls://} targets (checked below, so this module learns when that changes). A stranger's
silence on the TCP and TLS listeners is tested with SIPp, raw sockets and openssl in C{test_options}.

Every run is bounded: a handful of requests (C{--first}, a short extension range), SIPVicious's own
give-up timers, and a process deadline after which it is killed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass

from twisted.trial.unittest import SynchronousTestCase

from .ports import UDP, freePort
from .service import ServiceProcess, startService
from .tools import requireTool

STRANGER = "127.0.0.9"
TRUNK = "127.0.0.2"
SVMAP = "sipvicious_svmap"
SVWAR = "sipvicious_svwar"
# Seconds a scanner run may take before it is killed (svwar gives up after about 5 s of silence).
DEADLINE = 60.0
# The extensions svwar guesses: the demo's users live in this range, and it stays short.
EXTENSIONS = "1000-1010"
# svwar 0.3.8 parses -b/--bindingip but never hands it to its scanner, which then binds the wildcard
# address, so its packets to 127.0.0.1 would come from 127.0.0.1. This runs svwar's own main() with
# the scanner given that address, as -b means it to be.
SVWAR_BOUND = (
    "import functools, sys\n"
    "from sipvicious import svwar\n"
    "source = sys.argv[sys.argv.index('-b') + 1]\n"
    "svwar.TakeASip = functools.partial(svwar.TakeASip, bindingip=source)\n"
    "sys.exit(svwar.main())\n"
)


@dataclass(frozen=True)
class ScanRun:
    """One scanner run: its command line, exit code and everything it printed."""

    command: list[str]
    exitCode: int
    output: str

    def describe(self) -> str:
        return f"--- {' '.join(self.command)} (exit {self.exitCode}):\n{self.output}"


def interpreterOf(script: str) -> str:
    """The Python a pip-installed script runs with (its #! line), which can import its package."""
    with open(script, "rb") as file:
        first = file.readline().decode("utf-8", "replace").strip()
    return first[2:].strip() if first.startswith("#!") and "python" in first else sys.executable


class ScannerTests(SynchronousTestCase):
    """
    svmap and svwar from a stranger find nothing on any UDP listener; from a trunk both reach the SBC.
    """

    service: ServiceProcess

    def setUp(self) -> None:
        self.tools = {name: requireTool(name) for name in (SVMAP, SVWAR)}
        self.service = startService(self)
        self.home = tempfile.mkdtemp(prefix="sbc-sipvicious-")
        self.addCleanup(shutil.rmtree, self.home, True)

    def udpListeners(self) -> list[tuple[str, int]]:
        listeners = [(item.host, item.port) for item in self.service.listeners if item.transport == UDP]
        self.assertTrue(listeners, self.service.describe())
        return listeners

    def scan(self, tool: str, source: str, *arguments: str) -> ScanRun:
        """Run a scanner bound to ``source`` (a free local port), in a scratch home, under a deadline."""
        port = freePort(source, (UDP,))
        program = [self.tools[tool]]
        if tool == SVWAR:
            program = [interpreterOf(self.tools[tool]), "-c", SVWAR_BOUND]
        command = [*program, "-b", source, "-x", source, "-P", str(port), *arguments]
        # A HOME of its own: sipvicious keeps sessions under ~/.sipvicious.
        environment = {**os.environ, "HOME": self.home}
        try:
            done = subprocess.run(
                command,
                cwd=self.home,
                env=environment,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=DEADLINE,
            )
        except subprocess.TimeoutExpired as e:  # run() has killed it
            self.fail(f"{' '.join(command)} ran past {DEADLINE}s:\n{e.output!r}\n{e.stderr!r}")
        output = (done.stdout + done.stderr).decode("utf-8", "replace")
        return ScanRun(command, done.returncode, output)

    def assertServiceClean(self, run: ScanRun) -> None:
        detail = run.describe() + "\n" + self.service.describe()
        self.assertTrue(self.service.running, detail)
        self.assertEqual(self.service.errors(), [], detail)

    def test_svmapFindsNothing(self) -> None:
        """svmap's OPTIONS and INVITE sweeps from a stranger get no answer from any UDP listener."""
        for host, port in self.udpListeners():
            for method in ("OPTIONS", "INVITE"):
                run = self.scan(SVMAP, STRANGER, "-p", str(port), "-m", method, "--first", "3", host)
                detail = run.describe() + "\n" + self.service.describe()
                self.assertIn("found nothing", run.output, detail)
                self.assertNotIn(f"{host}:{port}", run.output, detail)  # no row in the results table
                self.assertNotEqual(run.exitCode, 0, detail)  # 30: not every host answered
                self.assertServiceClean(run)

    def test_svwarFindsNothing(self) -> None:
        """svwar's REGISTER and INVITE guessing from a stranger gets no answer, so no extension."""
        for host, port in self.udpListeners():
            for method in ("REGISTER", "INVITE"):
                target = f"udp://{host}:{port}"
                run = self.scan(
                    SVWAR, STRANGER, "-v", "-m", method, "-e", EXTENSIONS, "--maximumtime", "5", target
                )
                detail = run.describe() + "\n" + self.service.describe()
                self.assertIn("found nothing", run.output, detail)
                self.assertNotIn("Ok SIP device found", run.output, detail)
                self.assertNotIn("we have", run.output, detail)  # "we have N extensions"
                self.assertNotIn("Extension", run.output, detail)  # the results table's header
                self.assertNotEqual(run.exitCode, 0, detail)
                self.assertServiceClean(run)

    def test_svmapFromTrunkFindsTheSBC(self) -> None:
        """The same sweep from the demo trunk's address gets the SBC's answer: the scan itself works."""
        (host, port), *_ = self.udpListeners()
        run = self.scan(SVMAP, TRUNK, "-p", str(port), "--first", "1", host)
        detail = run.describe() + "\n" + self.service.describe()
        self.assertEqual(run.exitCode, 0, detail)
        self.assertNotIn("found nothing", run.output, detail)
        self.assertIn(f"{host}:{port}", run.output, detail)
        self.assertServiceClean(run)

    def test_svwarFromTrunkReachesTheSBC(self) -> None:
        """svwar from the demo trunk's address gets answers (OPTIONS): its silence elsewhere is the SBC's."""
        (host, port), *_ = self.udpListeners()
        run = self.scan(
            SVWAR,
            TRUNK,
            "-v",
            "-m",
            "OPTIONS",
            "-e",
            "1000-1001",
            "--maximumtime",
            "5",
            f"udp://{host}:{port}",
        )
        detail = run.describe() + "\n" + self.service.describe()
        self.assertEqual(run.exitCode, 0, detail)
        self.assertIn("Ok SIP device found", run.output, detail)  # logged with -v
        self.assertServiceClean(run)

    def test_streamTransportsUnsupported(self) -> None:
        """svwar refuses TCP and TLS targets (svmap has no transport choice), so only UDP is scanned."""
        for scheme in ("tcp", "tls"):
            host, port = self.service.address(scheme)
            run = self.scan(SVWAR, STRANGER, f"{scheme}://{host}:{port}")
            self.assertIn(f"Protocol scheme {scheme} is not supported", run.output, run.describe())
            self.assertNotEqual(run.exitCode, 0, run.describe())
