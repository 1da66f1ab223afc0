"""Turn the configured listeners into Twisted services bound to their sockets."""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable
from typing import Any

from twisted.application import internet, service
from twisted.internet.interfaces import IListeningPort, IReactorCore, IReactorTCP, IReactorTime, IReactorUDP
from twisted.protocols.tls import TLSMemoryBIOFactory

from sbc.config import Config, Listener, Transport
from sbc.transport import (
    Controller,
    GateFactory,
    SIPDatagramProtocol,
    SIPStreamFactory,
    StreamConnections,
)
from sbc.transport.tls import ServerContextFactory


class DatagramListener(service.Service):
    """A UDP socket whose receive size admits the configured maximum message size.

    Twisted reads 8 KiB by default; a larger datagram would arrive truncated and look broken, so
    we read one byte more than the limit, and an oversize datagram shows as such.
    """

    def __init__(self, reactor: IReactorUDP, listener: Listener, protocol: SIPDatagramProtocol, maxSize: int):
        self.reactor = reactor
        self.listener = listener
        self.protocol = protocol
        self.maxSize = maxSize
        self.port: IListeningPort | None = None
        self.receiveBuffer = 0

    def privilegedStartService(self) -> None:
        """Bind the socket while we may still use a privileged port, and grow its receive buffer."""
        service.Service.privilegedStartService(self)
        port: Any = self.reactor.listenUDP(
            self.listener.port, self.protocol, interface=self.listener.host, maxPacketSize=self.maxSize + 1
        )
        self.port = port
        self.receiveBuffer = growReceiveBuffer(port.socket, RECEIVE_BUFFER)

    def stopService(self) -> Any:
        """Close the socket; the Deferred fires once it is closed."""
        service.Service.stopService(self)
        if self.port is not None:
            port, self.port = self.port, None
            return port.stopListening()
        return None


# A flood from strangers is dropped at ~300k datagrams a second, but while the reactor is busy
# the kernel queues what arrives. The default queue (~200 KiB) overflows within milliseconds of a
# 100k/s flood and then drops trunk traffic too; a few MiB ride out such bursts.
RECEIVE_BUFFER = 8 * 1024 * 1024


def growReceiveBuffer(sock: socket.socket, size: int) -> int:
    """Ask for ``size`` bytes of receive buffer (past rmem_max when we may); return what we got."""
    for option in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):
        if option is None:
            continue
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, size)
            break
        except OSError:
            continue
    return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))


class SignalReload(service.Service):
    """Reload the configuration on SIGHUP, from the reactor thread."""

    def __init__(self, reactor: IReactorCore, reload: Callable[[], object]) -> None:
        self.reactor = reactor
        self.reload = reload
        self.previous: Any = None

    def startService(self) -> None:
        """Install the SIGHUP handler, keeping the previous one to put back."""
        service.Service.startService(self)
        self.previous = signal.signal(signal.SIGHUP, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        self.reactor.callFromThread(self.reload)  # type: ignore[attr-defined]

    def stopService(self) -> Any:
        """Put the previous SIGHUP handler back."""
        service.Service.stopService(self)
        if self.previous is not None:
            signal.signal(signal.SIGHUP, self.previous)
        return None


def listenerServices(
    reactor: Any,
    config: Config,
    controller: Controller,
    clock: IReactorTime,
    tlsContext: ServerContextFactory | None,
    connections: StreamConnections | None = None,
) -> list[service.Service]:
    """One service per listener; TCP and TLS ones share ``connections``, the open streams by source."""
    sip = config.sip
    services: list[service.Service] = []
    for listener in config.listeners:
        if listener.transport is Transport.UDP:
            services.append(
                DatagramListener(
                    reactor,
                    listener,
                    SIPDatagramProtocol(controller, listener.advertise),
                    sip.limits.maxMessageSize,
                )
            )
            continue
        name = listener.transport.upper()
        factory: Any = SIPStreamFactory(
            controller,
            name,
            clock,
            sip.idleTimeout,
            sip.limits.maxMessageSize,
            connections=connections,
            messageDeadline=sip.messageDeadline,
            advertise=listener.advertise,
        )
        if listener.transport is Transport.TLS:
            assert tlsContext is not None
            tls = TLSMemoryBIOFactory(tlsContext, False, factory, clock=clock)
            factory = GateFactory(controller, tls, connections)
        tcp: IReactorTCP = reactor
        services.append(internet.TCPServer(listener.port, factory, interface=listener.host, reactor=tcp))
    return services
