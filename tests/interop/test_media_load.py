# Twisted's trial assertions carry no annotations.
# mypy: disable-error-code="no-untyped-call"
"""
Interop (issue 19): RTP through 50 simultaneous calls relayed by the real C{twistd -n sbc}, and no relay
port held once they end.

A trunk caller (SIPp on 127.0.0.2, media_load_uac.xml) places 50 calls to alice's registered phone
(SIPp on 127.0.0.4, media_load_uas.xml); each call's SDP, either way, names a UDP socket of the test of
its own (SIPp's C{-inf} file gives each call its port).  Once all 50 calls are up, every caller socket
sends RTP to the relay port its call's answer named; every phone socket echoes each packet to where it
came from (the relay port facing the phone: symmetric RTP), so it comes back through the relay.  Every
packet must arrive, each at the call that sent it.

The relay's range holds a few pairs more than the peak needs (100 pairs for 50 calls).  After the
calls: the ports-in-use gauge (GET /metrics) is back to 0; the sockets bound in the range
(/proc/net/udp) are whole RTP/RTCP pairs, within the range, and exactly the idle pairs' (the
media_idle_pairs gauge); and a second wave of 50 calls gets its ports again, which a leak of more
than a few pairs would make fail with 503.
"""

from __future__ import annotations

import random
import re
import select
import shutil
import socket
import struct
import tempfile
import time
import urllib.request
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from .ports import TCP, UDP, freePort, udpPortBound
from .service import ServiceProcess, startService
from .sipp import SippProcess, SippRun, freeMediaPort, runSipp, startSipp
from .tools import requireTool

ALICE = ("alice", "alice-demo")
TRUNK = "127.0.0.2"
PHONE = "127.0.0.4"
TOKEN = "interop-media-load-token-0123"

CALLS = 50
# RTP each caller socket sends (each echoed once): one packet per call every PACE seconds.
PACKETS = 50
PACE = 0.02
SILENCE = b"\xd5" * 160  # 20 ms of PCMA
# Relay ports: 100 pairs at the peak, and room to step over a few that other programs hold.
PAIRS = CALLS * 2 + 10
# How long each call stays up after its ACK (ms): room to set up all 50 calls and send all the RTP.
HOLD_MS = 9000
# SIPp's -timeout, and the bound on every wait of a wave.
WAVE_TIMEOUT = 45.0
# How long the test waits for the last echoes, and for the gauge to settle after the calls.
DRAIN = 3.0
SETTLE = 5.0
HTTP_TIMEOUT = 5.0


def relayAddress(low: int) -> str:
    """A random loopback address outside 127.0.0.0/24 whose first relay port is free: the relay's
    sockets are then the only ones /proc/net/udp shows there."""
    for _ in range(100):
        address = f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
        if not udpPortBound(address, low):
            return address
    raise RuntimeError("no free loopback address for the media relay")


def boundPorts(address: str) -> set[int]:
    """The UDP ports bound on ``address`` (IPv4), as /proc/net/udp lists them."""
    packed = socket.inet_aton(address)
    wanted = f"{struct.unpack('<I', packed)[0]:08X}"
    ports = set()
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        local = line.split()[1]
        host, _, port = local.partition(":")
        if host == wanted:
            ports.add(int(port, 16))
    return ports


def rtp(sequence: int, ssrc: int) -> bytes:
    """One RTP packet (PCMA): version 2, the sequence number, a timestamp and ``ssrc``."""
    return struct.pack("!BBHII", 0x80, 8, sequence, sequence * 160, ssrc) + SILENCE


def ssrcOf(packet: bytes) -> int:
    """The SSRC of an RTP packet."""
    return int(struct.unpack("!I", packet[8:12])[0])


class Endpoint:
    """One media socket of the test: what it received, by source."""

    def __init__(self, host: str) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.socket.bind((host, 0))
        self.socket.setblocking(False)
        self.port: int = self.socket.getsockname()[1]
        self.received: list[tuple[bytes, tuple[str, int]]] = []

    def drain(self) -> list[tuple[bytes, tuple[str, int]]]:
        """Every datagram waiting now (kept in ``received``, and returned)."""
        new = []
        while True:
            try:
                data, source = self.socket.recvfrom(2048)
            except BlockingIOError:
                break
            new.append((data, (source[0], source[1])))
        self.received.extend(new)
        return new

    def close(self) -> None:
        """Close the socket."""
        self.socket.close()


