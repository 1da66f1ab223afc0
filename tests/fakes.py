"""Test doubles shared by the unit tests (SIP transports, a controller, a UDP reactor, routers, a
media relay, CDR and log sinks, a sorted clock) and builders of configs, requests and CDRs. One
version of each: extend it rather than copy it."""

from __future__ import annotations

import bisect
import errno
import select
import shutil
import socket
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.base import DelayedCall
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import (
    IDelayedCall,
    IListeningPort,
    IReactorFDSet,
    IReactorUDP,
    IReadDescriptor,
    IUDPTransport,
    IWriteDescriptor,
)
from twisted.internet.protocol import AbstractDatagramProtocol, DatagramProtocol, Factory
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransportWithDisconnection
from twisted.logger import ILogObserver, Logger
from twisted.names import dns
from twisted.names.error import DNSNameError
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from sbc.calls.cdr import CDR
from sbc.calls.parties import Party, PartyKind
from sbc.config import Config, ConfigError, loadConfig
from sbc.interfaces import (
    Address,
    IMediaRelay,
    IParsedMediaRelay,
    IRouter,
    ISIPTransport,
    NotAcceptableError,
)
from sbc.routing import CallRequest, Decision
from sbc.sip import HeaderField, Headers, Request, Response, parseMessage
from sbc.sip.sdp import SessionDescription


@implementer(ISIPTransport)
class RecordingTransport:
    """Stands in for a SIP transport (a UDP, TCP or TLS protocol): keeps every message sent through
    it, with its destination, instead of sending it."""

    def __init__(
        self, name: str = "UDP", reliable: bool = False, localAddress: Address = ("127.0.0.1", 5060)
    ) -> None:
        self.name = name
        self.reliable = reliable
        self.localAddress = localAddress
        self.sent: list[tuple[bytes, Address]] = []

    def send(self, data: bytes, address: Address) -> None:
        self.sent.append((data, address))

    def messages(self) -> list[Request | Response]:
        return [parseMessage(data) for data, _ in self.sent]

    def responses(self) -> list[Response]:
        return [m for m in self.messages() if isinstance(m, Response)]

    def statuses(self) -> list[int]:
        return [r.status for r in self.responses()]


class FakeController:
    """Stands in for the controller above the transports (sbc.server.SIPServer, as
    sbc.transport's `Controller`): admits the hosts it is given and records what it is told."""

    def __init__(self, allowed: tuple[str, ...] = ("127.0.0.2", "::1"), limit: int = 4) -> None:
        self.allowed = allowed
        self.limit = limit
        self.messages: list[tuple[bytes, ISIPTransport, Address]] = []
        self.errors: list[str] = []
        self.closed: list[ISIPTransport] = []
        self.started: list[ISIPTransport] = []

    def admit(self, host: str) -> bool:
        return host in self.allowed

    def connectionLimit(self, host: str) -> int:
        return self.limit

    def messageReceived(self, data: bytes, transport: ISIPTransport, source: Address) -> None:
        self.messages.append((data, transport, source))

    def streamError(self, transport: ISIPTransport, source: Address, reason: str) -> None:
        self.errors.append(reason)

    def connectionClosed(self, transport: ISIPTransport) -> None:
        self.closed.append(transport)

    def transportStarted(self, transport: ISIPTransport) -> None:
        self.started.append(transport)


class FakeDatagramTransport:
    """Stands in for the UDP port under sbc.transport's SIPDatagramProtocol: what it writes to its
    socket is kept, or refused as an ICMP port unreachable would be."""

    def __init__(self) -> None:
        self.written: list[tuple[bytes, Address]] = []
        self.socket = self
        self.refuse = False

    def sendto(self, data: bytes, addr: Address) -> None:
        if self.refuse:
            raise ConnectionRefusedError("ICMP port unreachable")
        self.written.append((data, addr))

    def getHost(self) -> IPv4Address:
        return IPv4Address("UDP", "127.0.0.1", 5060)


