"""The routing chain: each router in turn, the first decision wins, failures fail closed (500).

Modelled on ``twisted.names.resolve.ResolverChain``. The shipped chain, in order:

0. ``registrant``: a call through one of our registrations whose ``route`` names a user goes to
   that user (`RegistrantRouter`), only when ``[registrants]`` lists some;
1. ``hook``: the ops-written Python hook (`HookRouter`, loaded by `loadHook`), optional;
2. ``static``: rules from config (`StaticRouter`): DIDs to users, and explicit prefix routes;
3. ``registrar``: a user name of the caller's domain becomes a call to that user (`RegistrarRouter`);
4. ``trunks``: numbers nobody else claimed go out through the longest matching route, the
   default route included (`TrunkRouter`).

Nothing decides: ``404 No route``. A router that raises or fails its Deferred makes the call fail
closed with ``500``; the chain logs the first failure of each kind with its traceback and then
only a count at 10, 100, 1000, ... so a broken hook does not flood the log.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace
from typing import cast

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from sbc.config import Config, RoutingSettings
from sbc.config.registrants import Registrant
from sbc.config.users import UserDirectory
from sbc.interfaces import IRouter
from sbc.routing.hook import HookRouter, isMilestone, loadHook
from sbc.routing.registrants import RegistrantRouter
from sbc.routing.routers import RegistrarRouter, StaticRouter, TrunkRouter
from sbc.routing.values import NO_ROUTE, ROUTING_FAILED, CallRequest, Decision
from sbc.waiting import whenReady


@implementer(IRouter)
class RoutingChain:
    """Asks each router in turn; the first decision wins, and nothing decided is 404.

    A router answers with a `Decision` or None, at once or (when it must wait) as a Deferred; the
    chain joins the two with `whenReady`, so a chain of routers that answer at once makes no
    Deferred per call. A router that raises, fails its Deferred, or gives something other than a
    `Decision` or None makes the call fail closed: ``Reject(500, "Routing failed")``. ``failures`` counts
    them (for metrics). A chain is built per configuration, so its log counts start again after
    a reload.
    """

    name = "chain"
    log = Logger()

    def __init__(self, routers: Sequence[IRouter]) -> None:
        self.routers: tuple[IRouter, ...] = tuple(routers)
        self.failures = 0
        self._failureKinds: dict[tuple[str, str], int] = {}

    def route(self, call: CallRequest) -> Decision | defer.Deferred[Decision | None]:
        """The chain as one router: its decision (never None), at once or later."""
        return cast("Decision | defer.Deferred[Decision | None]", self.decide(call))

    def decide(self, call: CallRequest) -> Decision | defer.Deferred[Decision]:
        """The chain's decision (never None: nothing decided is 404) at once when every router
        asked answers at once (all of ours do), else a Deferred: the per-call path makes no
        Deferred for a synchronous chain."""
        return self._ask(call, 0)

    def _ask(self, call: CallRequest, index: int) -> Decision | defer.Deferred[Decision]:
        """Ask router ``index`` and, if it passes, the ones after it (each when the last answered)."""
        if index == len(self.routers):
            return Decision(reject=NO_ROUTE, router=self.name)
        router = self.routers[index]

        def decided(answer: object) -> Decision | defer.Deferred[Decision]:
            decision = checkedAnswer(answer, router)
            return self._ask(call, index + 1) if decision is None else decision

        def failed(failure: Failure) -> Decision:
            self._failed(router, failure)
            return Decision(reject=ROUTING_FAILED, router=str(router.name))

        try:
            answer = router.route(call)
        except Exception:
            return failed(Failure())
        return whenReady(answer, decided, failed)

    def _failed(self, router: IRouter, failure: Failure) -> None:
        self.failures += 1
        where = raisedAt(failure)
        key = (str(router.name), f"{type(failure.value).__name__} {where}")
        if key not in self._failureKinds and len(self._failureKinds) >= 100:
            key = (str(router.name), "other")
        count = self._failureKinds[key] = self._failureKinds.get(key, 0) + 1
        if count == 1:
            self.log.failure(
                "router {router} failed{where}; the call is rejected with 500",
                failure,
                router=router.name,
                where=f" at {where}" if where else "",
            )
        elif isMilestone(count):
            self.log.error(
                "router {router} has failed {count} times with {error}{where}",
                router=router.name,
                count=count,
                error=type(failure.value).__name__,
                where=f" at {where}" if where else "",
            )


def checkedAnswer(result: object, router: IRouter) -> Decision | None:
    """A router's answer as the chain takes it: a Decision naming its router, or None."""
    if result is None:
        return None
    if not isinstance(result, Decision):
        raise TypeError(f"router {router.name} gave {type(result).__name__}, not a Decision or None")
    if not result.router:
        result = replace(result, router=str(router.name))
    return result


def raisedAt(failure: Failure) -> str:
    """``file:line`` where the exception was raised, for grouping and logs."""
    tb = failure.getTracebackObject()
    if tb is None:
        return ""
    frames = traceback.extract_tb(tb)
    if not frames:
        return ""
    last = frames[-1]
    return f"{last.filename}:{last.lineno}"


def buildChain(config: Config) -> RoutingChain:
    """The shipped chain for ``config``, its hook file loaded (`ConfigError` if it is unusable)."""
    routing = config.routing
    hook = loadHook(routing.hookPath) if routing.hookPath is not None else None
    return shippedChain(
        routing,
        users=config.registrar.users,
        domains=config.registrar.domains,
        trunks=config.trunkNames,
        hook=hook,
        registrants=config.registrants,
    )


def shippedChain(
    settings: RoutingSettings,
    *,
    users: UserDirectory,
    domains: Sequence[str],
    trunks: Collection[str] | None = None,
    hook: Callable[[CallRequest], object] | None = None,
    registrants: Sequence[Registrant] = (),
) -> RoutingChain:
    """Registrants (when there are some), hook (when there is one), static, registrar, trunks: the
    first router that decides wins."""
    routers: list[IRouter] = []
    if registrants:
        routers.append(RegistrantRouter(registrants, users, domains, settings.defaultDomain))
    if hook is not None:
        routers.append(HookRouter(hook, domains, settings.defaultDomain, trunks))
    routers.append(StaticRouter(settings.rules))
    routers.append(RegistrarRouter(users, domains, settings.defaultDomain))
    routers.append(TrunkRouter(settings.rules))
    return RoutingChain(routers)
