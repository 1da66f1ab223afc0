"""Tests for sbc.media.relay and its sockets (sbc.media.streams), on a fake UDP reactor and a `Clock`."""

from __future__ import annotations

import errno
import resource
from typing import cast

from netaddr import IPSet
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import AbstractDatagramProtocol
from twisted.internet.task import Clock
from twisted.logger import ILogObserver, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from sbc.interfaces import Address, IMediaRelay, IParsedMediaRelay, NotAcceptableError
from sbc.media.ports import PortPool, PortPoolExhaustedError
from sbc.media.relay import MAX_PACKET_SIZE, MediaRelay, PairBinder, sparePairs
from sbc.media.streams import MediaStats, RelaySocket, UnknownCallError, canonicalIP
from sbc.sip.sdp import SDPParseError, SessionDescription, parseSDP
from tests.fakes import FakeUDPPort, FakeUDPReactor, LogRecorder
from tests.media import ANSWER, NAT_A, OFFER, PHONE_A, PHONE_B, US, RelayTestCase, phone, sdp


class RewriteTests(RelayTestCase):
    def test_offerNamesUs(self) -> None:
        """The offer that goes to B names our address in o= and c=, and nothing of A's."""
        body = self.relay.offer("call-1", "A", OFFER, self.onTimeout)
        toB = parseSDP(body)
        self.assertEqual(toB.origin.address, US)
        connection = toB.connection
        assert connection is not None
        self.assertEqual(connection.address, US)
        self.assertNotIn(b"10.0.0.1", body)
        self.assertNotIn(b"49170", body)
        self.assertIn(b"a=rtpmap:101 telephone-event/8000", body)

    def test_portsFaceTheOtherSide(self) -> None:
        """Each side is told a port of a pair facing the other side, bound on our address."""
        toB, toA = self.call()
        self.assertNotEqual(toB, toA)
        for port in (toB, toA):
            self.assertEqual(port % 2, 0)
            self.assertTrue(20000 <= port <= 20098)
            self.assertEqual((self.socket(port).interface, self.socket(port + 1).interface), (US, US))
        # What arrives where B sends goes to A, and the other way round.
        self.socket(toB).deliver(b"from B", PHONE_B)
        self.assertEqual(self.socket(toA).written, [(b"from B", PHONE_A)])

    def test_bindsOnePairPerSidePerStream(self) -> None:
        """An audio and video call binds four pairs: one per side for each stream, read 8 KiB at a time."""
        self.offer(phone(*PHONE_A, video=51372))
        self.answer(phone(*PHONE_B, video=6002))
        self.assertEqual(len(self.reactor.open), 8)
        self.assertEqual(self.pool.inUse, 4)
        self.assertEqual({size for _, _, size in self.reactor.binds}, {MAX_PACKET_SIZE})

    def test_rtcpAttribute(self) -> None:
        """An a=rtcp port becomes our RTCP port, one above the RTP port we name."""
        toB = self.offer(phone(*PHONE_A, "a=rtcp:53020 IN IP4 10.0.0.9"))
        port = toB.media[0].port
        self.assertEqual(toB.media[0].attribute("rtcp"), f"{port + 1} IN IP4 {US}")

    def test_rejectedStreamStaysRejected(self) -> None:
        """A stream with port 0 stays at 0 and binds nothing."""
        toB = self.offer(phone(*PHONE_A, video=0))
        self.assertEqual(toB.media[1].port, 0)
        self.assertEqual(len(self.reactor.open), 4)

    def test_tcpStreamRejected(self) -> None:
        """A stream over TCP, which a UDP relay cannot carry, goes out rejected rather than unreachable."""
        body = OFFER + sdp("m=message 2855 TCP/MSRP *", "a=path:msrp://10.0.0.1:2855/abc;tcp")
        toB = self.offer(body)
        self.assertEqual([media.port for media in toB.media[1:]], [0])
        self.assertEqual(len(self.reactor.open), 4)

    def test_t38Relayed(self) -> None:
        """A T.38 fax stream over UDPTL is relayed like RTP."""
        body = sdp(
            "v=0",
            "o=fax 1 1 IN IP4 10.0.0.1",
            "s=-",
            "c=IN IP4 10.0.0.1",
            "t=0 0",
            "m=image 4000 udptl t38",
        )
        toB = self.offer(body)
        self.assertIn(toB.media[0].port, self.reactor.open)

    def test_badSDP(self) -> None:
        """A broken body fails the offer with the codec's error and holds nothing."""
        self.assertRaises(SDPParseError, self.relay.offer, "call-1", "A", b"hello", self.onTimeout)
        self.assertEqual((self.relay.activeSessions(), len(self.reactor.open)), (0, 0))

    def test_badSide(self) -> None:
        """A side other than A or B is a caller bug, reported as ValueError."""
        self.assertRaises(ValueError, self.relay.offer, "call-1", "C", OFFER, self.onTimeout)
        self.assertEqual(self.relay.activeSessions(), 0)

    def test_answerWithoutOffer(self) -> None:
        """An answer for a call that has no offer fails with UnknownCallError."""
        self.assertRaises(UnknownCallError, self.relay.answer, "nope", "B", ANSWER)
        self.assertEqual((self.relay.activeSessions(), len(self.reactor.open)), (0, 0))

    def test_lateOffer(self) -> None:
        """A late offer (in the 200 OK from B) and its answer (in A's ACK) anchor the same way."""
        toA = self.offer(ANSWER, side="B")
        toB = self.answer(OFFER, side="A")
        self.socket(toA.media[0].port).deliver(b"rtp", PHONE_A)
        self.assertEqual(self.socket(toB.media[0].port).written, [(b"rtp", PHONE_B)])

    def test_badAddress(self) -> None:
        """The relay's own address must be a reachable IP address: it is written into SDP."""
        for address in ("sbc.example", "0.0.0.0", "::"):
            self.assertRaises(ValueError, MediaRelay, self.reactor, self.clock, address, self.pool)
        self.assertRaises(ValueError, MediaRelay, self.reactor, self.clock, US, self.pool, timeout=0)

    def test_interface(self) -> None:
        """The relay provides IMediaRelay."""
        self.assertTrue(verifyObject(IMediaRelay, self.relay))


