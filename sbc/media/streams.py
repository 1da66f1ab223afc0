"""The built-in relay's sockets and sessions: the per-packet path, latching, and each call's streams.

Each stream of a call is two `PortPair`s, one facing side A and one facing side B, each an even RTP
and an odd RTCP `RelaySocket`. A datagram that arrives on the socket facing X leaves through its
twin, the socket of the same kind facing Y, towards Y's current address: so each side sees media
from the very ports it sends to (symmetric RTP), and from nothing else of the other side's.

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

The per-packet path (`RelaySocket.datagramReceived`) logs nothing, parses nothing and allocates
nothing beyond the datagram: for a packet from the latched source it is one tuple comparison,
plain int counters and a write. Only a packet from another source takes the slow path, and only
one from an allowed source there reads the clock (to measure the latched source's silence).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from twisted.internet.error import MessageLengthError
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import DatagramProtocol

from sbc.addresses import unbracket
from sbc.interfaces import Address
from sbc.media.targets import ADDRESS_CACHE, MAX_ADDRESS_TEXT
from sbc.sip.sdp import Media


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


class RelaySocket(DatagramProtocol):
    """One relay socket, facing one side: what arrives here leaves through ``twin``.

    ``remote`` is where this socket sends towards the side it faces: the SDP address (``learned``)
    until a datagram from an allowed source of that side latches it (``latchedTo``). Allowed are
    ``learned`` itself and any port of ``sipSource``, the side's signalling IP.
    """

    noisy = False  # Twisted would log every socket opening and closing.

    def __init__(self, seconds: Callable[[], float], relatchAfter: float) -> None:
        self.twin: RelaySocket = self
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
        """Send through the socket's transport once it is bound: its bare send where it has one."""
        transport = self.transport
        assert transport is not None
        sender = getattr(transport, "sender", None)  # a QuietDatagramPort's
        self.send = transport.write if sender is None else sender()

    def stopProtocol(self) -> None:
        """A closed socket sends nothing: writes go nowhere from now on."""
        self.send = _discard

    def reset(self) -> None:
        """Forget the call this socket served (twin, addresses, latch, counters): it stays bound,
        and refuses every datagram, until the relay hands it to the next call."""
        self.twin = self
        self.remote = self.learned = self.latchedTo = None
        self.sipSource = None
        self.packets = self.bytes = self.dropped = self.refused = 0
        self._quietCount = -1
        self._quietSince = 0.0

    @property
    def latched(self) -> bool:
        """Whether a datagram has latched ``remote`` to its source."""
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
        """The hot path: one comparison with the latched source, counters and one write."""
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
class PortPair:
    """An even RTP and odd RTCP socket facing one side of one stream."""

    port: int
    rtp: RelaySocket
    rtcp: RelaySocket
    rtpPort: IListeningPort
    rtcpPort: IListeningPort

    def reset(self) -> None:
        """Forget the call the pair served, keeping it bound for the next one."""
        self.rtp.reset()
        self.rtcp.reset()

    def pause(self) -> None:
        """Stop reading both sockets while the pair is idle (ports that cannot pause read on)."""
        for port in (self.rtpPort, self.rtcpPort):
            pause = getattr(port, "pauseReading", None)
            if pause is not None:
                pause()

    def resume(self) -> None:
        """Read both sockets again, for a new call, throwing away what queued while idle."""
        for port in (self.rtpPort, self.rtcpPort):
            resume = getattr(port, "resumeReading", None)
            if resume is not None:
                resume()


