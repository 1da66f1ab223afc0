# Twisted's trial assertions carry no annotations.
# mypy: disable-error-code="no-untyped-call"
"""
`sbc.media.rtpengine` against Debian's real rtpengine daemon (package C{rtpengine-daemon}).

Each test starts its own daemon in userspace mode (C{--table=-1}: no kernel module, no iptables) on
loopback, with a free ng port and its own RTP port range, in a temporary directory, under a deadline
(coreutils C{timeout}), and kills it in cleanup.

The client is not driven by the global reactor. `LoopbackUDPReactor` gives it real UDP sockets on
loopback and delivers their datagrams when the test pumps them, advancing a `Clock` with the real
time that passed; so retransmission timers run as in production, and the test stays synchronous.

The recorded exchange that the unit tests replay (C{rtpengine_exchange.json}) comes from this
module: C{python -m tests.interop.test_rtpengine record} makes it afresh, and
`RecordedExchangeTests` checks that the daemon still answers the way the recording says.
"""

from __future__ import annotations

import json
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort, IReactorUDP
from twisted.internet.protocol import AbstractDatagramProtocol
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SkipTest, SynchronousTestCase
from zope.interface import implementer

from sbc.media.bencode import decode
from sbc.media.ng import RtpengineClient, RtpengineRefusedError
from sbc.media.rtpengine import RtpengineRelay

from .ports import UDP, freePort
from .tools import MissingToolError, requireTool

HERE = Path(__file__).resolve().parent
EXCHANGE = HERE / "rtpengine_exchange.json"

# The Debian package that ships /usr/bin/rtpengine without the kernel module (the metapackage
# "rtpengine" would pull in rtpengine-kernel-dkms, which needs kernel headers).
PACKAGE = "rtpengine-daemon"

# How long the daemon may take to answer its first ping, and may live at most (coreutils timeout).
START_TIMEOUT = 10.0
LIFETIME = 120
# How long one test waits for a Deferred, and for RTP to come through.
WAIT = 10.0

# The two sides of the test call: their SIP addresses, as a B2BUA would see them on loopback.
HOST_A = "127.0.0.2"
HOST_B = "127.0.0.3"
RELAY_HOST = "127.0.0.1"

T = TypeVar("T")


def requireRtpengine() -> str:
    """`requireTool` for rtpengine, with the Debian package that really ships it in the message."""
    try:
        return requireTool("rtpengine")
    except (SkipTest, MissingToolError) as e:
        if PACKAGE in str(e):
            raise
        raise type(e)(f"{e} -- the package to install is {PACKAGE!r}, not the metapackage") from None


def sdpOf(owner: str, host: str, port: int, ice: bool = True) -> bytes:
    """An audio offer or answer as a phone on ``host`` would send it, with ICE that must go.

    Only offers carry ICE: an answer to an offer without ICE (the relay strips it) has none, and an
    answer with ICE would make rtpengine run ICE checks (STUN) towards the answerer.
    """
    iceLines = (
        f"a=candidate:1 1 UDP 2130706431 {host} {port} typ host\r\n"
        "a=ice-ufrag:F7gI\r\n"
        "a=ice-pwd:x9cml/YzichV2+XlhiMu8g\r\n"
    )
    return (
        "v=0\r\n"
        f"o={owner} 2890844526 2890844526 IN IP4 {host}\r\n"
        "s=-\r\n"
        f"c=IN IP4 {host}\r\n"
        "t=0 0\r\n"
        f"m=audio {port} RTP/AVP 0 8 101\r\n"
        "a=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:8 PCMA/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\n"
        "a=fmtp:101 0-16\r\n"
        "a=sendrecv\r\n"
        f"{iceLines if ice else ''}"
    ).encode()


