# Twisted's trial assertions carry no annotations.
# mypy: disable-error-code="no-untyped-call"
"""
Media anchoring through the real service (C{twistd -n sbc}) with its built-in relay: RTP of a trunk call
to alice's registered phone goes through the SBC's relay ports, and nothing of one side's SDP reaches
the other.

Each call has SIPp send RTP and a UDP socket of the test at the other end, which sees the source and the
number of every packet:

  - the trunk caller (SIPp on 127.0.0.2) plays SIPp's bundled G.711 A-law capture, g711a.pcap, and
    echoes what comes back (C{-rtp_echo}); alice's phone (SIPp on 127.0.0.4) answers with SDP naming
    the test's socket, which echoes each packet of the capture once, under an SSRC of its own;
  - the trunk caller's SDP names the test's socket, which sends RTP; alice's phone echoes it
    (C{-rtp_echo}).

The scenarios write the media address into SDP from C{-set mediaHost}/C{-set mediaPort}
(media_uas.xml, media_uac.xml), or as SIPp's own C{-mi}/C{-mp} (media_uac_pcap.xml).
"""

from __future__ import annotations

import random
import re
import select
import shutil
import socket
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from unittest import SkipTest

from twisted.trial.unittest import SynchronousTestCase

from .ports import UDP, freePort
from .service import ServiceProcess, startService
from .sipp import SippProcess, SippRun, TracedMessage, freeMediaPort, runSipp, startSipp
from .tools import MissingToolError, inCI, requireTool

ALICE = ("alice", "alice-demo")
TRUNK = "127.0.0.2"
PHONE = "127.0.0.4"
# An address of nobody in the call, for media from a stranger.
STRANGER = "127.0.0.9"

# The media address of the shipped config ([media] address): what every SDP crossing the SBC must name.
RELAY_ADDRESS = "127.0.0.1"
# Each test's relay draws its ports from a window of this many ports, at a random place in the shipped
# range, so that parallel runs rarely meet (the relay steps over ports taken anyway).
RELAY_WINDOW = 400
RELAY_RANGE = (20000, 29999)

# SIPp's bundled capture: G.711 A-law (payload type 8), one stream of RTP.  Debian's sip-tester ships it
# in /usr/share/sip-tester; SIPp built from source installs it elsewhere.
PCAP_NAME = "g711a.pcap"
PCAP_PLACES = (
    Path("/usr/share/sip-tester"),
    Path("/usr/share/doc/sip-tester/examples/pcap"),
    Path("/usr/local/share/sipp/pcap"),
    Path("/usr/share/sipp/pcap"),
)

# The SSRC our echoing socket writes into the packets it echoes, so that it knows them when SIPp's
# -rtp_echo sends them back, and does not echo them again.
ECHO_SSRC = 0x5BC0ECE0

# RTP the test's caller socket sends: PCMA, 20 ms of silence each, PACKETS of them, one every PACE s.
PACKETS = 200
PACE = 0.005
PCMA = 8
SILENCE = b"\xd5" * 160

# Packets may go missing on a loaded machine, but no more than this share of them.
TOLERANCE = 0.01

# SIPp's -timeout for a call's processes, and how long the test may wait for media at most.
CALL_TIMEOUT = 20.0
# How long the trunk caller keeps an echoed call up (-d, ms): room for PACKETS * PACE and the echoes.
ECHO_HOLD_MS = 2500
# How long the pcap caller keeps the call up beyond the capture's own length (-d, ms).
PCAP_EXTRA_MS = 700
# After a caller ends, how long a socket still waits for late packets, in seconds.
DRAIN = 0.3


_CONNECTION = re.compile(r"^c=IN IP[46] (\S+)", re.MULTILINE)
_ORIGIN = re.compile(r"^o=\S+ \S+ \S+ IN IP[46] (\S+)", re.MULTILINE)
_MEDIA = re.compile(r"^m=\w+ (\d+)", re.MULTILINE)
# What SIPp 3.6 prints as it loads a capture to play.
_PCAP_LOADED = re.compile(r"In pcap \S+, npkts (\d+)")


def missing(message: str) -> Exception:
    """
    What to raise when the host lacks something a test needs: a skip, or in CI a failure, as
    L{requireTool} does for a missing program (see L{inCI}).
    """
    if inCI():
        return MissingToolError(message + "; CI is set, so this is a failure, not a skip")
    return SkipTest(message)


