"""Tests for calls through our registrations, end to end in one server (sbc.routing.registrars at
the gate, sbc.calls.admission with sbc.routing.registrants, the chain, the CDR and the media
owner): a registrar's INVITE for our Contact rings the user its registration names, or goes
through the chain by its To number; anything else from a registrar is refused."""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

from twisted.names import dns

from sbc.access import REGISTRANT, TRUNK, Peer
from sbc.calls.media import ownerOf
from sbc.calls.parties import Party, PartyKind
from sbc.config import Config, MediaSettings
from sbc.config.limits import CallLimits
from sbc.config.registrants import Registrant
from sbc.config.routing import NumberPlan, RoutingRules, RoutingSettings
from sbc.config.users import Account, UserDirectory
from sbc.interfaces import Address
from sbc.registrant.contact import contactUser
from sbc.server import SIPServer
from sbc.sip import Request
from tests.calls import ALICE, DOMAIN, SDP, CallTestCase, answer, callConfig
from tests.fakes import FakeResolver

REGISTRAR: Address = ("127.0.0.9", 5060)
OTHER_REGISTRAR: Address = ("127.0.0.10", 5060)
ALICE_DID = "+15550100"
# The state secret the server is given: our Contact users derive from it.
SECRET = b"t" * 32


def registrant(name: str, route: str | None, registrar: str = "sip:127.0.0.9:5060") -> Registrant:
    """A registration named ``name`` at ``registrar``, routed to user ``route`` (None: the chain)."""
    return Registrant(
        name=name,
        registrar=registrar,
        aor=f"sip:{name}@peer.example",
        authUser=name,
        password="secret",
        routeUser=route,
    )


PEER_B = registrant("peer-b", "alice")
PEER_C = registrant("peer-c", None)
ELSEWHERE = registrant("elsewhere", "alice", "sip:127.0.0.10")


def registrantConfig(*registrants: Registrant) -> Config:
    """The call tests' config with alice as a user, her DID, and ``registrants``."""
    config = callConfig()
    users = UserDirectory([Account("alice", DOMAIN, MappingProxyType({}))])
    rules = RoutingRules(NumberPlan(countryCode="1"), {ALICE_DID: f"alice@{DOMAIN}"})
    return replace(
        config,
        registrar=replace(config.registrar, users=users),
        routing=RoutingSettings(rules, defaultDomain=DOMAIN),
        registrants=registrants,
    )


