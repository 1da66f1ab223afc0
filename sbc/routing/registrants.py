"""Calls through our registrations: which registration a request is for, and where it goes.

A registrar sends a call for our AOR to the Contact we registered there, ``sip:NAME-<hex>@<us>``
(`sbc.registrant.contact.contactUser`: not guessable from the name). From a registrar's address
(admitted at the gate by `sbc.routing.registrars`) a new INVITE is taken only when its
Request-URI user is the Contact user of a registration whose registrar or outbound proxy that
address is, on that registration's transport (`registrantFor`): a
registrar speaks for its own registrations, never for another peer's, and never as a trunk (what
it sends for anyone else gets 404). Requests inside a dialog are found by their dialog as any
are; OPTIONS (a registrar's keepalive) is answered 200; REGISTER is refused (403), as from a trunk.

Such a call's A-party is the registrant (``Peer(REGISTRANT, name)``: its CDR names it, its relay
ports are charged to it), and it is routed as the registration says (`RegistrantRouter`, first in
the chain): ``route = "user:NAME"`` rings that user of ours; ``route = "chain"`` hands the call to
the routing chain like a trunk's. The number the chain routes is the To header's user, not the
Request-URI's: the Request-URI is our own Contact and says only which registration the call came
through, while To still names whom the caller dialled (the AOR, or a number behind it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from zope.interface import implementer

from sbc.access import REGISTRANT
from sbc.config import Config
from sbc.config.registrants import Registrant
from sbc.config.sip import Transport
from sbc.config.users import UserDirectory
from sbc.interfaces import IRouter, ISIPTransport
from sbc.routing.registrars import RegistrarAccess, targets
from sbc.routing.routers import RegistrarRouter
from sbc.routing.values import CallRequest, Decision, Reject
from sbc.sip.message import Request
from sbc.sip.uri import URI, unescape

__all__ = ["NO_SUCH_USER", "RegistrantRouter", "calledURI", "registrantFor"]

# A registration routed to a user that is not (or no longer) one of ours.
NO_SUCH_USER = Reject(404, "No such user")


def registrantFor(config: Config, host: str, request: Request, transport: ISIPTransport) -> Registrant | None:
    """The registration a new request from ``host`` on ``transport`` is for: the one whose Contact
    user the Request-URI names, whose registrar or outbound proxy is at ``host``, and whose
    transport it came on (over TLS, on a connection that proved the registrar's or the proxy's
    name: a TLS registration's calls are not taken from a spoofable UDP source); else None."""
    access = config.access
    if not isinstance(access, RegistrarAccess):
        return None
    name = access.contacts.get(unescape(request.uri.user or ""))
    if name is None or name not in access.registrantsAt(host):
        return None
    registrant = next((r for r in config.registrants if r.name == name), None)
    if registrant is None or transport.name != registrant.transport.upper():
        return None
    if registrant.transport is Transport.TLS:
        proves = getattr(transport, "proves", None)
        names = tuple(target[0] for target in targets(registrant))
        if proves is None or not proves(names):
            return None
    return registrant


def calledURI(request: Request, throughRegistrant: bool) -> URI:
    """Whom a new INVITE calls: the Request-URI, or, for a call through a registration, the To
    URI (the Request-URI is then our Contact there)."""
    return request.toHeader().uri if throughRegistrant else request.uri


@implementer(IRouter)
class RegistrantRouter:
    """Calls through a registration whose ``route`` names a user go to that user; other calls (a
    registration with ``route = "chain"``, and every call not through a registration) pass.

    The user is found as a trunk's call to a user name is (`RegistrarRouter`): ``NAME@domain``
    in that domain, a bare ``NAME`` in the default domain; a user we do not have is 404.
    """

    name = "registrant"

    def __init__(
        self,
        registrants: Sequence[Registrant],
        users: UserDirectory,
        domains: Sequence[str],
        defaultDomain: str | None = None,
    ) -> None:
        self.routes: Mapping[str, str | None] = {r.name: r.routeUser for r in registrants}
        self.users = RegistrarRouter(users, domains, defaultDomain)

    def route(self, call: CallRequest) -> Decision | None:
        """The registration's user, for a call through one that names a user; else None."""
        if call.source.kind != REGISTRANT:
            return None
        routeUser = self.routes.get(call.source.name)
        if routeUser is None:
            return None
        user, _, domain = routeUser.partition("@")
        # An empty domain is none of ours: the registrar router takes the default domain then.
        ours = not domain or domain in self.users.domains
        decision = self.users.route(replace(call, user=user, domain=domain)) if ours else None
        if decision is None:
            return Decision(reject=NO_SUCH_USER, router=self.name)
        return replace(decision, router=self.name)
