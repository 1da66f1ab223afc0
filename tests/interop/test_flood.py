# Twisted's trial assertions carry no annotations.
# mypy: disable-error-code="no-untyped-call"
"""
Flood and scanner defence against the real service: a device-network source that sends REGISTERs far
above C{[bans] request_rate} is banned (and listed, then lifted, by C{sbc-ctl bans}/C{unban}) while a
trunk's SIPp calls running meanwhile all complete; a request whose User-Agent names a known scanner
gets no answer at all, while the same request under another name is answered.

The shipped config allows a device source 20 requests a second with a burst of 60, and bans it for
60 s past that. The device network is 127.0.0.4/30: the phone that takes the trunk's calls is
127.0.0.4, the flooder 127.0.0.6 and the scanner 127.0.0.7. Every step is bounded in count and time.
"""

from __future__ import annotations

import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

from .sipp import SippProcess, freeMediaPort, startSipp
from .test_calls import ALICE, CALL_TIMEOUT, HOLD_MS, TRUNK, CallTestCase
from .tlsclients import optionsRequest

FLOODER = "127.0.0.6"
SCANNER = "127.0.0.7"
# REGISTERs the flooder sends at once: far above the burst (60) the shipped config allows.
FLOOD = 400
# Trunk calls placed meanwhile, at CALL_RATE a second.
CALLS = 20
CALL_RATE = 10
# Seconds to wait for an answer that should come, and for silence that should last.
ANSWER_WAIT = 2.0
# How long a lifted ban may take to reach the running SBC (sbc.access.SYNC_INTERVAL is 5 s).
LIFT_DEADLINE = 15.0


