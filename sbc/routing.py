"""Where a new call goes: a chain of `IRouter`s, each of which decides or passes.

Modelled on ``twisted.names.resolve.ResolverChain``: the chain asks each router in turn and the
first one that decides wins. The shipped chain, in order:

1. ``hook``: the ops-written Python hook (`HookRouter`, loaded by `sbc.hook`), optional;
2. ``static``: rules from config (`StaticRouter`): DIDs to users, and explicit prefix routes;
3. ``registrar``: a user name of the caller's domain becomes a call to that user (`RegistrarRouter`);
4. ``trunks``: numbers nobody else claimed go out through the longest matching route, the
   default route included (`TrunkRouter`).

Everything a router decides is an immutable value: `Decision` holds either targets, tried in
order (failover), or a `Reject`. Nothing decides: ``404 No route``. A router that raises or fails
its Deferred makes the call fail closed with ``500``; the chain logs the first failure of each
kind with its traceback and then only a count at 10, 100, 1000, ... so a broken hook does not
flood the log.

Numbers are normalised to E.164 (`NumberPlan`) before DID and prefix lookups. Calls from a trunk
never go back out to a trunk unless a route says ``transit = true`` (and never to the trunk they
came from), so by default a trunk call to a number we do not serve gets 404.
"""

from __future__ import annotations

import re
import time
import traceback
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeAlias, cast

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from sbc.access import DEVICES, TRUNK, Peer
from sbc.errors import ConfigError
from sbc.interfaces import IRouter
from sbc.registrar.users import UserDirectory, isValidDomain, isValidUser
from sbc.sip.uri import isDigits
from sbc.waiting import whenReady

__all__ = [
    "NO_ROUTE",
    "ROUTING_FAILED",
    "CallRequest",
    "Decision",
    "HookRouter",
    "NumberPlan",
    "RegistrarRouter",
    "Reject",
    "Route",
    "RoutingChain",
    "RoutingRules",
    "RoutingSettings",
    "StaticRouter",
    "Target",
    "TrunkRouter",
    "TrunkTarget",
    "UserTarget",
    "buildChain",
    "callerDomain",
    "explain",
    "parseRoutingConfig",
]

_EMPTY: Mapping[str, str] = MappingProxyType({})


# The values


@dataclass(frozen=True)
class CallRequest:
    """What routing sees of a new INVITE.

    ``user`` is the Request-URI user part, unescaped: the dialled number or name. ``headers``
    holds a few headers for hooks, keyed in lower case; it is made read-only here.
    ``authenticatedUser`` is ``user@domain`` for a device that passed digest authentication.
    """

    source: Peer
    fromUser: str
    fromDomain: str
    user: str
    domain: str
    authenticatedUser: str | None = None
    headers: Mapping[str, str] = field(default_factory=lambda: _EMPTY, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.headers, MappingProxyType) or any(k != k.lower() for k in self.headers):
            headers = {name.lower(): value for name, value in self.headers.items()}
            object.__setattr__(self, "headers", MappingProxyType(headers))

    @property
    def fromTrunk(self) -> bool:
        """True when the call came in from a peer trunk (and not from a device)."""
        return self.source.kind == TRUNK


@dataclass(frozen=True)
class UserTarget:
    """Call a registered user: the B2BUA forks to every binding of ``aor`` (``user@domain``).

    A hook may give a bare user name; `HookRouter` completes it with the caller's domain.
    """

    aor: str

    def describe(self) -> str:
        return f"user {self.aor}"


@dataclass(frozen=True)
class TrunkTarget:
    """Call out through trunk ``trunk``, to ``number`` (E.164 with '+', or as normalised)."""

    trunk: str
    number: str

    def describe(self) -> str:
        return f"trunk {self.trunk} {self.number}"


Target: TypeAlias = UserTarget | TrunkTarget