class ParsedSDPTests(SynchronousTestCase):
    """``offerParsed`` and ``answerParsed`` (`IParsedMediaRelay`) anchor as ``offer`` and ``answer``
    do, on SDP the caller has parsed."""

    def pinned(self, forbidden: IPSet | None = None, maxStreams: int | None = None) -> MediaRelay:
        """A relay whose pool hands out its first free pair each time: two such relays asked the
        same pick the same ports."""
        self.reactor = FakeUDPReactor()
        pool = PortPool(20000, 20099, randbelow=lambda count: 0)
        return MediaRelay(self.reactor, Clock(), US, pool, forbidden=forbidden, maxStreams=maxStreams)

    def test_interface(self) -> None:
        """The built-in relay provides IParsedMediaRelay (and so IMediaRelay)."""
        relay = self.pinned()
        self.assertTrue(verifyObject(IParsedMediaRelay, relay))
        self.assertTrue(IMediaRelay.providedBy(relay))

    def test_sameAsBytes(self) -> None:
        """Offer, answer, a re-offer from B and its answer give, parsed, the SDP the bytes path
        gives, and bind the same ports."""
        candidate = "a=candidate:1 1 UDP 2130706431 10.0.0.1 49170 typ host"
        steps = [
            ("offer", "A", phone(*PHONE_A, "a=rtcp:49171", candidate, video=51372)),
            ("answer", "B", phone(*PHONE_B, video=6002)),
            ("offer", "B", phone(*PHONE_B, "a=sendonly", video=0)),
            ("answer", "A", phone(*PHONE_A, "a=recvonly", video=0)),
        ]
        relay = self.pinned()
        byBytes = [
            relay.offer("call-1", side, body, lambda: None)
            if kind == "offer"
            else relay.answer("call-1", side, body)
            for kind, side, body in steps
        ]
        boundByBytes = sorted(self.reactor.open)
        relay = self.pinned()
        parsed: list[SessionDescription] = [
            relay.offerParsed("call-1", side, parseSDP(body), lambda: None)
            if kind == "offer"
            else relay.answerParsed("call-1", side, parseSDP(body))
            for kind, side, body in steps
        ]
        for result in parsed:
            self.assertIsInstance(result, SessionDescription)
        self.assertEqual([bytes(result) for result in parsed], byBytes)
        self.assertEqual(sorted(self.reactor.open), boundByBytes)
        self.assertEqual(len(boundByBytes), 8)
        self.assertNotIn(b"10.0.0.1", byBytes[0])

    def test_sameRefusals(self) -> None:
        """Parsed SDP is refused as bytes are, binding nothing: forbidden targets, too many
        streams, an answer without an offer, an unknown side."""
        relay = self.pinned(forbidden=IPSet(["127.0.0.1/32"]), maxStreams=1)
        for body in (phone("127.0.0.1", 4000), phone(*PHONE_A, video=6000)):
            self.assertRaises(
                NotAcceptableError, relay.offerParsed, "call-1", "A", parseSDP(body), lambda: None
            )
        self.assertRaises(UnknownCallError, relay.answerParsed, "call-1", "B", parseSDP(ANSWER))
        self.assertRaises(ValueError, relay.offerParsed, "call-1", "C", parseSDP(OFFER), lambda: None)
        self.assertEqual((relay.activeSessions(), self.reactor.open), (0, {}))


class ForwardingTests(RelayTestCase):
    def test_rtpAtoB(self) -> None:
        """RTP from A leaves the socket B sends to, towards B's SDP address."""
        toB, toA = self.call()
        self.socket(toA).deliver(b"rtp A", PHONE_A)
        self.assertEqual(self.socket(toB).written, [(b"rtp A", PHONE_B)])
        self.assertEqual(self.socket(toA).written, [])

    def test_rtpBtoA(self) -> None:
        """RTP from B leaves the socket A sends to, towards A's SDP address."""
        toB, toA = self.call()
        self.socket(toB).deliver(b"rtp B", PHONE_B)
        self.assertEqual(self.socket(toA).written, [(b"rtp B", PHONE_A)])
        self.assertEqual(self.socket(toB).written, [])

    def test_rtcpBothWays(self) -> None:
        """RTCP goes through the odd ports to the RTCP addresses: port + 1 by default."""
        toB, toA = self.call()
        self.socket(toA + 1).deliver(b"rtcp A", ("10.0.0.1", 49171))
        self.socket(toB + 1).deliver(b"rtcp B", ("192.0.2.20", 6001))
        self.assertEqual(self.socket(toB + 1).written, [(b"rtcp A", ("192.0.2.20", 6001))])
        self.assertEqual(self.socket(toA + 1).written, [(b"rtcp B", ("10.0.0.1", 49171))])
        self.assertEqual(self.socket(toA).written + self.socket(toB).written, [])

    def test_rtcpAttributeAddress(self) -> None:
        """RTCP towards a side goes where its a=rtcp says, address included (RFC 3605)."""
        toB = self.offer(phone(*PHONE_A, "a=rtcp:53020 IN IP4 10.0.0.9")).media[0].port
        toA = self.answer().media[0].port
        self.socket(toB + 1).deliver(b"rtcp B", ("192.0.2.20", 6001))
        self.assertEqual(self.socket(toA + 1).written, [(b"rtcp B", ("10.0.0.9", 53020))])

    def test_latching(self) -> None:
        """A packet from A's signalling IP replaces A's SDP address: media reaches a phone behind NAT."""
        toB, toA = self.call(aSource=NAT_A[0])
        self.socket(toA).deliver(b"rtp A", NAT_A)
        self.socket(toB).deliver(b"rtp B", PHONE_B)
        self.assertEqual(self.socket(toA).written, [(b"rtp B", NAT_A)])

    def test_latchingOnce(self) -> None:
        """Once latched, packets from elsewhere are dropped and counted, and move nothing."""
        toB, toA = self.call(aSource=NAT_A[0])
        self.socket(toA).deliver(b"one", NAT_A)
        self.socket(toA).deliver(b"two", ("198.51.100.66", 1234))
        self.socket(toB).deliver(b"rtp B", PHONE_B)
        self.assertEqual(self.socket(toB).written, [(b"one", PHONE_B)])
        self.assertEqual(self.socket(toA).written, [(b"rtp B", NAT_A)])
        stats = self.relay.stats("call-1")
        assert stats is not None
        self.assertEqual((stats.packetsFromA, stats.refused), (1, 1))

    def test_latchingRTCP(self) -> None:
        """RTCP latches on its own source, independently of RTP."""
        toB, toA = self.call(aSource="203.0.113.5")
        self.socket(toA + 1).deliver(b"rtcp A", ("203.0.113.5", 40001))
        self.socket(toB + 1).deliver(b"rtcp B", ("192.0.2.20", 6001))
        self.assertEqual(self.socket(toA + 1).written, [(b"rtcp B", ("203.0.113.5", 40001))])

    def test_dropBeforeKnown(self) -> None:
        """Before B's answer, A's packets have nowhere to go: dropped and counted, nothing sent."""
        toB = self.offer().media[0].port
        (toA,) = {port for port in self.reactor.open if port % 2 == 0} - {toB}  # the pair facing A
        self.socket(toA).deliver(b"early", PHONE_A)
        self.assertEqual(self.socket(toB).written, [])
        stats = self.relay.stats("call-1")
        assert stats is not None
        self.assertEqual((stats.packetsFromA, stats.dropped), (1, 1))

    def test_earlyPacketFromB(self) -> None:
        """B's RTP before its answer is refused: nothing yet says where B is; after it, B latches."""
        toB = self.offer().media[0].port
        self.socket(toB).deliver(b"early B", ("198.51.100.20", 7000))
        toA = self.answer(sipSource="198.51.100.20").media[0].port
        self.assertEqual(self.socket(toA).written, [])
        self.socket(toB).deliver(b"rtp B", ("198.51.100.20", 7000))
        self.assertEqual(self.socket(toA).written, [(b"rtp B", PHONE_A)])
        self.socket(toA).deliver(b"rtp A", PHONE_A)
        self.assertEqual(self.socket(toB).written, [(b"rtp A", ("198.51.100.20", 7000))])
        stats = self.relay.stats("call-1")
        assert stats is not None
        self.assertEqual((stats.packetsFromB, stats.refused), (1, 1))

    def test_hostnameWaitsForLatch(self) -> None:
        """A c= hostname is not sent to (sockets take IPs only); the side's first packet shows where it is."""
        toB = self.offer().media[0].port
        toA = self.answer(phone("bob.example", 6000), sipSource=PHONE_B[0]).media[0].port
        self.socket(toA).deliver(b"rtp A", PHONE_A)
        self.assertEqual(self.socket(toB).written, [])
        self.socket(toB).deliver(b"rtp B", PHONE_B)
        self.socket(toA).deliver(b"rtp A", PHONE_A)
        self.assertEqual(self.socket(toB).written, [(b"rtp A", PHONE_B)])

    def test_sendFailureCounted(self) -> None:
        """A send the OS refuses (unreachable network) is counted as dropped, not raised."""
        toB, toA = self.call()
        self.socket(toB).refuse = OSError(errno.ENETUNREACH, "Network is unreachable")
        self.socket(toA).deliver(b"rtp A", PHONE_A)
        stats = self.relay.stats("call-1")
        assert stats is not None
        self.assertEqual(stats.dropped, 1)

    def test_counters(self) -> None:
        """Packets and bytes are counted per direction, RTP and RTCP together."""
        toB, toA = self.call()
        self.socket(toA).deliver(b"12345", PHONE_A)
        self.socket(toA).deliver(b"123", PHONE_A)
        self.socket(toA + 1).deliver(b"1234567", ("10.0.0.1", 49171))
        self.socket(toB).deliver(b"12", PHONE_B)
        self.assertEqual(self.relay.stats("call-1"), MediaStats(3, 15, 1, 2, 0))
        self.assertIsNone(self.relay.stats("other"))

    def test_ipv6(self) -> None:
        """A relay on an IPv6 address writes IN IP6 and forwards between IPv6 peers."""
        relay = MediaRelay(self.reactor, self.clock, "[::1]", self.pool)
        aSide, bSide = ("2001:db8::a", 49170), ("2001:db8::b", 6000)
        toB = parseSDP(relay.offer("v6", "A", phone(*aSide, ip="IP6"), lambda: None))
        toA = parseSDP(relay.answer("v6", "B", phone(*bSide, ip="IP6")))
        connection = toB.connection
        assert connection is not None
        self.assertEqual((connection.addrtype, connection.address), ("IP6", "::1"))
        self.socket(toA.media[0].port).deliver(b"rtp A", aSide)
        self.assertEqual(self.socket(toB.media[0].port).written, [(b"rtp A", bSide)])
        self.assertEqual(self.socket(toA.media[0].port).interface, "::1")
        relay.close()