def infFile(directory: Path, name: str, endpoints: list[Endpoint]) -> Path:
    """A SIPp -inf file giving call N the port of ``endpoints[N]`` as field 0."""
    path = directory / name
    path.write_text("SEQUENTIAL\n" + "".join(f"{endpoint.port};\n" for endpoint in endpoints))
    return path


class MediaLoadTests(SynchronousTestCase):
    """Fifty calls at once through the built-in relay of the real service."""

    service: ServiceProcess

    def setUp(self) -> None:
        requireTool("sipp")
        low = random.randrange(20000, 29000, 2)
        self.relayPorts = (low, low + 2 * PAIRS - 1)
        self.address = relayAddress(low)
        self.apiPort = freePort("127.0.0.1", (TCP,))
        self.service = startService(
            self,
            settings={
                "media": {
                    "engine": "relay",
                    "address": self.address,
                    "port_min": self.relayPorts[0],
                    "port_max": self.relayPorts[1],
                },
                "api": {"listen": f"127.0.0.1:{self.apiPort}", "token": TOKEN},
            },
        )
        self.phonePort = freePort(PHONE, (UDP,))
        registration = runSipp(
            self,
            "register_auth.xml",
            self.service.address("udp"),
            localHost=PHONE,
            localPort=self.phonePort,
            extraArgs=("-s", ALICE[0], "-au", ALICE[0], "-ap", ALICE[1]),
        )
        self.assertEqual(registration.exitCode, 0, registration.describe() + self.service.describe())

    def endpoints(self, host: str) -> list[Endpoint]:
        """CALLS media sockets on ``host``, closed in cleanup."""
        made = [Endpoint(host) for _ in range(CALLS)]
        for endpoint in made:
            self.addCleanup(endpoint.close)
        return made

    def portsInUse(self) -> int:
        """The relay's ports-in-use gauge, from GET /metrics."""
        return self.gauge("media_ports_in_use")

    def gauge(self, name: str) -> int:
        """A gauge of GET /metrics (``sbc_`` and ``name``)."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.apiPort}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as answer:
            text = answer.read().decode()
        match = re.search(rf"^sbc_{name} ([0-9.]+)\s*$", text, re.MULTILINE)
        assert match is not None, text
        return int(float(match.group(1)))

    def detail(self, *runs: SippRun) -> str:
        """The runs and the service, for a failure message."""
        return "\n".join(run.describe() for run in runs) + "\n" + self.service.describe()

    def wave(self, number: int) -> None:
        """Place CALLS calls at once, send RTP both ways through each, and check that all of it arrived."""
        callers, phones = self.endpoints(TRUNK), self.endpoints(PHONE)
        directory = Path(tempfile.mkdtemp(prefix="sbc-media-load-"))
        self.addCleanup(shutil.rmtree, directory, ignore_errors=True)
        phone = startSipp(
            self,
            "media_load_uas.xml",
            localHost=PHONE,
            localPort=self.phonePort,
            timeout=WAVE_TIMEOUT,
            calls=CALLS,
            mediaPort=freeMediaPort(PHONE, avoid=(self.phonePort,)),
            listening=True,
            extraArgs=(
                "-s",
                ALICE[0],
                "-set",
                "mediaHost",
                PHONE,
                "-inf",
                str(infFile(directory, "p.csv", phones)),
            ),
        )
        caller = startSipp(
            self,
            "media_load_uac.xml",
            self.service.address("udp"),
            localHost=TRUNK,
            timeout=WAVE_TIMEOUT,
            calls=CALLS,
            mediaPort=freeMediaPort(TRUNK),
            extraArgs=(
                "-s", ALICE[0], "-d", str(HOLD_MS), "-r", str(CALLS), "-l", str(CALLS),
                "-set", "mediaHost", TRUNK, "-inf", str(infFile(directory, "c.csv", callers)),
            ),
        )  # fmt: skip
        destinations = self.waitForAnswers(caller, phone)
        byPort = {endpoint.port: endpoint for endpoint in callers}
        self.assertEqual(set(destinations), set(byPort), f"wave {number}: {destinations}")

        for sequence in range(PACKETS):
            for port, destination in destinations.items():
                byPort[port].socket.sendto(rtp(sequence, port), destination)
            self.echo(phones, PACE)
        deadline = time.monotonic() + DRAIN
        while time.monotonic() < deadline and not all(len(c.received) >= PACKETS for c in callers):
            self.echo(phones, 0.05)
            for endpoint in callers:
                endpoint.drain()
        for endpoint in callers:
            endpoint.drain()

        low, high = self.relayPorts
        for endpoint in phones:
            ssrcs = {ssrcOf(data) for data, _ in endpoint.received}
            sources = {source for _, source in endpoint.received}
            count = len(endpoint.received)
            where = f"wave {number}, phone socket {endpoint.port}: {count} packets {ssrcs} {sources}"
            self.assertEqual(len(endpoint.received), PACKETS, where)
            self.assertEqual(len(ssrcs), 1, where)  # one call's media, and nobody else's
            [(host, port)] = sources
            self.assertTrue(host == self.address and low <= port <= high and port % 2 == 0, where)
        for endpoint in callers:
            sequences = sorted(struct.unpack("!H", data[2:4])[0] for data, _ in endpoint.received)
            sources = {source for _, source in endpoint.received}
            where = f"wave {number}, caller socket {endpoint.port}: {len(sequences)} echoes from {sources}"
            self.assertEqual(sequences, list(range(PACKETS)), where)
            self.assertEqual({ssrcOf(data) for data, _ in endpoint.received}, {endpoint.port}, where)
            self.assertEqual(sources, {destinations[endpoint.port]}, where)  # from where it sends

        callerRun, phoneRun = caller.wait(), phone.wait()
        self.assertEqual((callerRun.exitCode, phoneRun.exitCode), (0, 0), self.detail(callerRun, phoneRun))

    def waitForAnswers(self, caller: SippProcess, phone: SippProcess) -> dict[int, tuple[str, int]]:
        """Wait (bounded) until every call is up: caller socket port -> where its RTP must go."""
        assert caller.process is not None
        answers = caller.directory / "answers.txt"
        deadline = time.monotonic() + WAVE_TIMEOUT
        lines: list[str] = []
        while time.monotonic() < deadline and caller.process.poll() is None:
            lines = answers.read_text().splitlines() if answers.exists() else []
            if len(lines) >= CALLS:
                break
            time.sleep(0.05)
        if len(lines) < CALLS:
            self.fail(f"{len(lines)} of {CALLS} calls answered\n{self.detail(caller.wait(), phone.wait())}")
        destinations = {}
        for line in lines:
            host, port, own = line.split()
            destinations[int(own)] = (host, int(port))
        return destinations

    def echo(self, phones: list[Endpoint], wait: float) -> None:
        """For ``wait`` seconds, send each packet a phone socket receives back to where it came from."""
        deadline = time.monotonic() + wait
        while True:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([p.socket for p in phones], [], [], max(0.0, remaining))
            for endpoint in phones:
                if endpoint.socket in ready:
                    for data, source in endpoint.drain():
                        endpoint.socket.sendto(data, source)
            if remaining <= 0:
                return

    def assertNoPortHeld(self, number: int) -> None:
        """The gauge is back to 0 (bounded wait), and the range holds whole pairs only."""
        deadline = time.monotonic() + SETTLE
        while self.portsInUse() and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual(self.portsInUse(), 0, f"after wave {number}\n{self.service.describe()}")
        low, high = self.relayPorts
        bound = boundPorts(self.address)
        self.assertTrue(bound <= set(range(low, high + 1)), sorted(bound))
        self.assertEqual({port ^ 1 for port in bound}, bound, "a half-closed pair")
        self.assertLessEqual(len(bound), 2 * PAIRS)
        # With no call up, every socket bound in the range is one of an idle pair's: a socket that
        # no call and no idle pair holds (a leak) shows here.
        self.assertEqual(len(bound), 2 * self.gauge("media_idle_pairs"), self.service.describe())
        self.assertTrue(self.service.running, self.service.describe())
        self.assertEqual(self.service.errors(), [], self.service.describe())

    def test_fiftyCallsTwice(self) -> None:
        """RTP both ways through 50 simultaneous relayed calls all arrives, each packet at its own call;
        afterwards no port is held, and a second wave of 50 calls gets the whole pool again."""
        for number in (1, 2):
            self.wave(number)
            self.assertNoPortHeld(number)