@dataclass(frozen=True)
class Reject:
    """Refuse the call with a final error response (400 to 699); ``reason`` is the reason phrase."""

    status: int
    reason: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.status, bool) or not isinstance(self.status, int) or not 400 <= self.status <= 699:
            raise ValueError(f"a rejection needs a status from 400 to 699, not {self.status!r}")
        if self.reason is not None and (not isinstance(self.reason, str) or not _isPhrase(self.reason)):
            raise ValueError(f"bad reason phrase {self.reason!r}")

    def describe(self) -> str:
        return f"reject {self.status}" + ("" if self.reason is None else f" {self.reason}")


def _isPhrase(text: str) -> bool:
    """A reason phrase fits on the status line: printable, no CR or LF, not too long."""
    return len(text) <= 128 and text.isprintable()


@dataclass(frozen=True)
class Decision:
    """What a router decided: ``targets`` tried in order (failover), or ``reject``; never both.

    ``router`` names the router that decided (the chain fills it in when a router leaves it empty).
    """

    targets: tuple[Target, ...] = ()
    reject: Reject | None = None
    router: str = ""

    def __post_init__(self) -> None:
        targets: object = self.targets
        if not isinstance(targets, tuple):  # a list is accepted, and kept as a tuple
            object.__setattr__(self, "targets", tuple(cast(Sequence[Target], targets)))
        if (self.reject is None) == (not self.targets):
            raise ValueError("a decision has either targets or a rejection")
        for target in cast(tuple[object, ...], self.targets):  # hooks build these: check at run time
            if not isinstance(target, UserTarget | TrunkTarget):
                raise TypeError(f"not a routing target: {target!r}")

    def describe(self) -> str:
        """One line for logs and `explain`: ``user alice@x, then trunk demo +4930...``."""
        if self.reject is not None:
            return self.reject.describe()
        return ", then ".join(target.describe() for target in self.targets)


NO_ROUTE = Reject(404, "No route")
ROUTING_FAILED = Reject(500, "Routing failed")


# Numbers

# Visual separators of RFC 3966 section 5.1.1, and the white space people type.
_SEPARATORS = re.compile(r"[\s\-.()/]")
_NUMBER = re.compile(r"\+?[0-9]+")


@dataclass(frozen=True)
class NumberPlan:
    """How dialled numbers become E.164: ``00`` -> ``+``, national ``0`` -> ``+`` and country code.

    An empty field turns its rule off. Numbers without either prefix (short codes, extensions)
    keep their digits as dialled.
    """

    countryCode: str = ""
    nationalPrefix: str = ""
    internationalPrefix: str = ""

    def __post_init__(self) -> None:
        for name in ("countryCode", "nationalPrefix", "internationalPrefix"):
            value = getattr(self, name)
            if value and not isDigits(value):
                raise ValueError(f"{name} must be digits, not {value!r}")
        if self.nationalPrefix and not self.countryCode:
            raise ValueError("a national prefix needs a country code")

    def normalise(self, text: str) -> str | None:
        """The E.164 form of ``text`` (``+`` and digits), its digits, or None if it is no number.

        Parameters of a telephone-subscriber (``;isub=...``) and separators go first: with
        country code 49, national prefix 0 and international prefix 00, ``"0049 (30) 123-45.67"``
        and ``"030/1234567"`` both give ``"+49301234567"``.
        """
        number = _SEPARATORS.sub("", text.partition(";")[0])  # drop ;isub=, ;phone-context=
        if not _NUMBER.fullmatch(number) or not number.isascii():
            return None
        if number.startswith("+"):
            return number
        if self.internationalPrefix and number.startswith(self.internationalPrefix):
            rest = number[len(self.internationalPrefix) :]
            return "+" + rest if rest else None
        if self.nationalPrefix and number.startswith(self.nationalPrefix):
            rest = number[len(self.nationalPrefix) :]
            return "+" + self.countryCode + rest if rest else None
        return number


