"""Test doubles shared by the unit tests: a recording SIP transport and config builders."""

from __future__ import annotations

import bisect
from collections.abc import Callable
from pathlib import Path

from twisted.internet.address import IPv4Address
from twisted.internet.base import DelayedCall
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import Factory
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransportWithDisconnection
from zope.interface import implementer

from sbc.config import Config, loadConfig
from sbc.interfaces import Address, ISIPTransport
from sbc.sip import Request, Response, parseMessage


@implementer(ISIPTransport)
class RecordingTransport:
    """Keeps every message sent through it, with its destination."""

    def __init__(self, name: str = "UDP", reliable: bool = False) -> None:
        self.name = name
        self.reliable = reliable
        self.localAddress: Address = ("127.0.0.1", 5060)
        self.sent: list[tuple[bytes, Address]] = []

    def send(self, data: bytes, address: Address) -> None:
        self.sent.append((data, address))

    def messages(self) -> list[Request | Response]:
        return [parseMessage(data) for data, _ in self.sent]

    def responses(self) -> list[Response]:
        return [m for m in self.messages() if isinstance(m, Response)]


DEMO_TOML = """
[sip]
t1 = 0.5

[state]
directory = "state"

[whitelist]
poll_interval = 1.0

[[listen]]
transport = "udp"
host = "127.0.0.1"
port = 5060

[trunks.demo]
whitelist = "whitelist/demo.txt"
gateways = ["127.0.0.2:5080"]
"""


def writeConfig(directory: Path, toml: str = DEMO_TOML, whitelist: str = "127.0.0.2/32\n") -> Path:
    (directory / "whitelist").mkdir(parents=True, exist_ok=True)
    (directory / "whitelist" / "demo.txt").write_text(whitelist)
    path = directory / "sbc.toml"
    path.write_text(toml)
    return path


def demoConfig(directory: Path) -> Config:
    return loadConfig(writeConfig(directory))


def options(
    *,
    method: str = "OPTIONS",
    uri: str = "sip:127.0.0.1",
    branch: str = "z9hG4bKtest1",
    via: str | None = None,
    extra: str = "",
    maxForwards: str = "70",
    cseqMethod: str | None = None,
) -> bytes:
    """A well-formed request from the demo trunk, to be bent by each test."""
    viaValue = via if via is not None else f"SIP/2.0/UDP 127.0.0.2:5062;branch={branch};rport"
    return (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: {viaValue}\r\n"
        f"Max-Forwards: {maxForwards}\r\n"
        "From: <sip:peer@127.0.0.2>;tag=abc\r\n"
        "To: <sip:sbc@127.0.0.1>\r\n"
        "Call-ID: call-1@127.0.0.2\r\n"
        f"CSeq: 1 {cseqMethod or method}\r\n"
        f"{extra}"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def connectStream(factory: Factory, peer: IPv4Address) -> StringTransportWithDisconnection:
    """A connection from C{peer} accepted by C{factory}: a string transport that keeps what the
    protocol sends and lets it close the connection (stream transports' limits and bans do)."""
    protocol = factory.buildProtocol(peer)
    assert protocol is not None
    transport = StringTransportWithDisconnection(peerAddress=peer)
    transport.protocol = protocol
    protocol.makeConnection(transport)
    return transport


class SortedClock(Clock):
    """A `Clock` that keeps its calls sorted as they come and go, for the counting tests.

    The stock `Clock` sorts every pending call on every ``callLater`` and cancels by a linear
    search, which makes 10,000 transactions take about a minute. Calls are never reset or
    delayed here, which this relies on; distinct deadlines keep the cancelling search short.
    """

    def callLater(
        self, delay: float, callable: Callable[..., object], *args: object, **kw: object
    ) -> IDelayedCall:
        call = DelayedCall(
            self.seconds() + delay, callable, args, kw, self._cancel, lambda c: None, self.seconds
        )
        bisect.insort_right(self.calls, call, key=DelayedCall.getTime)
        return call

    def _cancel(self, call: DelayedCall) -> None:
        calls = self.calls
        index = bisect.bisect_left(calls, call.getTime(), key=DelayedCall.getTime)
        while calls[index] is not call:
            index += 1
        del calls[index]

    def _sortCalls(self) -> None:
        """Nothing to do: the calls are always in order."""
