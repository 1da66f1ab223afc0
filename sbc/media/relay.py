"""The built-in RTP/RTCP relay: the embedded `IMediaRelay`, for when rtpengine is more than a site needs.

Each active stream of a call gets two port pairs from the `PortPool`: one facing side A and one
facing side B, each an even RTP and an odd RTCP socket bound on the SBC's media address. The SDP
from side X comes back naming that address and the pair facing the other side Y, since that is
where Y must now send. A datagram that arrives on the socket facing X leaves through its twin, the
socket of the same kind facing Y, towards Y's current address: so each side sees media from the
very ports it sends to (symmetric RTP), and from nothing else of the other side's.

Y's address is first the one its SDP names (``c=`` and ``m=``, and ``a=rtcp`` or port + 1 for RTCP).
A device behind NAT writes a private address into its SDP and is reachable only at the public
source of its packets, so the first datagram from Y may replace it (latching), but only one from
an allowed source (issue 15: nobody else may hijack or redirect the call's media):

- the very address Y's SDP names, or
- any port of Y's signalling source IP, which the call passes in (``sipSource``): the NAT that
  carries Y's SIP carries its RTP too.

Once latched, datagrams from every other source are dropped and counted (``refused``; they keep
no call alive). The socket relatches only to another allowed source, and only after the latched
one has been silent for ``relatchAfter`` seconds (rtpengine's ``strict-source``): a phone whose
NAT binding moved comes back, a stranger never gets in. Until a side's address is known, datagrams
towards it are dropped and counted.

An SDP may not name an address in the forbidden networks (``forbidden``: by default the SBC's own
addresses, multicast and the unspecified ranges), nor more than ``maxStreams`` m= lines: the relay
refuses it with `NotAcceptableError` (488) before it binds anything.

The per-packet path (`_RelaySocket.datagramReceived`) logs nothing, parses nothing and allocates
nothing beyond the datagram: for a packet from the latched source it is one tuple comparison,
plain int counters and a write. Only a packet from another source takes the slow path, and only
one from an allowed source there reads the clock (to measure the latched source's silence). The
media timeout instead runs one periodic check for the whole relay, which compares each call's
RTP packet count with the count it saw last time.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

from netaddr import IPSet
from twisted.internet import defer
from twisted.internet.error import CannotListenError, MessageLengthError
from twisted.internet.interfaces import IListeningPort, IReactorTime, IReactorUDP
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from sbc.interfaces import Address, IMediaRelay, NotAcceptableError
from sbc.media.ports import PortPool, PortPoolExhaustedError
from sbc.media.targets import unmapped
from sbc.sip.sdp import Media, SessionDescription, parseSDP, rewrite
from sbc.sip.uri import isDigits
from sbc.waiting import whenAllReady

_OTHER = {"A": "B", "B": "A"}

# Twisted reads this much per datagram. RTP fits an Ethernet frame; 8 KiB leaves room for jumbo
# frames and loopback without making every read reserve 64 KiB.
MAX_PACKET_SIZE = 8192


class UnknownCallError(LookupError):
    """An answer for a call that has no offer (never made, or already deleted)."""


@dataclass(frozen=True, slots=True)
class MediaStats:
    """What one call's media did, RTP and RTCP together, for CDRs, metrics and tests.

    ``packetsFromA`` counts datagrams received from side A (the A to B direction), whether or not
    they could be forwarded; ``dropped`` counts those of either direction that were not forwarded.
    ``refused`` counts datagrams from sources that may not latch, or while another source is
    latched (strangers): dropped too, and counted nowhere else.
    """

    packetsFromA: int
    bytesFromA: int
    packetsFromB: int
    bytesFromB: int
    dropped: int
    refused: int = 0


def _discard(data: bytes, address: Address) -> None:
    """Stands in for a closed socket's write: nothing goes out of a socket that is gone."""