STRANGER: Address = ("198.51.100.66", 1234)  # nobody of the call


class CountingClock(Clock):
    """A `Clock` that counts how often it is read, to show what the per-packet path costs."""

    reads = 0

    def seconds(self) -> float:
        self.reads += 1
        return super().seconds()


class StrictLatchingTests(RelayTestCase):
    def stats(self) -> MediaStats:
        stats = self.relay.stats("call-1")
        assert stats is not None
        return stats

    def test_strangerCannotLatch(self) -> None:
        """Before A latches, a stranger's packets are refused: they reach nobody and move nothing."""
        toB, toA = self.call()
        self.socket(toA).deliver(b"stranger", STRANGER)
        self.socket(toB).deliver(b"rtp B", PHONE_B)
        self.assertEqual(self.socket(toB).written, [])
        self.assertEqual(self.socket(toA).written, [(b"rtp B", PHONE_A)])
        self.socket(toA).deliver(b"rtp A", PHONE_A)
        self.assertEqual(self.socket(toB).written, [(b"rtp A", PHONE_B)])
        self.assertEqual((self.stats().packetsFromA, self.stats().refused), (1, 1))

    def test_hijackReproduction(self) -> None:
        """Issue 15: a stranger's packet to B's port neither reaches A's SDP target nor takes A's audio."""
        toB = self.offer(phone("10.0.0.53", 161)).media[0].port
        toA = self.answer().media[0].port
        self.socket(toB).deliver(b"payload", STRANGER)
        self.assertEqual(self.socket(toA).written, [])
        self.socket(toA).deliver(b"audio of A", ("10.0.0.53", 161))
        self.assertEqual(self.socket(toB).written, [(b"audio of A", PHONE_B)])
        self.assertEqual(self.stats().refused, 1)

    def test_onlySdpPortWithoutSipSource(self) -> None:
        """Without a signalling IP, only the exact address of the SDP latches, not another port of its IP."""
        toB, toA = self.call()
        self.socket(toA).deliver(b"other port", (PHONE_A[0], PHONE_A[1] + 10))
        self.assertEqual(self.socket(toB).written, [])
        self.assertEqual(self.stats().refused, 1)

    def test_sipSourceAnyPort(self) -> None:
        """With A's signalling IP, a packet from any port of it latches (a NAT picks the port)."""
        toB, toA = self.call(aSource="203.0.113.5")
        self.socket(toA).deliver(b"rtp A", ("203.0.113.5", 61000))
        self.socket(toB).deliver(b"rtp B", PHONE_B)
        self.assertEqual(self.socket(toA).written, [(b"rtp B", ("203.0.113.5", 61000))])

    def test_relatchAfterSilence(self) -> None:
        """Another allowed source takes over only once the latched one has been silent for relatchAfter."""
        toB, toA = self.call(aSource=NAT_A[0])
        moved: Address = (NAT_A[0], NAT_A[1] + 1000)  # the NAT gave A a new port
        self.socket(toA).deliver(b"old", NAT_A)
        self.socket(toA).deliver(b"new 1", moved)
        self.clock.advance(1.5)
        self.socket(toA).deliver(b"old again", NAT_A)
        self.clock.advance(1.5)
        self.socket(toA).deliver(b"new 2", moved)  # the old one spoke 1.5 s ago: not yet
        self.clock.advance(1.9)
        self.socket(toA).deliver(b"new 3", moved)
        self.clock.advance(0.1)
        self.socket(toA).deliver(b"new 4", moved)  # 2 s of silence since new 2 saw it: relatch
        self.socket(toA).deliver(b"old late", NAT_A)
        self.socket(toB).deliver(b"rtp B", PHONE_B)
        self.assertEqual([data for data, _ in self.socket(toB).written], [b"old", b"old again", b"new 4"])
        self.assertEqual(self.socket(toA).written, [(b"rtp B", moved)])
        self.assertEqual(self.stats().refused, 4)

    def test_relatchConfigurable(self) -> None:
        """relatchAfter sets the silence needed; zero relatches at the second packet of an allowed source."""
        self.relay = MediaRelay(self.reactor, self.clock, US, self.pool, relatchAfter=0)
        toB, toA = self.call(aSource=NAT_A[0])
        moved: Address = (NAT_A[0], 5)
        self.socket(toA).deliver(b"old", NAT_A)
        self.socket(toA).deliver(b"new 1", moved)
        self.socket(toA).deliver(b"new 2", moved)
        self.assertEqual([data for data, _ in self.socket(toB).written], [b"old", b"new 2"])

    def test_neverRelatchToStranger(self) -> None:
        """However long the latched source is silent, a stranger never takes its place."""
        toB, toA = self.call(aSource=NAT_A[0])
        self.socket(toA).deliver(b"rtp A", NAT_A)
        for _ in range(100):
            self.clock.advance(1)
            self.socket(toA).deliver(b"stranger", STRANGER)
        self.socket(toB).deliver(b"rtp B", PHONE_B)
        self.assertEqual(self.socket(toA).written, [(b"rtp B", NAT_A)])
        self.assertEqual(self.socket(toB).written, [(b"rtp A", PHONE_B)])

    def test_refusedKeepsNoCallAlive(self) -> None:
        """A stranger's stream does not count as media: the silent call still times out."""
        toB, toA = self.call()
        for _ in range(31):
            self.socket(toA).deliver(b"stranger", STRANGER)
            self.socket(toB).deliver(b"stranger", STRANGER)
            self.clock.advance(1)
        self.assertEqual(self.timedOut, ["call-1"])

    def test_newSipSourceDropsLatch(self) -> None:
        """A latch to a source that the new signalling IP no longer allows goes; the new one latches."""
        toB, toA = self.call(aSource=NAT_A[0])
        self.socket(toA).deliver(b"old", NAT_A)
        self.offer(sipSource="203.0.113.99")
        self.socket(toA).deliver(b"old again", NAT_A)
        self.socket(toA).deliver(b"new", ("203.0.113.99", 40000))
        self.assertEqual([data for data, _ in self.socket(toB).written], [b"old", b"new"])

    def test_ipv6Canonical(self) -> None:
        """An IPv6 SDP address written in another form still matches the packets' source."""
        relay = MediaRelay(self.reactor, self.clock, "::1", self.pool)
        toB = parseSDP(relay.offer("v6", "A", phone("2001:DB8:0::A", 4000, ip="IP6"), lambda: None))
        toA = parseSDP(relay.answer("v6", "B", phone("2001:db8::b", 6000, ip="IP6")))
        self.socket(toA.media[0].port).deliver(b"rtp A", ("2001:db8::a", 4000))
        self.assertEqual(self.socket(toB.media[0].port).written, [(b"rtp A", ("2001:db8::b", 6000))])
        relay.close()

    def test_latchedPathReadsNoClock(self) -> None:
        """Packets from the latched source, and from strangers, never read the clock."""
        self.clock = CountingClock()
        self.relay = MediaRelay(self.reactor, self.clock, US, self.pool)
        toB, toA = self.call()
        reads = self.clock.reads
        for _ in range(1000):
            self.socket(toA).deliver(b"rtp A", PHONE_A)
            self.socket(toB).deliver(b"rtp B", PHONE_B)
            self.socket(toA).deliver(b"stranger", STRANGER)
        self.assertEqual(self.clock.reads, reads)
        self.assertEqual(len(self.socket(toB).written), 1000)