class RelayStream:
    """One relayed m-line of a call: the pair facing A and the pair facing B, twinned."""

    def __init__(self, facingA: PortPair, facingB: PortPair) -> None:
        self.pairs = {"A": facingA, "B": facingB}
        facingA.rtp.twin, facingB.rtp.twin = facingB.rtp, facingA.rtp
        facingA.rtcp.twin, facingB.rtcp.twin = facingB.rtcp, facingA.rtcp

    def learn(self, side: str, rtp: Address | None, rtcp: Address | None, sipSource: str | None) -> None:
        """Take the RTP and RTCP addresses, and the signalling IP, that ``side``'s SDP names."""
        pair = self.pairs[side]
        pair.rtp.learn(rtp, sipSource)
        pair.rtcp.learn(rtcp, sipSource)

    def rtpPackets(self) -> int:
        """RTP datagrams received from both sides so far (the media timeout watches it move)."""
        return self.pairs["A"].rtp.packets + self.pairs["B"].rtp.packets


class RelaySession:
    """One call's media: its streams by m-line index, and what the timeout check needs."""

    def __init__(self, callId: str, onTimeout: Callable[[], object], now: float) -> None:
        self.callId = callId
        self.onTimeout = onTimeout
        self.streams: dict[int, RelayStream] = {}
        self.holding = {"A": False, "B": False}
        self.lastCount = 0
        self.lastActivity = now
        self.timedOut = False

    @property
    def onHold(self) -> bool:
        """Whether either side's last SDP put all its streams on hold."""
        return self.holding["A"] or self.holding["B"]

    def rtpPackets(self) -> int:
        """RTP datagrams received on all the call's streams so far."""
        return sum(stream.rtpPackets() for stream in self.streams.values())

    def silent(self, now: float, timeout: float, holdTimeout: float | None) -> bool:
        """Whether the call has had no RTP for its limit: ``holdTimeout`` on hold, else ``timeout``.

        A moved RTP count is activity, and so is time on hold with no ``holdTimeout`` (None): the
        silence on hold does not count later.
        """
        count = self.rtpPackets()
        if count != self.lastCount:
            self.lastCount = count
            self.lastActivity = now
            return False
        limit = holdTimeout if self.onHold else timeout
        if limit is None:
            self.lastActivity = now
            return False
        return now - self.lastActivity >= limit

    def stats(self) -> MediaStats:
        """The call's counters so far, RTP and RTCP together."""
        packets = {"A": 0, "B": 0}
        octets = {"A": 0, "B": 0}
        dropped = refused = 0
        for stream in self.streams.values():
            for side, pair in stream.pairs.items():
                for relaySocket in (pair.rtp, pair.rtcp):
                    packets[side] += relaySocket.packets
                    octets[side] += relaySocket.bytes
                    dropped += relaySocket.dropped
                    refused += relaySocket.refused
        return MediaStats(packets["A"], octets["A"], packets["B"], octets["B"], dropped, refused)


def relayable(media: Media) -> bool:
    """Whether a stream's packets can go through a UDP relay: RTP profiles over UDP, and UDPTL (T.38).

    Streams over TCP (MSRP, BFCP over TCP, RFC 4571 RTP) cannot; they are rejected rather than
    passed on with our address and the peer's port, which would reach nobody.
    """
    proto = media.proto.upper()
    if proto.startswith("TCP"):
        return False
    return media.isRTP or proto == "UDPTL" or proto.startswith("UDP")


@lru_cache(maxsize=4096)  # signalling sources repeat (trunks, phones); bounded
def canonicalIP(ip: str | None) -> str | None:
    """An IP address as sockets report a datagram's source (IPv6 compressed, lower case)."""
    if ip is None or len(ip) > MAX_ADDRESS_TEXT:
        return None  # no IP address is that long
    return _canonical(ip)


@lru_cache(maxsize=ADDRESS_CACHE)
def _canonical(ip: str) -> str | None:
    """`canonicalIP` for text short enough to cache: the same few signalling sources, call after call."""
    try:
        return str(ipaddress.ip_address(unbracket(ip)))
    except ValueError:
        return None


__all__ = [
    "MediaStats",
    "PortPair",
    "RelaySession",
    "RelaySocket",
    "RelayStream",
    "UnknownCallError",
    "canonicalIP",
    "relayable",
]
