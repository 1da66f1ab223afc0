# Twisted's trial assertions carry no annotations.
# mypy: disable-error-code="no-untyped-call"
"""
Bans against real clients: a ban closes the source's open TLS connection, and SIPVicious's password
cracker (C{sipvicious_svcrack}, PyPI C{sipvicious}), disguised under a phone's User-Agent, is banned
before it finds a password, while the account owner's own phone, from another address, keeps
registering; under its own User-Agent it is a known scanner, and hears nothing at all.

The shipped config bans a source after C{[bans] failures} (5) wrong passwords for one username; the
device network is 127.0.0.4/30, and the demo account alice has the password C{alice-demo}.
"""

from __future__ import annotations

import functools
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from .ports import UDP, freePort
from .service import ServiceProcess, startService
from .sipp import SippRun, runSipp
from .test_register import ALICE, BAN_FAILURES, DOMAIN, accountArgs
from .tlsclients import firstResponse, optionsRequest
from .tools import requireTool

# Each test picks its own addresses of the device network, 127.0.0.4/30.
PHONE = "127.0.0.4"
ATTACKER = "127.0.0.6"
BYSTANDER = "127.0.0.5"
CONTROL = "127.0.0.7"
SVCRACK = "sipvicious_svcrack"
# Seconds any one client step may take; svcrack stops after MAXIMUM_TIME seconds of silence.
STEP = 10.0
MAXIMUM_TIME = 4
CRACK_DEADLINE = 60.0
# How many wrong passwords come before the right one: far more than a ban allows.
WRONG_GUESSES = 40
# svcrack 0.3.x parses -b/--bindingip but never hands it to its cracker, which then binds the
# wildcard address, so its packets to 127.0.0.1 would come from 127.0.0.1 (a stranger, never
# answered, which would prove nothing). This runs svcrack's own main() with the cracker bound to
# the address -b names, as -b means it to be. With --disguise it also sends a phone's User-Agent
# instead of its own (friendly-scanner), as a careful attacker would: the SBC drops a known
# scanner's requests unanswered, so only a disguised cracker ever meets the ban on failures.
SVCRACK_BOUND = (
    "import functools, sys\n"
    "from sipvicious import svcrack\n"
    "source = sys.argv[sys.argv.index('-b') + 1]\n"
    "svcrack.ASipOfRedWine = functools.partial(svcrack.ASipOfRedWine, bindingip=source)\n"
    "if '--disguise' in sys.argv:\n"
    "    sys.argv.remove('--disguise')\n"
    "    svcrack.makeRequest = functools.partial(svcrack.makeRequest, useragent='Yealink SIP-T46S')\n"
    "sys.exit(svcrack.main())\n"
)


def interpreterOf(script: str) -> str:
    """The Python a pip-installed script runs with (its #! line), which can import its package."""
    with open(script, "rb") as file:
        first = file.readline().decode("utf-8", "replace").strip()
    return first[2:].strip() if first.startswith("#!") and "python" in first else sys.executable