@implementer(ILogObserver)
class LogRecorder:
    """Stands in for the log observers: keeps every event. Its `log` is a Logger that logs to it,
    to patch over a module's or class's logger."""

    def __init__(self, namespace: str | None = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.log = Logger(namespace=namespace, observer=self)

    def __call__(self, event: dict[str, Any]) -> None:
        self.events.append(event)


@implementer(IRouter)
class FixedRouter:
    """Stands in for a router in the chain: answers what it is told, and counts how often it was
    asked."""

    def __init__(self, name: str, answer: Callable[[CallRequest], Any]) -> None:
        self.name = name
        self.answer = answer
        self.asked = 0

    def route(self, call: CallRequest) -> Decision | Deferred[Decision | None] | None:
        """The answer as ``answer`` gives it: at once, or a Deferred when the test wants to wait."""
        self.asked += 1
        result: Decision | Deferred[Decision | None] | None = self.answer(call)
        return result


@implementer(IMediaRelay)
class RecordingRelay:
    """Stands in for a media relay (the built-in relay or rtpengine): answers every SDP with itself,
    and records what it was asked (``calls``) and which calls it forgot (``deleted``).

    ``when`` says how it answers: ``"fired"`` (a Deferred that has fired), ``"now"`` (a plain value
    or a raised error, as the built-in relay does), or ``"later"`` (a Deferred the test fires, each
    in ``waiting`` in order, as rtpengine's come).
    """

    def __init__(self, when: str = "now") -> None:
        self.when = when
        self.calls: list[tuple[str, str, str | None]] = []
        self.waiting: list[Deferred[bytes]] = []
        self.deleted: list[str] = []
        self.refuse = False
        # When set, every offer and answer fails with it (an engine's own error, say).
        self.error: Exception | None = None
        # Every SDP body it was given, in order, as it came.
        self.bodies: list[bytes] = []

    def offer(
        self,
        callId: str,
        side: str,
        sdp: bytes,
        onTimeout: Callable[[], object],
        sipSource: str | None = None,
    ) -> bytes | Deferred[bytes]:
        return self._record("offer", side, sdp, sipSource)

    def answer(
        self, callId: str, side: str, sdp: bytes, sipSource: str | None = None
    ) -> bytes | Deferred[bytes]:
        return self._record("answer", side, sdp, sipSource)

    def asked(self) -> list[tuple[str, str]]:
        """What it was asked, in order: ("offer" or "answer", side)."""
        return [(kind, side) for kind, side, _ in self.calls]

    def _record(self, kind: str, side: str, body: bytes, sipSource: str | None) -> bytes | Deferred[bytes]:
        self.calls.append((kind, side, sipSource))
        self.bodies.append(body)
        if self.when == "later":
            d: Deferred[bytes] = Deferred()
            self.waiting.append(d)
            return d
        error = (
            self.error if self.error is not None else NotAcceptableError("refused") if self.refuse else None
        )
        if self.when == "now":
            if error is not None:
                raise error
            return body
        return fail(error) if error is not None else succeed(body)

    def delete(self, callId: str) -> Deferred[None] | None:
        self.deleted.append(callId)
        return succeed(None) if self.when == "fired" else None

    def activeSessions(self) -> int:
        return 0

    def close(self) -> None:
        pass


@implementer(IParsedMediaRelay)
class RecordingParsedRelay(RecordingRelay):
    """Stands in for the built-in relay, which takes and gives SDP parsed: records ``offerParsed``
    and ``answerParsed`` in ``calls`` (its bytes ``offer``/``answer`` record as `RecordingRelay`'s
    do, so a test sees they went unused) and each `SessionDescription` given in ``parsed``; answers
    at once with ``anchor(sdp)``, the SDP itself unless a test sets it, or raises as ``refuse`` and
    ``error`` say."""

    def __init__(self) -> None:
        super().__init__("now")
        self.parsed: list[SessionDescription] = []
        self.anchor: Callable[[SessionDescription], SessionDescription] = _same

    def offerParsed(
        self,
        callId: str,
        side: str,
        sdp: SessionDescription,
        onTimeout: Callable[[], object],
        sipSource: str | None = None,
    ) -> SessionDescription:
        return self._recordParsed("offerParsed", side, sdp, sipSource)

    def answerParsed(
        self, callId: str, side: str, sdp: SessionDescription, sipSource: str | None = None
    ) -> SessionDescription:
        return self._recordParsed("answerParsed", side, sdp, sipSource)

    def _recordParsed(
        self, kind: str, side: str, sdp: SessionDescription, sipSource: str | None
    ) -> SessionDescription:
        self.calls.append((kind, side, sipSource))
        self.parsed.append(sdp)
        if self.error is not None:
            raise self.error
        if self.refuse:
            raise NotAcceptableError("refused")
        return self.anchor(sdp)


def _same(sdp: SessionDescription) -> SessionDescription:
    """`RecordingParsedRelay`'s answer unless a test sets another: the SDP it was given."""
    return sdp


class RecordingCDRs:
    """Stands in for the CDR writer (sbc.calls.cdr.CDRWriter): keeps every record written."""

    def __init__(self) -> None:
        self.records: list[CDR] = []

    def write(self, cdr: CDR) -> None:
        self.records.append(cdr)


def answered(callId: str = "b2b-1", **changes: Any) -> CDR:
    """An answered trunk call to alice, a minute long, with C{changes}."""
    cdr = CDR(
        callId=callId,
        aLeg=Party(PartyKind.TRUNK, "demo"),
        bLeg=Party(PartyKind.USER, "alice@demo.acme.sbc.test"),
        fromUri="sip:+4940999@198.51.100.7",
        toUri="sip:+4930123456@127.0.0.1",
        start=1700000000.0,
        answer=1700000004.25,
        end=1700000064.25,
        status=200,
        disposition="answered",
        releasedBy="caller",
    )
    return replace(cdr, **changes)


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


@implementer(IListeningPort, IUDPTransport)
class FakeUDPPort:
    """A bound UDP socket that records what it sends and lets a test hand it datagrams.

    ``refuse`` set to an `OSError` makes every write raise it, as a full buffer or a lost route does.
    """

    def __init__(
        self,
        reactor: FakeUDPReactor,
        port: int,
        protocol: AbstractDatagramProtocol,
        interface: str,
        maxPacketSize: int,
    ) -> None:
        self.reactor = reactor
        self.port = port
        self.protocol = protocol
        self.interface = interface
        self.maxPacketSize = maxPacketSize
        self.written: list[tuple[bytes, Address]] = []
        self.open = True
        self.refuse: OSError | None = None
        # Paused (the relay's idle pairs): datagrams wait in ``queued``, as in a kernel buffer.
        self.reading = True
        self.queued: list[tuple[bytes, Address]] = []

    def write(self, packet: bytes, addr: Address | None = None) -> None:
        assert self.open, "write on a closed socket"
        assert addr is not None
        if self.refuse is not None:
            raise self.refuse
        self.written.append((packet, addr))

    def deliver(self, datagram: bytes, source: Address) -> None:
        """A datagram arrives from ``source`` (and waits in ``queued`` while reading is paused)."""
        assert self.open, "datagram on a closed socket"
        if not self.reading:
            self.queued.append((datagram, source))
            return
        self.protocol.datagramReceived(datagram, source)

    def pauseReading(self) -> None:
        self.reading = False

    def resumeReading(self) -> int:
        """Read again, throwing away what queued meanwhile, as `QuietDatagramPort` does."""
        dropped = len(self.queued)
        self.queued.clear()
        self.reading = True
        return dropped

    def startListening(self) -> None:
        """Already listening."""

    def stopListening(self) -> Deferred[None] | None:
        self.open = False
        del self.reactor.open[self.port]
        self.protocol.doStop()
        if self.reactor.closing is None:
            return None
        closed: Deferred[None] = Deferred()
        self.reactor.closing.append(closed)
        return closed

    def getHost(self) -> IPv4Address | IPv6Address:
        if ":" in self.interface:
            return IPv6Address("UDP", self.interface, self.port)
        return IPv4Address("UDP", self.interface, self.port)

    def connect(self, host: str, port: int) -> None:
        raise NotImplementedError

    def getBroadcastAllowed(self) -> bool:
        return False

    def setBroadcastAllowed(self, enabled: bool) -> None:
        raise NotImplementedError


@implementer(IReactorUDP)
class FakeUDPReactor:
    """`MemoryReactor` has no UDP: this one binds fake sockets, and refuses ports in ``busy``.

    ``ports`` keeps every socket ever bound, in order, and ``open`` those still bound, by port;
    ``binds`` each request as (port, interface, maxPacketSize). Port 0 binds the next free port
    from ``ephemeral`` up, as the OS picks one. With ``closing`` set to a list, ``stopListening``
    returns a Deferred kept there, as a real socket closes only on the next reactor turn.
    """

    ephemeral = 40000

    def __init__(self) -> None:
        self.ports: list[FakeUDPPort] = []
        self.open: dict[int, FakeUDPPort] = {}
        self.busy: set[int] = set()
        self.closing: list[Deferred[None]] | None = None
        self.binds: list[tuple[int, str, int]] = []

    def listenUDP(
        self,
        port: int,
        protocol: AbstractDatagramProtocol,
        interface: str = "",
        maxPacketSize: int = 8192,
    ) -> FakeUDPPort:
        if port in self.busy or port in self.open:
            raise CannotListenError(interface, port, OSError(errno.EADDRINUSE, "Address already in use"))
        self.binds.append((port, interface, maxPacketSize))
        if port == 0:
            port = self.ephemeral
            while port in self.busy or port in self.open:
                port += 1
        listening = self.open[port] = FakeUDPPort(self, port, protocol, interface, maxPacketSize)
        self.ports.append(listening)
        protocol.makeConnection(listening)
        return listening


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


class FakeResolver:
    """Stands in for a twisted.names IResolver: answers from a table of (query type, name) -> records."""

    def __init__(self) -> None:
        self.records: dict[tuple[int, str], list[dns.RRHeader]] = {}
        self.failures: dict[tuple[int, str], Exception] = {}
        self.queries: list[tuple[int, str]] = []
        # When a list, queries wait in it until `release` answers them (as a slow server would).
        self.held: list[tuple[defer.Deferred[Any], int, str]] | None = None

    def release(self) -> None:
        """Answer every held query from the table, as they were asked."""
        held, self.held = self.held or [], None
        for d, kind, name in held:
            self._answer(kind, name).chainDeferred(d)

    def add(self, kind: int, name: str, payload: Any, ttl: int = 300) -> None:
        """Serve ``payload`` for ``name``."""
        header = dns.RRHeader(name.encode(), kind, dns.IN, ttl, payload)
        self.records.setdefault((kind, name), []).append(header)

    def _answer(self, kind: int, name: str) -> defer.Deferred[Any]:
        self.queries.append((kind, name))
        if self.held is not None:
            d: defer.Deferred[Any] = defer.Deferred()
            self.held.append((d, kind, name))
            return d
        failure = self.failures.get((kind, name))
        if failure is not None:
            return defer.fail(failure)
        records = self.records.get((kind, name))
        if records is None:
            return defer.fail(DNSNameError(name))
        return defer.succeed((records, [], []))

    def lookupNamingAuthorityPointer(self, name: str) -> defer.Deferred[Any]:
        """NAPTR."""
        return self._answer(dns.NAPTR, name)

    def lookupService(self, name: str) -> defer.Deferred[Any]:
        """SRV."""
        return self._answer(dns.SRV, name)

    def lookupAddress(self, name: str) -> defer.Deferred[Any]:
        """A."""
        return self._answer(dns.A, name)

    def lookupIPV6Address(self, name: str) -> defer.Deferred[Any]:
        """AAAA."""
        return self._answer(dns.AAAA, name)


class NoUser:
    """Stands in for the transaction user: the health checker receives no requests."""

    def requestReceived(self, request: object, transaction: object) -> None:
        raise AssertionError("no request expected")

    def strayResponse(self, response: object, transport: object, source: Address) -> None:
        """Strays are ignored."""


def optionsAnswer(request: Request, status: int = 200) -> Response:
    """A peer's response to our out-of-dialog ``request`` (an OPTIONS ping), through the codec."""
    fields = [f for f in request.headers.fields if f.key in ("via", "from", "to", "call-id", "cseq")]
    fields.append(HeaderField("content-length", "0"))
    message = parseMessage(Response(status, headers=Headers(fields)).toBytes())
    assert isinstance(message, Response)
    return message


class ConfigTestCase(SynchronousTestCase):
    """Loads TOML written to a temporary directory, with a whitelist beside it."""

    def setUp(self) -> None:
        self.directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.directory)

    def load(self, toml: str, whitelist: str = "127.0.0.2/32\n") -> Config:
        return loadConfig(writeConfig(self.directory, toml, whitelist))

    def error(self, toml: str, whitelist: str = "127.0.0.2/32\n") -> ConfigError:
        with self.assertRaises(ConfigError) as caught:
            self.load(toml, whitelist)
        error: ConfigError = caught.exception
        return error