@dataclass(frozen=True)
class Route:
    """Numbers starting with ``prefix`` go out through ``trunks``, tried in order.

    ``prefix`` is normalised like a number; ``""`` is the default route. ``transit`` lets calls
    that came in from a trunk use this route too (never back to the trunk they came from).
    """

    prefix: str
    trunks: tuple[str, ...]
    transit: bool = False

    def targets(self, number: str, source: Peer) -> tuple[TrunkTarget, ...]:
        """The trunks this route offers a call from ``source``; none if the route is not for it."""
        if source.kind == DEVICES:
            return tuple(TrunkTarget(trunk, number) for trunk in self.trunks)
        if not self.transit:
            return ()
        return tuple(TrunkTarget(trunk, number) for trunk in self.trunks if trunk != source.name)


@dataclass(frozen=True)
class RoutingRules:
    """The static rules: a number plan, DIDs (E.164 -> AOR) and prefix routes.

    DID numbers and route prefixes are normalised with ``plan`` here, so ops may write them as
    they dial them. Routes are kept longest prefix first.
    """

    plan: NumberPlan = field(default_factory=NumberPlan)
    dids: Mapping[str, str] = field(default_factory=lambda: _EMPTY, hash=False)
    routes: tuple[Route, ...] = ()

    def __post_init__(self) -> None:
        dids: dict[str, str] = {}
        for number, aor in self.dids.items():
            key = self.plan.normalise(number)
            if key is None:
                raise ValueError(f"DID {number!r} is not a number")
            if key in dids:
                raise ValueError(f"DID {number!r} is given twice (as {key})")
            dids[key] = aor
        object.__setattr__(self, "dids", MappingProxyType(dids))
        routes: list[Route] = []
        for route in self.routes:
            prefix = _normalisePrefix(self.plan, route.prefix)
            if prefix is None:
                raise ValueError(f"route prefix {route.prefix!r} is not a number")
            routes.append(replace(route, prefix=prefix))
        routes.sort(key=lambda r: -len(r.prefix))
        object.__setattr__(self, "routes", tuple(routes))

    def did(self, number: str) -> str | None:
        """The AOR a normalised number is the DID of."""
        return self.dids.get(number)

    def outbound(self, number: str, source: Peer, *, includeDefault: bool = True) -> tuple[TrunkTarget, ...]:
        """Targets of the longest route that matches ``number`` and is open to ``source``."""
        for route in self.routes:
            if not includeDefault and not route.prefix:
                continue
            if number.startswith(route.prefix):
                targets = route.targets(number, source)
                if targets:
                    return targets
        return ()


def _normalisePrefix(plan: NumberPlan, prefix: str) -> str | None:
    if prefix.strip() in ("", "*"):
        return ""
    return plan.normalise(prefix)


def _defaultDomain(defaultDomain: str | None, domains: Sequence[str]) -> str | None:
    if defaultDomain:
        return defaultDomain.lower()
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


# The routers


@implementer(IRouter)
class StaticRouter:
    """DIDs (from any source) to users, and explicit prefix routes (not the default route)."""

    name = "static"

    def __init__(self, rules: RoutingRules) -> None:
        self.rules = rules

    def route(self, call: CallRequest) -> Decision | None:
        number = self.rules.plan.normalise(call.user)
        if number is None:
            return None
        aor = self.rules.did(number)
        if aor is not None:
            return Decision((UserTarget(aor),), router=self.name)
        targets = self.rules.outbound(number, call.source, includeDefault=False)
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
        self.defaultDomain = _defaultDomain(defaultDomain, domains)

    def route(self, call: CallRequest) -> Decision | None:
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
        number = self.rules.plan.normalise(call.user)
        if number is None:
            return None
        targets = self.rules.outbound(number, call.source)
        if not targets:
            return None
        return Decision(targets, router=self.name)


class HookError(Exception):
    """The hook returned something routing cannot use."""


