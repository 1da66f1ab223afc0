"""
Interop: trunk gateway health (OPTIONS pings) and gateways by DNS name (RFC 3263), against the real
C{twistd -n sbc}, SIPp gateways (gateway_uas.xml answers pings and calls) and twisted.names' own
authoritative DNS server on loopback (C{twistd -n dns --pyzone peer_zone.py}).

alice (a device) calls an outside number, which the demo routing sends to the demo trunk, whose
gateways each test sets.  Every wait is bounded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from .ports import TCP, UDP, freePort, udpPortBound
from .service import startService, terminate, twistdPath
from .sipp import SippProcess, scenarioPath, startSipp
from .test_calls import (
    FAILOVER_TIMEOUT,
    GATEWAY_B,
    OUTSIDE_NUMBER,
    TRUNK,
    CallTestCase,
    mediaAddress,
)
from .tools import requireTool

# The SBC's T1 in these tests: Timer F (64*T1, when a ping counts as missed) is then 3.2 s.
T1 = 0.05
# How long a gateway may take to be seen down or up again, and the DNS server to start.
STATE_TIMEOUT = 20.0
DNS_TIMEOUT = 10.0
# Gateways answer pings and calls for this long at most.
GATEWAY_TIMEOUT = 90.0
PEER = "peer.test"


def waitFor(condition: Callable[[], bool], timeout: float, what: str, detail: Callable[[], str]) -> None:
    """Poll ``condition`` every 0.1 s until it holds; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not within {timeout}s\n{detail()}")
        time.sleep(0.1)


def invitesAt(gateway: SippProcess) -> int:
    """How many INVITEs (retransmissions included) ``gateway`` has received so far."""
    try:
        text = (gateway.directory / "messages.log").read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return 0
    return sum(1 for line in text.splitlines() if line.startswith("INVITE sip:"))


def pingsAt(gateway: SippProcess) -> int:
    """How many OPTIONS ``gateway`` has received so far."""
    try:
        text = (gateway.directory / "messages.log").read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return 0
    return sum(1 for line in text.splitlines() if line.startswith("OPTIONS sip:"))


class GatewayTestCase(CallTestCase):
    """Starting the service with gateway settings, and SIPp gateways that answer pings and calls."""

    def startGateways(self, gateways: list[str], dns: list[str] | None = None, **trunk: object) -> None:
        """Start the service with the demo trunk's ``gateways`` and ``trunk`` settings, and
        ``[dns] servers`` when ``dns`` is given."""
        requireTool("sipp")
        settings: dict[str, dict[str, object]] = {
            "media": {"address": mediaAddress()},
            "sip": {"t1": T1},
            "trunks.demo": {"gateways": gateways, **trunk},
        }
        if dns is not None:
            settings["dns"] = {"servers": dns}
        self.service = startService(
            self, settings=settings, additions={"whitelist/demo.txt": [f"{GATEWAY_B}/32"]}
        )

    def answering(self, host: str, port: int) -> SippProcess:
        """A gateway on ``host``:``port`` answering pings and calls until the test ends."""
        return startSipp(
            self,
            "gateway_uas.xml",
            localHost=host,
            localPort=port,
            timeout=GATEWAY_TIMEOUT,
            calls=100_000,
            listening=True,
            extraArgs=("-s", "gateway"),
        )

    def logShows(self, text: str) -> Callable[[], bool]:
        """Whether the service's log holds ``text`` (to poll)."""
        return lambda: text in self.service.log()


class GatewayHealthTests(GatewayTestCase):
    """A gateway that stops answering OPTIONS is skipped, and used again once it answers."""

    def test_downSkippedUpUsed(self) -> None:
        """
        With ping_interval 1 and ping_misses 1, killing the first gateway takes it down: the next call
        goes straight to the second (sooner than failover_timeout).  Once it answers again, it gets
        the next call.
        """
        portA, portB = freePort(TRUNK, (UDP,)), freePort(GATEWAY_B, (UDP,))
        self.startGateways([f"{TRUNK}:{portA}", f"{GATEWAY_B}:{portB}"], ping_interval=1, ping_misses=1)
        first, second = self.answering(TRUNK, portA), self.answering(GATEWAY_B, portB)
        waitFor(
            lambda: pingsAt(first) > 0 and pingsAt(second) > 0, STATE_TIMEOUT, "pings", self.service.describe
        )
        first.kill()
        waitFor(
            self.logShows(f"gateway {TRUNK}:{portA} is down"), STATE_TIMEOUT, "down", self.service.describe
        )

        started = time.monotonic()
        caller = self.device(OUTSIDE_NUMBER)
        self.assertCompleted(caller)
        self.assertEqual(invitesAt(second), 1, self.detail(caller))
        # Not a failover after a silent first gateway: straight to the second.
        self.assertLess(time.monotonic() - started, FAILOVER_TIMEOUT + 1.5, self.detail(caller))

        again = self.answering(TRUNK, portA)
        waitFor(self.logShows(f"gateway {TRUNK}:{portA} is up"), STATE_TIMEOUT, "up", self.service.describe)
        caller = self.device(OUTSIDE_NUMBER)
        self.assertCompleted(caller)
        self.assertEqual(invitesAt(again), 1, self.detail(caller))
        self.assertEqual(invitesAt(second), 1, self.detail(caller))


class NamedGatewayTests(GatewayTestCase):
    """A trunk whose gateway is a DNS name, served by twisted.names on loopback."""

    def startDNS(self, portA: int, portB: int) -> int:
        """twistd dns with tests/interop/peer_zone.py on a free loopback port; returns the port."""
        port = freePort("127.0.0.1", (UDP, TCP))
        directory = Path(tempfile.mkdtemp(prefix="sbc-dns-"))
        self.addCleanup(shutil.rmtree, directory, ignore_errors=True)
        environment = dict(os.environ, SBC_TEST_GATEWAY_A_PORT=str(portA), SBC_TEST_GATEWAY_B_PORT=str(portB))
        zone = scenarioPath("peer_zone.py")
        with (directory / "dns.log").open("wb") as log:
            process = subprocess.Popen(
                [
                    twistdPath(),
                    "-n",
                    "--pidfile=",
                    "dns",
                    "--pyzone",
                    str(zone),
                    "-p",
                    str(port),
                    "-i",
                    "127.0.0.1",
                ],
                cwd=directory,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.addCleanup(terminate, process)
        waitFor(
            lambda: udpPortBound("127.0.0.1", port) or process.poll() is not None,
            DNS_TIMEOUT,
            "twistd dns",
            lambda: (directory / "dns.log").read_text(errors="replace"),
        )
        self.assertIsNone(process.poll(), (directory / "dns.log").read_text(errors="replace"))
        return port

    def test_srvPriorityThenFailover(self) -> None:
        """
        The SRV records name two SIPp gateways: the call goes to the one of priority 10.  With that one
        stopped, the next call fails over (after failover_timeout) to the one of priority 20.
        """
        portA, portB = freePort(TRUNK, (UDP,)), freePort(GATEWAY_B, (UDP,))
        dnsPort = self.startDNS(portA, portB)
        self.startGateways([PEER], dns=[f"127.0.0.1:{dnsPort}"])
        first, second = self.answering(TRUNK, portA), self.answering(GATEWAY_B, portB)

        caller = self.device(OUTSIDE_NUMBER)
        self.assertCompleted(caller)
        self.assertEqual((invitesAt(first), invitesAt(second)), (1, 0), self.detail(caller))

        first.kill()
        caller = self.device(OUTSIDE_NUMBER)
        self.assertCompleted(caller)
        self.assertEqual(invitesAt(second), 1, self.detail(caller))
