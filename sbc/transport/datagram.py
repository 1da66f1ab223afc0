"""UDP: one datagram is one message, handed to the controller once the gate admits its source.

Also the `Controller` protocol every transport speaks to (`sbc.server.SIPServer`): it is asked
first whether a source may talk to us at all, so that strangers cost a dict lookup and nothing
else: no parsing, no response, no log line.
"""

from __future__ import annotations

from typing import Protocol as TypingProtocol

from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import DatagramProtocol
from zope.interface import implementer

from sbc.interfaces import Address, ISIPTransport


class Controller(TypingProtocol):
    """What the protocols need from the layer above them."""

    def admit(self, host: str) -> bool:
        """Whether ``host`` may talk to us at all; asked before a byte of its message is parsed."""
        ...

    def connectionLimit(self, host: str) -> int:
        """How many TCP/TLS connections ``host`` may hold open at once."""
        ...

    def messageReceived(self, data: bytes, transport: ISIPTransport, source: Address) -> None:
        """Take one framed message from an admitted ``source``, still unparsed."""
        ...

    def streamError(self, transport: ISIPTransport, source: Address, reason: str) -> None:
        """Count and log a TCP/TLS stream that broke framing or its deadline; the stream closes itself."""
        ...

    def connectionClosed(self, transport: ISIPTransport) -> None:
        """Forget a TCP/TLS connection that is gone, and whatever was reachable only through it."""
        ...

    def transportStarted(self, transport: ISIPTransport) -> None:
        """Learn of a UDP socket that is up, so requests can leave by it."""
        ...


def _hostPort(address: IAddress) -> Address:
    return (getattr(address, "host", ""), getattr(address, "port", 0))


def _advertised(local: Address, advertise: str | None) -> Address:
    """Our address as peers must see it: the listener's ``advertise`` host, if any, on our port."""
    return local if advertise is None else (advertise, local[1])


@implementer(ISIPTransport)
class SIPDatagramProtocol(DatagramProtocol):
    """One UDP socket; every datagram is one message (RFC 3261 section 18.3)."""

    name = "UDP"
    reliable = False

    def __init__(self, controller: Controller, advertise: str | None = None) -> None:
        self.controller = controller
        self.sendFailures = 0
        self.advertise = advertise  # the listener's ``advertise``: our host in Via and Contact
        self._local: Address | None = None

    @property
    def localAddress(self) -> Address:
        """Asked for every Via and Contact we write: looked up once, the socket never moves."""
        address = self._local
        if address is None:
            assert self.transport is not None
            address = self._local = _advertised(_hostPort(self.transport.getHost()), self.advertise)
        return address

    def startProtocol(self) -> None:
        """Tell the controller the socket is bound, so outbound requests can use it."""
        self.controller.transportStarted(self)

    def datagramReceived(self, datagram: bytes, addr: Address) -> None:
        """Pass the datagram up as one message, unless the gate refuses its source."""
        controller = self.controller
        if not controller.admit(addr[0]):
            return
        controller.messageReceived(datagram, self, addr)

    def send(self, data: bytes, address: Address) -> None:
        """Send one message as one datagram; a failed send counts as lost, as on the wire."""
        # Straight to the socket: Port.write re-validates the address on every datagram. A UDP
        # send that fails (full buffer, ICMP unreachable) is a lost datagram, as on the wire.
        try:
            self.transport.socket.sendto(data, address)  # type: ignore[union-attr]
        except (OSError, AttributeError):
            self.sendFailures += 1