def registerRequest(source: tuple[str, int], n: int) -> bytes:
    """The ``n``th REGISTER of the flood, for alice, without credentials (each would get a 401)."""
    token = secrets.token_hex(6)
    return (
        f"REGISTER sip:demo.acme.sbc.test SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {source[0]}:{source[1]};branch=z9hG4bK{token}{n};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:alice@demo.acme.sbc.test>;tag={token}\r\n"
        "To: <sip:alice@demo.acme.sbc.test>\r\n"
        f"Call-ID: flood-{token}-{n}@{source[0]}\r\n"
        f"CSeq: {n + 1} REGISTER\r\n"
        f"Contact: <sip:alice@{source[0]}:{source[1]}>\r\n"
        "User-Agent: flood-test\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode("ascii")


class UDPClient:
    """A UDP socket bound to a chosen loopback address: sends requests, counts what comes back."""

    def __init__(self, testCase: CallTestCase, host: str) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        testCase.addCleanup(self.socket.close)
        self.socket.bind((host, 0))
        self.address: tuple[str, int] = self.socket.getsockname()

    def answers(self, within: float) -> list[bytes]:
        """Every datagram that arrives within ``within`` seconds."""
        received = []
        deadline = time.monotonic() + within
        while (left := deadline - time.monotonic()) > 0:
            self.socket.settimeout(left)
            try:
                received.append(self.socket.recv(65536))
            except TimeoutError:
                break
        return received

    def ask(self, remote: tuple[str, int], request: bytes, within: float = ANSWER_WAIT) -> list[bytes]:
        """Send ``request`` and return what answers it within ``within`` seconds."""
        self.answers(0.01)  # drop late answers to earlier requests
        self.socket.sendto(request, remote)
        return self.answers(within)


def options(remote: tuple[str, int], client: UDPClient, userAgent: str = "sbc-interop") -> bytes:
    """An OPTIONS over UDP from ``client`` with the given User-Agent."""
    request = optionsRequest(remote, client.address[0], client.address[1], transport="UDP")
    return request.replace(b"User-Agent: sbc-interop", b"User-Agent: " + userAgent.encode())


class FloodTests(CallTestCase):
    """
    A flooding device is banned, listed and lifted while trunk calls go on; scanners hear nothing.
    """

    def sbcCtl(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        """Run the installed C{sbc-ctl} against the running service's config."""
        command = [
            str(Path(sys.executable).parent / "sbc-ctl"),
            *arguments,
            "--config",
            str(self.service.configPath),
        ]
        return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)

    def test_deviceFloodBannedTrunkCallsGoOn(self) -> None:
        """
        400 REGISTERs at once from a device address get at most the burst's worth of answers and ban
        the address (logged, listed by sbc-ctl bans with its reason); 20 trunk calls placed meanwhile
        all complete; sbc-ctl unban lets the address in again within seconds.
        """
        self.startWith()
        remote = self.service.address("udp")
        phone = self.phone("call_uas.xml", calls=CALLS, timeout=CALL_TIMEOUT * 2, statistics=True)
        caller: SippProcess = startSipp(
            self,
            "call_uac.xml",
            remote,
            localHost=TRUNK,
            timeout=CALL_TIMEOUT * 2,
            calls=CALLS,
            mediaPort=freeMediaPort(TRUNK),
            statistics=True,
            extraArgs=("-s", ALICE[0], "-d", str(HOLD_MS), "-r", str(CALL_RATE), "-l", str(CALLS)),
        )
        flooder = UDPClient(self, FLOODER)
        for n in range(FLOOD):
            flooder.socket.sendto(registerRequest(flooder.address, n), remote)
        answered = flooder.answers(ANSWER_WAIT)
        callerRun, phoneRun = caller.wait(), phone.wait()
        detail = self.detail(callerRun, phoneRun)
        self.assertGreater(len(answered), 0, detail)  # the first ones got their 401
        self.assertLess(len(answered), 100, detail)  # the burst (60) and a little refill, no more
        self.assertEqual(flooder.ask(remote, options(remote, flooder)), [], detail)
        self.assertIn(f"banned {FLOODER} for 60s: request rate", self.service.log(), detail)
        self.assertCompleted(callerRun, phoneRun)
        for run in (callerRun, phoneRun):
            self.assertEqual(run.count("SuccessfulCall"), CALLS, detail)
            self.assertEqual(run.count("FailedCall"), 0, detail)

        listed = self.sbcCtl("bans")
        self.assertEqual(listed.returncode, 0, listed.stderr)
        (line,) = [line for line in listed.stdout.splitlines() if line.startswith(FLOODER)]
        self.assertIn("request rate: more than 20/s", line)
        lifted = self.sbcCtl("unban", FLOODER)
        self.assertEqual(lifted.returncode, 0, lifted.stderr)
        self.assertIn(f"lifted the ban on {FLOODER}", lifted.stdout)
        deadline = time.monotonic() + LIFT_DEADLINE
        answer: list[bytes] = []
        while not answer and time.monotonic() < deadline:
            answer = flooder.ask(remote, options(remote, flooder), within=1.0)
        self.assertTrue(answer and answer[0].startswith(b"SIP/2.0 200 "), self.service.describe())
        self.assertIn(f"ban on {FLOODER} lifted", self.service.log())
        self.assertEqual(self.service.errors(), [], self.service.describe())

    def test_scannerUnanswered(self) -> None:
        """
        An OPTIONS from a device address whose User-Agent is friendly-scanner (or sipvicious) gets no
        answer at all, and is not logged; the same request as a phone is answered, so the silence is
        the scanner filter's.
        """
        self.startWith()
        remote = self.service.address("udp")
        scanner = UDPClient(self, SCANNER)
        for agent in ("friendly-scanner", "sipvicious 0.3.4"):
            self.assertEqual(
                scanner.ask(remote, options(remote, scanner, agent)), [], self.service.describe()
            )
        answer = scanner.ask(remote, options(remote, scanner, "Yealink SIP-T46S"))
        self.assertEqual(len(answer), 1, self.service.describe())
        self.assertTrue(answer[0].startswith(b"SIP/2.0 200 "), answer)
        self.assertNotIn(SCANNER, self.service.log())
        self.assertEqual(self.service.errors(), [], self.service.describe())
