"""Quiet UDP sockets for the media relay: bound, read and closed without a log line.

Twisted's ``udp.Port`` logs ``... starting on PORT`` when it binds and ``(UDP Port PORT Closed)``
when it closes, unconditionally. The relay binds four sockets per call, so a busy SBC would write
eight lines per call that say nothing. Its reads and writes also do more than the relay needs: each
``write`` checks the address with several parsers, and a close waits a reactor turn.

`QuietDatagramPort` does its own socket I/O: a non-blocking socket registered as a reader, either
with the reactor, which has it drain every waiting datagram on each readiness event (up to
`READS_PER_EVENT`, so one flooded socket cannot starve the rest of the reactor), or with a
`sbc.media.poller.MediaPoller`, which reads all the relay's sockets in batches (`readOne`). It
sends with a bare ``sendto`` and closes at once. `QuietUDP` binds such ports through the
reactor's own ``listenUDP`` signature, so the relay, and the tests that hand it a fake reactor,
keep calling ``listenUDP``.

A port writes only to IP addresses (the relay never has anything else): a hostname would be
resolved by a blocking lookup.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import sys
from collections.abc import Callable

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.error import CannotListenError, MessageLengthError
from twisted.internet.interfaces import (
    IListeningPort,
    IReactorFDSet,
    IReactorUDP,
    IReadDescriptor,
    IUDPTransport,
)
from twisted.internet.protocol import AbstractDatagramProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from sbc.interfaces import Address
from sbc.media.poller import MediaPoller

# Enough to drain a socket that a 20 ms codec fills for a second, small enough that one socket
# under a flood yields to the others (and to timers) after a bounded amount of work.
READS_PER_EVENT = 64

# The most datagrams a socket's receive buffer is emptied of when it resumes reading: more than
# its default buffer (about 200 KiB) holds of small ones; what is left beyond is read, and refused
# by the new call's strict latching, as any stranger's packets are.
DISCARD_AT_RESUME = 1024

# The receive buffer of a paused socket, in bytes (Linux doubles it; one datagram past it is still
# queued): an idle socket is not read, and left at the default (about 200 KiB) a stranger spraying
# the range could pin that much kernel memory per idle socket, thousands of them (issue 19).
IDLE_RECEIVE_BUFFER = 4096

# Whether the OS doubles a requested SO_RCVBUF (for its bookkeeping) and reports the doubled size.
_DOUBLED = sys.platform.startswith("linux")

# Errors a receive may report for an earlier send (ICMP unreachable and the like): they say
# nothing about the datagrams still waiting, so reading goes on.
_SEND_ERRORS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.EHOSTUNREACH,
        errno.EHOSTDOWN,
        errno.ENETUNREACH,
        errno.ENETDOWN,
        errno.EMSGSIZE,
        errno.EPROTO,
    }
)


@implementer(IListeningPort, IUDPTransport, IReadDescriptor)
class QuietDatagramPort:
    """One bound UDP socket that hands each datagram to ``protocol`` and logs nothing.

    `startListening` binds and registers the socket; `stopListening` unregisters and closes it at
    once and returns None, so the port number is free again before it returns.
    """

    # Only a protocol that raises (a bug) is logged: that is no per-socket or per-packet noise.
    log = Logger()

    def __init__(
        self,
        reactor: IReactorFDSet | MediaPoller,
        port: int,
        protocol: AbstractDatagramProtocol,
        interface: str = "",
        maxPacketSize: int = 8192,
        readsPerEvent: int = READS_PER_EVENT,
    ) -> None:
        self.reactor = reactor
        self.port = port
        self.protocol = protocol
        self.interface = interface
        self.maxPacketSize = maxPacketSize
        self.readsPerEvent = readsPerEvent
        self.family = socket.AF_INET6 if ":" in interface else socket.AF_INET
        self.trim = self.family == socket.AF_INET6  # sources carry flow info and scope id
        self.socket: socket.socket | None = None
        self.listening = False
        self.reading = False  # registered as a reader, with the reactor or a poller
        # A protocol failure is logged once per socket and call (reset by `resumeReading`).
        self.failed = False
        # The receive buffer a call reads with, kept while the socket idles on a small one.
        self.receiveBuffer: int | None = None

    # -- IListeningPort

    def startListening(self) -> None:
        """Bind ``(interface, port)``; a socket the OS refuses raises `CannotListenError`."""
        try:
            skt = socket.socket(self.family, socket.SOCK_DGRAM)
        except OSError as e:  # out of descriptors, or no such family
            raise CannotListenError(self.interface, self.port, e) from e
        try:
            skt.setblocking(False)
            skt.bind((self.interface, self.port))
        except OSError as e:
            skt.close()
            raise CannotListenError(self.interface, self.port, e) from e
        self.socket = skt
        try:
            self.reactor.addReader(self)  # first, so that a refusal leaves nothing half started
        except (OSError, ValueError) as e:
            self.socket = None
            skt.close()
            raise CannotListenError(self.interface, self.port, e) from e
        self.listening = True
        self.reading = True
        self.protocol.makeConnection(self)

    def stopListening(self) -> None:
        """Stop reading, stop the protocol and close the socket, all before returning."""
        if not self.listening:
            return
        self.listening = False
        if self.reading:
            self.reading = False
            self.reactor.removeReader(self)  # while fileno() is still the registered descriptor
        try:
            self.protocol.doStop()
        finally:
            assert self.socket is not None
            self.socket.close()

    # -- idle (the relay keeps ended calls' sockets bound for later calls)

    def pauseReading(self) -> None:
        """Stop reading while the socket serves no call: a datagram sprayed at it costs nothing
        here (the kernel keeps or drops it), and nothing reads it until `resumeReading`."""
        if self.listening and self.reading:
            self.reading = False
            self.reactor.removeReader(self)
            assert self.socket is not None
            if self.receiveBuffer is None:
                with contextlib.suppress(OSError):  # unknown: the buffer is left as it is
                    self.receiveBuffer = self.socket.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            if self.receiveBuffer is not None:
                self._setReceiveBuffer(IDLE_RECEIVE_BUFFER)

    def resumeReading(self, discard: int = DISCARD_AT_RESUME) -> int:
        """Read again, for a new call: first throw away (up to ``discard``) datagrams that queued
        while paused, so none of them reaches the new call, and forget the old call's failure
        (a new failure is logged again). Returns how many were thrown away."""
        if not self.listening or self.reading:
            return 0
        assert self.socket is not None
        dropped = 0
        recv = self.socket.recv
        for _ in range(discard):
            try:
                recv(self.maxPacketSize)
            except BlockingIOError:
                break
            except OSError as e:
                if e.errno not in _SEND_ERRORS:
                    break
                continue
            dropped += 1
        self.failed = False
        if self.receiveBuffer is not None:
            # Linux doubles what it is given and reports the doubled size: give back half of it.
            self._setReceiveBuffer(self.receiveBuffer // 2 if _DOUBLED else self.receiveBuffer)
        self.reading = True
        self.reactor.addReader(self)
        return dropped

    def _setReceiveBuffer(self, size: int) -> None:
        assert self.socket is not None
        with contextlib.suppress(OSError):  # a size the OS refuses: the buffer stays as it was
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)

    def getHost(self) -> IPv4Address | IPv6Address:
        """The address the socket is bound to (its real port, when it was bound to port 0)."""
        assert self.socket is not None, "not bound"
        host, port = self.socket.getsockname()[:2]
        if self.family == socket.AF_INET6:
            return IPv6Address("UDP", host, port)
        return IPv4Address("UDP", host, port)

    # -- IUDPTransport

    def write(self, packet: bytes, addr: Address | None = None) -> None:
        """Send ``packet`` to ``addr``; a full buffer (EAGAIN, ENOBUFS) raises OSError: the packet is lost."""
        if addr is None:
            raise ValueError("a relay socket is not connected: write needs an address")
        assert self.socket is not None, "not bound"
        try:
            self.socket.sendto(packet, addr)
        except OSError as e:
            if e.errno == errno.EMSGSIZE:
                raise MessageLengthError("message too long") from e
            raise

    def sender(self) -> Callable[[bytes, Address], object]:
        """The bound socket's own ``sendto``, for the relay's per-packet path: one call less than
        `write`. A lost packet raises OSError (EMSGSIZE included); valid until the port stops."""
        assert self.socket is not None, "not bound"
        return self.socket.sendto

    def connect(self, host: str, port: int) -> None:
        """Refused: a relay socket stays unconnected, since it latches by source address."""
        raise RuntimeError("relay sockets stay unconnected: they latch by source address")

    def getBroadcastAllowed(self) -> bool:
        """Never: relay sockets do not broadcast."""
        return False

    def setBroadcastAllowed(self, enabled: bool) -> None:
        """Broadcast stays off: asking for it is refused, turning it off is a no-op."""
        if enabled:
            raise RuntimeError("relay sockets do not broadcast")

    # -- IReadDescriptor

    def fileno(self) -> int:
        """The socket's descriptor for the reactor to watch, or -1 once it is closed."""
        return -1 if self.socket is None else self.socket.fileno()

    def doRead(self) -> None:
        """Hand on every waiting datagram, up to ``readsPerEvent`` of them."""
        readOne = self.readOne
        for _ in range(self.readsPerEvent):
            if not readOne():
                return

    def readOne(self) -> bool:
        """Hand on one waiting datagram; whether reading should go on (False: none was waiting, or
        the socket failed). A `MediaPoller` calls this for each socket its epoll set says is ready."""
        skt = self.socket
        if skt is None:
            return False
        try:
            datagram, source = skt.recvfrom(self.maxPacketSize)
        except BlockingIOError:
            return False
        except OSError as e:
            # An earlier send's error (go on), or closed under us by the protocol, or an error no
            # read can mend (stop).
            return e.errno in _SEND_ERRORS
        if self.trim:
            source = source[:2]  # drop IPv6 flow info and scope id: (host, port) as elsewhere
        try:
            self.protocol.datagramReceived(datagram, source)
        except Exception:
            # A bug, not traffic: said once per socket and call (`resumeReading` resets the
            # flag), so a flood cannot turn it into a log flood.
            if not self.failed:
                self.failed = True
                self.log.failure("{protocol} failed on a datagram", protocol=self.protocol)
        return True

    def connectionLost(self, reason: Failure) -> None:
        """The reactor dropped us (at shutdown): close as `stopListening` would."""
        self.stopListening()

    def logPrefix(self) -> str:
        """Log under the protocol's class name, as Twisted's own ports do."""
        return self.protocol.__class__.__name__

    def __repr__(self) -> str:
        state = "open" if self.listening else "closed"
        return f"<QuietDatagramPort {self.interface}:{self.port} {state}>"


@implementer(IReactorUDP)
class QuietUDP:
    """The reactor's ``listenUDP``, but binding `QuietDatagramPort`s: for sockets opened per call."""

    def __init__(self, reactor: IReactorFDSet | MediaPoller, readsPerEvent: int = READS_PER_EVENT) -> None:
        self.reactor = reactor
        self.readsPerEvent = readsPerEvent

    def listenUDP(
        self,
        port: int,
        protocol: AbstractDatagramProtocol,
        interface: str = "",
        maxPacketSize: int = 8192,
    ) -> QuietDatagramPort:
        """Bind and start a `QuietDatagramPort` for ``protocol``."""
        listening = QuietDatagramPort(
            self.reactor, port, protocol, interface, maxPacketSize, self.readsPerEvent
        )
        listening.startListening()
        return listening


__all__ = ["DISCARD_AT_RESUME", "IDLE_RECEIVE_BUFFER", "READS_PER_EVENT", "QuietDatagramPort", "QuietUDP"]
