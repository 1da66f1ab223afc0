"""Outbound TCP and TLS: connections we open to trunk gateways, reused by destination.

A trunk gateway may say ``transport=tcp`` or ``transport=tls``. `OutboundStreams` keeps one
`OutboundStream` per (transport, address, name to verify): the `ISIPTransport` that legs,
transactions and pings send on. It connects when first asked to send, holds what is sent until
the connection is up (for TLS: until the handshake has verified the gateway's certificate against
the name it must prove, RFC 5922 section 4), and connects again when a later message finds it
closed. Answers and in-dialog requests that come back on the connection go through the same
framing and gate as inbound streams (`SIPStreamProtocol`).

A connection that fails (refused, no answer within ``connectTimeout``, a certificate that does
not prove the name) drops what it held and tells ``onFailure``, so the transactions waiting on
it end at once as a transport error (RFC 3261 section 8.1.3.1) and a call fails over to its next
gateway instead of waiting for Timer B. A connection that is closing (idle, or broken framing)
takes no new message: the next one opens a fresh connection. A stream the pool had let go (a leg
still holds it for its BYE) is taken back, or hands its message to the one that replaced it, so
there is one connection per destination. At shutdown what is written (the BYEs that end calls)
is flushed before the connections close, within ``STOP_GRACE`` seconds.

Our Via and Contact on such a connection name the listener of the same transport (its
``advertise`` host), as RFC 3261 section 18.1.1 asks: the peer may open a connection of its own
back to us for responses and in-dialog requests.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import (
    IAddress,
    IConnector,
    IDelayedCall,
    IHandshakeListener,
    IOpenSSLClientConnectionCreator,
    IReactorTime,
)
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.logger import Logger, LogLevel
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from zope.interface import implementer

from sbc.config.sip import Transport
from sbc.droplog import DropLog
from sbc.interfaces import Address, ISIPTransport
from sbc.transport.datagram import Controller
from sbc.transport.stream import SIPStreamProtocol
from sbc.transport.tls import peerProves

__all__ = ["OutboundStream", "OutboundStreams"]

# Messages one stream holds while it connects; more are dropped (their transactions time out).
MAX_PENDING = 64
# How long a connection (and its TLS handshake) may take before it counts as failed.
CONNECT_TIMEOUT = 5.0
# Seconds between keepalives on a connection kept for a registration (RFC 5626 section 4.4.1).
KEEPALIVE_INTERVAL = 120.0
# At shutdown: how long connections may take to deliver what was written to them.
STOP_GRACE = 2.0

_Key = tuple[Transport, Address, str]


class OutboundStreams:
    """Our TCP/TLS connections to gateways, one per destination, opened when first needed."""

    log = Logger()

    def __init__(
        self,
        reactor: object,
        clock: IReactorTime,
        controller: Controller,
        local: Mapping[Transport, Address],
        idleTimeout: float,
        maxSize: int,
        clientTLS: Callable[[str], IOpenSSLClientConnectionCreator] | None = None,
        onFailure: Callable[[ISIPTransport], None] | None = None,
        connectTimeout: float = CONNECT_TIMEOUT,
        *,
        messageDeadline: float | None = None,
        bindHosts: Mapping[Transport, str] | None = None,
    ) -> None:
        self.reactor = reactor  # an IReactorTCP
        self.clock = clock
        self.controller = controller
        # Our advertised address for each stream transport we listen on: what Via and Contact name.
        self.local = dict(local)
        # The listener's own host per transport (when it names one address): connections leave
        # from it, so the peer sees the address it whitelisted and our Via names.
        self.bindHosts = dict(bindHosts or {})
        self.idleTimeout = idleTimeout
        self.maxSize = maxSize
        self.messageDeadline = messageDeadline
        self.clientTLS = clientTLS
        self.onFailure = onFailure
        self.connectTimeout = connectTimeout
        self.sourceLog = DropLog(clock)  # one failure line per gateway a minute
        self._streams: dict[_Key, OutboundStream] = {}
        self._open: set[_OutboundProtocol] = set()  # every connection up or under way
        self.stopped = False
        self._stopping: Deferred[None] | None = None
        self._stopTimer: IDelayedCall | None = None
        self.failures = 0  # connections that failed before they could carry a message

    @property
    def transports(self) -> frozenset[Transport]:
        """The stream transports we can open: those we listen on (TLS also needs a client context)."""
        found = {t for t in self.local if t is Transport.TCP or (t is Transport.TLS and self.clientTLS)}
        return frozenset(found)

    def stream(
        self, transport: Transport, address: Address, serverName: str, trunk: str | None = None
    ) -> OutboundStream | None:
        """The stream to ``address`` (reused while we hold it); None for a transport we cannot open.

        ``serverName`` is what a TLS gateway's certificate must prove; TCP ignores it. ``trunk`` is
        whose gateway it is: answers on the connection count as that trunk's proven TLS.
        """
        if transport not in self.transports:
            return None
        key = (transport, address, serverName if transport is Transport.TLS else "")
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = OutboundStream(self, transport, address, key[2])
        if trunk is not None:
            stream.trunks.add(trunk)
        return stream

    def __len__(self) -> int:
        return len(self._streams)

    def forget(self, stream: OutboundStream) -> None:
        """Stop holding ``stream`` (closed and idle): the next call to its address makes a new one."""
        if self._streams.get(stream.key) is stream:
            del self._streams[stream.key]

    def owner(self, stream: OutboundStream) -> OutboundStream:
        """The stream that carries ``stream``'s destination now: itself (taken back if the pool had
        let it go), or the one that replaced it."""
        current = self._streams.setdefault(stream.key, stream)
        if current is not stream:
            current.trunks |= stream.trunks
        return current

    def stop(self) -> Deferred[None]:
        """Open no more connections; let those up flush what was written to them (BYEs) and close,
        and those under way deliver what waits, within ``STOP_GRACE``; then abort the rest."""
        self.stopped = True
        for stream in list(self._streams.values()):
            stream.drain()
        self._streams.clear()
        if not self._open:
            return succeed(None)
        self._stopping = Deferred()
        self._stopTimer = self.clock.callLater(STOP_GRACE, self._abortAll)
        return self._stopping

    def _abortAll(self) -> None:
        """The grace is over: what is still open closes now."""
        self._stopTimer = None
        for protocol in list(self._open):
            protocol.abort()
        self._open.clear()
        self._stopped()

    def _gone(self, protocol: _OutboundProtocol) -> None:
        """A connection ended (or never came): the last one lets a shutdown finish."""
        self._open.discard(protocol)
        if not self._open and self._stopping is not None:
            if self._stopTimer is not None:
                self._stopTimer.cancel()
                self._stopTimer = None
            self._stopped()

    def _stopped(self) -> None:
        stopping, self._stopping = self._stopping, None
        if stopping is not None:
            stopping.callback(None)

    def _failed(self, stream: OutboundStream, why: str) -> None:
        self.failures += 1
        self.sourceLog.emit(
            self.log,
            LogLevel.warn,
            stream.address[0],
            "{transport} connection to {host}:{port} failed: {why}",
            transport=stream.name,
            host=stream.address[0],
            port=stream.address[1],
            why=why,
        )
        self.forget(stream)
        if self.onFailure is not None:
            self.onFailure(stream)


@implementer(ISIPTransport)
class OutboundStream:
    """One destination's connection as the layers above see it: send, and it gets there if it can."""

    reliable = True

    def __init__(
        self, pool: OutboundStreams, transport: Transport, address: Address, serverName: str
    ) -> None:
        self.pool = pool
        self.transport = transport
        self.address = address
        self.serverName = serverName
        self.key: _Key = (transport, address, serverName)
        self.name = str(transport).upper()
        self.trunks: set[str] = set()  # whose gateway this is (for the TLS-only check of answers)
        self.protocol: _OutboundProtocol | None = None
        self.ready = False  # connected (and, for TLS, the certificate verified)
        self.pending: list[bytes] = []
        self._timeout: IDelayedCall | None = None
        self._connector: IConnector | None = None

    @property
    def localAddress(self) -> Address:
        """The listener of our transport, as peers must see it."""
        return self.pool.local[self.transport]

    def send(self, data: bytes, address: Address) -> None:
        """Write ``data`` now if connected; else hold it (bounded) and connect."""
        pool = self.pool
        if not pool.stopped:
            owner = pool.owner(self)
            if owner is not self:
                owner.send(data, address)
                return
        protocol = self.protocol
        if protocol is not None and self.ready and protocol.closing:
            self._reset()  # closing (idle, broken framing): it takes nothing new; a fresh one will
            protocol = None
        if protocol is not None and self.ready:
            protocol.send(data, self.address)
            return
        if len(self.pending) < MAX_PENDING:
            self.pending.append(data)
        if protocol is None and not pool.stopped:
            self._connect()

    def drain(self) -> None:
        """Shutdown: a ready connection closes once what was written is sent; one under way with
        something to deliver goes on (the pool aborts it after its grace); anything else closes."""
        protocol = self.protocol
        if protocol is None:
            return
        if self.ready:
            protocol.close()
        elif not self.pending:
            self.close()

    @property
    def keepaliveInterval(self) -> float:
        """Seconds between keepalives that hold this connection open: RFC 5626 section 4.4.1's
        120 s for connection-oriented flows, or half our idle timeout if that is shorter."""
        return min(KEEPALIVE_INTERVAL, self.pool.idleTimeout / 2)

    def keepalive(self) -> None:
        """Send a double-CRLF keepalive (RFC 5626 section 4.4.1) if connected, and restart our
        idle timer: a connection a registration keeps (the registrar's calls come back on it)
        stays open between refreshes. Nothing when not connected (the next REGISTER connects)."""
        protocol = self.protocol
        if self.ready and protocol is not None and not protocol.closing:
            protocol.send(b"\r\n\r\n", self.address)
            protocol.resetTimeout()

    def close(self) -> None:
        """Close the connection now, dropping what is held."""
        self.pending.clear()
        protocol, connector = self.protocol, self._connector
        self._reset()
        if protocol is None:
            return
        if protocol.transport is not None:
            protocol.abort()
        elif connector is not None and getattr(connector, "state", "") == "connecting":
            connector.stopConnecting()

    def _connect(self) -> None:
        pool = self.pool
        protocol = _OutboundProtocol(
            self,
            pool.controller,
            self.name,
            pool.clock,
            pool.idleTimeout,
            pool.maxSize,
            messageDeadline=pool.messageDeadline,
        )
        self.protocol = protocol
        pool._open.add(protocol)
        factory: ClientFactory = _OutboundFactory(self, protocol)
        wrapped: object = factory
        if self.transport is Transport.TLS:
            assert pool.clientTLS is not None
            wrapped = TLSMemoryBIOFactory(pool.clientTLS(self.serverName), True, factory, clock=pool.clock)
        self._timeout = pool.clock.callLater(pool.connectTimeout, self._tooSlow, protocol)
        bind = pool.bindHosts.get(self.transport)
        self._connector = pool.reactor.connectTCP(  # type: ignore[attr-defined]
            self.address[0],
            self.address[1],
            wrapped,
            timeout=pool.connectTimeout,
            bindAddress=None if bind is None else (bind, 0),
        )

    def _tooSlow(self, protocol: _OutboundProtocol) -> None:
        """No connection (or no TLS handshake) within the timeout: give up on this attempt."""
        self._timeout = None
        if protocol.transport is not None:
            protocol.abort()  # connectionLost follows and reports the failure
            return
        connector, self._connector = self._connector, None
        if connector is not None and getattr(connector, "state", "") == "connecting":
            connector.stopConnecting()  # clientConnectionFailed follows and reports it
        else:
            self._failed(protocol, "no connection within the timeout")

    def _reset(self) -> None:
        if self._timeout is not None:
            self._timeout.cancel()
            self._timeout = None
        self._connector = None
        self.protocol = None
        self.ready = False

    def _ready(self, protocol: _OutboundProtocol) -> None:
        """Connected (and verified): send what waited."""
        if protocol is not self.protocol:
            protocol.abort()  # an attempt given up on that connected after all
            return
        if self._timeout is not None:
            self._timeout.cancel()
            self._timeout = None
        self.ready = True
        pending, self.pending = self.pending, []
        for data in pending:
            protocol.send(data, self.address)
        if self.pool.stopped:
            protocol.close()  # shutdown: what waited is on its way; nothing more comes

    def _lost(self, protocol: _OutboundProtocol, why: str) -> None:
        """The connection is gone: a failure if it never became ready, else just closed."""
        if protocol is not self.protocol:
            return
        if not self.ready:
            self._failed(protocol, why)
            return
        self._reset()  # nothing waits on a ready connection: the next message opens a new one
        self.pool.forget(self)

    def _failed(self, protocol: _OutboundProtocol, why: str) -> None:
        """This attempt failed: drop what waited and report it, once."""
        if protocol is not self.protocol:
            return
        self._reset()
        self.pending.clear()
        self.pool._failed(self, why)