def findPcap() -> Path:
    """
    SIPp's bundled g711a.pcap; skip (fail in CI) when no known place has it.
    """
    for place in PCAP_PLACES:
        path = place / PCAP_NAME
        if path.is_file():
            return path
    raise missing(
        f"SIPp's {PCAP_NAME} is in none of {[str(p) for p in PCAP_PLACES]}; "
        "install the Debian package 'sip-tester' (apt-get install sip-tester)"
    )


def requireRawSockets() -> None:
    """
    Skip (fail in CI) unless we may open a raw UDP socket, which SIPp's play_pcap_audio needs.
    """
    try:
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP).close()
    except PermissionError as e:
        raise missing(f"SIPp plays a pcap through a raw socket, which needs root or CAP_NET_RAW: {e}") from e


@dataclass(frozen=True)
class Capture:
    """
    What a classic pcap file holds that matters for playing it: its IPv4/UDP packets, and their span.

    @ivar packets: how many IPv4 UDP packets (SIPp plays those, and nothing else).
    @ivar duration: seconds from the first packet to the last.
    """

    packets: int
    duration: float


def readCapture(path: Path) -> Capture:
    """
    Count the IPv4 UDP packets of a classic (libpcap, not pcapng) capture on Ethernet, and their span.
    """
    data = path.read_bytes()
    magic = data[:4]
    formats = {
        b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
        b"\xa1\xb2\xc3\xd4": (">", 1e-6),
        b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
        b"\xa1\xb2\x3c\x4d": (">", 1e-9),
    }
    if magic not in formats:
        raise AssertionError(f"{path} is not a classic pcap file (magic {magic.hex()})")
    order, unit = formats[magic]
    (linkType,) = struct.unpack(order + "I", data[20:24])
    if linkType != 1:
        raise AssertionError(f"{path}: link type {linkType}, expected Ethernet (1)")
    offset, packets = 24, 0
    first: float | None = None
    last = 0.0
    while offset + 16 <= len(data):
        seconds, fraction, included, _ = struct.unpack(order + "IIII", data[offset : offset + 16])
        frame = data[offset + 16 : offset + 16 + included]
        offset += 16 + included
        if len(frame) >= 34 and frame[12:14] == b"\x08\x00" and frame[23] == socket.IPPROTO_UDP:
            packets += 1
            stamp = seconds + fraction * unit
            first = stamp if first is None else first
            last = stamp
    return Capture(packets, 0.0 if first is None else last - first)


def rtpPacket(sequence: int, ssrc: int, payloadType: int = PCMA, payload: bytes = SILENCE) -> bytes:
    """
    An RTP packet (RFC 3550): version 2, no padding, extension or CSRC, marker clear.
    """
    return (
        struct.pack("!BBHII", 0x80, payloadType, sequence & 0xFFFF, (sequence * 160) & 0xFFFFFFFF, ssrc)
        + payload
    )


def ssrcOf(packet: bytes) -> int | None:
    """
    The SSRC of an RTP packet, or C{None} when C{packet} is too short or not RTP version 2.
    """
    if len(packet) < 12 or packet[0] >> 6 != 2:
        return None
    ssrc: int = struct.unpack("!I", packet[8:12])[0]
    return ssrc


def withSsrc(packet: bytes, ssrc: int) -> bytes:
    """
    C{packet} with its SSRC replaced by C{ssrc}.
    """
    return packet[:8] + struct.pack("!I", ssrc) + packet[12:]


@dataclass(frozen=True)
class Datagram:
    """
    One datagram a test socket received: where from, and what.
    """

    source: tuple[str, int]
    data: bytes