class _RelaySocket(DatagramProtocol):
    """One relay socket, facing one side: what arrives here leaves through ``twin``.

    ``remote`` is where this socket sends towards the side it faces: the SDP address (``learned``)
    until a datagram from an allowed source of that side latches it (``latchedTo``). Allowed are
    ``learned`` itself and any port of ``sipSource``, the side's signalling IP.
    """

    noisy = False  # Twisted would log every socket opening and closing.

    def __init__(self, seconds: Callable[[], float], relatchAfter: float) -> None:
        self.twin: _RelaySocket = self
        self.remote: Address | None = None
        self.learned: Address | None = None
        self.sipSource: str | None = None
        self.latchedTo: Address | None = None
        self.packets = 0
        self.bytes = 0
        self.dropped = 0
        self.refused = 0
        self.send: Callable[[bytes, Address], object] = _discard
        self.seconds = seconds
        self.relatchAfter = relatchAfter
        # The latched source's packet count when another allowed source was first heard, and
        # when: if the count has not moved for relatchAfter seconds, the latched one is silent.
        self._quietCount = -1
        self._quietSince = 0.0

    def startProtocol(self) -> None:
        assert self.transport is not None
        self.send = self.transport.write

    def stopProtocol(self) -> None:
        self.send = _discard

    @property
    def latched(self) -> bool:
        return self.latchedTo is not None

    def learn(self, address: Address | None, sipSource: str | None = None) -> None:
        """Take the address an SDP names for the side this socket faces, and its signalling IP.

        An address that moved (a re-INVITE to another device, or to none for hold) undoes latching,
        so the next datagram from an allowed source latches afresh. An unchanged one keeps the
        latched source: a NATed phone repeats its private address in every re-INVITE. Nor does the
        first address undo a latch: the callee's RTP may overtake the 200 OK that carries its SDP.
        A latch to a source that is no longer allowed goes in any case.
        """
        self.sipSource = sipSource
        if address != self.learned:
            moved = self.learned is not None
            self.learned = address
            if moved or self.latchedTo is None:
                self.remote = address
                self.latchedTo = None
        latched = self.latchedTo
        if latched is not None and not self.allowed(latched):
            self.remote = self.learned
            self.latchedTo = None

    def allowed(self, source: Address) -> bool:
        """Whether ``source`` may latch: the SDP's own address, or the side's signalling IP."""
        return source == self.learned or source[0] == self.sipSource

    def datagramReceived(self, datagram: bytes, addr: Address) -> None:
        # The hot path: one comparison with the latched source, counters and one write.
        if addr != self.latchedTo and not self._admit(addr):
            self.refused += 1
            return
        self.packets += 1
        self.bytes += len(datagram)
        twin = self.twin
        destination = twin.remote
        if destination is None:
            self.dropped += 1
            return
        try:
            twin.send(datagram, destination)
        except (OSError, MessageLengthError):
            self.dropped += 1

    def _admit(self, source: Address) -> bool:
        """A datagram from other than the latched source: latch (or relatch) to it, or refuse it."""
        if not self.allowed(source):
            return False
        if self.latchedTo is not None:
            now = self.seconds()
            if self.packets != self._quietCount:
                # The latched source sent since we last looked: its silence starts counting now.
                self._quietCount = self.packets
                self._quietSince = now
                return False
            if now - self._quietSince < self.relatchAfter:
                return False
        self.latchedTo = self.remote = source
        self._quietCount = -1
        return True


@dataclass(slots=True)
class _Pair:
    """An even RTP and odd RTCP socket facing one side of one stream."""

    port: int
    rtp: _RelaySocket
    rtcp: _RelaySocket
    rtpPort: IListeningPort
    rtcpPort: IListeningPort


class _Stream:
    """One relayed m-line of a call: the pair facing A and the pair facing B, twinned."""

    def __init__(self, facingA: _Pair, facingB: _Pair) -> None:
        self.pairs = {"A": facingA, "B": facingB}
        facingA.rtp.twin, facingB.rtp.twin = facingB.rtp, facingA.rtp
        facingA.rtcp.twin, facingB.rtcp.twin = facingB.rtcp, facingA.rtcp

    def learn(self, side: str, rtp: Address | None, rtcp: Address | None, sipSource: str | None) -> None:
        pair = self.pairs[side]
        pair.rtp.learn(rtp, sipSource)
        pair.rtcp.learn(rtcp, sipSource)

    def rtpPackets(self) -> int:
        return self.pairs["A"].rtp.packets + self.pairs["B"].rtp.packets


class _Session:
    """One call's media: its streams by m-line index, and what the timeout check needs."""

    def __init__(self, callId: str, onTimeout: Callable[[], object], now: float) -> None:
        self.callId = callId
        self.onTimeout = onTimeout
        self.streams: dict[int, _Stream] = {}
        self.holding = {"A": False, "B": False}
        self.lastCount = 0
        self.lastActivity = now
        self.timedOut = False

    @property
    def onHold(self) -> bool:
        return self.holding["A"] or self.holding["B"]

    def rtpPackets(self) -> int:
        return sum(stream.rtpPackets() for stream in self.streams.values())


