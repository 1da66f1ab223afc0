"""TCP and TLS: Content-Length framing, per-source connection limits, and the gate on every message.

The gate is asked for every message on a stream, not only when a connection opens. Open streams
are kept by source in `StreamConnections`, which limits how many one source holds and closes a
source's connections when a ban or a reload refuses it (the layers above pass `closeWhere` on
as a callback; they never hold the connections).
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.interfaces import IAddress, IDelayedCall, IProtocol, IProtocolFactory, IReactorTime
from twisted.internet.protocol import Factory, Protocol
from twisted.protocols.policies import TimeoutMixin
from zope.interface import implementer

from sbc.interfaces import Address, ISIPTransport
from sbc.sip.errors import SIPParseError
from sbc.sip.framing import PONG, StreamFramer
from sbc.transport.datagram import Controller, _advertised, _hostPort
from sbc.transport.tls import peerProves


class StreamConnections:
    """The open TCP and TLS connections by source: counted against a limit, closed on demand.

    A source is what ``sourceKey`` makes of a host: bans count an IPv6 source by its prefix (one
    device commonly owns a whole /64), so the connection limit must too, or one device could open
    a limit's worth of connections from each of its addresses. The layer above passes its key
    function in (`sbc.access.Bans.key`); by default a source is its host. Each connection keeps
    the key it was counted under, so a reload that changes the key function cannot strand one;
    `closeWhere` (called on every reload) regroups the survivors under the current key.

    It holds only open connections, each source at most its limit, so it is as bounded as the
    sockets themselves. Bans and reloads reach open connections through `closeWhere`.
    """

    def __init__(self, sourceKey: Callable[[str], str] | None = None) -> None:
        self.sourceKey: Callable[[str], str] = sourceKey if sourceKey is not None else _sameHost
        self._bySource: dict[str, dict[SIPStreamProtocol, None]] = {}
        # Each held connection -> (its host, the source key it is counted under).
        self._held: dict[SIPStreamProtocol, tuple[str, str]] = {}
        self.refused = 0  # connections closed at once for passing their source's limit

    def __len__(self) -> int:
        return len(self._held)

    def count(self, host: str) -> int:
        """Open connections of the source ``host`` belongs to (its IPv6 prefix, say)."""
        held = self._bySource.get(self.sourceKey(host))
        return 0 if held is None else len(held)

    def add(self, protocol: SIPStreamProtocol, host: str, limit: int) -> bool:
        """Hold ``protocol`` under ``host``'s source; False (and nothing held) when it is at ``limit``."""
        key = self.sourceKey(host)
        held = self._bySource.setdefault(key, {})
        if len(held) >= limit:
            if not held:
                del self._bySource[key]
            self.refused += 1
            return False
        held[protocol] = None
        self._held[protocol] = (host, key)
        return True

    def remove(self, protocol: SIPStreamProtocol, host: str) -> None:
        """Stop holding a closed connection, so its source may open another."""
        entry = self._held.pop(protocol, None)
        if entry is None:
            return
        key = entry[1]
        held = self._bySource.get(key)
        if held is not None:
            held.pop(protocol, None)
            if not held:
                del self._bySource[key]

    def closeWhere(self, refused: Callable[[str], bool]) -> int:
        """Abort every connection whose host ``refused`` names; returns how many.

        The survivors are then regrouped under the current ``sourceKey``, which a reload may
        have changed (a new IPv6 prefix for bans).
        """
        answers: dict[str, bool] = {}
        doomed: list[SIPStreamProtocol] = []
        for protocol, (host, _) in self._held.items():
            answer = answers.get(host)
            if answer is None:
                answer = answers[host] = refused(host)
            if answer:
                doomed.append(protocol)
        for protocol in doomed:
            protocol.abort()
        self._regroup()
        return len(doomed)

    def _regroup(self) -> None:
        """Count each held connection under its host's current source key."""
        sourceKey = self.sourceKey
        keys: dict[str, str] = {}
        for protocol, (host, key) in list(self._held.items()):
            current = keys.get(host)
            if current is None:
                current = keys[host] = sourceKey(host)
            if current == key:
                continue
            self.remove(protocol, host)
            self._bySource.setdefault(current, {})[protocol] = None
            self._held[protocol] = (host, current)