@dataclass
class MediaEndpoint:
    """
    A UDP socket of the test standing for one side's media: it records every datagram it receives.

    @ivar host: the address it is bound to.
    @ivar received: every datagram, in order.
    @ivar sent: how many datagrams it sent.
    """

    host: str
    received: list[Datagram] = field(default_factory=list)
    sent: int = 0

    def __post_init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        # An even port, as RTP takes (its RTCP would be the odd one above).
        for _ in range(100):
            port = freePort(self.host, (UDP,))
            if port % 2 == 0:
                try:
                    self.socket.bind((self.host, port))
                except OSError:
                    continue
                break
        else:
            raise RuntimeError(f"no free even UDP port on {self.host}")
        self.socket.setblocking(False)

    @property
    def port(self) -> int:
        """
        The port it is bound to.
        """
        port: int = self.socket.getsockname()[1]
        return port

    def close(self) -> None:
        """
        Close the socket.
        """
        self.socket.close()

    def send(self, data: bytes, destination: tuple[str, int]) -> None:
        """
        Send one datagram to C{destination}.
        """
        self.socket.sendto(data, destination)
        self.sent += 1

    def receive(self, wait: float, onDatagram: Callable[[Datagram], object] = lambda d: None) -> None:
        """
        Record every datagram that arrives within C{wait} seconds (at least one poll), handing each to
        C{onDatagram} too.
        """
        deadline = time.monotonic() + wait
        while True:
            remaining = max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self.socket], [], [], remaining)
            if ready:
                while True:
                    try:
                        data, source = self.socket.recvfrom(65536)
                    except BlockingIOError:
                        break
                    datagram = Datagram((source[0], source[1]), data)
                    self.received.append(datagram)
                    onDatagram(datagram)
            if remaining <= 0:
                return

    def sources(self, ssrc: int | None = None) -> set[tuple[str, int]]:
        """
        Every source address it received from (only of packets with C{ssrc}, when given).
        """
        return {d.source for d in self.received if ssrc is None or ssrcOf(d.data) == ssrc}

    def count(self, accept: Callable[[Datagram], bool]) -> int:
        """
        How many datagrams it received for which C{accept} holds.
        """
        return sum(1 for d in self.received if accept(d))


@dataclass(frozen=True)
class MediaLine:
    """
    Where an SDP body asks for media: its c= and o= addresses and its m= ports.
    """

    connection: tuple[str, ...]
    origin: tuple[str, ...]
    ports: tuple[int, ...]


def sdpOf(message: TracedMessage) -> MediaLine | None:
    """
    The media addresses of the SDP body of C{message}, or C{None} when it has none.
    """
    _, _, body = message.text.partition("\n\n")
    if not body.strip().startswith("v=0"):
        return None
    return MediaLine(
        tuple(_CONNECTION.findall(body)),
        tuple(_ORIGIN.findall(body)),
        tuple(int(port) for port in _MEDIA.findall(body)),
    )


def receivedSdps(run: SippRun) -> list[tuple[TracedMessage, MediaLine]]:
    """
    Each message with an SDP body that C{run} received, with its media addresses.
    """
    found = []
    for message in run.traced:
        if not message.sent:
            sdp = sdpOf(message)
            if sdp is not None:
                found.append((message, sdp))
    return found


def accountArgs(account: tuple[str, str]) -> tuple[str, ...]:
    """
    SIPp options for an account: the user in the scenarios (C{-s}) and the digest credentials.
    """
    user, password = account
    return ("-s", user, "-au", user, "-ap", password)


def within(count: int, expected: int, tolerance: float = TOLERANCE) -> bool:
    """
    Whether C{count} is C{expected} less at most C{tolerance} of it, and never more.
    """
    return expected * (1 - tolerance) <= count <= expected