def _relayable(media: Media) -> bool:
    """Whether a stream's packets can go through a UDP relay: RTP profiles over UDP, and UDPTL (T.38).

    Streams over TCP (MSRP, BFCP over TCP, RFC 4571 RTP) cannot; they are rejected rather than
    passed on with our address and the peer's port, which would reach nobody.
    """
    proto = media.proto.upper()
    if proto.startswith("TCP"):
        return False
    return media.isRTP or proto == "UDPTL" or proto.startswith("UDP")


def _canonical(ip: str | None) -> str | None:
    """An IP address as sockets report a datagram's source (IPv6 compressed, lower case)."""
    if ip is None:
        return None
    try:
        return str(ipaddress.ip_address(ip.strip("[]")))
    except ValueError:
        return None


@implementer(IMediaRelay)
class MediaRelay:
    """The built-in relay: anchors each call's streams on port pairs bound at ``address``.

    ``reactor`` binds the sockets (``listenUDP``) and ``clock`` runs the media timeout check,
    every ``checkInterval`` seconds while any call is active. A call that receives no RTP from
    either side for ``timeout`` seconds gets its ``onTimeout`` run, once. While the last SDP of
    either side puts its streams on hold, ``holdTimeout`` applies instead; None (the default)
    means a call on hold never times out.

    ``relatchAfter`` is the silence (seconds) of a latched source after which another allowed
    source may take its place; ``forbidden`` the networks no SDP may send media to; ``maxStreams``
    the most m= lines one SDP may have. The SBC passes them from ``[media]``; the defaults here
    suit tests.
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
        maxStreams: int = 8,
    ) -> None:
        if address.startswith("[") and address.endswith("]"):
            address = address[1:-1]
        ip = ipaddress.ip_address(address)  # ValueError for a hostname
        if ip.is_unspecified:
            # Written into SDP, 0.0.0.0 would read as hold (RFC 2543) and reach nobody.
            raise ValueError(f"the media address must be one that peers can reach, not {address}")
        self._family = ip.version
        if timeout <= 0 or (holdTimeout is not None and holdTimeout <= 0) or checkInterval <= 0:
            raise ValueError("media timeouts and the check interval must be positive")
        if relatchAfter < 0 or maxStreams < 1:
            raise ValueError("relatchAfter must not be negative, and maxStreams must be at least 1")
        self.reactor = reactor
        self.clock = clock
        self.address = address
        self.pool = pool
        self.timeout = timeout
        self.holdTimeout = holdTimeout
        self.checkInterval = checkInterval
        self.relatchAfter = relatchAfter
        self.forbidden = forbidden if forbidden is not None else IPSet()
        self.maxStreams = maxStreams
        self.timeouts = 0
        self._sessions: dict[str, _Session] = {}
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
    ) -> defer.Deferred[bytes]:
        """Anchor an offer from ``side``; a re-offer keeps the call's ports and updates addresses."""
        try:
            body = self._anchor(callId, side, sdp, onTimeout, sipSource)
        except Exception:
            return defer.fail()
        return defer.succeed(body)

    def answer(
        self, callId: str, side: str, sdp: bytes, sipSource: str | None = None
    ) -> defer.Deferred[bytes]:
        """Anchor the answer from ``side``; fails with `UnknownCallError` if no offer made the call."""
        try:
            body = self._anchor(callId, side, sdp, None, sipSource)
        except Exception:
            return defer.fail()
        return defer.succeed(body)

    def delete(self, callId: str) -> defer.Deferred[None]:
        """Close the call's sockets; each pair goes back to the pool once both its sockets closed."""
        session = self._sessions.pop(callId, None)
        if session is not None:
            self._closeSession(session)
        return defer.succeed(None)

    def activeSessions(self) -> int:
        return len(self._sessions)

    # -- beyond the interface

    def stats(self, callId: str) -> MediaStats | None:
        """The call's counters so far (call it before `delete` for a CDR), or None if unknown."""
        session = self._sessions.get(callId)
        if session is None:
            return None
        packets = {"A": 0, "B": 0}
        octets = {"A": 0, "B": 0}
        dropped = refused = 0
        for stream in session.streams.values():
            for side, pair in stream.pairs.items():
                for relaySocket in (pair.rtp, pair.rtcp):
                    packets[side] += relaySocket.packets
                    octets[side] += relaySocket.bytes
                    dropped += relaySocket.dropped
                    refused += relaySocket.refused
        return MediaStats(packets["A"], octets["A"], packets["B"], octets["B"], dropped, refused)

    def close(self) -> None:
        """Release every call's ports and stop the timeout check (service shutdown)."""
        sessions = list(self._sessions.values())
        self._sessions.clear()
        for session in sessions:
            self._closeSession(session)

    # -- anchoring

    def _anchor(
        self,
        callId: str,
        side: str,
        body: bytes,
        onTimeout: Callable[[], object] | None,
        sipSource: str | None,
    ) -> bytes:
        other = _OTHER.get(side)
        if other is None:
            raise ValueError(f"side must be 'A' or 'B', not {side!r}")
        sdp = parseSDP(body)
        if len(sdp.media) > self.maxStreams:
            raise NotAcceptableError(f"{len(sdp.media)} media streams, at most {self.maxStreams} allowed")
        # Every address the SDP names is checked before anything is bound or learned.
        addresses = [
            self._addresses(sdp, media) if media.port != 0 and _relayable(media) else (None, None)
            for media in sdp.media
        ]
        source = _canonical(sipSource)
        session = self._sessions.get(callId)
        created = session is None
        if session is None:
            if onTimeout is None:
                raise UnknownCallError(callId)
            session = self._sessions[callId] = _Session(callId, onTimeout, self.clock.seconds())
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
                if not _relayable(media):
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
        return bytes(rewrite(sdp, self.address, ports))

    def _addresses(self, sdp: SessionDescription, media: Media) -> tuple[Address | None, Address | None]:
        """Where the SDP's sender wants this stream's RTP and RTCP (RFC 3605 ``a=rtcp``, else port + 1)."""
        host = sdp.connectionAddress(media)
        rtp = self._usable(host, media.port)
        rtcp = self._usable(host, media.port + 1)
        value = media.attribute("rtcp")
        if value:
            fields = value.split()
            if len(fields) in (1, 4) and isDigits(fields[0]) and len(fields[0]) <= 5:
                rtcp = self._usable(fields[3] if len(fields) == 4 else host, int(fields[0]))
        return rtp, rtcp

    def _usable(self, host: str | None, port: int) -> Address | None:
        """``(host, port)`` if our sockets can send there: an IP of our family, not the null address.

        A hostname (legal in ``c=``), the RFC 2543 hold address or the other IP family yields None:
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
        if canonical in self.forbidden:
            raise NotAcceptableError(f"media to {canonical} is forbidden")
        if ip.version != self._family:
            return None
        return (canonical, port)

    # -- sockets

    def _openStream(self) -> _Stream:
        facingA = self._openPair()
        try:
            facingB = self._openPair()
        except BaseException:
            self._closePair(facingA)
            raise
        return _Stream(facingA, facingB)

    def _openPair(self) -> _Pair:
        """Bind the next free pair, stepping over pairs that another program holds."""
        failed: list[int] = []
        try:
            for _ in range(self.bindAttempts):
                port = self.pool.allocate()
                seconds, after = self.clock.seconds, self.relatchAfter
                rtp, rtcp = _RelaySocket(seconds, after), _RelaySocket(seconds, after)
                try:
                    rtpPort = self.reactor.listenUDP(port, rtp, self.address, MAX_PACKET_SIZE)
                except CannotListenError:
                    failed.append(port)
                    continue
                try:
                    rtcpPort = self.reactor.listenUDP(port + 1, rtcp, self.address, MAX_PACKET_SIZE)
                except CannotListenError:
                    rtpPort.stopListening()
                    failed.append(port)
                    continue
                return _Pair(port, rtp, rtcp, rtpPort, rtcpPort)
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

    def _closePair(self, pair: _Pair) -> None:
        """Close both sockets; the pair returns to the pool once the OS has let go of both."""
        closing = [pair.rtpPort.stopListening(), pair.rtcpPort.stopListening()]
        whenAllReady(closing, lambda: self.pool.release(pair.port))

    def _closeSession(self, session: _Session) -> None:
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
            if session.timedOut:
                continue
            count = session.rtpPackets()
            if count != session.lastCount:
                session.lastCount = count
                session.lastActivity = now
                continue
            limit = self.holdTimeout if session.onHold else self.timeout
            if limit is None:
                session.lastActivity = now  # paused: the silence on hold does not count later
                continue
            if now - session.lastActivity >= limit:
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


__all__ = [
    "MAX_PACKET_SIZE",
    "MediaRelay",
    "MediaStats",
    "NotAcceptableError",
    "PortPoolExhaustedError",
    "UnknownCallError",
]