def forwarded(
    method: str,
    name: str | None,
    *,
    raw: bool = False,
    to: str = "sip:sbc-demo@peer.example",
    source: Address = REGISTRAR,
    callId: str = "r-call-1@peer.example",
    branch: str = "z9hG4bKreg1",
) -> bytes:
    """A request as a registrar forwards it to our Contact for registration ``name`` (its Contact
    user under SECRET; ``raw``: ``name`` itself as the user), with SDP for an INVITE, and the
    registrar's Record-Route."""
    user = name if raw or name is None else contactUser(SECRET, name)
    uri = f"sip:{user}@127.0.0.1:5060" if user else "sip:127.0.0.1:5060"
    body = SDP if method == "INVITE" else b""
    head = (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {source[0]}:{source[1]};branch={branch}\r\n"
        f"Via: SIP/2.0/UDP 192.0.2.99:5060;branch={branch}-caller\r\n"
        "Max-Forwards: 69\r\n"
        "From: <sip:+15551234@peer.example>;tag=ctag\r\n"
        f"To: <{to}>\r\n"
        f"Call-ID: {callId}\r\n"
        f"CSeq: 1 {method}\r\n"
        "Contact: <sip:caller@192.0.2.99:5060>\r\n"
        f"Record-Route: <sip:{source[0]}:{source[1]};lr>\r\n"
        + ("Content-Type: application/sdp\r\n" if body else "")
        + f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class RegistrantCallTestCase(CallTestCase):
    """A server with the real routing chain, alice a user, and registrations peer-b (to alice),
    peer-c (the chain) at 127.0.0.9 and elsewhere at 127.0.0.10."""

    def setUp(self) -> None:
        super().setUp()
        self.resolver = FakeResolver()
        self.server = SIPServer(
            registrantConfig(PEER_B, PEER_C, ELSEWHERE),
            self.clock,
            cdrs=self.cdrs,  # type: ignore[arg-type]
            resolver=self.resolver,  # type: ignore[arg-type]
            secret=SECRET,
        )
        self.server.transportStarted(self.udp)

    def invites(self) -> list[Request]:
        """The INVITEs that reached alice."""
        return self.requestsTo(ALICE, "INVITE")


class ThroughRegistrationTests(RegistrantCallTestCase):
    """Calls that came through a registration, and what else a registrar may send."""

    def test_routedToUser(self) -> None:
        """peer-b's route rings alice; her answer reaches the registrar; the CDR's caller is the
        registrant; nothing of the registrar or the caller reaches alice."""
        self.bind()
        self.receive(forwarded("INVITE", "peer-b"), REGISTRAR)
        (bInvite,) = self.invites()
        self.receive(answer(bInvite, 200, body=SDP, contact="<sip:alice@10.1.1.1:5070>"), ALICE)
        self.assertEqual(self.statuses(REGISTRAR)[-1], 200)
        (call,) = self.server.calls.active()
        self.assertEqual(call.record.aLeg, Party(PartyKind.REGISTRANT, "peer-b"))
        wire = bInvite.toBytes()
        for hidden in (b"127.0.0.9", b"192.0.2.99", b"peer-b", b"r-call-1"):
            self.assertNotIn(hidden, wire)

    def test_chainRoutesToNumber(self) -> None:
        """peer-c's calls go through the chain by the To number: alice's DID rings her."""
        self.bind()
        self.receive(forwarded("INVITE", "peer-c", to=f"sip:{ALICE_DID}@peer.example"), REGISTRAR)
        self.assertEqual(len(self.invites()), 1)

    def test_chainNoRoute(self) -> None:
        """peer-c's call to a number nobody serves is refused as a trunk's would be (404)."""
        self.receive(forwarded("INVITE", "peer-c", to="sip:+15559999@peer.example"), REGISTRAR)
        self.assertEqual(self.statuses(REGISTRAR)[-1], 404)

    def test_unknownContactUser(self) -> None:
        """An INVITE for a Contact user that is none of ours gets 404, and rings nobody."""
        self.bind()
        for user in ("alice", None):
            self.receive(forwarded("INVITE", user, callId=f"x-{user}", branch=f"z9hG4bK{user}"), REGISTRAR)
            self.assertEqual(self.statuses(REGISTRAR)[-1], 404)
        self.assertEqual(self.invites(), [])

    def test_registrantLimits(self) -> None:
        """A registration's max_calls and max_cps refuse its calls past them with 503 and
        Retry-After, as a trunk's do."""
        self.server.setConfig(
            registrantConfig(replace(PEER_B, limits=CallLimits(maxCalls=1)), PEER_C, ELSEWHERE)
        )
        self.bind()
        self.receive(forwarded("INVITE", "peer-b"), REGISTRAR)
        self.receive(
            forwarded("INVITE", "peer-b", callId="second@peer.example", branch="z9hG4bKreg2"), REGISTRAR
        )
        self.assertEqual(len(self.invites()), 1)
        refused = self.responsesTo(REGISTRAR)[-1]
        self.assertEqual((refused.status, refused.headers.get("retry-after")), (503, "5"))
        self.server.setConfig(registrantConfig(replace(PEER_C, limits=CallLimits(maxCps=1.0)), PEER_B))
        to = f"sip:{ALICE_DID}@peer.example"
        self.receive(
            forwarded("INVITE", "peer-c", to=to, callId="c1@peer.example", branch="z9hG4bKc1"), REGISTRAR
        )
        self.receive(
            forwarded("INVITE", "peer-c", to=to, callId="c2@peer.example", branch="z9hG4bKc2"), REGISTRAR
        )
        refused = self.responsesTo(REGISTRAR)[-1]
        self.assertEqual((refused.status, refused.headers.get("retry-after")), (503, "1"))
        self.assertEqual(self.server.metrics.counts["registrant_refused_cps"], 1)

    def test_bareNameRefused(self) -> None:
        """An INVITE for the registrant's bare name (guessable: another customer of a shared
        proxy could send it) gets 404 and rings nobody."""
        self.bind()
        self.receive(forwarded("INVITE", "peer-b", raw=True), REGISTRAR)
        self.assertEqual(self.statuses(REGISTRAR)[-1], 404)
        self.assertEqual(self.invites(), [])

    def test_anotherRegistrarsContact(self) -> None:
        """A registrar cannot call through a registration held at another registrar: 404; that
        one's own registrar can."""
        self.bind()
        self.receive(forwarded("INVITE", "elsewhere"), REGISTRAR)
        self.assertEqual(self.statuses(REGISTRAR)[-1], 404)
        self.assertEqual(self.invites(), [])
        self.receive(forwarded("INVITE", "elsewhere", source=OTHER_REGISTRAR), OTHER_REGISTRAR)
        self.assertEqual(len(self.invites()), 1)

    def test_optionsAnswered(self) -> None:
        """A registrar's OPTIONS (a keepalive) gets 200."""
        self.receive(forwarded("OPTIONS", "peer-b"), REGISTRAR)
        self.assertEqual(self.statuses(REGISTRAR), [200])

    def test_registerRefused(self) -> None:
        """A registrar does not register with us: 403."""
        self.receive(forwarded("REGISTER", "peer-b", to=f"sip:alice@{DOMAIN}"), REGISTRAR)
        self.assertEqual(self.statuses(REGISTRAR), [403])

    def test_strangersStillDropped(self) -> None:
        """Only the registrars' own addresses pass the gate."""
        self.assertTrue(self.server.admit(REGISTRAR[0]))
        self.assertFalse(self.server.admit("127.0.0.11"))

    def test_callerHangsUp(self) -> None:
        """The caller's BYE, through the registrar, ends the call and reaches alice."""
        self.bind()
        self.receive(forwarded("INVITE", "peer-b"), REGISTRAR)
        (bInvite,) = self.invites()
        self.receive(answer(bInvite, 200, body=SDP, contact="<sip:alice@10.1.1.1:5070>"), ALICE)
        ok = self.responsesTo(REGISTRAR)[-1]
        bye = (
            "BYE sip:sbc@127.0.0.1:5060 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {REGISTRAR[0]}:{REGISTRAR[1]};branch=z9hG4bKbye\r\n"
            "Max-Forwards: 69\r\nFrom: <sip:+15551234@peer.example>;tag=ctag\r\n"
            f"To: {ok.headers.get('to')}\r\nCall-ID: r-call-1@peer.example\r\nCSeq: 2 BYE\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()
        self.receive(bye, REGISTRAR)
        self.assertEqual(len(self.requestsTo(ALICE, "BYE")), 1)
        self.assertEqual(self.statuses(REGISTRAR)[-1], 200)

    def test_registrarNotRateBanned(self) -> None:
        """A registrar is a configured server, as a trunk's gateway is: past the device request
        rate it is still answered."""
        burst = self.server.config.bans.requestBurst
        for index in range(burst + 10):
            self.receive(forwarded("OPTIONS", "peer-b", branch=f"z9hG4bKo{index}"), REGISTRAR)
        self.assertEqual(self.statuses(REGISTRAR).count(200), burst + 10)

    def test_portsChargedToRegistrant(self) -> None:
        """A registrant's relay ports are charged to it, with a trunk's limit."""
        owner = ownerOf(Party(PartyKind.REGISTRANT, "peer-b"), MediaSettings(maxPortsPerTrunk=400))
        assert owner is not None
        self.assertEqual((owner.key, owner.limit), ("registrant:peer-b", 400))


class RegistrantAccessTests(RegistrantCallTestCase):
    """The gate follows the config: reloads, trunks first, names resolved."""

    def test_reloadRemovesAndAdds(self) -> None:
        """A reload without a registrant drops its registrar at once; one that adds it back
        admits it at once, in the same swap as a whitelist change."""
        self.server.setConfig(registrantConfig(PEER_C))
        self.assertTrue(self.server.admit(REGISTRAR[0]))
        self.assertFalse(self.server.admit(OTHER_REGISTRAR[0]))
        self.server.setConfig(registrantConfig())
        self.assertFalse(self.server.admit(REGISTRAR[0]))
        self.server.setConfig(registrantConfig(ELSEWHERE))
        self.assertTrue(self.server.admit(OTHER_REGISTRAR[0]))
        self.assertEqual(self.server.config.access.classify("127.0.0.2"), Peer(TRUNK, "demo"))

    def test_trunkWhitelistWins(self) -> None:
        """A registrar inside a trunk's whitelist is that trunk: its INVITE to our Contact user is
        a trunk call for that user name (no route here), never the registration's."""
        self.server.setConfig(registrantConfig(registrant("at-trunk", "alice", "sip:127.0.0.2")))
        self.assertEqual(self.server.config.access.classify("127.0.0.2"), Peer(TRUNK, "demo"))
        self.bind()
        self.receive(forwarded("INVITE", "at-trunk", source=("127.0.0.2", 5062)), ("127.0.0.2", 5062))
        self.assertEqual(self.invites(), [])
        self.assertEqual(self.statuses(("127.0.0.2", 5062))[-1], 404)

    def test_nameResolved(self) -> None:
        """A registrar given by name passes the gate once the watch's tick resolved it."""
        self.resolver.add(dns.A, "registrar.peer.test", dns.Record_A("127.0.0.12"), ttl=60)
        self.server.setConfig(registrantConfig(registrant("named", "alice", "sip:registrar.peer.test")))
        self.assertFalse(self.server.admit("127.0.0.12"))
        self.server.registrars.tick()
        self.assertTrue(self.server.admit("127.0.0.12"))
        self.assertEqual(self.server.config.access.classify("127.0.0.12"), Peer(REGISTRANT, "named"))
        self.bind()
        self.receive(forwarded("INVITE", "named", source=("127.0.0.12", 5060)), ("127.0.0.12", 5060))
        self.assertEqual(len(self.invites()), 1)