# Seconds a closing connection may take to finish (to flush, to exchange TLS close_notify) before
# it is aborted: a peer that stops reading must not hold the connection, and its slot, for ever.
CLOSE_GRACE = 5.0


def _sameHost(host: str) -> str:
    return host


@implementer(ISIPTransport)
class SIPStreamProtocol(Protocol, TimeoutMixin):
    """One TCP or TLS connection: Content-Length framing, CRLF keepalives, an idle timeout.

    Each message passes the controller's gate before it is handed on. A message must be whole
    within ``messageDeadline`` seconds of its first byte: the idle timer alone, reset by any byte,
    would let a slow sender hold a buffer for ever.
    """

    reliable = True

    def __init__(
        self,
        controller: Controller,
        name: str,
        clock: IReactorTime,
        idleTimeout: float,
        maxSize: int,
        *,
        connections: StreamConnections | None = None,
        connectionLimit: int = 0,
        messageDeadline: float | None = None,
        advertise: str | None = None,
    ) -> None:
        self.controller = controller
        self.name = name
        self.clock = clock
        self.idleTimeout = idleTimeout
        self.advertise = advertise
        self.framer = StreamFramer(maxSize)
        self.peer: Address = ("", 0)
        self.connections = connections
        self.connectionLimit = connectionLimit
        self.messageDeadline = messageDeadline
        self.closing = False
        self._aborted = False
        self._held = False
        self._deadline: IDelayedCall | None = None
        self._closeTimer: IDelayedCall | None = None  # cuts off a close the peer never completes
        # Trunk identities asked about -> whether the client certificate proves one (it never changes).
        self._proven: dict[tuple[str, ...], bool] = {}

    @property
    def localAddress(self) -> Address:
        """Our address as the peer must see it in Via and Contact: the ``advertise`` host, if any."""
        assert self.transport is not None
        return _advertised(_hostPort(self.transport.getHost()), self.advertise)

    def proves(self, names: tuple[str, ...]) -> bool:
        """Whether this connection's verified TLS client certificate proves one of ``names`` (TCP: never)."""
        answer = self._proven.get(names)
        if answer is None:
            answer = self._proven[names] = peerProves(self.transport, names)
        return answer

    def callLater(self, period: float, func: Callable[[], object]) -> IDelayedCall:
        """TimeoutMixin's timer, on the injected clock rather than the global reactor."""
        return self.clock.callLater(period, func)

    def connectionMade(self) -> None:
        """Count the connection against its source's limit (aborting it past that); start the idle timer."""
        assert self.transport is not None
        self.peer = _hostPort(self.transport.getPeer())
        connections = self.connections
        if connections is not None:
            if not connections.add(self, self.peer[0], self.connectionLimit):
                self.abort()
                return
            self._held = True
        self.setTimeout(self.idleTimeout)

    def dataReceived(self, data: bytes) -> None:
        """Frame the bytes into messages, pass each one the gate admits, and answer CRLF keepalives."""
        if self.closing:
            return
        self.resetTimeout()
        try:
            items = self.framer.feed(data)
        except SIPParseError as e:
            self.controller.streamError(self, self.peer, e.reason)
            self.close()
            return
        controller = self.controller
        for item in items:
            if isinstance(item, bytes):
                # Per message: a ban or a reload may have refused the source since the last one.
                if not controller.admit(self.peer[0]):
                    self.abort()
                    return
                controller.messageReceived(item, self, self.peer)
            else:
                assert self.transport is not None
                self.transport.write(PONG)
        if not self.closing and self.messageDeadline is not None:
            self._watchDeadline(data, restart=bool(items))

    def _watchDeadline(self, data: bytes, restart: bool) -> None:
        """Start the deadline at a message's first byte; stop it when nothing is left pending."""
        pending = self.framer.buffered
        # Up to three bytes of CR/LF may be a keepalive on its way, not a message.
        started = pending > 3 or (pending > 0 and data[-pending:].strip(b"\r\n") != b"")
        deadline = self._deadline
        if deadline is not None and (restart or not started):
            deadline.cancel()
            self._deadline = deadline = None
        if started and deadline is None:
            assert self.messageDeadline is not None
            self._deadline = self.clock.callLater(self.messageDeadline, self._tooSlow)

    def _tooSlow(self) -> None:
        self._deadline = None
        self.controller.streamError(self, self.peer, "message not complete within its deadline")
        self.abort()

    def send(self, data: bytes, address: Address) -> None:
        """Write one message to the peer (``address`` is it already); a closing connection sends nothing."""
        if self.transport is not None and not self.closing:
            self.transport.write(data)

    def timeoutConnection(self) -> None:
        """Close a connection that has been idle for ``idleTimeout`` seconds."""
        self.close()

    def close(self) -> None:
        """Close after what is written has gone (a final answer, a TLS close_notify); a peer that
        never lets it finish (TLS waits for its close_notify) is cut off after ``CLOSE_GRACE``."""
        self.closing = True
        assert self.transport is not None
        if self._closeTimer is None:
            self._closeTimer = self.clock.callLater(CLOSE_GRACE, self.abort)  # before: loseConnection
        self.transport.loseConnection()  # may end the connection at once (connectionLost stops it)

    def abort(self) -> None:
        """Close at once, dropping whatever is unsent: for sources we no longer talk to."""
        transport = self.transport
        if self._aborted or transport is None:
            return
        self.closing = self._aborted = True
        abortConnection = getattr(transport, "abortConnection", None)
        if abortConnection is not None:
            abortConnection()
        else:
            transport.loseConnection()

    def connectionLost(self, reason: object = None) -> None:
        """Stop the timers, release the source's slot, and tell the controller the flow is gone."""
        self.closing = True
        self.setTimeout(None)
        if self._closeTimer is not None:
            if self._closeTimer.active():
                self._closeTimer.cancel()
            self._closeTimer = None
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if self._held and self.connections is not None:
            self._held = False
            self.connections.remove(self, self.peer[0])
        self.controller.connectionClosed(self)