class MediaTests(SynchronousTestCase):
    """
    RTP of a trunk call to alice's phone crosses the SBC's relay, and only the relay.
    """

    service: ServiceProcess
    relayPorts: tuple[int, int]

    def startWith(self) -> ServiceProcess:
        """
        Check that SIPp is installed, then start the service with the built-in relay on a window of ports
        of its own.
        """
        requireTool("sipp")
        low = random.randrange(RELAY_RANGE[0], RELAY_RANGE[1] - RELAY_WINDOW, 2)
        self.relayPorts = (low, low + RELAY_WINDOW - 1)
        settings = {
            "media": {
                "engine": "relay",
                "address": RELAY_ADDRESS,
                "port_min": self.relayPorts[0],
                "port_max": self.relayPorts[1],
            }
        }
        self.service = startService(self, settings=settings)
        return self.service

    def detail(self, *runs: SippRun, endpoints: Sequence[MediaEndpoint] = ()) -> str:
        """
        Everything about the runs, the test's sockets and the service, for a failure message.
        """
        lines = [run.describe() for run in runs]
        for endpoint in endpoints:
            sources: dict[tuple[str, int], int] = {}
            for datagram in endpoint.received:
                sources[datagram.source] = sources.get(datagram.source, 0) + 1
            lines.append(
                f"--- socket {endpoint.host}:{endpoint.port} sent {endpoint.sent}, "
                f"received {len(endpoint.received)} by source {sources}"
            )
        return "\n".join(lines) + "\n" + self.service.describe()

    def mediaEndpoint(self, host: str) -> MediaEndpoint:
        """
        A media socket on C{host}, closed in cleanup.
        """
        endpoint = MediaEndpoint(host)
        self.addCleanup(endpoint.close)
        return endpoint

    def phone(self, mediaHost: str, mediaPort: int, sippMediaPort: int, *, echo: bool = False) -> SippProcess:
        """
        Register alice from a free port of L{PHONE}, then answer her next call there (media_uas.xml) with
        SDP naming C{mediaHost}:C{mediaPort}.  SIPp's own media port is C{sippMediaPort} (C{-mp}), where
        with C{echo} it echoes RTP (C{-rtp_echo}).  Returns once it listens.
        """
        port = freePort(PHONE, (UDP,))
        registration = runSipp(
            self,
            "register_auth.xml",
            self.service.address("udp"),
            localHost=PHONE,
            localPort=port,
            extraArgs=accountArgs(ALICE),
        )
        self.assertEqual(registration.exitCode, 0, self.detail(registration))
        return startSipp(
            self,
            "media_uas.xml",
            localHost=PHONE,
            localPort=port,
            timeout=CALL_TIMEOUT,
            mediaPort=sippMediaPort,
            listening=True,
            extraArgs=(
                "-s",
                ALICE[0],
                "-set",
                "mediaHost",
                mediaHost,
                "-set",
                "mediaPort",
                str(mediaPort),
                *(("-rtp_echo",) if echo else ()),
            ),
        )

    def callFromTrunk(self, trunk: MediaEndpoint) -> tuple[SippProcess, tuple[str, int], float]:
        """
        Call alice from L{TRUNK} (media_uac.xml) with SDP naming C{trunk}, up for L{ECHO_HOLD_MS}, and
        wait, receiving on C{trunk}, until the caller has written the answer's media address
        (answer.txt).  Returns the caller, that address, and the deadline of the call.
        """
        caller = startSipp(
            self,
            "media_uac.xml",
            self.service.address("udp"),
            localHost=TRUNK,
            timeout=CALL_TIMEOUT,
            mediaPort=freeMediaPort(TRUNK),
            extraArgs=(
                "-s",
                ALICE[0],
                "-d",
                str(ECHO_HOLD_MS),
                "-set",
                "mediaHost",
                TRUNK,
                "-set",
                "mediaPort",
                str(trunk.port),
            ),
        )
        assert caller.process is not None
        answerFile = caller.directory / "answer.txt"
        deadline = time.monotonic() + CALL_TIMEOUT
        while not answerFile.exists() and caller.process.poll() is None and time.monotonic() < deadline:
            trunk.receive(0.05)
        answer = answerFile.read_text(encoding="ascii").split() if answerFile.exists() else []
        if len(answer) != 2:
            callerRun = caller.wait()
            self.fail(f"the caller wrote no answer.txt: {answer}\n{self.detail(callerRun)}")
        return caller, (answer[0], int(answer[1])), deadline

    def endCall(
        self, caller: SippProcess, phone: SippProcess, deadline: float, endpoints: Sequence[MediaEndpoint]
    ) -> tuple[SippRun, SippRun, str]:
        """
        Drain C{endpoints}, then keep the first receiving until the caller hangs up (by C{deadline});
        both runs completed (L{assertCompleted}).  Returns the caller's run, the phone's, and the detail
        for failure messages.
        """
        assert caller.process is not None
        for endpoint in endpoints:
            endpoint.receive(DRAIN)
        while caller.process.poll() is None and time.monotonic() < deadline:
            endpoints[0].receive(0.1)
        callerRun = caller.wait()
        phoneRun = phone.wait()
        self.assertCompleted(callerRun, phoneRun, endpoints=endpoints)
        return callerRun, phoneRun, self.detail(callerRun, phoneRun, endpoints=endpoints)

    def assertCompleted(self, *runs: SippRun, endpoints: Sequence[MediaEndpoint] = ()) -> None:
        """
        Every run completed its scenario (exit code 0), and the service still runs and logged no error.
        """
        detail = self.detail(*runs, endpoints=endpoints)
        for run in runs:
            self.assertEqual(run.exitCode, 0, detail)
        self.assertTrue(self.service.running, detail)
        self.assertEqual(self.service.errors(), [], detail)

    def anchoredSdp(self, run: SippRun, detail: str) -> int:
        """
        Every SDP C{run} received names the relay (c= and o=) and ports of the relay's window; return the
        audio port of the first, where this side must send (and whence the other side's media comes).
        """
        sdps = receivedSdps(run)
        self.assertTrue(sdps, detail)
        low, high = self.relayPorts
        for message, sdp in sdps:
            where = f"in the SDP of {message.firstLine!r}\n{detail}"
            self.assertTrue(sdp.connection, where)
            self.assertEqual(set(sdp.connection) | set(sdp.origin), {RELAY_ADDRESS}, where)
            self.assertEqual(len(sdp.ports), 1, where)
            self.assertTrue(low <= sdp.ports[0] <= high and sdp.ports[0] % 2 == 0, where)
        return sdps[0][1].ports[0]

    def assertNothingOf(self, address: str, mediaPort: int, run: SippRun, receiver: str, detail: str) -> None:
        """
        No message C{run} received names C{address} anywhere, nor C{mediaPort} in its SDP.
        """
        addressPattern = re.compile(rf"(?<![0-9.]){re.escape(address)}(?![0-9])")
        portPattern = re.compile(rf"(?<![0-9]){mediaPort}(?![0-9])")
        found = []
        for message in run.traced:
            if message.sent:
                continue
            _, _, body = message.text.partition("\n\n")
            if addressPattern.search(message.text):
                found.append(f"address {address} in {message.firstLine!r}")
            if portPattern.search(body):
                found.append(f"media port {mediaPort} in the SDP of {message.firstLine!r}")
        self.assertEqual(found, [], f"{receiver} received the other side's address or media port:\n{detail}")

    def test_pcapAudioReachesPhoneFromRelay(self) -> None:
        """
        SIPp's g711a.pcap from the trunk reaches alice's media whole, only from her offer's relay port.
        """
        pcap = findPcap()
        requireRawSockets()
        capture = readCapture(pcap)
        self.assertGreater(capture.packets, 100, f"{pcap}: {capture}")
        self.startWith()
        alice = self.mediaEndpoint(PHONE)
        phone = self.phone(PHONE, alice.port, freeMediaPort(PHONE, avoid=(alice.port,)))

        callerMediaPort = freeMediaPort(TRUNK)
        holdMs = int(capture.duration * 1000) + PCAP_EXTRA_MS
        caller = SippProcess(
            self,
            "media_uac_pcap.xml",
            self.service.address("udp"),
            localHost=TRUNK,
            timeout=CALL_TIMEOUT,
            mediaPort=callerMediaPort,
            extraArgs=("-s", ALICE[0], "-d", str(holdMs), "-rtp_echo"),
        )
        shutil.copy(pcap, caller.directory / PCAP_NAME)

        def echo(datagram: Datagram) -> None:
            ssrc = ssrcOf(datagram.data)
            if ssrc is not None and ssrc != ECHO_SSRC:
                alice.send(withSsrc(datagram.data, ECHO_SSRC), datagram.source)

        caller.start()
        assert caller.process is not None
        deadline = time.monotonic() + CALL_TIMEOUT + 5
        while caller.process.poll() is None and time.monotonic() < deadline:
            alice.receive(0.1, echo)
        alice.receive(DRAIN, echo)
        callerRun = caller.wait()
        phoneRun = phone.wait()
        self.assertCompleted(callerRun, phoneRun, endpoints=[alice])
        detail = self.detail(callerRun, phoneRun, endpoints=[alice])

        # Both sides were told the relay's address and ports, and nothing of the other side.
        offerPort = self.anchoredSdp(phoneRun, detail)
        answerPort = self.anchoredSdp(callerRun, detail)
        self.assertNothingOf(TRUNK, callerMediaPort, phoneRun, "alice's phone", detail)
        self.assertNothingOf(PHONE, alice.port, callerRun, "the trunk caller", detail)

        # (1) Every datagram alice's media got came from the relay port her offer named.
        relay = (RELAY_ADDRESS, offerPort)
        self.assertEqual(alice.sources(), {relay}, detail)
        # (2) SIPp played the whole capture, and all of it arrived (within 1 %, and nothing twice) ...
        loaded = _PCAP_LOADED.search(callerRun.output)
        if loaded is not None:
            self.assertEqual(int(loaded.group(1)), capture.packets, detail)
        played = alice.count(lambda d: ssrcOf(d.data) not in (None, ECHO_SSRC))
        self.assertTrue(within(played, capture.packets), f"{played} of {capture.packets} arrived\n{detail}")
        # ... and what alice echoed (each packet once) reached the caller, whose -rtp_echo sent it back to
        # her through the relay again: the caller's side of the relay carried both directions.
        echoed = alice.count(lambda d: ssrcOf(d.data) == ECHO_SSRC)
        self.assertTrue(within(echoed, alice.sent), f"{echoed} of {alice.sent} echoed back\n{detail}")
        self.assertNotEqual(answerPort, offerPort, detail)

    def test_echoReachesCallerFromRelay(self) -> None:
        """
        RTP the trunk sends returns whole from alice's SIPp -rtp_echo, only from its answer's relay port.
        """
        self.startWith()
        phoneMediaPort = freeMediaPort(PHONE)
        phone = self.phone(PHONE, phoneMediaPort, phoneMediaPort, echo=True)
        trunk = self.mediaEndpoint(TRUNK)
        caller, relay, deadline = self.callFromTrunk(trunk)

        ssrc = random.getrandbits(32)
        start = time.monotonic()
        for sequence in range(PACKETS):
            trunk.send(rtpPacket(sequence, ssrc), relay)
            trunk.receive(max(0.0, start + (sequence + 1) * PACE - time.monotonic()))
        callerRun, phoneRun, detail = self.endCall(caller, phone, deadline, [trunk])

        answerPort = self.anchoredSdp(callerRun, detail)
        self.assertEqual(relay, (RELAY_ADDRESS, answerPort), detail)
        offerPort = self.anchoredSdp(phoneRun, detail)
        self.assertNotEqual(answerPort, offerPort, detail)
        self.assertNothingOf(TRUNK, trunk.port, phoneRun, "alice's phone", detail)
        self.assertNothingOf(PHONE, phoneMediaPort, callerRun, "the trunk caller", detail)

        # (1) Every datagram the caller's media got came from the relay port of its answer.
        self.assertEqual(trunk.sources(), {relay}, detail)
        # (2) What it sent came back, through both legs of the relay and alice's echo, within 1 %.
        self.assertEqual(trunk.sent, PACKETS, detail)
        back = trunk.count(lambda d: ssrcOf(d.data) == ssrc)
        self.assertEqual(back, len(trunk.received), detail)
        self.assertTrue(within(back, PACKETS), f"{back} of {PACKETS} echoed back\n{detail}")

    def test_strangerGetsNothing(self) -> None:
        """
        A stranger (another loopback address) spraying RTP at every port of the relay's window during a
        call reaches nobody and receives nothing, and the call's own audio still goes to the right party.
        """
        self.startWith()
        phoneMediaPort = freeMediaPort(PHONE)
        phone = self.phone(PHONE, phoneMediaPort, phoneMediaPort, echo=True)
        trunk = self.mediaEndpoint(TRUNK)
        stranger = self.mediaEndpoint(STRANGER)
        caller, relay, deadline = self.callFromTrunk(trunk)

        # The stranger tries every port of the window (RTP and RTCP, both sides of the call), before
        # the trunk's first packet and all along, under an SSRC of its own: bounded, 2 per trunk packet.
        window = list(range(self.relayPorts[0], self.relayPorts[1] + 1))
        strangerSsrc = random.getrandbits(32)
        ssrc = random.getrandbits(32)
        start = time.monotonic()
        for sequence in range(PACKETS):
            for port in window[2 * sequence : 2 * sequence + 2]:
                stranger.send(rtpPacket(sequence, strangerSsrc), (RELAY_ADDRESS, port))
            trunk.send(rtpPacket(sequence, ssrc), relay)
            trunk.receive(max(0.0, start + (sequence + 1) * PACE - time.monotonic()))
        for port in window[2 * PACKETS :]:
            stranger.send(rtpPacket(PACKETS, strangerSsrc), (RELAY_ADDRESS, port))
        _, _, detail = self.endCall(caller, phone, deadline, [trunk, stranger])

        self.assertEqual(stranger.sent, len(window), detail)
        # (1) The stranger received nothing at all.
        self.assertEqual(stranger.received, [], detail)
        # (2) The call's audio reached alice and came back from her echo, within 1 %, from the relay
        # port only, and nothing of the stranger's (by its SSRC) reached either party.
        self.assertEqual(trunk.sources(), {relay}, detail)
        back = trunk.count(lambda d: ssrcOf(d.data) == ssrc)
        self.assertEqual(trunk.count(lambda d: ssrcOf(d.data) == strangerSsrc), 0, detail)
        self.assertEqual(back, len(trunk.received), detail)
        self.assertTrue(within(back, PACKETS), f"{back} of {PACKETS} echoed back\n{detail}")