class TLSClient:
    """A TLS connection from a chosen loopback address, by Python's ssl (no certificate check)."""

    def __init__(self, testCase: SynchronousTestCase, remote: tuple[str, int], source: str) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        raw = socket.create_connection(remote, timeout=STEP, source_address=(source, 0))
        self.socket = context.wrap_socket(raw)
        testCase.addCleanup(self.socket.close)
        self.remote = remote
        self.source = source

    def options(self) -> bytes | None:
        """Send an OPTIONS and return the response, or None when the connection ends first."""
        port = self.socket.getsockname()[1]
        self.socket.sendall(optionsRequest(self.remote, self.source, port))
        data = b""
        deadline = time.monotonic() + STEP
        while time.monotonic() < deadline:
            response = firstResponse(data)
            if response is not None:
                return response
            chunk = self.socket.recv(65536)
            if not chunk:
                return None
            data += chunk
        return None

    def closedWithin(self, seconds: float) -> bool:
        """Whether the server ends the connection within ``seconds`` (EOF, reset or TLS alert)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.socket.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                if not self.socket.recv(65536):
                    return True
            except TimeoutError:
                return False
            except (ssl.SSLError, ConnectionError):
                return True
        return False


class BanTests(SynchronousTestCase):
    """
    Bans reach open TLS connections; a password cracker is banned long before it finds the password.
    """

    service: ServiceProcess

    def sipp(self, scenario: str, source: str, account: tuple[str, str] = ALICE) -> SippRun:
        return runSipp(
            self,
            scenario,
            self.service.address("udp"),
            localHost=source,
            timeout=STEP,
            extraArgs=accountArgs(account),
        )

    def assertRegisters(self, source: str) -> None:
        """alice's phone at ``source`` registers: 401, then 200."""
        run = self.sipp("register_auth.xml", source)
        detail = run.describe() + "\n" + self.service.describe()
        self.assertEqual(run.exitCode, 0, detail)
        self.assertEqual([r.statusCode for r in run.responses], [401, 200], detail)

    def test_banClosesOpenTLSConnection(self) -> None:
        """
        A device's open TLS connection is closed by the SBC when its address gets banned over UDP;
        another device's TLS connection stays open and answered.
        """
        requireTool("sipp")
        self.service = startService(self)
        remote = self.service.address("tls")
        banned = TLSClient(self, remote, ATTACKER)
        bystander = TLSClient(self, remote, BYSTANDER)
        for client in (banned, bystander):
            answer = client.options()
            self.assertIsNotNone(answer, self.service.describe())
            assert answer is not None
            self.assertTrue(answer.startswith(b"SIP/2.0 200 "), answer)

        guesses = self.sipp("register_ban.xml", ATTACKER, ("alice", "not-alice-demo"))
        detail = guesses.describe() + "\n" + self.service.describe()
        self.assertEqual([r.statusCode for r in guesses.responses], [401] * (1 + BAN_FAILURES), detail)

        self.assertTrue(banned.closedWithin(STEP), detail)
        self.assertFalse(bystander.closedWithin(0.5), detail)
        answer = bystander.options()
        self.assertIsNotNone(answer, detail)
        self.assertTrue(self.service.running, detail)
        self.assertEqual(self.service.errors(), [], detail)

    def crack(
        self, source: str, passwords: list[str], *, disguised: bool = True
    ) -> tuple[subprocess.Popen[bytes], list[str]]:
        """Start svcrack against alice from ``source`` with ``passwords`` (under a phone's User-Agent
        when ``disguised``); the process and its command."""
        tool = requireTool(SVCRACK)
        home = tempfile.mkdtemp(prefix="sbc-svcrack-")
        self.addCleanup(shutil.rmtree, home, True)
        wordlist = Path(home) / "passwords.txt"
        wordlist.write_text("".join(f"{p}\n" for p in passwords), encoding="utf-8")
        host, port = self.service.address("udp")
        command = [
            interpreterOf(tool),
            "-c",
            SVCRACK_BOUND,
            "-b",
            source,
            "-x",
            source,
            "-P",
            str(freePort(source, (UDP,))),
            "-u",
            ALICE[0],
            "-d",
            str(wordlist),
            "--domain",
            DOMAIN,
            "--maximumtime",
            str(MAXIMUM_TIME),
            "-p",
            str(port),
            *(["--disguise"] if disguised else []),
            host,
        ]
        # A HOME of its own: sipvicious keeps sessions under ~/.sipvicious.
        process = subprocess.Popen(
            command,
            cwd=home,
            env={**os.environ, "HOME": home},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.addCleanup(functools.partial(_kill, process))
        return process, command

    def finish(self, process: subprocess.Popen[bytes], command: list[str]) -> tuple[int, str]:
        try:
            output, _ = process.communicate(timeout=CRACK_DEADLINE)
        except subprocess.TimeoutExpired:
            _kill(process)
            self.fail(f"{' '.join(command)} ran past {CRACK_DEADLINE}s\n{self.service.describe()}")
        return process.returncode, output.decode("utf-8", "replace")

    def test_svcrackBanned(self) -> None:
        """
        svcrack, with the real password after 40 wrong ones, is banned before it finds it; alice's own
        phone at another address registers before, during and after the attack.
        """
        requireTool("sipp")
        self.service = startService(self)
        self.assertRegisters(PHONE)
        process, command = self.crack(ATTACKER, [f"guess{i}" for i in range(WRONG_GUESSES)] + [ALICE[1]])
        self.assertRegisters(PHONE)  # while svcrack runs (it waits out its silence)
        exitCode, output = self.finish(process, command)
        detail = f"--- {' '.join(command)} (exit {exitCode}):\n{output}\n{self.service.describe()}"
        self.assertNotIn(ALICE[1], output, detail)
        self.assertNotIn("The password for", output, detail)
        self.assertIn("found nothing", output, detail)
        self.assertNotEqual(exitCode, 40, detail)  # 40: svcrack cracked a password
        self.assertIn(f"banned {ATTACKER} for", self.service.log(), detail)
        self.assertRegisters(PHONE)
        self.assertTrue(self.service.running, detail)
        self.assertEqual(self.service.errors(), [], detail)

    def test_svcrackWorksUnbanned(self) -> None:
        """
        The control: svcrack with the password among the first few guesses does find it, so its
        failure above is the ban's doing, not a tool that cannot talk to the SBC.
        """
        self.service = startService(self)
        process, command = self.crack(CONTROL, ["guess1", "guess2", ALICE[1]])
        exitCode, output = self.finish(process, command)
        detail = f"--- {' '.join(command)} (exit {exitCode}):\n{output}\n{self.service.describe()}"
        self.assertEqual(exitCode, 40, detail)  # 40: a password cracked
        self.assertRegex(output, rf"\|\s*{ALICE[0]}\s*\|\s*{ALICE[1]}\s*\|", detail)  # its results table
        self.assertNotIn("banned", self.service.log(), detail)

    def test_svcrackAsItselfUnheard(self) -> None:
        """
        svcrack under its own User-Agent (friendly-scanner), even with the password among its guesses,
        gets no answer at all: the scanner filter drops it unheard, with no ban and no log line.
        """
        self.service = startService(self)
        process, command = self.crack(CONTROL, ["guess1", ALICE[1]], disguised=False)
        exitCode, output = self.finish(process, command)
        detail = f"--- {' '.join(command)} (exit {exitCode}):\n{output}\n{self.service.describe()}"
        self.assertNotEqual(exitCode, 40, detail)
        self.assertNotIn("The password for", output, detail)
        self.assertNotIn("banned", self.service.log(), detail)
        self.assertNotIn(CONTROL, self.service.log(), detail)
        self.assertEqual(self.service.errors(), [], detail)


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(5)