class RefusedSDPTests(RelayTestCase):
    def setUp(self) -> None:
        super().setUp()
        forbidden = IPSet(["127.0.0.1/32", "224.0.0.0/4", "0.0.0.0/8", "::/128", "ff00::/8"])
        self.relay = MediaRelay(self.reactor, self.clock, US, self.pool, forbidden=forbidden, maxStreams=3)

    def assertRefused(self, body: bytes) -> None:
        self.assertRaises(NotAcceptableError, self.relay.offer, "call-1", "A", body, self.onTimeout)
        self.assertEqual((self.relay.activeSessions(), len(self.reactor.open)), (0, 0))

    def test_forbiddenTargets(self) -> None:
        """An SDP naming our own address, a multicast group or 0.x.x.x is refused, and binds nothing."""
        for host in ("127.0.0.1", "239.1.2.3", "0.1.2.3"):
            self.assertRefused(phone(host, 4000))

    def test_forbiddenRtcp(self) -> None:
        """An a=rtcp naming a forbidden address is refused too."""
        self.assertRefused(phone(*PHONE_A, "a=rtcp:53020 IN IP4 127.0.0.1"))

    def test_forbiddenInReoffer(self) -> None:
        """A re-offer naming a forbidden address fails and leaves the call's media as it was."""
        toB, toA = self.call()
        self.assertRaises(
            NotAcceptableError, self.relay.offer, "call-1", "A", phone("224.0.0.1", 4000), self.onTimeout
        )
        self.socket(toB).deliver(b"rtp B", PHONE_B)
        self.assertEqual(self.socket(toA).written, [(b"rtp B", PHONE_A)])

    def test_forbiddenIPv4Mapped(self) -> None:
        """An IPv4-mapped IPv6 address (::ffff:127.0.0.1) is judged as the IPv4 address it reaches."""
        self.assertRefused(phone("::ffff:127.0.0.1", 4000, ip="IP6"))
        self.assertRefused(phone(*PHONE_A, "a=rtcp:53020 IN IP6 ::ffff:224.0.0.1"))

    def test_otherLoopbackAllowed(self) -> None:
        """Only the listed networks are refused: another loopback address (the demo phones) is fine."""
        toB = self.offer(phone("127.0.0.4", 4000)).media[0].port
        self.assertIn(toB, self.reactor.open)

    def test_holdAddressAllowed(self) -> None:
        """c=0.0.0.0 is hold (RFC 2543), not a target, even with 0.0.0.0/8 forbidden."""
        self.offer(phone("0.0.0.0", 4000))
        self.assertEqual(self.relay.activeSessions(), 1)

    def test_maxStreams(self) -> None:
        """More m= lines than maxStreams are refused before anything is bound; as many are fine."""
        extra = sdp(*[f"m=audio {5000 + 2 * i} RTP/AVP 0" for i in range(2)])
        self.assertRefused(phone(*PHONE_A, video=6000) + extra)
        self.assertEqual(len(self.offer(phone(*PHONE_A) + extra).media), 3)


class ReofferTests(RelayTestCase):
    def test_keepsPorts(self) -> None:
        """A re-INVITE from A gets the same relay ports and moves A's address."""
        toB, toA = self.call()
        again = self.offer(phone("10.0.0.2", 50000))
        self.assertEqual(again.media[0].port, toB)
        self.assertEqual(self.answer().media[0].port, toA)
        self.assertEqual(len(self.reactor.open), 4)
        self.socket(toB).deliver(b"rtp B", PHONE_B)
        self.assertEqual(self.socket(toA).written, [(b"rtp B", ("10.0.0.2", 50000))])

    def test_fromB(self) -> None:
        """A re-INVITE from B is told the ports facing A's side, where A already sends."""
        toB, toA = self.call()
        self.assertEqual(self.offer(ANSWER, side="B").media[0].port, toA)
        self.assertEqual(self.answer(OFFER, side="A").media[0].port, toB)

    def test_sameAddressKeepsLatch(self) -> None:
        """A session refresh repeating A's private address keeps the NAT latch."""
        toB, toA = self.call(aSource=NAT_A[0])
        self.socket(toA).deliver(b"rtp A", NAT_A)
        self.offer(sipSource=NAT_A[0])
        self.answer()
        self.socket(toB).deliver(b"rtp B", PHONE_B)
        self.assertEqual(self.socket(toA).written, [(b"rtp B", NAT_A)])

    def test_movedAddressRelatches(self) -> None:
        """When A's SDP address changes (a transfer), the old latch goes and the next source latches."""
        toB, toA = self.call(aSource=NAT_A[0])
        self.socket(toA).deliver(b"old", NAT_A)
        self.offer(phone("10.0.0.7", 30000), sipSource="198.51.100.7")
        self.answer()
        self.socket(toB).deliver(b"one", PHONE_B)
        self.socket(toA).deliver(b"new", ("198.51.100.7", 30000))
        self.socket(toB).deliver(b"two", PHONE_B)
        self.assertEqual(
            self.socket(toA).written, [(b"one", ("10.0.0.7", 30000)), (b"two", ("198.51.100.7", 30000))]
        )

    def test_addsStream(self) -> None:
        """A re-INVITE that adds video binds ports for it only."""
        toB, _ = self.call()
        again = self.offer(phone(*PHONE_A, video=51372))
        self.assertEqual(again.media[0].port, toB)
        self.assertIn(again.media[1].port, self.reactor.open)
        self.assertEqual(len(self.reactor.open), 8)

    def test_disabledStreamStopsSending(self) -> None:
        """A stream set to port 0 in a re-INVITE gets nothing sent towards that side any more."""
        toB, toA = self.call()
        self.offer(phone(*PHONE_A, video=0).replace(b"m=audio 49170", b"m=audio 0"))
        self.socket(toB).deliver(b"rtp B", PHONE_B)
        self.assertEqual(self.socket(toA).written, [])


