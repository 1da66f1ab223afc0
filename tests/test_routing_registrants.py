"""Tests for sbc.routing.registrants: which registration a request from a registrar is for, whom a
call through one calls, and where its config routes it (a user, or the chain)."""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

from twisted.trial.unittest import SynchronousTestCase

from sbc.access import DEVICES, REGISTRANT, TRUNK, Peer
from sbc.config import Config
from sbc.config.registrants import Registrant
from sbc.config.routing import NumberPlan, PrefixRoute, RoutingRules, RoutingSettings
from sbc.config.sip import Transport
from sbc.config.users import Account, UserDirectory
from sbc.registrant.contact import contactUser
from sbc.routing import CallRequest, Decision, RoutingChain, UserTarget, shippedChain
from sbc.routing.registrants import NO_SUCH_USER, RegistrantRouter, calledURI, registrantFor
from sbc.routing.registrars import RegistrarAccess
from sbc.sip import Request, parseMessage
from tests.calls import callConfig
from tests.fakes import RecordingTransport

DOMAIN = "demo.acme.sbc.test"
USERS = UserDirectory(
    [Account("alice", DOMAIN, MappingProxyType({})), Account("bob", DOMAIN, MappingProxyType({}))]
)
REGISTRAR = "198.51.100.5"
SECRET = b"s" * 32
UDP = RecordingTransport()
OTHER_REGISTRAR = "198.51.100.6"


def registrant(name: str, routeUser: str | None = None, registrar: str = REGISTRAR) -> Registrant:
    """A registration named ``name`` at ``registrar``, routed to ``routeUser`` (None: the chain)."""
    return Registrant(
        name=name,
        registrar=f"sip:{registrar}",
        aor=f"sip:{name}@peer.example",
        authUser=name,
        password="secret",
        routeUser=routeUser,
    )


PEER_B = registrant("peer-b", "alice")
PEER_C = registrant("peer-c")
ELSEWHERE = registrant("elsewhere", registrar=OTHER_REGISTRAR)


def configWith(*registrants: Registrant) -> Config:
    """The call tests' config with ``registrants``, their registrars admitted as the server does."""
    config = replace(callConfig(), registrants=registrants)
    registrars: dict[str, tuple[str, ...]] = {}
    for item in registrants:
        host = item.registrarURI.host
        registrars[host] = (*registrars.get(host, ()), item.name)
    contacts = {contactUser(SECRET, item.name): item.name for item in registrants}
    return replace(config, access=RegistrarAccess(config.access, registrars, contacts))


def contact(name: str, host: str = "127.0.0.1:5060") -> str:
    """Our Contact URI for registration ``name`` (its user derived from SECRET)."""
    return f"sip:{contactUser(SECRET, name)}@{host}"


class ProvingTransport(RecordingTransport):
    """A TLS connection that proves the names it is given (a registrar's host), or none."""

    def __init__(self, proven: tuple[str, ...]) -> None:
        super().__init__("TLS", reliable=True)
        self.proven = proven
        self.asked: list[tuple[str, ...]] = []

    def proves(self, names: tuple[str, ...]) -> bool:
        """Whether one of ``names`` is among those proven."""
        self.asked.append(names)
        return any(name in self.proven for name in names)


