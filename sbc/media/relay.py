"""The built-in RTP/RTCP relay: the embedded `IMediaRelay`, for when rtpengine is more than a site needs.

Each active stream of a call gets two port pairs from the `PortPool`: one facing side A and one
facing side B, each an even RTP and an odd RTCP socket bound on the SBC's media address. The SDP
from side X comes back naming that address and the pair facing the other side Y, since that is
where Y must now send. The sockets, their latching and the per-packet path live in
`sbc.media.streams`; this module anchors SDP on them, binds and releases them, and times calls out.

An SDP may not name an address in the forbidden networks (``forbidden``: by default the SBC's own
addresses, multicast and the unspecified ranges), nor more than ``maxStreams`` m= lines: the relay
refuses it with `NotAcceptableError` (488) before it binds anything.

The media timeout runs one periodic check for the whole relay, which compares each call's RTP
packet count with the count it saw last time: the timeout needs no clock read per packet.

With ``spare`` above 0 (as the service runs it), a pair whose call ended stays bound, idle, and
goes back to the `PortPool` at once: when the pool hands out that port again (at random,
after its quarantine) the relay reuses the bound pair instead of binding and closing two sockets
per side and call (issue 19). An idle pair has forgotten its call (`PortPair.reset`): a late packet
of the old call reaches nobody, and the next call starts with no peer, latch or counts. The
service binds ``spare`` idle pairs at start (`MediaRelay.warmUp`, `sbc.media.binder`); a port the
pool hands out that has no idle pair is bound then. One that another program holds is stepped
over, as before. An idle pair is not read (its sockets leave the
reactor: a datagram sprayed at it costs no Python), and what queued on it while idle is thrown
away when a call takes it again.

Idle pairs hold file descriptors. When a bind fails for want of them (EMFILE, ENFILE), the relay
closes an idle pair and tries again, so active calls always come first; with none idle left the
offer fails (503) saying so, not blaming another program.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from netaddr import IPSet
from twisted.internet.interfaces import IReactorTime, IReactorUDP
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from sbc.addresses import unbracket
from sbc.interfaces import Address, IParsedMediaRelay, NotAcceptableError
from sbc.media.binder import MAX_PACKET_SIZE, PairBinder, sparePairs, unbind
from sbc.media.ports import PortPool, PortPoolExhaustedError
from sbc.media.streams import (
    MediaStats,
    PortPair,
    RelaySession,
    RelayStream,
    UnknownCallError,
    canonicalIP,
    relayable,
)
from sbc.media.targets import Networks, unmapped
from sbc.sip.sdp import Media, SessionDescription, parseSDP
from sbc.sip.sdprewrite import rewrite
from sbc.sip.uri import isDigits
from sbc.waiting import whenAllReady

_OTHER = {"A": "B", "B": "A"}


@implementer(IParsedMediaRelay)
class MediaRelay:
    """The built-in relay: anchors each call's streams on port pairs bound at ``address``.

    ``reactor`` binds the sockets (``listenUDP``) and ``clock`` runs the media timeout check,
    every ``checkInterval`` seconds while any call is active. A call that receives no RTP from
    either side for ``timeout`` seconds gets its ``onTimeout`` run, once. While the last SDP of
    either side puts its streams on hold, ``holdTimeout`` applies instead; None (the default)
    means a call on hold never times out.

    ``relatchAfter`` is the silence (seconds) of a latched source after which another allowed
    source may take its place; ``forbidden`` the networks no SDP may send media to; ``maxStreams``
    the most m= lines one SDP may have. The service passes None for both: the call layer checks
    every SDP against the configuration of the moment (`sbc.calls.media.CallMedia`, for either
    engine), which a reload changes and this relay would not see. ``spare`` is the most idle
    pairs kept bound for later calls (0: every call binds its own sockets and closes them; the
    service passes `sparePairs`).
    """

    log = Logger()

    # How many pairs in a row may fail to bind (ports that another program holds) before an
    # offer fails: enough to step over a few squatters, few enough not to stall on a busy range.
    bindAttempts = 16

    def __init__(
        self,
        reactor: IReactorUDP,
        clock: IReactorTime,
        address: str,
        pool: PortPool,
        timeout: float = 30.0,
        holdTimeout: float | None = None,
        *,
        checkInterval: float = 1.0,
        relatchAfter: float = 2.0,
        forbidden: IPSet | None = None,
        maxStreams: int | None = 8,
        spare: int = 0,
    ) -> None:
        address = unbracket(address)
        ip = ipaddress.ip_address(address)  # ValueError for a hostname
        if ip.is_unspecified:
            # Written into SDP, 0.0.0.0 would read as hold (RFC 2543) and reach nobody.
            raise ValueError(f"the media address must be one that peers can reach, not {address}")
        self._family = ip.version
        if timeout <= 0 or (holdTimeout is not None and holdTimeout <= 0) or checkInterval <= 0:
            raise ValueError("media timeouts and the check interval must be positive")
        if relatchAfter < 0 or (maxStreams is not None and maxStreams < 1):
            raise ValueError("relatchAfter must not be negative, and maxStreams must be at least 1")
        self.reactor = reactor
        self.clock = clock
        self.address = address
        self.pool = pool
        self.timeout = timeout
        self.holdTimeout = holdTimeout
        self.checkInterval = checkInterval
        self.relatchAfter = relatchAfter
        self.forbidden = Networks(forbidden)
        self.maxStreams = maxStreams
        self.spare = spare
        self.timeouts = 0
        # Bound pairs of no call, by RTP port: their ports are back in the pool.
        self._idle: dict[int, PortPair] = {}
        self._binder = PairBinder(reactor, address, clock.seconds, relatchAfter, self._idle)
        self._sessions: dict[str, RelaySession] = {}
        self._timer = LoopingCall(self._check)
        self._timer.clock = clock

    # -- IMediaRelay

    def offer(
        self,
        callId: str,
        side: str,
        sdp: bytes,
        onTimeout: Callable[[], object],
        sipSource: str | None = None,
    ) -> bytes:
        """Anchor an offer from ``side``, at once; a re-offer keeps the call's ports and updates
        addresses. Raises what stops it (`NotAcceptableError`, `PortPoolExhaustedError` ...)."""
        return self._anchor(callId, side, parseSDP(sdp), onTimeout, sipSource).toBytes()

    def answer(self, callId: str, side: str, sdp: bytes, sipSource: str | None = None) -> bytes:
        """Anchor the answer from ``side``, at once; raises `UnknownCallError` if no offer made the call."""
        return self._anchor(callId, side, parseSDP(sdp), None, sipSource).toBytes()

    def offerParsed(
        self,
        callId: str,
        side: str,
        sdp: SessionDescription,
        onTimeout: Callable[[], object],
        sipSource: str | None = None,
    ) -> SessionDescription:
        """`offer`, on an SDP the caller has parsed already."""
        return self._anchor(callId, side, sdp, onTimeout, sipSource)

    def answerParsed(
        self, callId: str, side: str, sdp: SessionDescription, sipSource: str | None = None
    ) -> SessionDescription:
        """`answer`, on an SDP the caller has parsed already."""
        return self._anchor(callId, side, sdp, None, sipSource)

    def delete(self, callId: str) -> None:
        """Close the call's sockets; each pair goes back to the pool once both its sockets closed."""
        session = self._sessions.pop(callId, None)
        if session is not None:
            self._closeSession(session)

    def activeSessions(self) -> int:
        """Calls offered and not yet deleted."""
        return len(self._sessions)

    # -- beyond the interface

    def stats(self, callId: str) -> MediaStats | None:
        """The call's counters so far (call it before `delete` for a CDR), or None if unknown."""
        session = self._sessions.get(callId)
        return None if session is None else session.stats()

    def close(self) -> None:
        """Release every call's ports, close the idle pairs and stop the timeout check (service shutdown)."""
        sessions = list(self._sessions.values())
        self._sessions.clear()
        for session in sessions:
            self._closeSession(session)
        self.spare = 0
        idle = list(self._idle.values())
        self._idle.clear()
        for pair in idle:
            unbind(pair)  # its port is in the pool already

    def warmUp(self) -> int:
        """Bind idle pairs up to ``spare`` for the free ports, before any call (the service does
        at start): calls then find their pairs bound (issue 19). Returns how many it bound."""
        return self._binder.warm(self.pool.free(), self.spare)

    @property
    def idlePairs(self) -> int:
        """Pairs bound for no call, waiting for the pool to hand out their ports again."""
        return len(self._idle)

    @property
    def descriptorShortages(self) -> int:
        """Idle pairs closed because a bind ran out of file descriptors."""
        return self._binder.shortages

    # -- anchoring

    def _anchor(
        self,
        callId: str,
        side: str,
        sdp: SessionDescription,
        onTimeout: Callable[[], object] | None,
        sipSource: str | None,
    ) -> SessionDescription:
        other = _OTHER.get(side)
        if other is None:
            raise ValueError(f"side must be 'A' or 'B', not {side!r}")
        if self.maxStreams is not None and len(sdp.media) > self.maxStreams:
            raise NotAcceptableError(f"{len(sdp.media)} media streams, at most {self.maxStreams} allowed")
        # Every address the SDP names is checked before anything is bound or learned.
        addresses = [
            _addresses(sdp, media, self._family, self.forbidden)
            if media.port != 0 and relayable(media)
            else (None, None)
            for media in sdp.media
        ]
        source = canonicalIP(sipSource)
        session = self._sessions.get(callId)
        created = session is None
        if session is None:
            if onTimeout is None:
                raise UnknownCallError(callId)
            session = self._sessions[callId] = RelaySession(callId, onTimeout, self.clock.seconds())
            if not self._timer.running:
                self._timer.start(self.checkInterval, now=False)
        elif onTimeout is not None:
            session.onTimeout = onTimeout

        ports: list[int | None] = []
        holds: list[bool] = []
        try:
            for index, media in enumerate(sdp.media):
                stream = session.streams.get(index)
                if media.port == 0:
                    # Rejected (or, in a re-offer, disabled): nothing more goes towards this side.
                    if stream is not None:
                        stream.learn(side, None, None, source)
                    ports.append(None)
                    continue
                if not relayable(media):
                    ports.append(0)
                    continue
                if stream is None:
                    stream = session.streams[index] = self._openStream()
                rtp, rtcp = addresses[index]
                stream.learn(side, rtp, rtcp, source)
                ports.append(stream.pairs[other].port)
                holds.append(sdp.isHold(media))
        except BaseException:
            if created:
                del self._sessions[callId]
                self._closeSession(session)
            raise
        # A side with no stream left sending (all on hold, or none active) expects no media.
        session.holding[side] = all(holds)
        # Signalling shows the call is alive, and a changed media path needs time to start.
        session.lastActivity = self.clock.seconds()
        return rewrite(sdp, self.address, ports)

    # -- sockets

    def _openStream(self) -> RelayStream:
        facingA = self._openPair()
        try:
            facingB = self._openPair()
        except BaseException:
            self._closePair(facingA)
            raise
        return RelayStream(facingA, facingB)

    def _openPair(self) -> PortPair:
        """Bind the next free pair, stepping over pairs that another program holds."""
        failed: list[int] = []
        try:
            for _ in range(self.bindAttempts):
                port = self.pool.allocate()
                idle = self._idle.pop(port, None)
                if idle is not None:
                    idle.resume()  # throws away what strangers queued on it while idle
                    idle.reset()
                    return idle
                try:
                    pair = self._binder.bind(port)
                except BaseException:
                    failed.append(port)
                    raise
                if pair is not None:
                    return pair
                failed.append(port)
            raise PortPoolExhaustedError(
                f"{self.bindAttempts} RTP/RTCP port pairs in a row would not bind on {self.address}; "
                f"does another program use ports in {self.pool.low}-{self.pool.high}?"
            )
        finally:
            # Released, so that another program holding them is not our leak; the pool hands out
            # pairs at random and keeps a released pair in quarantine, so the next attempts are
            # unlikely to meet the same squatters.
            for port in failed:
                self.pool.release(port)

    def _closePair(self, pair: PortPair) -> None:
        """Keep the pair bound and idle if there is room (its port back in the pool at once), else
        close both sockets: the pair returns to the pool once the OS has let go of both."""
        # ``spare`` bounds the relay's pairs, idle and in use (this one still counts as in use):
        # beyond it an ended call's pair closes, leaving descriptors for connections and files.
        if len(self._idle) + self.pool.inUse <= self.spare:
            pair.reset()
            pair.pause()
            self._idle[pair.port] = pair
            self.pool.release(pair.port)
            return
        whenAllReady(unbind(pair), lambda: self.pool.release(pair.port))

    def _closeSession(self, session: RelaySession) -> None:
        for stream in session.streams.values():
            for pair in stream.pairs.values():
                self._closePair(pair)
        session.streams.clear()
        if not self._sessions and self._timer.running:
            self._timer.stop()

    # -- media timeout

    def _check(self) -> None:
        """Once per ``checkInterval``: time out each call whose RTP count has not moved for too long."""
        now = self.clock.seconds()
        for session in list(self._sessions.values()):
            if session.timedOut or not session.silent(now, self.timeout, self.holdTimeout):
                continue
            session.timedOut = True
            self.timeouts += 1
            self.log.info(
                "media timeout for call {callId}: no RTP for {seconds:.0f} s",
                callId=session.callId,
                seconds=now - session.lastActivity,
            )
            try:
                session.onTimeout()
            except Exception:
                self.log.failure("media timeout handler failed for call {callId}", callId=session.callId)

    def __repr__(self) -> str:
        return f"<MediaRelay {self.address} {len(self._sessions)} calls, {self.pool!r}>"