@implementer(IReactorFDSet)
class FakeFDReactor(Clock):
    """A `Clock` that keeps the readers registered with it and never reads them itself."""

    def __init__(self) -> None:
        super().__init__()
        self.readers: list[IReadDescriptor] = []
        self.added = 0
        self.removed = 0

    def addReader(self, reader: IReadDescriptor) -> None:
        assert reader not in self.readers, "added twice"
        self.added += 1
        self.readers.append(reader)

    def removeReader(self, reader: IReadDescriptor) -> None:
        if reader in self.readers:
            self.removed += 1
            self.readers.remove(reader)

    def addWriter(self, writer: IWriteDescriptor) -> None:
        raise NotImplementedError

    def removeWriter(self, writer: IWriteDescriptor) -> None:
        """Nothing writes here; Twisted's udp.Port removes itself as a writer when it closes."""

    def removeAll(self) -> list[IReadDescriptor | IWriteDescriptor]:
        readers: list[IReadDescriptor | IWriteDescriptor] = list(self.readers)
        self.readers.clear()
        return readers

    def getReaders(self) -> list[IReadDescriptor]:
        return list(self.readers)

    def getWriters(self) -> list[IWriteDescriptor]:
        return []


class Recorder(DatagramProtocol):
    """A datagram protocol that keeps what arrives, and whether it was started and stopped."""

    noisy = False

    def __init__(self) -> None:
        self.received: list[tuple[bytes, Address]] = []
        self.started = 0
        self.stopped = 0

    def startProtocol(self) -> None:
        self.started += 1

    def stopProtocol(self) -> None:
        self.stopped += 1

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.received.append((datagram, addr))


# Seconds a test waits at most for a loopback datagram to be readable.
READABLE_WAIT = 5.0


def waitReadable(skt: socket.socket | IReadDescriptor) -> None:
    """Block (bounded) until a loopback datagram has arrived at ``skt`` (a socket, a relay port, or
    a media poller's epoll set)."""
    readable, _, _ = select.select([skt], [], [], READABLE_WAIT)
    assert readable, "no datagram arrived"
