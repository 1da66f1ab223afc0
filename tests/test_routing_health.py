"""Tests for sbc.routing.health: gateways pinged with OPTIONS, down after misses, up on an answer."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from sbc.interfaces import Address, ISIPTransport
from sbc.routing.health import GatewayHealth, GatewayState
from sbc.sip import Request, parseMessage
from sbc.transaction import Timers, TransactionLayer
from tests.fakes import LogRecorder, NoUser, RecordingTransport, optionsAnswer

GATEWAY: Address = ("127.0.0.3", 5060)
OTHER: Address = ("127.0.0.5", 5060)


class GatewayHealthTests(SynchronousTestCase):
    """OPTIONS pings decide whether failover may use a gateway."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.udp = RecordingTransport()
        self.layer = TransactionLayer(self.clock, NoUser(), Timers())  # type: ignore[arg-type]
        self.health = GatewayHealth(self.clock, self.layer, self.transportFor, "sbc", threshold=2)
        self.health.watch([GATEWAY])
        self.events = LogRecorder()
        globalLogPublisher.addObserver(self.events)
        self.addCleanup(globalLogPublisher.removeObserver, self.events)

    def transportFor(self, address: Address) -> ISIPTransport:
        """Every gateway is reached over the one UDP socket."""
        return self.udp

    def lastRequest(self) -> Request:
        """The newest OPTIONS sent."""
        message = parseMessage(self.udp.sent[-1][0])
        assert isinstance(message, Request)
        return message

    def miss(self) -> None:
        """Ping, and let Timer F run out with no answer."""
        self.health.pingAll()
        self.clock.advance(64 * Timers.T1 + 1)

    def test_pingIsOptionsToTheGateway(self) -> None:
        """A ping is an OPTIONS to the gateway's address, over its transport."""
        self.health.pingAll()
        request = self.lastRequest()
        self.assertEqual((request.method, str(request.uri)), ("OPTIONS", "sip:127.0.0.3:5060"))
        self.assertEqual(self.udp.sent[-1][1], GATEWAY)

    def test_downAfterThresholdMisses(self) -> None:
        """One miss leaves a gateway up; ``threshold`` misses in a row take it down, logged once."""
        self.miss()
        self.assertTrue(self.health.isUp(GATEWAY))
        self.miss()
        self.assertFalse(self.health.isUp(GATEWAY))
        self.assertEqual(self.health.states(), {GATEWAY: GatewayState.DOWN})
        self.miss()
        changes = [e["state"] for e in self.events.events if e.get("gateway") == "127.0.0.3:5060"]
        self.assertEqual(changes, ["down"])

    def test_upAgainOnAnyAnswer(self) -> None:
        """A down gateway that answers, even with an error, is up again and its misses forgotten."""
        self.miss()
        self.miss()
        self.health.pingAll()
        self.layer.receiveResponse(optionsAnswer(self.lastRequest(), 404), self.udp, GATEWAY)
        self.assertTrue(self.health.isUp(GATEWAY))
        self.miss()
        self.assertTrue(self.health.isUp(GATEWAY))  # one miss again, not the third

    def test_answerResetsMisses(self) -> None:
        """Misses must be in a row: an answer between two misses keeps the gateway up."""
        self.miss()
        self.health.pingAll()
        self.layer.receiveResponse(optionsAnswer(self.lastRequest()), self.udp, GATEWAY)
        self.miss()
        self.assertTrue(self.health.isUp(GATEWAY))

    def test_onePingInFlight(self) -> None:
        """A gateway that has not answered yet gets no second ping on top of the first."""
        self.health.pingAll()
        self.health.pingAll()
        self.assertEqual(len(self.udp.sent), 1)

    def test_watchKeepsKnownState(self) -> None:
        """A reload that keeps a gateway keeps its state; a dropped one is forgotten; unknown is up."""
        self.miss()
        self.miss()
        self.health.watch([GATEWAY, OTHER])
        self.assertFalse(self.health.isUp(GATEWAY))
        self.assertTrue(self.health.isUp(OTHER))
        self.health.watch([OTHER])
        self.assertEqual(set(self.health.states()), {OTHER})
        self.assertTrue(self.health.isUp(GATEWAY))

    def test_thresholdPerGateway(self) -> None:
        """A mapping gives each gateway its own threshold (its trunk's ping_misses)."""
        self.health.watch({GATEWAY: 1, OTHER: 3})
        self.miss()
        self.assertFalse(self.health.isUp(GATEWAY))
        self.assertTrue(self.health.isUp(OTHER))

    def test_pingOnlyTheGiven(self) -> None:
        """``ping`` sends to the given watched gateways only, and never to one not watched."""
        self.health.watch([GATEWAY, OTHER])
        self.health.ping([OTHER, ("127.0.0.9", 5060)])
        self.assertEqual([where for _, where in self.udp.sent], [OTHER])
