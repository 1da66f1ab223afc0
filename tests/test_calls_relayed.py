"""Tests for sbc.calls' media security (issue 15): latching by signalling IP, refused SDP, ports per party.

The calls run through the built-in relay on a fake UDP reactor, as `tests.test_calls.MediaTests` do.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from sbc.calls.media import ownerOf
from sbc.calls.parties import Party, PartyKind
from sbc.media.ng import RtpengineTimeoutError
from sbc.media.ports import PortPool
from sbc.media.relay import MediaRelay
from sbc.media.targets import Networks
from sbc.sip import Request
from sbc.sip.sdp import parseSDP
from sbc.tap import mediaRelay
from tests.calls import ALICE, SDP, TRUNK, CallTestCase, answer, invite, withMedia
from tests.fakes import FakeUDPReactor, RecordingRelay

STRANGER = ("127.0.0.9", 4444)


def body(host: str, *ports: int) -> bytes:
    text = SDP.replace(b"192.0.2.77", host.encode())
    return text.replace(
        b"m=audio 4000 RTP/AVP 0\r\n", b"".join(b"m=audio %d RTP/AVP 0\r\n" % p for p in ports)
    )


class MediaSecurityTests(CallTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.udpReactor = FakeUDPReactor()
        config = self.server.config
        self.relay = MediaRelay(
            self.udpReactor,
            self.clock,
            "127.0.0.1",
            PortPool(30000, 30099),
            timeout=30,
            forbidden=config.media.forbiddenNetworks(config.listeners),
            maxStreams=config.media.maxStreams,
        )
        self.server.calls.relay = self.relay

    def configure(self, **changes: Any) -> None:
        """Change the media settings as ``changes`` say (MediaSettings' field names)."""
        self.server.setConfig(withMedia(self.server.config, **changes))

    def call(self, aSDP: bytes, bSDP: bytes, callId: str = "a-call-1@127.0.0.2") -> Request:
        """Trunk calls alice with ``aSDP``, alice answers with ``bSDP``; returns the B-side INVITE."""
        self.bind()
        self.receive(invite(body=aSDP, callId=callId, branch=f"z9hG4bK{callId}"), TRUNK)
        bInvite = self.requestsTo(ALICE, "INVITE")[-1]
        self.receive(answer(bInvite, 200, body=bSDP, contact="<sip:alice@10.1.1.1>"), ALICE)
        return bInvite

    def test_latchesBySignallingSource(self) -> None:
        """Both sides behind NAT (private SDP) latch to media from their SIP source IPs; a stranger never."""
        bInvite = self.call(body("10.9.9.9", 6000), body("10.1.1.1", 7000))
        toB = parseSDP(bInvite.body).media[0].port  # where alice sends
        toA = parseSDP(self.responsesTo(TRUNK)[-1].body).media[0].port  # where the trunk sends
        facingA, facingB = self.udpReactor.open[toA], self.udpReactor.open[toB]
        facingA.deliver(b"stranger", STRANGER)
        facingB.deliver(b"stranger", STRANGER)
        facingA.deliver(b"latch", (TRUNK[0], 16000))
        facingB.deliver(b"latch", (ALICE[0], 17000))
        facingA.written.clear()
        facingB.written.clear()
        facingA.deliver(b"from trunk", (TRUNK[0], 16000))
        facingB.deliver(b"from alice", (ALICE[0], 17000))
        facingA.deliver(b"stranger", STRANGER)
        self.assertEqual(facingB.written, [(b"from trunk", (ALICE[0], 17000))])
        self.assertEqual(facingA.written, [(b"from alice", (TRUNK[0], 16000))])
        (call,) = {call for call, _ in self.server.calls.index.legs.values()}
        stats = self.relay.stats(call.id)
        assert stats is not None
        self.assertEqual(stats.refused, 3)

    def test_forbiddenAsNetworks(self) -> None:
        """Calls check SDP against the forbidden networks as Networks, built once per configuration
        (not per call or per SDP), and a reload builds them anew."""
        first = self.server.calls.context.forbidden
        self.assertIsInstance(first, Networks)
        self.configure(forbiddenTargets=("10.0.0.0/8",))
        forbidden = self.server.calls.context.forbidden
        self.assertIsInstance(forbidden, Networks)
        assert isinstance(first, Networks) and isinstance(forbidden, Networks)
        inside = ipaddress.ip_address("10.1.2.3")
        self.assertEqual((first.contains(inside), forbidden.contains(inside)), (False, True))

    def test_forbiddenTarget(self) -> None:
        """SDP naming the SBC's own address gets 488 and no call; another loopback address is fine."""
        self.bind()
        self.receive(invite(body=body("127.0.0.1", 6000)), TRUNK)
        self.assertEqual(self.statuses(TRUNK)[-1], 488)
        self.assertEqual(self.requestsTo(ALICE, "INVITE"), [])
        self.assertEqual(self.relay.activeSessions(), 0)
        self.receive(invite(body=body("127.0.0.3", 6000), callId="second", branch="z9hG4bK2"), TRUNK)
        self.assertEqual(len(self.requestsTo(ALICE, "INVITE")), 1)

    def test_reloadReachesServiceRelay(self) -> None:
        """With the relay as the service builds it, a reload that no longer forbids an address (or
        allows more m= lines) lets such a call through: only the call layer checks, per config."""
        self.configure(forbiddenTargets=("self", "10.0.0.0/8"), maxStreams=1)
        relay = mediaRelay(self.clock, self.server.config, udp=self.udpReactor)
        assert isinstance(relay, MediaRelay)
        self.relay = self.server.calls.relay = relay
        self.bind()
        self.receive(invite(body=body("10.9.9.9", 6000)), TRUNK)
        self.receive(invite(body=body("10.8.8.8", 6000, 6002), callId="two", branch="z9hG4bK2"), TRUNK)
        self.assertEqual(self.statuses(TRUNK)[-2:], [488, 488])
        self.configure(forbiddenTargets=("self",), maxStreams=2)
        self.receive(invite(body=body("10.9.9.9", 6000), callId="three", branch="z9hG4bK3"), TRUNK)
        self.receive(invite(body=body("10.8.8.8", 6000, 6002), callId="four", branch="z9hG4bK4"), TRUNK)
        self.assertEqual(len(self.requestsTo(ALICE, "INVITE")), 2)
        self.assertEqual(self.relay.activeSessions(), 2)

    def test_tooManyStreams(self) -> None:
        """An offer with more m= lines than max_streams gets 488 and binds nothing."""
        self.bind()
        self.receive(invite(body=body("10.9.9.9", *range(6000, 6018, 2))), TRUNK)
        self.assertEqual(self.statuses(TRUNK)[-1], 488)
        self.assertEqual((self.relay.activeSessions(), self.udpReactor.open), (0, {}))

    def test_streamCapBeforeQuota(self) -> None:
        """20 m= lines from a party with room for fewer get 488 (the stream cap), not 503 (the quota)."""
        self.configure(maxPortsPerTrunk=64)
        self.bind()
        self.receive(invite(body=body("10.9.9.9", *range(6000, 6040, 2))), TRUNK)
        refused = self.responsesTo(TRUNK)[-1]
        self.assertEqual((refused.status, refused.headers.get("retry-after")), (488, None))
        self.assertEqual(self.server.calls.ports.total, 0)

    def test_limitsHoldForAnyEngine(self) -> None:
        """With another engine than the built-in relay (rtpengine), a forbidden address or too many
        m= lines get 488 before the engine is asked; an IPv4-mapped address does not slip through."""
        engine = RecordingRelay()
        self.server.calls.relay = engine
        self.bind()
        offers = [
            body("127.0.0.1", 6000),
            body("::ffff:127.0.0.1", 6000).replace(b"IN IP4", b"IN IP6"),
            body("10.9.9.9", *range(6000, 6018, 2)),
        ]
        for index, offer in enumerate(offers):
            self.receive(invite(body=offer, callId=f"c{index}", branch=f"z9hG4bK{index}"), TRUNK)
            self.assertEqual(self.statuses(TRUNK)[-1], 488)
        self.assertEqual((engine.calls, self.requestsTo(ALICE, "INVITE")), ([], []))
        self.receive(invite(body=body("10.9.9.9", 6000), callId="ok", branch="z9hG4bKok"), TRUNK)
        self.assertEqual(len(engine.calls), 1)

    def test_engineUnreachable(self) -> None:
        """An engine that does not answer (rtpengine timing out) gets the caller 503 with Retry-After,
        as a relay out of ports does: the call layer knows only the interface's errors."""
        engine = RecordingRelay()
        engine.error = RtpengineTimeoutError("offer", 3, 1.5)
        self.server.calls.relay = engine
        self.bind()
        self.receive(invite(body=body("10.9.9.9", 6000)), TRUNK)
        refused = self.responsesTo(TRUNK)[-1]
        self.assertEqual(refused.status, 503)
        self.assertIsNotNone(refused.headers.get("retry-after"))
        self.assertEqual(self.requestsTo(ALICE, "INVITE"), [])

    def test_portsPerTrunk(self) -> None:
        """A trunk at its port limit gets 503 with Retry-After; once a call ends, a new one fits again."""
        self.configure(maxPortsPerTrunk=8)
        self.bind()
        for index in range(3):
            self.receive(
                invite(body=body("10.9.9.9", 6000), callId=f"c{index}", branch=f"z9hG4bK{index}"), TRUNK
            )
        refused = self.responsesTo(TRUNK)[-1]
        self.assertEqual(refused.status, 503)
        self.assertEqual(refused.headers.get("retry-after"), "10")
        self.assertEqual(len(self.requestsTo(ALICE, "INVITE")), 2)
        self.assertEqual(self.server.metrics["media_ports_in_use"], 8)
        self.assertEqual(self.server.calls.ports.heldBy("trunk:demo"), 8)
        first = self.requestsTo(ALICE, "INVITE")[0]
        self.receive(answer(first, 486), ALICE)
        self.assertEqual(self.server.metrics["media_ports_in_use"], 4)
        self.receive(invite(body=body("10.9.9.9", 6000), callId="c3", branch="z9hG4bK3"), TRUNK)
        self.assertEqual(len(self.requestsTo(ALICE, "INVITE")), 3)

    def test_portOwners(self) -> None:
        """Ports are charged to a trunk by name and to a user by account, each with its own limit."""
        self.configure(maxPortsPerTrunk=400, maxPortsPerAccount=12)
        settings = self.server.calls.config.media
        trunk = ownerOf(Party(PartyKind.TRUNK, "demo"), settings)
        user = ownerOf(Party(PartyKind.USER, "alice@example.com"), settings)
        assert trunk is not None and user is not None
        self.assertEqual((trunk.key, trunk.limit), ("trunk:demo", 400))
        self.assertEqual((user.key, user.limit), ("account:alice@example.com", 12))
        self.assertIsNone(ownerOf(None, settings))