def invite(uri: str, to: str = "sip:+15550100@peer.example") -> Request:
    """An INVITE for ``uri``, To ``to``, as a registrar forwards it."""
    message = parseMessage(
        (
            f"INVITE {uri} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {REGISTRAR}:5060;branch=z9hG4bKr1\r\n"
            "Max-Forwards: 69\r\n"
            "From: <sip:+15551234@peer.example>;tag=f1\r\n"
            f"To: <{to}>\r\n"
            "Call-ID: r1@peer.example\r\n"
            "CSeq: 1 INVITE\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()
    )
    assert isinstance(message, Request)
    return message


def throughRegistrant(name: str, user: str = "+15550100", domain: str = "peer.example") -> CallRequest:
    """A call that came through registration ``name``, for ``user@domain`` (the To header's)."""
    return CallRequest(Peer(REGISTRANT, name), "+15551234", "peer.example", user, domain)


class RegistrantForTests(SynchronousTestCase):
    """A registrar's request is for a registration of its own, by the Contact user, or for none."""

    def setUp(self) -> None:
        self.config = configWith(PEER_B, PEER_C, ELSEWHERE)

    def test_contactUserOfItsRegistration(self) -> None:
        """The Request-URI user names a registration at this registrar: that one."""
        self.assertEqual(registrantFor(self.config, REGISTRAR, invite(contact("peer-c")), UDP), PEER_C)
        self.assertEqual(
            registrantFor(self.config, REGISTRAR, invite(contact("peer-b", "127.0.0.1")), UDP), PEER_B
        )

    def test_unknownContactUser(self) -> None:
        """A Request-URI user that is no Contact of ours is for no registration."""
        self.assertIsNone(registrantFor(self.config, REGISTRAR, invite("sip:alice@127.0.0.1"), UDP))
        self.assertIsNone(registrantFor(self.config, REGISTRAR, invite("sip:127.0.0.1"), UDP))

    def test_bareNameNoLongerMatches(self) -> None:
        """The registrant's name alone (guessable from outside) is no Contact of ours."""
        self.assertIsNone(registrantFor(self.config, REGISTRAR, invite("sip:peer-b@127.0.0.1"), UDP))
        other = contactUser(b"o" * 32, "peer-b")
        self.assertIsNone(registrantFor(self.config, REGISTRAR, invite(f"sip:{other}@127.0.0.1"), UDP))

    def test_anotherRegistrarsRegistration(self) -> None:
        """A registrar cannot speak for a registration held at another registrar."""
        self.assertIsNone(registrantFor(self.config, REGISTRAR, invite(contact("elsewhere")), UDP))
        found = registrantFor(self.config, OTHER_REGISTRAR, invite(contact("elsewhere")), UDP)
        self.assertEqual(found, ELSEWHERE)

    def test_notARegistrar(self) -> None:
        """From a source that is no registrar (a trunk, a stranger), nothing is a registrant's."""
        self.assertIsNone(registrantFor(self.config, "127.0.0.2", invite(contact("peer-b")), UDP))
        self.assertIsNone(registrantFor(callConfig(), REGISTRAR, invite(contact("peer-b")), UDP))

    def test_otherTransportRefused(self) -> None:
        """A TCP registration's calls come over TCP only: the same INVITE over UDP (a spoofable
        source) is for no registration."""
        tcp = replace(PEER_B, transport=Transport.TCP)
        config = configWith(tcp)
        request = invite(contact("peer-b"))
        self.assertIsNone(registrantFor(config, REGISTRAR, request, UDP))
        self.assertEqual(registrantFor(config, REGISTRAR, request, RecordingTransport("TCP", True)), tcp)

    def test_tlsMustProveRegistrar(self) -> None:
        """A TLS registration's calls come on a connection that proved the registrar's name."""
        tls = replace(PEER_B, registrar="sips:registrar.peer.example", transport=Transport.TLS)
        config = replace(configWith(PEER_B), registrants=(tls,))
        request = invite(contact("peer-b"))
        self.assertIsNone(registrantFor(config, REGISTRAR, request, RecordingTransport("TLS", True)))
        self.assertIsNone(registrantFor(config, REGISTRAR, request, ProvingTransport(("other.example",))))
        proving = ProvingTransport(("registrar.peer.example",))
        self.assertEqual(registrantFor(config, REGISTRAR, request, proving), tls)
        self.assertEqual(proving.asked, [("registrar.peer.example",)])

    def test_calledURI(self) -> None:
        """A call through a registration calls its To URI; any other its Request-URI."""
        request = invite("sip:peer-b@127.0.0.1", to="sip:+15550100@peer.example")
        self.assertEqual(str(calledURI(request, True)), "sip:+15550100@peer.example")
        self.assertEqual(str(calledURI(request, False)), "sip:peer-b@127.0.0.1")


class RegistrantRouterTests(SynchronousTestCase):
    """A registration's ``route``: a user of ours, or the chain (the router passes)."""

    def setUp(self) -> None:
        registrants = (
            PEER_B,
            PEER_C,
            registrant("qualified", f"bob@{DOMAIN}"),
            registrant("nobody", "nobody"),
            registrant("foreign", "alice@other.example"),
        )
        self.router = RegistrantRouter(registrants, USERS, [DOMAIN], DOMAIN)

    def test_routedToUser(self) -> None:
        """``route = "user:alice"``: the call rings alice of the default domain, whatever To says."""
        decision = self.router.route(throughRegistrant("peer-b"))
        self.assertEqual(decision, Decision((UserTarget(f"alice@{DOMAIN}"),), router="registrant"))

    def test_userWithDomain(self) -> None:
        """``route = "user:bob@domain"`` rings bob of that domain."""
        decision = self.router.route(throughRegistrant("qualified"))
        self.assertEqual(decision, Decision((UserTarget(f"bob@{DOMAIN}"),), router="registrant"))

    def test_chainPasses(self) -> None:
        """``route = "chain"``: the router passes, the rest of the chain decides."""
        self.assertIsNone(self.router.route(throughRegistrant("peer-c")))

    def test_otherSourcesPass(self) -> None:
        """Calls from trunks and devices are not the router's business."""
        self.assertIsNone(self.router.route(CallRequest(Peer(TRUNK, "peer-b"), "x", "y", "alice", DOMAIN)))
        self.assertIsNone(self.router.route(CallRequest(Peer(DEVICES, "devices"), "x", "y", "alice", DOMAIN)))

    def test_unknownUserRejected(self) -> None:
        """A route to a user we do not have (or of a domain not ours) is 404, never the chain."""
        for name in ("nobody", "foreign"):
            self.assertEqual(
                self.router.route(throughRegistrant(name)), Decision(reject=NO_SUCH_USER, router="registrant")
            )


class RegistrantChainTests(SynchronousTestCase):
    """The shipped chain with registrants: their router first, the rest as before."""

    def chain(self, *registrants: Registrant) -> RoutingChain:
        """bob's DID +15550100, everything else out through demo; with ``registrants``."""
        rules = RoutingRules(
            NumberPlan(countryCode="1"),
            {"+15550100": f"bob@{DOMAIN}"},
            (PrefixRoute("*", ("demo",)),),
        )
        return shippedChain(
            RoutingSettings(rules, defaultDomain=DOMAIN),
            users=USERS,
            domains=[DOMAIN],
            trunks=("demo",),
            registrants=registrants,
        )

    def decide(self, chain: RoutingChain, call: CallRequest) -> Decision:
        """The chain's decision, which the shipped routers give at once."""
        decision = chain.decide(call)
        assert isinstance(decision, Decision)
        return decision

    def test_userRouteBeforeEverything(self) -> None:
        """A user route wins over what the To number would get (bob's DID)."""
        chain = self.chain(PEER_B)
        decision = self.decide(chain, throughRegistrant("peer-b"))
        self.assertEqual(decision.targets, (UserTarget(f"alice@{DOMAIN}"),))

    def test_chainRoutesToNumber(self) -> None:
        """``route = "chain"``: the To number is routed as a trunk's call would be (the DID's user)."""
        chain = self.chain(PEER_C)
        decision = self.decide(chain, throughRegistrant("peer-c"))
        self.assertEqual((decision.targets, decision.router), ((UserTarget(f"bob@{DOMAIN}"),), "static"))

    def test_chainToUserName(self) -> None:
        """``route = "chain"`` with a To user that names a user of ours: that user, in the
        default domain (the registrar router, as for a trunk)."""
        chain = self.chain(PEER_C)
        decision = self.decide(chain, throughRegistrant("peer-c", user="alice"))
        self.assertEqual((decision.targets, decision.router), ((UserTarget(f"alice@{DOMAIN}"),), "registrar"))

    def test_noRegistrantsNoRouter(self) -> None:
        """Without registrants the chain is as it was."""
        self.assertNotIn("registrant", [r.name for r in self.chain().routers])
        self.assertEqual(self.chain(PEER_B).routers[0].name, "registrant")