class TimeoutTests(RelayTestCase):
    def test_firesOnce(self) -> None:
        """With no RTP for 30 seconds the call's onTimeout runs, and only once."""
        self.call()
        self.clock.advance(29)
        self.assertEqual(self.timedOut, [])
        self.clock.advance(1)
        self.assertEqual(self.timedOut, ["call-1"])
        self.clock.pump([1] * 100)
        self.assertEqual(self.timedOut, ["call-1"])
        self.assertEqual(self.relay.timeouts, 1)

    def test_rtpKeepsAlive(self) -> None:
        """RTP from either side defers the timeout; silence after it still times out."""
        toB, toA = self.call()
        for second in range(1, 121):
            self.clock.advance(1)
            if second % 40 == 0:
                self.socket(toA).deliver(b"rtp A", PHONE_A)
            elif second % 20 == 0:
                self.socket(toB).deliver(b"rtp B", PHONE_B)
        self.assertEqual(self.timedOut, [])
        self.clock.pump([1] * 29)
        self.assertEqual(self.timedOut, [])
        self.clock.pump([1] * 2)
        self.assertEqual(self.timedOut, ["call-1"])

    def test_rtcpDoesNotKeepAlive(self) -> None:
        """RTCP alone is no media: the call still times out."""
        toB, _ = self.call()
        for _ in range(30):
            self.socket(toB + 1).deliver(b"rtcp", ("192.0.2.20", 6001))
            self.clock.advance(1)
        self.assertEqual(self.timedOut, ["call-1"])

    def test_holdPauses(self) -> None:
        """While A holds B (sendonly), silence does not time the call out; after resuming it does."""
        self.call()
        self.clock.advance(20)
        self.offer(phone(*PHONE_A, "a=sendonly"))
        self.answer(phone(*PHONE_B, "a=recvonly"))
        self.clock.pump([1] * 3600)
        self.assertEqual(self.timedOut, [])
        self.offer()
        self.answer()
        self.clock.pump([1] * 29)
        self.assertEqual(self.timedOut, [])
        self.clock.pump([1] * 2)
        self.assertEqual(self.timedOut, ["call-1"])

    def test_inactiveAnswerHolds(self) -> None:
        """An answer with inactive puts the call on hold too, as does the RFC 2543 c=0.0.0.0."""
        self.call()
        self.answer(phone(*PHONE_B, "a=inactive"))
        self.clock.pump([1] * 100)
        self.offer(phone("0.0.0.0", 49170), callId="call-2")
        self.clock.pump([1] * 100)
        self.assertEqual(self.timedOut, [])

    def test_holdTimeout(self) -> None:
        """With a hold timeout, a silent call on hold times out after that instead."""
        self.relay = MediaRelay(self.reactor, self.clock, US, self.pool, timeout=30, holdTimeout=120)
        self.call()
        self.offer(phone(*PHONE_A, "a=inactive"))
        self.clock.pump([1] * 119)
        self.assertEqual(self.timedOut, [])
        self.clock.pump([1] * 2)
        self.assertEqual(self.timedOut, ["call-1"])

    def test_signallingRestartsTheClock(self) -> None:
        """A re-INVITE counts as life: the timeout runs from the last offer or answer."""
        self.call()
        self.clock.pump([1] * 25)
        self.offer()
        self.clock.pump([1] * 25)
        self.assertEqual(self.timedOut, [])
        self.clock.pump([1] * 6)
        self.assertEqual(self.timedOut, ["call-1"])

    def test_onlySilentCalls(self) -> None:
        """Only the silent call times out; the one with media goes on."""
        self.call("quiet")
        _, toA = self.call("busy")
        for _ in range(40):
            self.socket(toA).deliver(b"rtp", PHONE_A)
            self.clock.advance(1)
        self.assertEqual(self.timedOut, ["quiet"])

    def test_oneTimer(self) -> None:
        """One periodic check serves every call, and none is left when no call is."""
        self.assertEqual(self.clock.getDelayedCalls(), [])
        for index in range(3):
            self.call(f"call-{index}")
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        for index in range(3):
            self.relay.delete(f"call-{index}")
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.call()
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)

    def test_handlerErrorLogged(self) -> None:
        """A failing onTimeout is logged, and the check goes on for the other calls."""

        def broken() -> None:
            raise RuntimeError("boom")

        self.relay.offer("broken", "A", OFFER, broken)
        self.call("fine")
        self.clock.pump([1] * 31)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(self.timedOut, ["fine"])
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)

    def test_deleteFromHandler(self) -> None:
        """onTimeout may delete the call at once (send BYE, release media): the check copes."""
        self.relay.offer("call-1", "A", OFFER, lambda: self.relay.delete("call-1"))
        self.clock.pump([1] * 31)
        self.assertEqual(self.relay.activeSessions(), 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class PortReuseTests(RelayTestCase):
    def test_delete(self) -> None:
        """delete closes every socket of the call and returns its pairs; unknown calls are fine."""
        self.offer(phone(*PHONE_A, video=51372))
        self.answer(phone(*PHONE_B, video=6002))
        self.assertEqual(self.relay.activeSessions(), 1)
        self.assertIsNone(self.relay.delete("call-1"))  # type: ignore[func-returns-value]
        self.assertEqual((self.relay.activeSessions(), len(self.reactor.open)), (0, 0))
        self.assertEqual(self.pool.available, self.pool.capacity)
        self.assertIsNone(self.relay.delete("call-1"))  # type: ignore[func-returns-value]
        self.assertIsNone(self.relay.delete("never"))  # type: ignore[func-returns-value]

    def test_thousandCalls(self) -> None:
        """After 1,000 offer/answer/delete cycles the pool is full and no socket is left open."""
        self.pool = PortPool(20000, 20039)
        self.relay = MediaRelay(self.reactor, self.clock, US, self.pool)
        seen: set[int] = set()
        for index in range(1000):
            callId = f"call-{index}"
            toB, toA = self.call(callId)
            seen.update((toB, toA))
            self.socket(toA).deliver(b"rtp", PHONE_A)
            self.relay.delete(callId)
        self.assertEqual(seen, set(range(20000, 20040, 2)))
        self.assertEqual((self.pool.available, self.pool.inUse), (self.pool.capacity, 0))
        self.assertEqual((self.reactor.open, self.relay.activeSessions()), ({}, 0))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_releaseAfterClose(self) -> None:
        """A pair returns to the pool only once both its sockets have really closed."""
        self.reactor.closing = []
        self.call()
        self.relay.delete("call-1")
        self.assertEqual((self.relay.activeSessions(), self.pool.inUse), (0, 2))
        for closed in self.reactor.closing:
            closed.callback(None)
        self.assertEqual(self.pool.inUse, 0)

    def test_bindFailureSkips(self) -> None:
        """A pair whose RTP or RTCP port is taken by another program is stepped over, and kept in the pool."""
        self.pool = PortPool(20000, 20007)  # four pairs, two of which will not bind
        self.relay = MediaRelay(self.reactor, self.clock, US, self.pool)
        self.reactor.busy = {20000, 20003}
        toB, toA = self.call()
        self.assertEqual({toA, toB}, {20004, 20006})
        self.assertEqual(self.reactor.open.keys(), {20004, 20005, 20006, 20007})
        self.assertEqual(self.pool.inUse, 2)
        self.relay.delete("call-1")
        self.assertEqual(self.pool.available, self.pool.capacity)

    def test_tooManyBusy(self) -> None:
        """When pair after pair will not bind, the offer fails clearly and holds nothing."""
        self.reactor.busy = set(range(20000, 20100, 2))
        error = self.assertRaises(
            PortPoolExhaustedError, self.relay.offer, "call-1", "A", OFFER, self.onTimeout
        )
        self.assertIn("would not bind", str(error))
        self.assertEqual((self.relay.activeSessions(), len(self.reactor.open)), (0, 0))
        self.assertEqual(self.pool.available, self.pool.capacity)

    def test_exhausted(self) -> None:
        """With the pool empty, a new call fails with PortPoolExhaustedError and leaves others alone."""
        self.pool = PortPool(20000, 20005)
        self.relay = MediaRelay(self.reactor, self.clock, US, self.pool)
        self.call("first")
        self.assertRaises(PortPoolExhaustedError, self.relay.offer, "second", "A", OFFER, self.onTimeout)
        self.assertEqual(self.relay.activeSessions(), 1)
        self.assertEqual((self.pool.inUse, len(self.reactor.open)), (2, 4))
        self.relay.delete("first")
        self.assertEqual(self.pool.available, self.pool.capacity)

    def test_close(self) -> None:
        """close releases every call and stops the check, for service shutdown."""
        self.call("one")
        self.call("two")
        self.relay.close()
        self.assertEqual((self.relay.activeSessions(), self.reactor.open), (0, {}))
        self.assertEqual(self.pool.available, self.pool.capacity)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class SparePairTests(RelayTestCase):
    """With ``spare``, an ended call's pairs stay bound and go to the next calls that get their ports."""

    def setUp(self) -> None:
        super().setUp()
        self.pool = PortPool(20000, 20003)  # two pairs, both of every call: the next call reuses both
        self.relay = MediaRelay(self.reactor, self.clock, US, self.pool, spare=2)

    def test_pairReturnsAndIsReused(self) -> None:
        """An ended call's pairs go back to the pool, stay bound, and serve the next call: no new bind."""
        toB, toA = self.call("old", aSource=NAT_A[0])
        binds = len(self.reactor.binds)
        self.relay.delete("old")
        self.assertEqual((self.pool.inUse, self.pool.available, self.relay.idlePairs), (0, 2, 2))
        self.assertEqual(len(self.reactor.open), 4)
        again = self.call("new")
        self.assertEqual(set(again), {toB, toA})
        self.assertEqual((len(self.reactor.binds), self.relay.idlePairs, self.pool.inUse), (binds, 0, 2))

    def test_reusedPairCarriesNothing(self) -> None:
        """A reused pair has no peer, latch, counter or quiet time of the old call."""
        toB, toA = self.call("old", aSource=NAT_A[0])
        self.socket(toA).deliver(b"old A", NAT_A)  # A latched to its NAT
        self.socket(toB).deliver(b"old B", PHONE_B)
        self.socket(toA).deliver(b"stranger", STRANGER)
        self.relay.delete("old")
        newA, newB = ("10.9.9.9", 7000), ("192.0.2.99", 8000)
        toB = self.offer(phone(*newA), callId="new").media[0].port
        toA = self.answer(phone(*newB), callId="new").media[0].port
        self.assertEqual(self.relay.stats("new"), MediaStats(0, 0, 0, 0, 0, 0))
        self.socket(toA).deliver(b"old peer", NAT_A)  # the old latch is gone: refused
        self.socket(toB).deliver(b"old peer", PHONE_B)
        self.socket(toA).deliver(b"new A", newA)
        self.socket(toB).deliver(b"new B", newB)
        self.assertEqual(self.socket(toB).written[-1:], [(b"new A", newB)])
        self.assertEqual(self.socket(toA).written[-1:], [(b"new B", newA)])
        self.assertEqual(self.relay.stats("new"), MediaStats(1, 5, 1, 5, 0, 2))

    def test_reusedPairCarriesNoQuietTime(self) -> None:
        """The old call's relatch timer (armed by another allowed source) does not let an allowed
        source of the new call take over a latched one that just spoke."""
        _, toA = self.call("old", aSource=NAT_A[0])
        self.socket(toA).deliver(b"old A", NAT_A)  # A latched to its NAT
        self.socket(toA).deliver(b"moved", (NAT_A[0], NAT_A[1] + 1))  # arms the quiet timer
        self.relay.delete("old")
        self.clock.advance(self.relay.relatchAfter + 1)
        newX: Address = ("10.9.9.9", 7000)
        toB = self.offer(phone(*newX), callId="new", sipSource=newX[0]).media[0].port
        toA = self.answer(phone(*PHONE_B), callId="new").media[0].port
        self.socket(toB).written.clear()  # what the old call sent through the same socket
        self.socket(toA).deliver(b"X", newX)  # latches X
        self.socket(toA).deliver(b"Y", (newX[0], 7002))  # allowed (X's signalling IP), X not silent
        self.assertEqual([data for data, _ in self.socket(toB).written], [b"X"])
        stats = self.relay.stats("new")
        assert stats is not None
        self.assertEqual((stats.packetsFromA, stats.refused), (1, 1))

    def test_resetForgetsQuietTime(self) -> None:
        """A socket's reset clears its relatch timer with the rest of the old call."""
        _, toA = self.call("old", aSource=NAT_A[0])
        relaySocket = self.socket(toA).protocol
        assert isinstance(relaySocket, RelaySocket)
        relaySocket.datagramReceived(b"old A", NAT_A)
        self.clock.advance(1)
        relaySocket.datagramReceived(b"moved", (NAT_A[0], NAT_A[1] + 1))
        self.assertEqual((relaySocket._quietCount, relaySocket._quietSince), (1, 1.0))
        relaySocket.reset()
        self.assertEqual((relaySocket._quietCount, relaySocket._quietSince), (-1, 0.0))

    def test_idlePairNotRead(self) -> None:
        """An idle pair's sockets are not read; what queued on them is thrown away when a call
        takes them again, so a packet from an address the new call allows never latches."""
        toB, toA = self.call("old")
        self.relay.delete("old")
        idle = [self.socket(port) for port in (toA, toA + 1, toB, toB + 1)]
        self.assertEqual([port.reading for port in idle], [False] * 4)
        for port in idle:
            port.deliver(b"stale", PHONE_A)
            port.deliver(b"stale", PHONE_B)
        self.assertEqual([len(port.queued) for port in idle], [2] * 4)
        self.call("new")  # the same addresses: the stale packets came from allowed sources
        self.assertEqual([(port.reading, port.queued) for port in idle], [(True, [])] * 4)
        self.assertEqual(self.relay.stats("new"), MediaStats(0, 0, 0, 0, 0, 0))
        self.assertEqual([port.written for port in idle], [[]] * 4)

    def test_strayToIdlePairReachesNobody(self) -> None:
        """A late packet of an ended call, on its idle pair, goes nowhere and counts in no later call."""
        toB, toA = self.call("old")
        self.relay.delete("old")
        self.socket(toA).deliver(b"late A", PHONE_A)
        self.socket(toB).deliver(b"late B", PHONE_B)
        self.assertEqual([len(self.socket(port).written) for port in (toA, toB)], [0, 0])
        self.call("new")
        self.assertEqual(self.relay.stats("new"), MediaStats(0, 0, 0, 0, 0, 0))

    def test_reusedPairTimesOut(self) -> None:
        """The media timeout of a call on reused pairs runs from its own start, not the old call's counts."""
        _, toA = self.call("old")
        for _ in range(5):
            self.socket(toA).deliver(b"rtp", PHONE_A)
        self.relay.delete("old")
        self.call("new")
        self.clock.pump([1] * 29)
        self.assertEqual(self.timedOut, [])
        self.clock.advance(1)
        self.assertEqual(self.timedOut, ["new"])

    def test_spareBounded(self) -> None:
        """No more than ``spare`` idle pairs stay bound; the others close and return once closed."""
        self.relay.spare = 1
        self.call()
        self.relay.delete("call-1")
        self.assertEqual((self.relay.idlePairs, len(self.reactor.open), self.pool.inUse), (1, 2, 0))

    def test_closeClosesIdle(self) -> None:
        """close (service shutdown) closes the idle pairs too, and leaves the pool whole."""
        self.call()
        self.relay.delete("call-1")
        self.relay.close()
        self.assertEqual((self.reactor.open, self.relay.idlePairs), ({}, 0))
        self.assertEqual((self.pool.available, self.pool.inUse), (self.pool.capacity, 0))

    def test_thousandCalls(self) -> None:
        """1,000 calls over 20 pairs bind 40 sockets in all; ports go out at random and all come back."""
        self.pool = PortPool(20000, 20039)
        self.relay = MediaRelay(self.reactor, self.clock, US, self.pool, spare=self.pool.capacity)
        seen: set[int] = set()
        for index in range(1000):
            callId = f"call-{index}"
            toB, toA = self.call(callId)
            seen.update((toB, toA))
            self.socket(toA).deliver(b"rtp", PHONE_A)
            self.assertEqual(self.socket(toB).written[-1], (b"rtp", PHONE_B))
            self.relay.delete(callId)
        self.assertEqual(seen, set(range(20000, 20040, 2)))
        self.assertEqual(len(self.reactor.binds), 40)
        self.assertEqual((self.pool.available, self.pool.inUse), (self.pool.capacity, 0))
        self.assertEqual((len(self.reactor.open), self.relay.activeSessions()), (40, 0))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_quarantineKept(self) -> None:
        """A reused pair still waits out the pool's quarantine: the next call gets other free pairs first."""
        self.pool = PortPool(20000, 20079)  # 40 pairs, a quarantine of 10
        self.relay = MediaRelay(self.reactor, self.clock, US, self.pool, spare=self.pool.capacity)
        toB, toA = self.call("old")
        self.relay.delete("old")
        for index in range(4):
            self.assertFalse({toB, toA} & set(self.call(f"new-{index}")))

    def test_sparePairs(self) -> None:
        """The service keeps the whole range bound if descriptors allow, else pairs for half of them."""
        limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        self.assertEqual(sparePairs(10), 10)
        self.assertEqual(sparePairs(10**9), 10**9 if limit == resource.RLIM_INFINITY else limit // 4)


class DescriptorLimitedReactor(FakeUDPReactor):
    """A process that may hold ``limit`` sockets: binding one more fails with EMFILE."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def listenUDP(
        self, port: int, protocol: AbstractDatagramProtocol, interface: str = "", maxPacketSize: int = 8192
    ) -> FakeUDPPort:
        if len(self.open) >= self.limit:
            raise CannotListenError(interface, port, OSError(errno.EMFILE, "Too many open files"))
        return super().listenUDP(port, protocol, interface, maxPacketSize)


class DescriptorShortageTests(RelayTestCase):
    """Idle pairs give their descriptors up to active calls; a shortage is named as such."""

    def setUp(self) -> None:
        super().setUp()
        self.reactor = DescriptorLimitedReactor(8)
        self.pool = PortPool(20000, 20015)  # eight pairs; a released pair waits out a quarantine of 2
        self.relay = MediaRelay(self.reactor, self.clock, US, self.pool, spare=8)

    def test_idlePairClosedForActiveCall(self) -> None:
        """Out of descriptors, the relay closes idle pairs and binds the active call's sockets;
        the log says so once, naming the open-file limit."""
        events = LogRecorder()
        self.patch(PairBinder, "log", events.log)
        self.call("old")
        self.relay.delete("old")
        self.call("one")  # the old pairs are in quarantine: four more sockets, eight in all
        self.assertEqual((len(self.reactor.open), self.relay.idlePairs), (8, 2))
        toB, toA = self.call("two")
        self.assertEqual((len(self.reactor.open), self.relay.idlePairs), (8, 0))
        self.assertEqual(self.relay.descriptorShortages, 2)
        [event] = events.events
        self.assertIn("out of file descriptors", event["log_format"])
        self.assertEqual(event["limit"], resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        self.socket(toA).deliver(b"rtp", PHONE_A)
        self.assertEqual(self.socket(toB).written, [(b"rtp", PHONE_B)])
        self.assertEqual(self.pool.inUse, 4)

    def test_shortageNamed(self) -> None:
        """With no idle pair left to close, the offer fails (503) naming the descriptor limit, not
        another program, and holds no port."""
        self.call("one")
        self.call("two")
        error = self.assertRaises(
            PortPoolExhaustedError, self.relay.offer, "three", "A", OFFER, self.onTimeout
        )
        self.assertIn("out of file descriptors (EMFILE", str(error))
        self.assertNotIn("another program", str(error))
        self.assertEqual((self.pool.inUse, len(self.reactor.open), self.relay.activeSessions()), (4, 8, 2))


class WarmUpTests(RelayTestCase):
    """``warmUp`` binds idle pairs for the pool's free ports before any call; calls then reuse them."""

    def setUp(self) -> None:
        super().setUp()
        self.asked: list[int] = []
        self.pool = PortPool(20000, 20079, randbelow=self.recorded)  # 40 pairs

    def recorded(self, n: int) -> int:
        """The pool's pick: the first of ``n``; noted, so that a test sees whether the pool drew."""
        self.asked.append(n)
        return 0

    def relayWith(self, spare: int) -> MediaRelay:
        self.relay = MediaRelay(self.reactor, self.clock, US, self.pool, spare=spare)
        return self.relay

    def test_bindsSpare(self) -> None:
        """warmUp binds ``spare`` pairs, both sockets each, none read, and says how many; the pool
        hands out nothing for it (its draws stay as random as ever)."""
        self.assertEqual(self.relayWith(12).warmUp(), 12)
        self.assertEqual((self.relay.idlePairs, len(self.reactor.open)), (12, 24))
        self.assertEqual([port.reading for port in self.reactor.open.values()], [False] * 24)
        rtp = {port for port in self.reactor.open if port % 2 == 0}
        self.assertEqual(set(self.reactor.open), rtp | {port + 1 for port in rtp})
        self.assertEqual((self.pool.inUse, self.pool.available, self.asked), (0, 40, []))
        self.assertEqual((self.relay.activeSessions(), self.clock.getDelayedCalls()), (0, []))

    def test_wholeRange(self) -> None:
        """With ``spare`` above the range, warmUp binds every pair once and stops."""
        self.assertEqual(self.relayWith(100).warmUp(), 40)
        self.assertEqual((self.relay.idlePairs, len(self.reactor.binds)), (40, 80))
        self.assertEqual(self.relay.warmUp(), 0)  # again: every pair is bound already

    def test_callsReuseBoundPairs(self) -> None:
        """After warmUp over the whole range, no call binds a socket, and the ports still go out at
        random over the range."""
        self.pool = PortPool(20000, 20079)  # drawn by secrets
        self.assertEqual(self.relayWith(40).warmUp(), 40)
        binds = len(self.reactor.binds)
        seen: set[int] = set()
        for turn in range(40):
            calls = [f"call-{turn}-{index}" for index in range(5)]
            for callId in calls:
                toB, toA = self.call(callId)
                seen.update((toB, toA))
                self.socket(toA).deliver(b"rtp", PHONE_A)
                self.assertEqual(self.socket(toB).written[-1], (b"rtp", PHONE_B))
            for callId in calls:
                self.relay.delete(callId)
        self.assertEqual(len(self.reactor.binds), binds)
        self.assertEqual((self.relay.idlePairs, len(self.reactor.open)), (40, 80))
        self.assertGreater(len(seen), 30)

    def test_squatterSteppedOver(self) -> None:
        """A port another program holds is stepped over; the next free one is bound instead."""
        self.reactor.busy = {20000}
        self.assertEqual(self.relayWith(4).warmUp(), 4)
        self.assertNotIn(20000, self.reactor.open)
        self.assertEqual(len(self.reactor.open), 8)
        self.assertEqual((self.pool.inUse, self.pool.available), (0, 40))

    def test_rtcpSquatterClosesRTP(self) -> None:
        """A pair whose RTCP port another program holds leaves no RTP socket bound behind."""
        self.reactor.busy = {20001}
        self.assertEqual(self.relayWith(2).warmUp(), 2)
        self.assertNotIn(20000, self.reactor.open)
        self.assertEqual(len(self.reactor.open), 4)

    def test_everyPortHeld(self) -> None:
        """With every port held by others, warmUp binds nothing, leaves nothing open, and ends."""
        self.reactor.busy = set(range(20000, 20080, 2))
        self.assertEqual(self.relayWith(4).warmUp(), 0)
        self.assertEqual((self.reactor.open, self.relay.idlePairs), ({}, 0))

    def test_outOfDescriptorsStops(self) -> None:
        """When a bind runs short of descriptors, the binder closes an idle pair for it and warmUp
        stops there: the descriptors stay full, not overrun, and its count is what stays bound."""
        self.reactor = DescriptorLimitedReactor(8)
        bound = self.relayWith(20).warmUp()
        self.assertEqual(self.relay.descriptorShortages, 1)
        self.assertEqual((len(self.reactor.open), self.relay.idlePairs, bound), (8, 4, 4))
        self.assertEqual([port.reading for port in self.reactor.open.values()], [False] * 8)
        self.assertEqual((self.pool.inUse, self.pool.available), (0, 40))

    def test_noDescriptorAtAll(self) -> None:
        """With no descriptor for a pair and nothing idle to close, warmUp binds nothing and does
        not raise: the service still starts."""
        for limit in (0, 1):
            self.reactor = DescriptorLimitedReactor(limit)
            self.assertEqual(self.relayWith(20).warmUp(), 0)
            self.assertEqual((self.reactor.open, self.relay.idlePairs), ({}, 0))

    def test_spareBoundsPairsInUseToo(self) -> None:
        """``spare`` bounds the relay's pairs idle and in use together: while other calls hold
        pairs, an ended call's pairs beyond it are closed, not kept idle."""
        self.relayWith(3)
        self.call("held")  # two pairs in use
        self.call("ended")
        self.relay.delete("ended")
        self.assertEqual((self.relay.idlePairs, self.pool.inUse), (1, 2))
        self.assertEqual(len(self.reactor.open), 6)  # the held call's four sockets, one idle pair

    def test_nothingBoundWarns(self) -> None:
        """A warm-up that can bind no pair at all says so (a media address not this host's)."""
        events: list[dict[str, object]] = []
        observer = cast(ILogObserver, events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        self.reactor.busy = set(range(20000, 20080, 2))
        self.assertEqual(self.relayWith(4).warmUp(), 0)
        self.assertTrue(
            [e for e in events if "no media port pair could be bound" in str(e.get("log_format"))]
        )

    def test_spareZero(self) -> None:
        """Without spare pairs, warmUp binds nothing."""
        self.assertEqual(self.relayWith(0).warmUp(), 0)
        self.assertEqual(self.reactor.binds, [])

    def test_closeAfterWarmUp(self) -> None:
        """close (service shutdown) after warmUp and a call closes every socket and leaves the pool whole."""
        self.relayWith(40).warmUp()
        self.call()
        self.relay.close()
        self.assertEqual((self.reactor.open, self.relay.idlePairs, self.relay.activeSessions()), ({}, 0, 0))
        self.assertEqual([port.open for port in self.reactor.ports], [False] * 80)
        self.assertEqual((self.pool.available, self.pool.inUse), (40, 0))
        self.assertEqual(self.clock.getDelayedCalls(), [])


class CanonicalIPTests(SynchronousTestCase):
    def test_formAndCache(self) -> None:
        """A signalling IP comes back as sockets write sources, and a repeated one is not parsed again."""
        self.assertEqual(canonicalIP("[2001:DB8:0::A]"), "2001:db8::a")
        self.assertIsNone(canonicalIP("sbc.example"))
        hits = canonicalIP.cache_info().hits
        self.assertEqual(canonicalIP("[2001:DB8:0::A]"), "2001:db8::a")
        self.assertEqual(canonicalIP.cache_info().hits, hits + 1)
