"""Binding the built-in relay's RTP/RTCP port pairs, and keeping them bound while idle.

`PairBinder` binds a pair on the relay's address and steps over a port another program holds. The
relay keeps the pairs of ended calls bound, idle, for the next calls that draw their ports
(`sbc.media.relay`); `PairBinder.warm` binds such idle pairs before any call, so that a freshly
started relay reuses sockets from its first call on rather than binding two per pair (issue 19).
Idle pairs hold file descriptors: `sparePairs` caps them at half of the process's open-file limit,
and a bind short of descriptors closes idle pairs first, so that active calls come first.
"""

from __future__ import annotations

import errno
import resource
from collections.abc import Callable, Iterable

from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IReactorUDP
from twisted.logger import Logger

from sbc.media.ports import PortPoolExhaustedError
from sbc.media.streams import PortPair, RelaySocket

# Twisted reads this much per datagram. RTP fits an Ethernet frame; 8 KiB leaves room for jumbo
# frames and loopback without making every read reserve 64 KiB.
MAX_PACKET_SIZE = 8192

# A bind that fails with these is short of file descriptors, not of the port.
_OUT_OF_DESCRIPTORS = frozenset({errno.EMFILE, errno.ENFILE})


class PairBinder:
    """Binds the relay's port pairs on ``address``. Short of file descriptors (EMFILE, ENFILE),
    it closes pairs of ``idle`` (the relay's idle pairs, by RTP port) until the bind succeeds, so
    that active calls come first; with none left it says so rather than blame another program."""

    log = Logger()

    def __init__(
        self,
        reactor: IReactorUDP,
        address: str,
        seconds: Callable[[], float],
        relatchAfter: float,
        idle: dict[int, PortPair],
    ) -> None:
        self.reactor = reactor
        self.address = address
        self.seconds = seconds
        self.relatchAfter = relatchAfter
        self.idle = idle
        self.shortages = 0  # idle pairs closed for want of descriptors

    def bind(self, port: int) -> PortPair | None:
        """Bind the pair at ``port``, or None if another program holds either port."""
        seconds, after = self.seconds, self.relatchAfter
        rtp, rtcp = RelaySocket(seconds, after), RelaySocket(seconds, after)
        rtpPort = self._listen(port, rtp)
        if rtpPort is None:
            return None
        try:
            rtcpPort = self._listen(port + 1, rtcp)
        except BaseException:
            rtpPort.stopListening()
            raise
        if rtcpPort is None:
            rtpPort.stopListening()
            return None
        return PortPair(port, rtp, rtcp, rtpPort, rtcpPort)

    def warm(self, ports: Iterable[int], spare: int) -> int:
        """Bind an idle pair (paused) for each of ``ports`` until ``idle`` holds ``spare``; a port
        another program holds is stepped over. It ends early at a shortage of descriptors, which
        would only make idle pairs displace each other. Returns how many it bound."""
        before, shortages = len(self.idle), self.shortages
        for port in ports:
            if len(self.idle) >= spare:
                break
            if port in self.idle:
                continue
            try:
                pair = self.bind(port)
            except PortPoolExhaustedError:  # out of descriptors, nothing idle to give back
                break
            if pair is None:
                continue
            pair.pause()
            self.idle[port] = pair
            if self.shortages != shortages:
                break
        if spare > 0 and not self.idle:
            self.log.warn(
                "no media port pair could be bound on {address} at start: is the media address "
                "this host's, and the port range free?",
                address=self.address,
            )
        return len(self.idle) - before

    def _listen(self, port: int, protocol: RelaySocket) -> IListeningPort | None:
        """Bind one socket: None if the port is taken; short of descriptors, close idle pairs
        until it binds, and when none is left raise `PortPoolExhaustedError` saying so."""
        while True:
            try:
                return self.reactor.listenUDP(port, protocol, self.address, MAX_PACKET_SIZE)
            except CannotListenError as e:
                code = getattr(e.socketError, "errno", None)
                if code not in _OUT_OF_DESCRIPTORS:
                    return None
                if not self.idle:
                    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
                    raise PortPoolExhaustedError(
                        f"out of file descriptors ({errno.errorcode.get(code or 0, code)}, open-file "
                        f"limit {limit}) binding media port {port}: raise the limit (LimitNOFILE)"
                    ) from None
                _, spare = self.idle.popitem()  # its port is in the pool already
                unbind(spare)
                self.shortages += 1
                if self.shortages == 1:
                    self.log.warn(
                        "out of file descriptors binding media ports: closing idle port pairs "
                        "for active calls (open-file limit {limit}; raise LimitNOFILE)",
                        limit=resource.getrlimit(resource.RLIMIT_NOFILE)[0],
                    )


def unbind(pair: PortPair) -> list[object]:
    """Close both sockets of ``pair``: what each `stopListening` returned (None, or a Deferred)."""
    return [pair.rtpPort.stopListening(), pair.rtcpPort.stopListening()]


def sparePairs(capacity: int) -> int:
    """How many pairs the relay keeps bound, idle and in use together: the whole range
    (``capacity`` pairs) if the process may open that many descriptors twice over, else as many as
    hold half of its descriptors. Beyond it an ended call's pair is closed, not kept idle, so the
    other half stays for connections and files; calls may still bind past it, and a relay bind
    short of descriptors closes idle pairs first."""
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if limit == resource.RLIM_INFINITY:
        return capacity
    return max(0, min(capacity, limit // 2 // 2))


__all__ = ["MAX_PACKET_SIZE", "PairBinder", "sparePairs", "unbind"]