@implementer(IRouter)
class HookRouter:
    """Asks the ops-written hook (`sbc.hook.Hook`, or any callable taking a `CallRequest`).

    The hook runs synchronously, in the reactor thread. It returns a `UserTarget`, a
    `TrunkTarget`, a `Reject`, a list of targets (failover order; empty means pass), or None to
    pass. Anything else, or an exception, is raised from `route` and so fails the call (500).
    A bare user name is completed with the caller's domain (`callerDomain`). A hook slower than
    ``slowThreshold`` seconds is logged: the first time, then at 10, 100, 1000, ... times.
    """

    name = "hook"
    log = Logger()

    def __init__(
        self,
        hook: Callable[[CallRequest], object],
        domains: Sequence[str] = (),
        defaultDomain: str | None = None,
        trunks: Collection[str] | None = None,
        *,
        slowThreshold: float = 0.05,
        timer: Callable[[], float] | None = None,
    ) -> None:
        self.hook = hook
        self.domains = frozenset(d.lower() for d in domains)
        self.defaultDomain = _defaultDomain(defaultDomain, domains)
        self.trunks = None if trunks is None else frozenset(trunks)
        self.slowThreshold = slowThreshold
        self.timer = timer if timer is not None else time.perf_counter
        self.slowCalls = 0

    def route(self, call: CallRequest) -> Decision | None:
        started = self.timer()
        try:
            return self._decision(call, self.hook(call))
        except SystemExit as e:  # a hook that calls exit() must not stop the server
            raise HookError(f"the hook called exit({e.code!r})") from e
        finally:
            self._timed(self.timer() - started)

    def _timed(self, elapsed: float) -> None:
        if elapsed < self.slowThreshold:
            return
        self.slowCalls += 1
        if _isMilestone(self.slowCalls):
            self.log.warn(
                "routing hook {hook} took {ms:.0f} ms ({count} slow call(s) so far): hooks run in the"
                " reactor thread and must not block",
                hook=self.hook,
                ms=elapsed * 1000,
                count=self.slowCalls,
            )

    def _decision(self, call: CallRequest, result: object) -> Decision | None:
        if result is None:
            return None
        if isinstance(result, Reject):
            return Decision(reject=result, router=self.name)
        if isinstance(result, UserTarget | TrunkTarget):
            items: Sequence[object] = (result,)
        elif isinstance(result, list | tuple):
            items = result
            if not items:
                return None
        else:
            raise HookError(
                f"route() returned {type(result).__name__}; expected call_user(), call_trunk(), reject(),"
                " a list of targets, or None"
            )
        return Decision(tuple(self._target(call, item) for item in items), router=self.name)

    def _target(self, call: CallRequest, item: object) -> Target:
        if isinstance(item, UserTarget):
            if "@" in item.aor:
                return item
            domain = callerDomain(call, self.domains, self.defaultDomain)
            if domain is None:
                raise HookError(f"call_user({item.aor!r}): the caller has no domain; write user@domain")
            return UserTarget(f"{item.aor}@{domain}")
        if isinstance(item, TrunkTarget):
            if self.trunks is not None and item.trunk not in self.trunks:
                raise HookError(f"call_trunk({item.trunk!r}, ...): no such trunk")
            return item
        raise HookError(f"route() returned a list holding {type(item).__name__}; only targets may be listed")


def _isMilestone(count: int) -> bool:
    """1, 10, 100, 1000, ...: when a repeated event is worth another log line."""
    while count >= 10 and count % 10 == 0:
        count //= 10
    return count == 1


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
            decision = _checked(answer, router)
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
        where = _where(failure)
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
        elif _isMilestone(count):
            self.log.error(
                "router {router} has failed {count} times with {error}{where}",
                router=router.name,
                count=count,
                error=type(failure.value).__name__,
                where=f" at {where}" if where else "",
            )


def _checked(result: object, router: IRouter) -> Decision | None:
    """A router's answer as the chain takes it: a Decision naming its router, or None."""
    if result is None:
        return None
    if not isinstance(result, Decision):
        raise TypeError(f"router {router.name} gave {type(result).__name__}, not a Decision or None")
    if not result.router:
        result = replace(result, router=str(router.name))
    return result


