"""Media fixtures shared by the relay and rtpengine tests: phones' SDP, and relay and client test cases."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sbc.interfaces import Address
from sbc.media.bencode import Encodable, Value, decode, encode
from sbc.media.ng import RtpengineClient
from sbc.media.ports import PortPool
from sbc.media.relay import MediaRelay
from sbc.sip.sdp import SessionDescription, parseSDP
from tests.fakes import FakeUDPPort, FakeUDPReactor

US = "127.0.0.1"
PHONE_A: Address = ("10.0.0.1", 49170)  # the caller, as its SDP says
PHONE_B: Address = ("192.0.2.20", 6000)  # the callee, as its SDP says
NAT_A: Address = ("203.0.113.5", 40000)  # where the caller's packets really come from


def sdp(*lines: str) -> bytes:
    return "".join(line + "\r\n" for line in lines).encode("latin-1")


def phone(
    host: str, port: int, *extra: str, username: str = "phone", video: int | None = None, ip: str = "IP4"
) -> bytes:
    """One side's SDP: audio on ``port``, optionally video, ``extra`` lines after the audio m=."""
    lines = [
        "v=0",
        f"o={username} 2890844526 2890844526 IN {ip} {host}",
        "s=-",
        f"c=IN {ip} {host}",
        "t=0 0",
        f"m=audio {port} RTP/AVP 0 8 101",
        "a=rtpmap:101 telephone-event/8000",
        *extra,
    ]
    if video is not None:
        lines += [f"m=video {video} RTP/AVP 96", "a=rtpmap:96 H264/90000"]
    return sdp(*lines)


OFFER = phone(*PHONE_A, username="alice")
ANSWER = phone(*PHONE_B, username="bob")


class RelayTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = FakeUDPReactor()
        self.clock = Clock()
        self.pool = PortPool(20000, 20099)
        self.relay = MediaRelay(self.reactor, self.clock, US, self.pool)
        self.timedOut: list[str] = []

    def onTimeout(self, callId: str = "call-1") -> None:
        self.timedOut.append(callId)

    def offer(
        self, body: bytes = OFFER, side: str = "A", callId: str = "call-1", sipSource: str | None = None
    ) -> SessionDescription:
        return parseSDP(self.relay.offer(callId, side, body, lambda: self.onTimeout(callId), sipSource))

    def answer(
        self, body: bytes = ANSWER, side: str = "B", callId: str = "call-1", sipSource: str | None = None
    ) -> SessionDescription:
        return parseSDP(self.relay.answer(callId, side, body, sipSource))

    def call(
        self, callId: str = "call-1", aSource: str | None = None, bSource: str | None = None
    ) -> tuple[int, int]:
        """Set up a call; return the relay port B must send to and the one A must send to.

        ``aSource`` and ``bSource`` are the sides' signalling IPs, for latching behind NAT.
        """
        toB = self.offer(callId=callId, sipSource=aSource)
        toA = self.answer(callId=callId, sipSource=bSource)
        return toB.media[0].port, toA.media[0].port

    def socket(self, port: int) -> FakeUDPPort:
        return self.reactor.open[port]


DAEMON = ("127.0.0.1", 22222)

PROFILE = settings(
    database=None,
    deadline=None,
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

OFFER_SDP = (
    b"v=0\r\no=alice 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\n"
    b"m=audio 49170 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)
ANSWER_SDP = OFFER_SDP.replace(b"alice", b"bob").replace(b"127.0.0.2", b"127.0.0.3")
RELAYED_SDP = OFFER_SDP.replace(b"127.0.0.2", b"127.0.0.1").replace(b"49170", b"30000")


class ClientTestCase(SynchronousTestCase):
    """A client on a fake reactor and a clock, with helpers to read requests and answer them."""

    timeout = 1.0
    retries = 3

    def setUp(self) -> None:
        self.clock = Clock()
        self.reactor = FakeUDPReactor()
        self.client = RtpengineClient(
            self.reactor, self.clock, DAEMON, timeout=self.timeout, retries=self.retries
        )

    @property
    def port(self) -> FakeUDPPort:
        [port] = self.reactor.ports
        return port

    def parse(self, datagram: bytes, addr: Any) -> tuple[bytes, dict[bytes, Value]]:
        """One datagram sent to the daemon as (cookie, decoded dictionary)."""
        self.assertEqual(addr, DAEMON)
        cookie, space, body = datagram.partition(b" ")
        self.assertEqual(space, b" ")
        message = decode(body)
        assert isinstance(message, dict)
        return cookie, message

    def requests(self) -> list[tuple[bytes, dict[bytes, Value]]]:
        """Every datagram sent so far as (cookie, decoded dictionary)."""
        return [self.parse(datagram, addr) for datagram, addr in self.port.written]

    def lastRequest(self) -> tuple[bytes, dict[bytes, Value]]:
        return self.parse(*self.port.written[-1])

    def elapse(self, seconds: float, step: float = 0.125) -> None:
        """Let ``seconds`` pass in small steps, as a reactor would: each timer fires on time.

        (One big `Clock.advance` would schedule a retransmission relative to the end of the jump.)
        """
        for _ in range(round(seconds / step)):
            self.clock.advance(step)

    def reply(self, cookie: bytes, body: Encodable | bytes, source: Any = DAEMON, raw: bool = False) -> None:
        """rtpengine answers ``cookie`` with ``body`` (a dict to encode, or raw bytes)."""
        data = body if raw and isinstance(body, bytes) else encode(body)
        self.port.protocol.datagramReceived(cookie + b" " + data, source)

    def replyLast(self, body: Encodable) -> None:
        cookie, _ = self.lastRequest()
        self.reply(cookie, body)
