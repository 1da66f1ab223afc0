"""UDP, TCP and TLS protocols: they frame bytes and hand each message to one controller.

The controller (`sbc.server.SIPServer`) is asked first whether a source may talk to us at all,
so that strangers cost a dict lookup and nothing else: no parsing, no response, no log line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol as TypingProtocol

from twisted.internet.interfaces import IAddress, IDelayedCall, IProtocol, IProtocolFactory, IReactorTime
from twisted.internet.protocol import DatagramProtocol, Factory, Protocol
from twisted.protocols.policies import TimeoutMixin
from zope.interface import implementer

from sbc.interfaces import Address, ISIPTransport
from sbc.sip.errors import SIPParseError
from sbc.sip.framing import PONG, StreamFramer


class Controller(TypingProtocol):
    """What the protocols need from the layer above them."""

    def admit(self, host: str) -> bool: ...

    def messageReceived(self, data: bytes, transport: ISIPTransport, source: Address) -> None: ...

    def streamError(self, transport: ISIPTransport, source: Address, reason: str) -> None: ...

    def connectionClosed(self, transport: ISIPTransport) -> None: ...

    def transportStarted(self, transport: ISIPTransport) -> None: ...


def _hostPort(address: IAddress) -> Address:
    return (getattr(address, "host", ""), getattr(address, "port", 0))


@implementer(ISIPTransport)
class SIPDatagramProtocol(DatagramProtocol):
    """One UDP socket; every datagram is one message (RFC 3261 section 18.3)."""

    name = "UDP"
    reliable = False

    def __init__(self, controller: Controller) -> None:
        self.controller = controller
        self.sendFailures = 0
        self._local: Address | None = None

    @property
    def localAddress(self) -> Address:
        """Asked for every Via and Contact we write: looked up once, the socket never moves."""
        address = self._local
        if address is None:
            assert self.transport is not None
            address = self._local = _hostPort(self.transport.getHost())
        return address

    def startProtocol(self) -> None:
        self.controller.transportStarted(self)

    def datagramReceived(self, datagram: bytes, addr: Address) -> None:
        controller = self.controller
        if not controller.admit(addr[0]):
            return
        controller.messageReceived(datagram, self, addr)

    def send(self, data: bytes, address: Address) -> None:
        # Straight to the socket: Port.write re-validates the address on every datagram. A UDP
        # send that fails (full buffer, ICMP unreachable) is a lost datagram, as on the wire.
        try:
            self.transport.socket.sendto(data, address)  # type: ignore[union-attr]
        except (OSError, AttributeError):
            self.sendFailures += 1


@implementer(ISIPTransport)
class SIPStreamProtocol(Protocol, TimeoutMixin):
    """One TCP or TLS connection: Content-Length framing, CRLF keepalives, an idle timeout."""

    reliable = True

    def __init__(
        self, controller: Controller, name: str, clock: IReactorTime, idleTimeout: float, maxSize: int
    ) -> None:
        self.controller = controller
        self.name = name
        self.clock = clock
        self.idleTimeout = idleTimeout
        self.framer = StreamFramer(maxSize)
        self.peer: Address = ("", 0)

    @property
    def localAddress(self) -> Address:
        assert self.transport is not None
        return _hostPort(self.transport.getHost())

    def callLater(self, period: float, func: Callable[[], object]) -> IDelayedCall:
        """TimeoutMixin's timer, on the injected clock rather than the global reactor."""
        return self.clock.callLater(period, func)

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.peer = _hostPort(self.transport.getPeer())
        self.setTimeout(self.idleTimeout)

    def dataReceived(self, data: bytes) -> None:
        self.resetTimeout()
        try:
            items = self.framer.feed(data)
        except SIPParseError as e:
            self.controller.streamError(self, self.peer, e.reason)
            assert self.transport is not None
            self.transport.loseConnection()
            return
        for item in items:
            if isinstance(item, bytes):
                self.controller.messageReceived(item, self, self.peer)
            else:
                assert self.transport is not None
                self.transport.write(PONG)

    def send(self, data: bytes, address: Address) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def timeoutConnection(self) -> None:
        assert self.transport is not None
        self.transport.loseConnection()

    def connectionLost(self, reason: object = None) -> None:
        self.setTimeout(None)
        self.controller.connectionClosed(self)


class SIPStreamFactory(Factory):
    """Builds stream protocols; a source outside every whitelist gets its connection closed."""

    noisy = False

    def __init__(
        self, controller: Controller, name: str, clock: IReactorTime, idleTimeout: float, maxSize: int
    ) -> None:
        self.controller = controller
        self.name = name
        self.clock = clock
        self.idleTimeout = idleTimeout
        self.maxSize = maxSize

    def buildProtocol(self, addr: IAddress | None) -> Protocol | None:
        if not self.controller.admit(getattr(addr, "host", "")):
            return None
        return SIPStreamProtocol(self.controller, self.name, self.clock, self.idleTimeout, self.maxSize)


class GateFactory(Factory):
    """Refuses strangers before a wrapped factory (such as TLS) spends anything on them."""

    noisy = False

    def __init__(self, controller: Controller, wrapped: IProtocolFactory) -> None:
        self.controller = controller
        self.wrapped = wrapped

    def doStart(self) -> None:
        self.wrapped.doStart()

    def doStop(self) -> None:
        self.wrapped.doStop()

    def buildProtocol(self, addr: IAddress | None) -> IProtocol | None:  # type: ignore[override]
        if not self.controller.admit(getattr(addr, "host", "")):
            return None
        return self.wrapped.buildProtocol(addr)  # type: ignore[arg-type]