def _where(failure: Failure) -> str:
    """``file:line`` where the exception was raised, for grouping and logs."""
    tb = failure.getTracebackObject()
    if tb is None:
        return ""
    frames = traceback.extract_tb(tb)
    if not frames:
        return ""
    last = frames[-1]
    return f"{last.filename}:{last.lineno}"


# What a router said, as explain reports it.
Answer: TypeAlias = "Decision | Failure | None"


def explain(chain: RoutingChain, call: CallRequest) -> list[str]:
    """What each router of ``chain`` says about ``call``, and which decision the chain takes.

    Every router is asked, even after one has decided, so ops see what a later one would have
    done (marked "not reached"). The last line is the result. Failures are described but not
    logged or counted. A router whose Deferred has not fired yet (none of ours is asynchronous)
    is reported as "no answer yet", and the result line then says the outcome is open.
    """
    lines: list[str] = []
    chosen: str | None = None
    pending = False
    for router in chain.routers:
        # What the router says, once it has said it: a late answer or failure is only dropped.
        answers: list[Answer] = []

        def said(answer: object, router: IRouter = router, answers: list[Answer] = answers) -> None:
            answers.append(_checked(answer, router))

        try:
            whenReady(router.route(call), said, answers.append)
        except Exception:
            answers.append(Failure())
        if not answers:
            lines.append(f"{router.name}: no answer yet (asynchronous)")
            pending = pending or chosen is None
            continue
        result = answers[0]
        if result is None:
            lines.append(f"{router.name}: pass")
            continue
        if isinstance(result, Failure):
            where = _where(result)
            text = f"failed: {type(result.value).__name__}: {result.getErrorMessage()}"
            text += (f" ({where})" if where else "") + f" -> {ROUTING_FAILED.describe()}"
        else:
            text = result.describe()
        if chosen is None and not pending:
            chosen = f"{router.name}: {text}"
            lines.append(f"{router.name}: {text}  <- chosen")
        else:
            lines.append(f"{router.name}: {text}  (not reached)")
    if pending:
        lines.append("result: open (waiting for an asynchronous router)")
    else:
        lines.append(f"result: {chosen if chosen is not None else f'{chain.name}: {NO_ROUTE.describe()}'}")
    return lines


# From configuration


@dataclass(frozen=True)
class RoutingSettings:
    """The ``[routing]`` table: static rules, the domain for trunk calls, and the hook file."""

    rules: RoutingRules = field(default_factory=RoutingRules)
    defaultDomain: str | None = None
    hookPath: Path | None = None


_ROUTING_KEYS = frozenset({"hook", "default_domain", "numbers", "dids", "routes"})
_NUMBER_KEYS = {
    "country_code": "countryCode",
    "national_prefix": "nationalPrefix",
    "international_prefix": "internationalPrefix",
}
_ROUTE_KEYS = frozenset({"prefix", "trunks", "transit"})