def _refuse(controller: Controller, connections: StreamConnections | None, host: str) -> bool:
    """Whether a new connection from ``host`` is closed at once: a stranger, banned, or at its limit."""
    if not controller.admit(host):
        return True
    return connections is not None and connections.count(host) >= controller.connectionLimit(host)


class SIPStreamFactory(Factory):
    """Builds stream protocols; a stranger, or a source at its connection limit, is closed at once."""

    noisy = False

    def __init__(
        self,
        controller: Controller,
        name: str,
        clock: IReactorTime,
        idleTimeout: float,
        maxSize: int,
        *,
        connections: StreamConnections | None = None,
        messageDeadline: float | None = None,
        advertise: str | None = None,
    ) -> None:
        self.controller = controller
        self.name = name
        self.clock = clock
        self.idleTimeout = idleTimeout
        self.maxSize = maxSize
        self.connections = connections
        self.messageDeadline = messageDeadline
        self.advertise = advertise

    def buildProtocol(self, addr: IAddress | None) -> Protocol | None:
        """A protocol for an admitted source under its limit; None, which closes the connection, otherwise."""
        host = getattr(addr, "host", "")
        if _refuse(self.controller, self.connections, host):
            return None
        return SIPStreamProtocol(
            self.controller,
            self.name,
            self.clock,
            self.idleTimeout,
            self.maxSize,
            connections=self.connections,
            connectionLimit=self.controller.connectionLimit(host),
            messageDeadline=self.messageDeadline,
            advertise=self.advertise,
        )


class GateFactory(Factory):
    """Refuses strangers (and sources at their limit) before a wrapped factory such as TLS spends anything."""

    noisy = False

    def __init__(
        self, controller: Controller, wrapped: IProtocolFactory, connections: StreamConnections | None = None
    ) -> None:
        self.controller = controller
        self.wrapped = wrapped
        self.connections = connections

    def doStart(self) -> None:
        """Start the wrapped factory with this one."""
        self.wrapped.doStart()

    def doStop(self) -> None:
        """Stop the wrapped factory with this one."""
        self.wrapped.doStop()

    def buildProtocol(self, addr: IAddress | None) -> IProtocol | None:  # type: ignore[override]
        """The wrapped protocol for an admitted source under its limit; None closes the connection."""
        if _refuse(self.controller, self.connections, getattr(addr, "host", "")):
            return None
        return self.wrapped.buildProtocol(addr)  # type: ignore[arg-type]