def mediaAddress(sdp: bytes) -> tuple[str, int]:
    """The c= address and the first m= port of an SDP body."""
    text = sdp.decode()
    connection = re.search(r"^c=IN IP4 (\S+)\r?$", text, re.MULTILINE)
    media = re.search(r"^m=audio (\d+) ", text, re.MULTILINE)
    if connection is None or media is None:
        raise AssertionError(f"no c= or m=audio in {text!r}")
    return connection.group(1), int(media.group(1))


# -- the daemon ------------------------------------------------------------------------------------


class RtpengineDaemon:
    """rtpengine in the foreground as a child process, for one test."""

    def __init__(self, testCase: SynchronousTestCase, *extra: str) -> None:
        binary = requireRtpengine()
        self.directory = Path(tempfile.mkdtemp(prefix="sbc-rtpengine-"))
        testCase.addCleanup(shutil.rmtree, self.directory, ignore_errors=True)
        self.ngPort = freePort(RELAY_HOST, kinds=(UDP,))
        # An RTP range of its own: from a free port up, 100 ports. A port taken in between is
        # skipped by rtpengine, which tries the next.
        base = freePort(RELAY_HOST, kinds=(UDP,), avoid=(self.ngPort,))
        base = min(base - base % 2, 65534 - 100)
        self.portRange = (base, base + 99)
        self.logPath = self.directory / "rtpengine.log"
        self.command = [
            "timeout",
            "--kill-after=5",
            str(LIFETIME),
            binary,
            "--config-file=none",
            "--foreground",
            "--log-stderr",
            "--log-level=6",
            f"--interface={RELAY_HOST}",
            f"--listen-ng={RELAY_HOST}:{self.ngPort}",
            f"--port-min={self.portRange[0]}",
            f"--port-max={self.portRange[1]}",
            "--table=-1",
            "--num-threads=2",
            "--delete-delay=0",
            f"--pidfile={self.directory / 'rtpengine.pid'}",
            *extra,
        ]
        self._log = self.logPath.open("wb")
        testCase.addCleanup(self._log.close)
        self.process = subprocess.Popen(
            self.command,
            cwd=self.directory,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        testCase.addCleanup(self.stop)
        self.waitForPing()

    @property
    def address(self) -> tuple[str, int]:
        return (RELAY_HOST, self.ngPort)

    def describe(self) -> str:
        """The command line, the exit status and the log, for a failure message."""
        self._log.flush()
        log = self.logPath.read_text(errors="replace")[-6000:]
        return f"$ {' '.join(self.command)}\nexit status: {self.process.poll()}\n--- log ---\n{log}"

    def waitForPing(self) -> None:
        """Wait until the daemon answers an ng ping, or fail with its log."""
        deadline = time.monotonic() + START_TIMEOUT
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((RELAY_HOST, 0))
            sock.settimeout(0.2)
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise AssertionError("rtpengine exited at start\n" + self.describe())
                sock.sendto(b"start d7:command4:pinge", self.address)
                try:
                    reply = sock.recv(65535)
                except TimeoutError:
                    continue
                if reply == b"start d6:result4:ponge":
                    return
        raise AssertionError(f"rtpengine did not answer ping in {START_TIMEOUT}s\n" + self.describe())

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a few seconds; never leaves the child behind."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def ng(self, payload: bytes, cookie: bytes = b"blocking") -> bytes:
        """One ng exchange over a blocking socket: send ``payload`` (bencode), return the reply body."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((RELAY_HOST, 0))
            sock.settimeout(WAIT / 2)
            sock.sendto(cookie + b" " + payload, self.address)
            reply = sock.recv(65535)
        got, _, body = reply.partition(b" ")
        if got != cookie:
            raise AssertionError(f"reply with cookie {got!r}, expected {cookie!r}")
        return body


# -- a real-socket UDP reactor the test pumps --------------------------------------------------------


class _RealPort:
    """A real UDP socket that looks like Twisted's UDP port to the protocol on it."""

    def __init__(self, protocol: AbstractDatagramProtocol, interface: str, maxPacketSize: int) -> None:
        self.protocol = protocol
        self.maxPacketSize = maxPacketSize
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind((interface or "127.0.0.1", 0))
        self.socket.setblocking(False)
        self.written: list[tuple[bytes, Any]] = []
        self.received: list[bytes] = []

    def write(self, datagram: bytes, addr: Any) -> None:
        self.written.append((datagram, addr))
        self.socket.sendto(datagram, addr)

    def getHost(self) -> IPv4Address:
        host, port = self.socket.getsockname()
        return IPv4Address("UDP", host, port)

    def stopListening(self) -> None:
        self.socket.close()
        self.protocol.doStop()

    def startListening(self) -> None:
        """Already listening since construction."""


@implementer(IReactorUDP)
class LoopbackUDPReactor:
    """`IReactorUDP` on real sockets whose datagrams arrive only in `pump`: no reactor loop runs."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.ports: list[_RealPort] = []
        self._last = time.monotonic()

    def listenUDP(
        self, port: int, protocol: AbstractDatagramProtocol, interface: str = "", maxPacketSize: int = 8192
    ) -> IListeningPort:
        if port != 0:
            raise ValueError("only ephemeral ports here")
        if interface not in ("", "127.0.0.1"):
            raise ValueError(f"loopback only, not {interface!r}")
        real = _RealPort(protocol, interface, maxPacketSize)
        protocol.makeConnection(real)  # type: ignore[arg-type]
        self.ports.append(real)
        return real  # type: ignore[return-value]

    def listenMulticast(self, *args: object, **kwargs: object) -> IListeningPort:
        raise NotImplementedError("no multicast in these tests")

    def pump(self, seconds: float = 0.05) -> None:
        """Deliver what arrived within ``seconds``, then advance the clock by the real time passed."""
        open_ = [p for p in self.ports if p.socket.fileno() >= 0]
        if open_:
            readable, _, _ = select.select([p.socket for p in open_], [], [], seconds)
            for port in open_:
                if port.socket not in readable:
                    continue
                while True:
                    try:
                        datagram, addr = port.socket.recvfrom(port.maxPacketSize)
                    except BlockingIOError:
                        break
                    port.received.append(datagram)
                    port.protocol.datagramReceived(datagram, addr)
        else:
            time.sleep(seconds)
        now = time.monotonic()
        self.clock.advance(now - self._last)
        self._last = now

    def wait(self, deferred: Deferred[T], timeout: float = WAIT) -> T:
        """Pump until ``deferred`` fires; return its result, or raise its failure."""
        outcome: list[Any] = []
        deferred.addBoth(outcome.append)
        deadline = time.monotonic() + timeout
        while not outcome:
            if time.monotonic() > deadline:
                deferred.cancel()
                raise AssertionError(f"no result in {timeout}s")
            self.pump()
        result = outcome[0]
        if isinstance(result, Failure):
            result.raiseException()
        return result  # type: ignore[no-any-return]


# -- tests -----------------------------------------------------------------------------------------


class RtpengineRelayTests(SynchronousTestCase):
    """
    `RtpengineRelay` anchors a call's media in the real daemon, and hands its ports back at the end.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.reactor = LoopbackUDPReactor(self.clock)

    def start(self, *extra: str, pollInterval: float | None = None) -> RtpengineRelay:
        self.daemon = RtpengineDaemon(self, *extra)
        self.client = RtpengineClient(self.reactor, self.clock, self.daemon.address, timeout=0.5, retries=3)
        self.addCleanup(self.client.stop)
        return RtpengineRelay(self.client, pollInterval=pollInterval)

    def call(self, relay: RtpengineRelay, callId: str, portA: int, portB: int) -> tuple[bytes, bytes]:
        """Offer from A, answer from B; the SDPs for B and for A that came back."""
        toB = self.reactor.wait(relay.offer(callId, "A", sdpOf("alice", HOST_A, portA), lambda: None))
        toA = self.reactor.wait(relay.answer(callId, "B", sdpOf("bob", HOST_B, ice=False, port=portB)))
        return toB, toA

    def test_ping(self) -> None:
        """The daemon answers ping through the client."""
        self.start()
        self.assertIsNone(self.reactor.wait(self.client.ping()))

    def test_offerAnswerDelete(self) -> None:
        """Both SDPs come back naming the relay's address and its ports, without ICE; delete frees them."""
        relay = self.start()
        toB, toA = self.call(relay, "interop-1@127.0.0.2", 40000, 40010)
        detail = f"{toB!r}\n{toA!r}\n" + self.daemon.describe()
        low, high = self.daemon.portRange
        for sdp, owner in ((toB, b"alice"), (toA, b"bob")):
            host, port = mediaAddress(sdp)
            self.assertEqual(host, RELAY_HOST, detail)
            self.assertTrue(low <= port <= high, detail)
            self.assertIn(b"o=" + owner + b" 2890844526 2890844526 IN IP4 127.0.0.1\r\n", sdp, detail)
            self.assertNotIn(b"a=candidate", sdp, detail)
            self.assertNotIn(b"a=ice-", sdp, detail)
            self.assertNotIn(HOST_A.encode(), sdp, detail)
            self.assertNotIn(HOST_B.encode(), sdp, detail)
            self.assertIn(b"a=rtpmap:101 telephone-event/8000\r\n", sdp, detail)
        self.assertNotEqual(mediaAddress(toA)[1], mediaAddress(toB)[1])
        self.assertEqual(relay.activeSessions(), 1)

        state = self.reactor.wait(self.client.query("interop-1@127.0.0.2"))
        tags = state[b"tags"]
        assert isinstance(tags, dict)
        self.assertEqual(sorted(tags), [b"interop-1@127.0.0.2-A", b"interop-1@127.0.0.2-B"])

        self.assertIsNone(self.reactor.wait(relay.delete("interop-1@127.0.0.2")))
        self.assertEqual(relay.activeSessions(), 0)
        failure = self.assertRaises(
            RtpengineRefusedError, self.reactor.wait, self.client.query("interop-1@127.0.0.2")
        )
        self.assertEqual(failure.reason, "Unknown call-id")
        # A second delete, and one for a call never seen, are no errors.
        self.assertIsNone(self.reactor.wait(relay.delete("interop-1@127.0.0.2")))
        self.assertIsNone(self.reactor.wait(self.client.delete("never@127.0.0.2").addErrback(lambda f: None)))

    def test_reInviteFromB(self) -> None:
        """A re-offer from B (hold) and A's answer keep both legs on the same relay ports."""
        relay = self.start()
        toB, toA = self.call(relay, "interop-2@127.0.0.2", 40020, 40030)
        held = sdpOf("bob", HOST_B, ice=False, port=40030).replace(b"a=sendrecv", b"a=sendonly")
        toA2 = self.reactor.wait(relay.offer("interop-2@127.0.0.2", "B", held, lambda: None))
        self.assertIn(b"a=sendonly\r\n", toA2)
        self.assertEqual(mediaAddress(toA2), mediaAddress(toA))
        toB2 = self.reactor.wait(
            relay.answer(
                "interop-2@127.0.0.2",
                "A",
                sdpOf("alice", HOST_A, 40020, ice=False).replace(b"sendrecv", b"recvonly"),
            )
        )
        self.assertIn(b"a=recvonly\r\n", toB2)
        self.assertEqual(mediaAddress(toB2), mediaAddress(toB))
        self.reactor.wait(relay.delete("interop-2@127.0.0.2"))

    def test_mediaFlowsThroughRelay(self) -> None:
        """RTP from each side reaches the other from the relay's address and ports, every packet."""
        relay = self.start()
        sockA = self.bound(HOST_A)
        sockB = self.bound(HOST_B)
        toB, toA = self.call(relay, "interop-3@127.0.0.2", sockA.getsockname()[1], sockB.getsockname()[1])
        relayForA, relayForB = mediaAddress(toA), mediaAddress(toB)
        count = 20
        for seq in range(count):
            sockA.sendto(rtp(seq, ssrc=0xA), relayForA)
            sockB.sendto(rtp(seq, ssrc=0xB), relayForB)
            time.sleep(0.005)
        atB = receiveAll(sockB, count)
        atA = receiveAll(sockA, count)
        detail = self.daemon.describe()
        self.assertEqual(len(atB), count, detail)
        self.assertEqual(len(atA), count, detail)
        self.assertEqual({source for _, source in atB}, {relayForB}, detail)
        self.assertEqual({source for _, source in atA}, {relayForA}, detail)
        self.assertEqual([data for data, _ in atB], [rtp(seq, ssrc=0xA) for seq in range(count)])
        self.reactor.wait(relay.delete("interop-3@127.0.0.2"))

    def test_mediaTimeout(self) -> None:
        """A call that carries no RTP is dropped by rtpengine's --timeout, and polling runs onTimeout."""
        relay = self.start("--timeout=2", pollInterval=0.5)
        timedOut: list[str] = []
        callId = "interop-4@127.0.0.2"
        self.reactor.wait(
            relay.offer(callId, "A", sdpOf("alice", HOST_A, 40040), lambda: timedOut.append(callId))
        )
        self.reactor.wait(relay.answer(callId, "B", sdpOf("bob", HOST_B, ice=False, port=40050)))
        self.assertEqual(relay.activeSessions(), 1)
        deadline = time.monotonic() + WAIT
        while not timedOut and time.monotonic() < deadline:
            self.reactor.pump()
        self.assertEqual(timedOut, [callId], self.daemon.describe())
        self.assertEqual(relay.activeSessions(), 0)
        # Deleting it afterwards, as the call layer will when it hangs up, is no error.
        self.assertIsNone(self.reactor.wait(relay.delete(callId)))

    def test_answerForUnknownCall(self) -> None:
        """rtpengine's refusal reaches the caller as RtpengineRefusedError with its reason."""
        relay = self.start()
        failure = self.assertRaises(
            RtpengineRefusedError,
            self.reactor.wait,
            relay.answer("nobody@127.0.0.2", "B", sdpOf("bob", HOST_B, ice=False, port=40060)),
        )
        self.assertEqual(failure.reason, "Unknown call-id")

    def bound(self, host: str) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        sock.bind((host, 0))
        return sock


def rtp(seq: int, ssrc: int, payload: bytes = b"\xff" * 160) -> bytes:
    """One PCMU RTP packet (RFC 3550): version 2, payload type 0, 20 ms per packet."""
    return struct.pack("!BBHII", 0x80, 0, seq, seq * 160, ssrc) + payload


def receiveAll(sock: socket.socket, count: int) -> list[tuple[bytes, tuple[str, int]]]:
    """Up to ``count`` datagrams, waiting at most a second for each after the last one."""
    got: list[tuple[bytes, tuple[str, int]]] = []
    sock.settimeout(1.0)
    while len(got) < count:
        try:
            got.append(sock.recvfrom(65535))
        except TimeoutError:
            break
    return got


# -- the recorded exchange --------------------------------------------------------------------------

RECORDED_CALL = "recorded-1@127.0.0.2"
RECORDED_A = ("alice", HOST_A, 49170)
RECORDED_B = ("bob", HOST_B, 49180, False)


def recordedSteps(relay: RtpengineRelay, client: RtpengineClient) -> Iterator[tuple[str, Deferred[Any]]]:
    """The exchange the unit tests replay, as (name, Deferred) steps, each run when the last is done."""
    yield "ping", client.ping()
    yield "offer", relay.offer(RECORDED_CALL, "A", sdpOf(*RECORDED_A), lambda: None)
    yield "answer", relay.answer(RECORDED_CALL, "B", sdpOf(*RECORDED_B))
    yield "query", client.query(RECORDED_CALL)
    yield "delete", relay.delete(RECORDED_CALL)
    yield "query-deleted", client.query(RECORDED_CALL).addErrback(lambda f: None)
    yield "delete-unknown", client.delete(RECORDED_CALL).addErrback(lambda f: None)
    yield (
        "answer-unknown",
        client.answer(RECORDED_CALL, "x", "y", sdpOf(*RECORDED_B)).addErrback(lambda f: None),
    )


def runRecording(testCase: SynchronousTestCase) -> tuple[RtpengineDaemon, list[dict[str, str]]]:
    """Run `recordedSteps` against a fresh daemon; return it and the exchange (cookies left out)."""
    daemon = RtpengineDaemon(testCase)
    clock = Clock()
    reactor = LoopbackUDPReactor(clock)
    client = RtpengineClient(reactor, clock, daemon.address, timeout=0.5, retries=3)
    testCase.addCleanup(client.stop)
    relay = RtpengineRelay(client, pollInterval=None)
    steps: list[dict[str, str]] = []
    for name, deferred in recordedSteps(relay, client):
        reactor.wait(deferred)
        port = reactor.ports[0]
        ((request, _),) = port.written[-1:]
        reply = port.received[-1]
        cookie, _, requestBody = request.partition(b" ")
        replyCookie, _, replyBody = reply.partition(b" ")
        if replyCookie != cookie:
            raise AssertionError(f"{name}: reply cookie {replyCookie!r} for request cookie {cookie!r}")
        steps.append(
            {"name": name, "request": requestBody.decode("latin-1"), "reply": replyBody.decode("latin-1")}
        )
    return daemon, steps


def shape(value: Any) -> Any:
    """What must stay the same between two runs: the keys and types, not times, ports or counters."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value]
    if isinstance(value, bytes):
        # SDP bodies differ in port numbers only.
        return re.sub(rb"\d+", b"N", value)
    return type(value).__name__


class RecordedExchangeTests(SynchronousTestCase):
    """
    The recorded exchange the unit tests replay is what the installed daemon says today.
    """

    def test_recordingMatchesDaemon(self) -> None:
        """Our requests are byte for byte the recorded ones, and the replies have the same shape."""
        daemon, steps = runRecording(self)
        recorded = json.loads(EXCHANGE.read_text())["steps"]
        self.assertEqual([s["name"] for s in steps], [s["name"] for s in recorded])
        for now, then in zip(steps, recorded, strict=True):
            self.assertEqual(now["request"], then["request"], now["name"])
            nowReply = decode(now["reply"].encode("latin-1"))
            thenReply = decode(then["reply"].encode("latin-1"))
            self.assertEqual(shape(nowReply), shape(thenReply), f"{now['name']}\n{daemon.describe()}")


def record(argv: Sequence[str]) -> int:
    """Write ``rtpengine_exchange.json`` from the installed daemon (a developer's tool, not a test)."""

    class Recorder(SynchronousTestCase):
        def runTest(self) -> None:
            """Record."""

    recorder = Recorder()
    try:
        daemon, steps = runRecording(recorder)
        version = subprocess.run(
            [requireRtpengine(), "--version"], capture_output=True, text=True, timeout=10, check=False
        )
        document = {
            "about": "ng exchange with the real rtpengine, cookies left out; made by "
            "`python -m tests.interop.test_rtpengine record`. Strings are the datagram bytes as latin-1.",
            "daemon": (version.stdout + version.stderr).strip(),
            # The flags that shape the replies; ports and paths change with every run.
            "flags": [flag for flag in daemon.command[4:] if not re.search(r"port|pidfile|listen", flag)],
            "steps": steps,
        }
        EXCHANGE.write_text(json.dumps(document, indent=2) + "\n")
        print(f"wrote {EXCHANGE} ({len(steps)} steps)")
    finally:
        recorder.doCleanups()
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] != ["record"]:
        sys.exit("usage: python -m tests.interop.test_rtpengine record")
    sys.exit(record(sys.argv[2:]))