def _addresses(
    sdp: SessionDescription, media: Media, family: int, forbidden: Networks
) -> tuple[Address | None, Address | None]:
    """Where the SDP's sender wants this stream's RTP and RTCP (RFC 3605 ``a=rtcp``, else port + 1)."""
    host = sdp.connectionAddress(media)
    rtp = _usable(host, media.port, family, forbidden)
    rtcp = _usable(host, media.port + 1, family, forbidden)
    value = media.attribute("rtcp")
    if value:
        fields = value.split()
        if len(fields) in (1, 4) and isDigits(fields[0]) and len(fields[0]) <= 5:
            rtcpHost = fields[3] if len(fields) == 4 else host
            rtcp = _usable(rtcpHost, int(fields[0]), family, forbidden)
    return rtp, rtcp


def _usable(host: str | None, port: int, family: int, forbidden: Networks) -> Address | None:
    """``(host, port)`` if our sockets can send there: an IP of our family, not the null address.

    A hostname (legal in ``c=``), the RFC 2543 hold address or an IP not of ``family`` yields None:
    nothing is sent until a datagram from that side's signalling IP shows where it is. An
    address in a forbidden network raises `NotAcceptableError`, of either family, and an
    IPv4-mapped IPv6 address (``::ffff:10.0.0.53``) is judged as the IPv4 address it is.
    The host comes back in the form a socket reports sources in, so that latching can compare
    addresses as they are.
    """
    if host is None or not 0 < port <= 65535:
        return None
    ip = unmapped(host)
    if ip is None or ip.is_unspecified:
        return None
    canonical = str(ip)
    if forbidden.contains(ip):
        raise NotAcceptableError(f"media to {canonical} is forbidden")
    if ip.version != family:
        return None
    return (canonical, port)


__all__ = ["MAX_PACKET_SIZE", "MediaRelay", "PairBinder", "sparePairs"]
