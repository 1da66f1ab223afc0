"""The ``[routing]`` table: the number plan, DIDs, prefix routes, the default domain and the hook file.

These are the static rules as values; `sbc.routing` turns them into routers. Numbers are
normalised to E.164 (`NumberPlan`) before DID and prefix lookups, so ops may write them as they
dial them.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

from sbc.access import DEVICES, Peer
from sbc.config.table import Table
from sbc.config.users import isValidDomain, isValidUser
from sbc.sip.uri import isDigits

_EMPTY: Mapping[str, str] = MappingProxyType({})

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
class PrefixRoute:
    """Numbers starting with ``prefix`` go out through ``trunks``, tried in order.

    ``prefix`` is normalised like a number; ``""`` is the default route. ``transit`` lets calls
    that came in from a trunk use this route too (never back to the trunk they came from).
    """

    prefix: str
    trunks: tuple[str, ...]
    transit: bool = False

    def trunksFor(self, source: Peer) -> tuple[str, ...]:
        """The trunks this route offers a call from ``source``; none if the route is not for it."""
        if source.kind == DEVICES:
            return self.trunks
        if not self.transit:
            return ()
        return tuple(trunk for trunk in self.trunks if trunk != source.name)


@dataclass(frozen=True)
class RoutingRules:
    """The static rules: a number plan, DIDs (E.164 -> AOR) and prefix routes.

    DID numbers and route prefixes are normalised with ``plan`` here, so ops may write them as
    they dial them. Routes are kept longest prefix first.
    """

    plan: NumberPlan = field(default_factory=NumberPlan)
    dids: Mapping[str, str] = field(default_factory=lambda: _EMPTY, hash=False)
    routes: tuple[PrefixRoute, ...] = ()

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
        routes: list[PrefixRoute] = []
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

    def trunksFor(self, number: str, source: Peer, *, includeDefault: bool = True) -> tuple[str, ...]:
        """Trunks of the longest route that matches ``number`` and is open to ``source``."""
        for route in self.routes:
            if not includeDefault and not route.prefix:
                continue
            if number.startswith(route.prefix):
                trunks = route.trunksFor(source)
                if trunks:
                    return trunks
        return ()


@dataclass(frozen=True)
class RoutingSettings:
    """The ``[routing]`` table: static rules, the domain for trunk calls, and the hook file."""

    rules: RoutingRules = field(default_factory=RoutingRules)
    defaultDomain: str | None = None
    hookPath: Path | None = None


def _normalisePrefix(plan: NumberPlan, prefix: str) -> str | None:
    if prefix.strip() in ("", "*"):
        return ""
    return plan.normalise(prefix)


_NUMBER_KEYS = {
    "country_code": "countryCode",
    "national_prefix": "nationalPrefix",
    "international_prefix": "internationalPrefix",
}


def loadRouting(
    top: Table, base: Path, *, trunks: Collection[str], domains: Sequence[str]
) -> RoutingSettings:
    """The ``[routing]`` table; `ConfigError` names the key.

    ``base`` is the directory relative hook paths start from; ``trunks`` are the configured trunk
    names and ``domains`` the registrar domains (the first is the default domain).
    """
    table = top.table("routing")
    domainList = [d.lower() for d in domains]

    hookPath: Path | None = None
    if table.has("hook"):
        hook = table.raw("hook")
        if not isinstance(hook, str) or not hook:
            raise table.error("hook", "must be a file name")
        hookPath = base / hook

    defaultDomain = domainList[0] if domainList else None
    if table.has("default_domain"):
        value = table.raw("default_domain")
        if not isinstance(value, str) or not isValidDomain(value):
            raise table.error("default_domain", "must be a domain name")
        if domainList and value.lower() not in domainList:
            raise table.error("default_domain", "must be one of the [registrar] domains")
        defaultDomain = value.lower()

    plan = _plan(table.table("numbers"))
    dids = _dids(table.table("dids"), plan, defaultDomain, domainList)
    routes = _routes(table, plan, trunks)
    table.done()
    return RoutingSettings(RoutingRules(plan, dids, routes), defaultDomain, hookPath)


def _plan(table: Table) -> NumberPlan:
    """``[routing.numbers]``: the number plan."""
    planArgs: dict[str, str] = {}
    for key in _NUMBER_KEYS:
        if table.has(key):
            value = table.raw(key)
            if not isinstance(value, str) or (value and not isDigits(value)):
                raise table.error(key, 'must be a string of digits, such as "49"')
            planArgs[_NUMBER_KEYS[key]] = value
    table.done()
    try:
        return NumberPlan(**planArgs)
    except ValueError:
        raise table.error("national_prefix", "national_prefix needs country_code") from None


def _dids(
    table: Table, plan: NumberPlan, defaultDomain: str | None, domains: Sequence[str]
) -> dict[str, str]:
    """``[routing.dids]``: numbers, in any spelling, to ``user`` or ``user@domain``."""
    dids: dict[str, str] = {}
    seen: dict[str, str] = {}
    for number in list(table.data):
        target = table.raw(number)
        key = f'"{number}"'
        e164 = plan.normalise(number)
        if e164 is None:
            raise table.error(key, "is not a number")
        if e164 in seen:
            raise table.error(key, f"is the same number as {seen[e164]!r}")
        seen[e164] = number
        if not isinstance(target, str):
            raise table.error(key, "must be a user name or user@domain")
        user, at, domain = target.rpartition("@")
        if not at:
            user, domain = target, defaultDomain or ""
            if not domain:
                raise table.error(key, "write user@domain: there is no [registrar] domain to default to")
        if not isValidUser(user) or not isValidDomain(domain):
            raise table.error(key, "must be a user name or user@domain")
        if domains and domain.lower() not in domains:
            raise table.error(key, f"{domain} is not one of the [registrar] domains")
        dids[number] = f"{user}@{domain.lower()}"
    table.done()
    return dids


def _routes(table: Table, plan: NumberPlan, trunks: Collection[str]) -> tuple[PrefixRoute, ...]:
    """``[[routing.routes]]``: prefixes to trunks, longest prefix first once in `RoutingRules`."""
    items = table.raw("routes", [])
    if not isinstance(items, list):
        raise table.error("routes", "must be a list of [[routing.routes]] tables")
    routes: list[PrefixRoute] = []
    prefixes: set[str] = set()
    for index, item in enumerate(items):
        route = Table(table.path, table.key(f"routes[{index}]"), item)
        prefix = route.raw("prefix", "*")
        if not isinstance(prefix, str):
            raise route.error("prefix", 'must be a string: digits, "+digits", or "*" for the default route')
        normalised = _normalisePrefix(plan, prefix)
        if normalised is None:
            raise route.error("prefix", 'must be digits, "+digits", or "*" for the default route')
        if normalised in prefixes:
            raise route.error("prefix", f"another route already has prefix {normalised or '*'}")
        prefixes.add(normalised)
        names = route.raw("trunks")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise route.error("trunks", "must be a list of trunk names")
        for name in names:
            if name not in trunks:
                raise route.error("trunks", f"there is no [trunks.{name}]")
        if len(set(names)) != len(names):
            raise route.error("trunks", "names a trunk twice")
        transit = route.raw("transit", False)
        if not isinstance(transit, bool):
            raise route.error("transit", "must be true or false")
        route.done()
        routes.append(PrefixRoute(prefix, tuple(names), transit))
    return tuple(routes)