@implementer(IHandshakeListener)  # TLSMemoryBIOProtocol tells a wrapped protocol of the handshake
class _OutboundProtocol(SIPStreamProtocol):
    """An inbound stream's framing and gate, on a connection we opened; reports to its stream."""

    def __init__(
        self,
        owner: OutboundStream,
        controller: Controller,
        name: str,
        clock: IReactorTime,
        idleTimeout: float,
        maxSize: int,
        messageDeadline: float | None = None,
    ) -> None:
        super().__init__(controller, name, clock, idleTimeout, maxSize, messageDeadline=messageDeadline)
        self.owner = owner
        self.verified = False  # the TLS handshake proved the name we asked of the peer

    @property
    def localAddress(self) -> Address:
        """Our listener's address, as in the requests the stream sends."""
        return self.owner.localAddress

    def proves(self, names: tuple[str, ...]) -> bool:
        """Whether the gateway proved one of ``names``: the name we verified at the handshake, or
        one its certificate holds besides (TCP proves nothing)."""
        if not self.verified:
            return False
        return self.owner.serverName in names or peerProves(self.transport, names)

    def openedFor(self, trunk: str) -> bool:
        """Whether we opened this TLS connection to a gateway of ``trunk`` and it proved the name
        the trunk's config gave it (its host name, which need not be among ``tls_identities``)."""
        return self.verified and trunk in self.owner.trunks

    def send(self, data: bytes, address: Address) -> None:
        """Write one message; what we send counts as activity too, so the idle timer restarts."""
        self.resetTimeout()
        super().send(data, address)

    def connectionMade(self) -> None:
        """TCP is ready now; TLS once its handshake has verified the peer (`handshakeCompleted`)."""
        super().connectionMade()
        if self.owner.transport is Transport.TCP:
            self.owner._ready(self)

    def handshakeCompleted(self) -> None:
        """The gateway's certificate proved its name: what waited may go."""
        self.verified = True
        self.owner._ready(self)

    def connectionLost(self, reason: object = None) -> None:
        """Tell the stream (a failure if it never got ready), then forget the flow as inbound ones do."""
        why = reason.getErrorMessage() if isinstance(reason, Failure) else "connection closed"
        super().connectionLost(reason)
        self.owner._lost(self, why)
        self.owner.pool._gone(self)


class _OutboundFactory(ClientFactory):
    """Hands the one protocol of a connection attempt over; reports a connection that never came."""

    noisy = False

    def __init__(self, owner: OutboundStream, protocol: _OutboundProtocol) -> None:
        self.owner = owner
        self.protocol_ = protocol

    def buildProtocol(self, addr: IAddress | None) -> Protocol:
        """The protocol made for this attempt."""
        return self.protocol_

    def clientConnectionFailed(self, connector: object, reason: Failure) -> None:
        """Refused, unreachable or timed out before TCP connected."""
        self.owner._failed(self.protocol_, reason.getErrorMessage())
        self.owner.pool._gone(self.protocol_)
