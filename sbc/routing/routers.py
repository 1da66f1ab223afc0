"""The shipped routers after the hook: static rules, the registrar's users, and the trunks."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from zope.interface import implementer

from sbc.access import DEVICES
from sbc.config.routing import RoutingRules
from sbc.config.users import UserDirectory
from sbc.interfaces import IRouter
from sbc.routing.values import CallRequest, Decision, TrunkTarget, UserTarget


def pickDefaultDomain(configured: str | None, domains: Sequence[str]) -> str | None:
    """The domain for bare user names in trunk calls: the configured one, else our first domain."""
    if configured:
        return configured.lower()
    return domains[0].lower() if domains else None


def callerDomain(call: CallRequest, domains: Collection[str], defaultDomain: str | None) -> str | None:
    """The domain in which a bare user name is looked up for ``call``.

    A device: the domain it authenticated in, whatever Request-URI host it dialled, so one
    tenant cannot reach another's users by name. A trunk: the Request-URI host when it is one of
    our ``domains``, else ``defaultDomain``. None when there is none (an unauthenticated device).
    """
    if call.source.kind == DEVICES:
        if not call.authenticatedUser:
            return None
        _, at, domain = call.authenticatedUser.rpartition("@")
        return domain.lower() if at and domain else None
    host = call.domain.lower()
    if host in domains:
        return host
    return defaultDomain


def outbound(
    rules: RoutingRules, number: str, call: CallRequest, *, includeDefault: bool = True
) -> tuple[TrunkTarget, ...]:
    """Trunk targets for ``number`` from the longest route of ``rules`` open to the caller."""
    trunks = rules.trunksFor(number, call.source, includeDefault=includeDefault)
    return tuple(TrunkTarget(trunk, number) for trunk in trunks)


@implementer(IRouter)
class StaticRouter:
    """DIDs (from any source) to users, and explicit prefix routes (not the default route)."""

    name = "static"

    def __init__(self, rules: RoutingRules) -> None:
        self.rules = rules

    def route(self, call: CallRequest) -> Decision | None:
        """A DID's user, else the trunks of a prefix route; None for the default route or a name."""
        number = self.rules.plan.normalise(call.user)
        if number is None:
            return None
        aor = self.rules.did(number)
        if aor is not None:
            return Decision((UserTarget(aor),), router=self.name)
        targets = outbound(self.rules, number, call, includeDefault=False)
        if targets:
            return Decision(targets, router=self.name)
        return None


@implementer(IRouter)
class RegistrarRouter:
    """A user part that names an account of the caller's domain becomes a call to that user.

    The account is enough: whether it has live bindings is the B2BUA's business (480 if not).
    """

    name = "registrar"

    def __init__(
        self, users: UserDirectory, domains: Sequence[str], defaultDomain: str | None = None
    ) -> None:
        self.users = users
        self.domains = frozenset(d.lower() for d in domains)
        self.defaultDomain = pickDefaultDomain(defaultDomain, domains)

    def route(self, call: CallRequest) -> Decision | None:
        """The user the Request-URI names in the caller's domain, or None."""
        domain = callerDomain(call, self.domains, self.defaultDomain)
        if domain is None:
            return None
        account = self.users.lookup(call.user, domain)
        if account is None:
            return None
        return Decision((UserTarget(account.aor),), router=self.name)


@implementer(IRouter)
class TrunkRouter:
    """Numbers go out through the longest matching route open to the caller, the default included.

    Devices may use every route; trunk calls only ``transit`` routes, so by default nothing
    trombones back out and the chain ends in 404.
    """

    name = "trunks"

    def __init__(self, rules: RoutingRules) -> None:
        self.rules = rules

    def route(self, call: CallRequest) -> Decision | None:
        """The trunks of the longest route for the dialled number, or None."""
        number = self.rules.plan.normalise(call.user)
        if number is None:
            return None
        targets = outbound(self.rules, number, call)
        if not targets:
            return None
        return Decision(targets, router=self.name)