def parseRoutingConfig(
    path: Path, base: Path, data: Mapping[str, Any], *, trunks: Collection[str], domains: Sequence[str]
) -> RoutingSettings:
    """Check the ``[routing]`` table of the config file at ``path``; `ConfigError` names the key.

    ``base`` is the directory relative hook paths start from; ``trunks`` are the configured trunk
    names and ``domains`` the registrar domains (the first is the default domain).
    """

    def fail(reason: str, key: str) -> ConfigError:
        return ConfigError(path, reason, key=f"routing.{key}" if key else "routing")

    def table(value: object, key: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise fail("must be a table", key)
        return value

    data = table(data, "")
    for key in data:
        if key not in _ROUTING_KEYS:
            raise fail("unknown key", key)
    domainList = [d.lower() for d in domains]

    hookPath: Path | None = None
    if "hook" in data:
        if not isinstance(data["hook"], str) or not data["hook"]:
            raise fail("must be a file name", "hook")
        hookPath = base / data["hook"]

    defaultDomain = domainList[0] if domainList else None
    if "default_domain" in data:
        value = data["default_domain"]
        if not isinstance(value, str) or not isValidDomain(value):
            raise fail("must be a domain name", "default_domain")
        if domainList and value.lower() not in domainList:
            raise fail("must be one of the [registrar] domains", "default_domain")
        defaultDomain = value.lower()

    numbers = table(data.get("numbers", {}), "numbers")
    planArgs: dict[str, str] = {}
    for key, value in numbers.items():
        if key not in _NUMBER_KEYS:
            raise fail("unknown key", f"numbers.{key}")
        if not isinstance(value, str) or (value and not isDigits(value)):
            raise fail('must be a string of digits, such as "49"', f"numbers.{key}")
        planArgs[_NUMBER_KEYS[key]] = value
    try:
        plan = NumberPlan(**planArgs)
    except ValueError:
        raise fail("national_prefix needs country_code", "numbers.national_prefix") from None

    dids: dict[str, str] = {}
    seen: dict[str, str] = {}
    for number, target in table(data.get("dids", {}), "dids").items():
        key = f'dids."{number}"'
        e164 = plan.normalise(number)
        if e164 is None:
            raise fail("is not a number", key)
        if e164 in seen:
            raise fail(f"is the same number as {seen[e164]!r}", key)
        seen[e164] = number
        if not isinstance(target, str):
            raise fail("must be a user name or user@domain", key)
        user, at, domain = target.rpartition("@")
        if not at:
            user, domain = target, defaultDomain or ""
            if not domain:
                raise fail("write user@domain: there is no [registrar] domain to default to", key)
        if not isValidUser(user) or not isValidDomain(domain):
            raise fail("must be a user name or user@domain", key)
        if domainList and domain.lower() not in domainList:
            raise fail(f"{domain} is not one of the [registrar] domains", key)
        dids[number] = f"{user}@{domain.lower()}"

    routesData = data.get("routes", [])
    if not isinstance(routesData, list):
        raise fail("must be a list of [[routing.routes]] tables", "routes")
    routes: list[Route] = []
    prefixes: set[str] = set()
    for index, item in enumerate(routesData):
        here = f"routes[{index}]"
        item = table(item, here)
        for key in item:
            if key not in _ROUTE_KEYS:
                raise fail("unknown key", f"{here}.{key}")
        prefix = item.get("prefix", "*")
        if not isinstance(prefix, str):
            raise fail('must be a string: digits, "+digits", or "*" for the default route', f"{here}.prefix")
        normalised = _normalisePrefix(plan, prefix)
        if normalised is None:
            raise fail('must be digits, "+digits", or "*" for the default route', f"{here}.prefix")
        if normalised in prefixes:
            raise fail(f"another route already has prefix {normalised or '*'}", f"{here}.prefix")
        prefixes.add(normalised)
        names = item.get("trunks")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise fail("must be a list of trunk names", f"{here}.trunks")
        for name in names:
            if name not in trunks:
                raise fail(f"there is no [trunks.{name}]", f"{here}.trunks")
        if len(set(names)) != len(names):
            raise fail("names a trunk twice", f"{here}.trunks")
        transit = item.get("transit", False)
        if not isinstance(transit, bool):
            raise fail("must be true or false", f"{here}.transit")
        routes.append(Route(prefix, tuple(names), transit))

    return RoutingSettings(RoutingRules(plan, dids, tuple(routes)), defaultDomain, hookPath)


def buildChain(
    settings: RoutingSettings,
    *,
    users: UserDirectory,
    domains: Sequence[str],
    trunks: Collection[str] | None = None,
    hook: Callable[[CallRequest], object] | None = None,
) -> RoutingChain:
    """The shipped chain: hook (when there is one), static, registrar, trunks."""
    routers: list[IRouter] = []
    if hook is not None:
        routers.append(HookRouter(hook, domains, settings.defaultDomain, trunks))
    routers.append(StaticRouter(settings.rules))
    routers.append(RegistrarRouter(users, domains, settings.defaultDomain))
    routers.append(TrunkRouter(settings.rules))
    return RoutingChain(routers)
