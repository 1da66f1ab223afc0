"""Tests for sbc.routing (routers, chain, explain) and sbc.config.routing (number plans, [routing])."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger, LogLevel
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from sbc.access import DEVICE_NETWORK, TRUNK, Peer
from sbc.config import Table
from sbc.config.errors import ConfigError
from sbc.config.routing import loadRouting
from sbc.config.users import Account, UserDirectory
from sbc.interfaces import IRouter
from sbc.routing import (
    NO_ROUTE,
    ROUTING_FAILED,
    CallRequest,
    Decision,
    HookError,
    HookRouter,
    NumberPlan,
    PrefixRoute,
    RegistrarRouter,
    Reject,
    RoutingChain,
    RoutingRules,
    RoutingSettings,
    StaticRouter,
    TrunkRouter,
    TrunkTarget,
    UserTarget,
    callerDomain,
    explain,
    shippedChain,
)
from tests.fakes import FixedRouter, LogRecorder

DOMAIN = "demo.acme.sbc.test"
OTHER = "other.test"
DEMO = Peer(TRUNK, "demo")
BACKUP = Peer(TRUNK, "backup")
PLAN = NumberPlan(countryCode="49", nationalPrefix="0", internationalPrefix="00")
TRUNKS = ("demo", "backup", "local", "intl")

USERS = UserDirectory(
    [
        Account("alice", DOMAIN, MappingProxyType({})),
        Account("bob", DOMAIN, MappingProxyType({})),
        Account("100", DOMAIN, MappingProxyType({})),
        Account("carol", OTHER, MappingProxyType({})),
    ]
)

RULES = RoutingRules(
    PLAN,
    {"+49 30 123456": f"alice@{DOMAIN}", "100": f"bob@{DOMAIN}"},
    (
        PrefixRoute("+49", ("demo", "backup")),
        PrefixRoute("030", ("local",)),
        PrefixRoute("*", ("demo",)),
        PrefixRoute("+1", ("demo", "intl"), transit=True),
    ),
)

# The TOML the report hands the lead: it must parse, and give the rules above.
ROUTING_TOML = """
[routing]
hook = "routing.py"
default_domain = "demo.acme.sbc.test"

[routing.numbers]
country_code = "49"
national_prefix = "0"
international_prefix = "00"

[routing.dids]
"+49 30 123456" = "alice"
"100" = "bob@demo.acme.sbc.test"

[[routing.routes]]
prefix = "+49"
trunks = ["demo", "backup"]

[[routing.routes]]
prefix = "030"
trunks = ["local"]

[[routing.routes]]
prefix = "*"
trunks = ["demo"]

[[routing.routes]]
prefix = "+1"
trunks = ["demo", "intl"]
transit = true

[cdr]
file = "cdr.jsonl"
"""


def deviceCall(user: str, caller: str = f"alice@{DOMAIN}", domain: str = DOMAIN, **kw: Any) -> CallRequest:
    name, _, callerDomain = caller.partition("@")
    return CallRequest(DEVICE_NETWORK, name, callerDomain, user, domain, authenticatedUser=caller, **kw)


def trunkCall(user: str, domain: str = "127.0.0.1", peer: Peer = DEMO) -> CallRequest:
    return CallRequest(peer, "+4940999", "198.51.100.7", user, domain)


def targets(*items: UserTarget | TrunkTarget) -> tuple[UserTarget | TrunkTarget, ...]:
    return items


def crash(call: CallRequest) -> None:
    raise ZeroDivisionError("boom")


class NumberPlanTests(SynchronousTestCase):
    def test_national(self) -> None:
        """The national prefix becomes + and the country code."""
        self.assertEqual(PLAN.normalise("0301234567"), "+49301234567")

    def test_international(self) -> None:
        """The international prefix becomes +, and a number with + stays as it is."""
        self.assertEqual(PLAN.normalise("00442079460000"), "+442079460000")
        self.assertEqual(PLAN.normalise("+442079460000"), "+442079460000")

    def test_separators(self) -> None:
        """Separators and ;parameters go before the prefixes are looked at."""
        for text in (
            "+49 (30) 123-45.67",
            "030/1234567",
            "0049 30 1234567",
            "030\t123 45 67",
            "+49-30-1234567;isub=1",
        ):
            self.assertEqual(PLAN.normalise(text), "+49301234567", text)

    def test_shortCodes(self) -> None:
        """Numbers without a prefix (emergency, extensions) keep their digits."""
        self.assertEqual(PLAN.normalise("112"), "112")
        self.assertEqual(PLAN.normalise("1-0-0"), "100")

    def test_notNumbers(self) -> None:
        """Names, empty strings, bare prefixes and non-ASCII digits are not numbers."""
        for text in ("alice", "", "+", "12a4", "0", "00", "+49+30", "\u0663\u0664", "*97"):
            self.assertIsNone(PLAN.normalise(text), text)

    def test_emptyPlan(self) -> None:
        """Without prefixes configured, numbers are only stripped of separators."""
        self.assertEqual(NumberPlan().normalise("030 1234"), "0301234")
        self.assertEqual(NumberPlan().normalise("0044 1"), "00441")

    def test_invalid(self) -> None:
        """A plan needs digits, and a country code for its national prefix."""
        self.assertRaises(ValueError, NumberPlan, nationalPrefix="0")
        self.assertRaises(ValueError, NumberPlan, countryCode="+49")


class ValueTests(SynchronousTestCase):
    def test_decisionNeedsOneKind(self) -> None:
        """A decision has targets or a rejection: neither, or both, is an error."""
        self.assertRaises(ValueError, Decision)
        self.assertRaises(ValueError, Decision, (UserTarget("a@b"),), Reject(404))

    def test_decisionTargetsAreTargets(self) -> None:
        """A list of targets is kept as a tuple; anything else in it is refused."""
        decision = Decision([UserTarget("a@b")])  # type: ignore[arg-type]
        self.assertEqual(decision.targets, (UserTarget("a@b"),))
        self.assertRaises(TypeError, Decision, ("a@b",))

    def test_rejectStatus(self) -> None:
        """A rejection is a final error: 400 to 699, with a one-line reason."""
        for status in (200, 399, 700, True, "404"):
            self.assertRaises(ValueError, Reject, status)
        self.assertRaises(ValueError, Reject, 403, "bad\r\nX-Injected: 1")
        self.assertEqual(Reject(603, "Declined").describe(), "reject 603 Declined")

    def test_describe(self) -> None:
        """A decision describes its targets in failover order."""
        decision = Decision((UserTarget("alice@x"), TrunkTarget("demo", "+4930")))
        self.assertEqual(decision.describe(), "user alice@x, then trunk demo +4930")

    def test_callRequestHeaders(self) -> None:
        """Headers are keyed in lower case and read-only; the request is hashable."""
        call = deviceCall("bob", headers={"P-Asserted-Identity": "<sip:+4930@x>"})
        self.assertEqual(call.headers["p-asserted-identity"], "<sip:+4930@x>")
        with self.assertRaises(TypeError):
            call.headers["x"] = "y"  # type: ignore[index]
        self.assertEqual(hash(call), hash(deviceCall("bob")))
        self.assertFalse(call.fromTrunk)
        self.assertTrue(trunkCall("alice").fromTrunk)


class RoutingRulesTests(SynchronousTestCase):
    def test_normalisedKeys(self) -> None:
        """DID numbers and route prefixes are normalised as dialled numbers are; * is the default."""
        self.assertEqual(dict(RULES.dids), {"+4930123456": f"alice@{DOMAIN}", "100": f"bob@{DOMAIN}"})
        self.assertEqual([r.prefix for r in RULES.routes], ["+4930", "+49", "+1", ""])

    def test_duplicateDID(self) -> None:
        """Two spellings of one DID are refused."""
        self.assertRaises(ValueError, RoutingRules, PLAN, {"030 1": "a@b", "+49301": "c@d"})
        self.assertRaises(ValueError, RoutingRules, PLAN, {"alice": "a@b"})


class CallerDomainTests(SynchronousTestCase):
    def test_device(self) -> None:
        """A device's domain is the one it authenticated in, whatever host it dialled."""
        self.assertEqual(callerDomain(deviceCall("x", domain=OTHER), {DOMAIN, OTHER}, DOMAIN), DOMAIN)
        unauthenticated = CallRequest(DEVICE_NETWORK, "alice", DOMAIN, "bob", DOMAIN)
        self.assertIsNone(callerDomain(unauthenticated, {DOMAIN}, DOMAIN))

    def test_trunk(self) -> None:
        """A trunk's domain is the Request-URI host when it is ours, else the default domain."""
        self.assertEqual(callerDomain(trunkCall("x", OTHER.upper()), {DOMAIN, OTHER}, DOMAIN), OTHER)
        self.assertEqual(callerDomain(trunkCall("x", "127.0.0.1"), {DOMAIN, OTHER}, DOMAIN), DOMAIN)
        self.assertIsNone(callerDomain(trunkCall("x"), set(), None))


class StaticRouterTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.router = StaticRouter(RULES)

    def decide(self, call: CallRequest) -> Decision | None:
        return self.router.route(call)

    def test_interface(self) -> None:
        """StaticRouter provides IRouter."""
        self.assertTrue(verifyObject(IRouter, self.router))

    def test_didToUser(self) -> None:
        """A trunk call to a DID, in any spelling, reaches the user."""
        for dialled in ("+4930123456", "030 123456", "0049-30-123456"):
            self.assertEqual(
                self.decide(trunkCall(dialled)),
                Decision((UserTarget(f"alice@{DOMAIN}"),), router="static"),
                dialled,
            )

    def test_didFromDevice(self) -> None:
        """A device that dials a DID reaches the user too, not the trunk."""
        self.assertEqual(
            self.decide(deviceCall("+4930123456")),
            Decision((UserTarget(f"alice@{DOMAIN}"),), router="static"),
        )

    def test_longestPrefix(self) -> None:
        """The longest matching prefix wins: +4930 over +49."""
        decision = self.decide(deviceCall("030 9999"))
        assert decision is not None
        self.assertEqual(decision.targets, targets(TrunkTarget("local", "+49309999")))

    def test_multiTrunkFailover(self) -> None:
        """A route with several trunks offers them in the order written."""
        decision = self.decide(deviceCall("040 9999"))
        assert decision is not None
        self.assertEqual(
            decision.targets, targets(TrunkTarget("demo", "+49409999"), TrunkTarget("backup", "+49409999"))
        )

    def test_defaultLeftToTrunks(self) -> None:
        """The default route and names are not the static router's: it passes."""
        self.assertIsNone(self.decide(deviceCall("+33123456")))
        self.assertIsNone(self.decide(deviceCall("bob")))

    def test_trunkCallsNoTransit(self) -> None:
        """A trunk call matches only transit routes, and never its own trunk."""
        self.assertIsNone(self.decide(trunkCall("040 9999")))
        decision = self.decide(trunkCall("+12125550100"))
        assert decision is not None
        self.assertEqual(decision.targets, targets(TrunkTarget("intl", "+12125550100")))


class RegistrarRouterTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.router = RegistrarRouter(USERS, [DOMAIN, OTHER])

    def decide(self, call: CallRequest) -> Decision | None:
        return self.router.route(call)

    def test_interface(self) -> None:
        """RegistrarRouter provides IRouter."""
        self.assertTrue(verifyObject(IRouter, self.router))

    def test_userToUser(self) -> None:
        """A device reaches another user of its domain by name."""
        self.assertEqual(
            self.decide(deviceCall("bob")), Decision((UserTarget(f"bob@{DOMAIN}"),), router="registrar")
        )

    def test_otherTenant(self) -> None:
        """A device cannot reach a user of another of our domains by name, even naming its host."""
        self.assertIsNone(self.decide(deviceCall("carol", domain=OTHER)))
        self.assertEqual(self.decide(deviceCall("alice", caller=f"carol@{OTHER}")), None)

    def test_trunkToUserName(self) -> None:
        """A trunk call to a user name reaches the user in the default domain, or in the R-URI's."""
        self.assertEqual(
            self.decide(trunkCall("alice")), Decision((UserTarget(f"alice@{DOMAIN}"),), router="registrar")
        )
        self.assertEqual(
            self.decide(trunkCall("carol", OTHER)),
            Decision((UserTarget(f"carol@{OTHER}"),), router="registrar"),
        )

    def test_unknown(self) -> None:
        """Unknown names, names in another case, and unauthenticated devices pass."""
        self.assertIsNone(self.decide(deviceCall("mallory")))
        self.assertIsNone(self.decide(deviceCall("Alice")))
        self.assertIsNone(self.decide(CallRequest(DEVICE_NETWORK, "alice", DOMAIN, "bob", DOMAIN)))

    def test_noDomains(self) -> None:
        """Without registrar domains, trunk calls to names pass."""
        self.assertIsNone(RegistrarRouter(USERS, []).route(trunkCall("alice")))


class TrunkRouterTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.router = TrunkRouter(RULES)

    def decide(self, call: CallRequest) -> Decision | None:
        return self.router.route(call)

    def test_interface(self) -> None:
        """TrunkRouter provides IRouter."""
        self.assertTrue(verifyObject(IRouter, self.router))

    def test_defaultTrunk(self) -> None:
        """A device's number with no specific route goes out through the default route."""
        self.assertEqual(
            self.decide(deviceCall("0033 1 23 45")),
            Decision((TrunkTarget("demo", "+3312345"),), router="trunks"),
        )

    def test_prefixes(self) -> None:
        """Prefix routes apply here too, longest first."""
        decision = self.decide(deviceCall("+4930777"))
        assert decision is not None
        self.assertEqual(decision.targets, targets(TrunkTarget("local", "+4930777")))

    def test_namesPass(self) -> None:
        """Names are not numbers: they pass."""
        self.assertIsNone(self.decide(deviceCall("bob")))

    def test_noTromboning(self) -> None:
        """A trunk call to a number is not sent back out: not by default, not by a non-transit route."""
        self.assertIsNone(self.decide(trunkCall("+3312345")))
        self.assertIsNone(self.decide(trunkCall("+4940777")))

    def test_transitSkipsSource(self) -> None:
        """A transit route serves trunk calls, without the trunk the call came from."""
        decision = self.decide(trunkCall("+12125550100", peer=BACKUP))
        assert decision is not None
        self.assertEqual(
            decision.targets,
            targets(TrunkTarget("demo", "+12125550100"), TrunkTarget("intl", "+12125550100")),
        )

    def test_noDefault(self) -> None:
        """Without a default route, unmatched numbers pass."""
        router = TrunkRouter(RoutingRules(PLAN, {}, (PrefixRoute("+49", ("demo",)),)))
        self.assertIsNone(router.route(deviceCall("+331")))


class RoutingChainTests(SynchronousTestCase):
    def chain(self, hook: Callable[[CallRequest], object] | None = None) -> RoutingChain:
        chain = shippedChain(
            RoutingSettings(RULES), users=USERS, domains=[DOMAIN, OTHER], trunks=TRUNKS, hook=hook
        )
        self.events = LogRecorder()
        chain.log = Logger(observer=self.events)
        return chain

    def decide(self, chain: RoutingChain, call: CallRequest) -> Decision:
        answer = chain.route(call)
        decision = self.successResultOf(answer) if isinstance(answer, defer.Deferred) else answer
        assert decision is not None
        return decision

    def test_interface(self) -> None:
        """The chain provides IRouter itself, like twisted.names' ResolverChain provides IResolver."""
        self.assertTrue(verifyObject(IRouter, self.chain()))

    def test_order(self) -> None:
        """The shipped order: hook, static, registrar, trunks; without a hook it starts at static."""
        self.assertEqual(
            [r.name for r in self.chain(lambda call: None).routers], ["hook", "static", "registrar", "trunks"]
        )
        self.assertEqual([r.name for r in self.chain().routers], ["static", "registrar", "trunks"])

    def test_hookFirst(self) -> None:
        """The hook decides before the static rules."""
        chain = self.chain(lambda call: Reject(403, "Hook says no"))
        self.assertEqual(
            self.decide(chain, trunkCall("+4930123456")),
            Decision(reject=Reject(403, "Hook says no"), router="hook"),
        )

    def test_staticBeforeRegistrar(self) -> None:
        """A DID wins over a user of the same name."""
        self.assertEqual(
            self.decide(self.chain(), deviceCall("100")).targets, targets(UserTarget(f"bob@{DOMAIN}"))
        )

    def test_registrarBeforeTrunks(self) -> None:
        """A user named like a number wins over the default route."""
        rules = RoutingRules(PLAN, {}, (PrefixRoute("*", ("demo",)),))
        chain = shippedChain(RoutingSettings(rules), users=USERS, domains=[DOMAIN])
        decision = chain.route(deviceCall("100"))
        assert isinstance(decision, Decision)
        self.assertEqual(
            (decision.router, decision.targets), ("registrar", targets(UserTarget(f"100@{DOMAIN}")))
        )

    def test_demoPaths(self) -> None:
        """Trunk to DID or name reaches a user; device to name a user; device to number the trunk."""
        chain = self.chain()
        self.assertEqual(
            self.decide(chain, trunkCall("030123456")).targets, targets(UserTarget(f"alice@{DOMAIN}"))
        )
        self.assertEqual(self.decide(chain, trunkCall("bob")).targets, targets(UserTarget(f"bob@{DOMAIN}")))
        self.assertEqual(self.decide(chain, deviceCall("bob")).targets, targets(UserTarget(f"bob@{DOMAIN}")))
        self.assertEqual(self.decide(chain, deviceCall("+331")).targets, targets(TrunkTarget("demo", "+331")))

    def test_noRoute(self) -> None:
        """Nothing decides: 404 No route, decided by the chain."""
        self.assertEqual(
            self.decide(self.chain(), deviceCall("mallory")), Decision(reject=NO_ROUTE, router="chain")
        )
        self.assertEqual(NO_ROUTE, Reject(404, "No route"))

    def test_trunkToTrunkRefused(self) -> None:
        """A trunk call to a number we do not serve gets 404: no tromboning by default."""
        self.assertEqual(self.decide(self.chain(), trunkCall("+3312345")).reject, NO_ROUTE)

    def test_firstDecisionWins(self) -> None:
        """Routers after the deciding one are not asked; the chain names the router."""
        first = FixedRouter("first", lambda call: None)
        second = FixedRouter("second", lambda call: Decision(reject=Reject(486)))
        third = FixedRouter("third", lambda call: Decision(reject=Reject(404)))
        chain = RoutingChain([first, second, third])
        self.assertEqual(self.decide(chain, deviceCall("x")), Decision(reject=Reject(486), router="second"))
        self.assertEqual((first.asked, second.asked, third.asked), (1, 1, 0))

    def test_asynchronousRouter(self) -> None:
        """The chain waits for a router's Deferred before asking the next."""
        pending: defer.Deferred[Decision | None] = defer.Deferred()
        later = FixedRouter("later", lambda call: Decision(reject=Reject(480)))
        chain = RoutingChain([FixedRouter("slow", lambda call: pending), later])
        result = chain.route(deviceCall("x"))
        assert isinstance(result, defer.Deferred)
        self.assertNoResult(result)
        self.assertEqual(later.asked, 0)
        pending.callback(None)
        self.assertEqual(self.successResultOf(result), Decision(reject=Reject(480), router="later"))

    def test_decideAtOnce(self) -> None:
        """Routers that answer at once give the decision itself, with no Deferred to run."""
        chain = RoutingChain(
            [
                FixedRouter("pass", lambda call: None),
                FixedRouter("plain", lambda call: Decision(reject=Reject(486))),
            ]
        )
        self.assertEqual(chain.decide(deviceCall("x")), Decision(reject=Reject(486), router="plain"))
        self.assertEqual(chain.decide(deviceCall("y")).router, "plain")  # type: ignore[union-attr]

    def test_decideLater(self) -> None:
        """A router still waiting makes ``decide`` hand back a Deferred for the chain's answer."""
        pending: defer.Deferred[Decision | None] = defer.Deferred()
        chain = RoutingChain([FixedRouter("slow", lambda call: pending)])
        result = chain.decide(deviceCall("x"))
        assert isinstance(result, defer.Deferred)
        pending.callback(None)
        self.assertEqual(self.successResultOf(result), Decision(reject=NO_ROUTE, router="chain"))

    def test_failuresFailClosed(self) -> None:
        """A router that raises, errbacks, or answers nonsense makes the call fail with 500."""
        answers: list[Callable[[CallRequest], Any]] = [
            crash,
            lambda call: defer.fail(KeyError("x")),
            lambda call: "a string",
        ]
        for answer in answers:
            chain = RoutingChain(
                [FixedRouter("bad", answer), FixedRouter("next", lambda call: Decision(reject=Reject(486)))]
            )
            chain.log = Logger(observer=LogRecorder())
            self.assertEqual(
                self.decide(chain, deviceCall("x")), Decision(reject=ROUTING_FAILED, router="bad")
            )
            self.assertEqual(chain.failures, 1)
        self.assertEqual(ROUTING_FAILED.status, 500)

    def test_failureLogNoSpam(self) -> None:
        """The first failure is logged with its traceback, then only counts at 10, 100, ..."""
        chain = self.chain(crash)
        for _ in range(150):
            self.assertEqual(self.decide(chain, deviceCall("bob")).reject, ROUTING_FAILED)
        self.assertEqual(chain.failures, 150)
        self.assertEqual(len(self.events.events), 3)
        first, tenth, hundredth = self.events.events
        self.assertIs(first["log_failure"].type, ZeroDivisionError)
        self.assertIn("test_routing.py:", first["where"])
        self.assertEqual((tenth["count"], hundredth["count"]), (10, 100))
        self.assertEqual(tenth["log_level"], LogLevel.error)

    def test_hookFailureThroughChain(self) -> None:
        """A hook that raises rejects the call with 500, named after the hook."""
        decision = self.decide(self.chain(crash), trunkCall("+4930123456"))
        self.assertEqual(decision, Decision(reject=ROUTING_FAILED, router="hook"))

    def test_unnamedDecision(self) -> None:
        """A decision without a router name gets the deciding router's name."""
        chain = RoutingChain([FixedRouter("named", lambda call: Decision(reject=Reject(404)))])
        self.assertEqual(self.decide(chain, deviceCall("x")).router, "named")


class ExplainTests(SynchronousTestCase):
    def chain(self, hook: Callable[[CallRequest], object] | None = None) -> RoutingChain:
        return shippedChain(RoutingSettings(RULES), users=USERS, domains=[DOMAIN], trunks=TRUNKS, hook=hook)

    def test_eachRouter(self) -> None:
        """Every router says its piece; the first decision is chosen and later ones are not reached."""
        self.assertEqual(
            explain(self.chain(lambda call: None), trunkCall("bob")),
            [
                "hook: pass",
                "static: pass",
                f"registrar: user bob@{DOMAIN}  <- chosen",
                "trunks: pass",
                f"result: registrar: user bob@{DOMAIN}",
            ],
        )

    def test_shadowed(self) -> None:
        """A later router that would also decide is shown as not reached."""
        lines = explain(self.chain(), deviceCall("+4940777"))
        self.assertEqual(
            lines,
            [
                "static: trunk demo +4940777, then trunk backup +4940777  <- chosen",
                "registrar: pass",
                "trunks: trunk demo +4940777, then trunk backup +4940777  (not reached)",
                "result: static: trunk demo +4940777, then trunk backup +4940777",
            ],
        )

    def test_noRoute(self) -> None:
        """When nothing decides, the result is the chain's 404."""
        self.assertEqual(
            explain(self.chain(), deviceCall("mallory"))[-1], "result: chain: reject 404 No route"
        )

    def test_failure(self) -> None:
        """A failing router is described with its error and place, and is neither logged nor counted."""
        chain = self.chain(crash)
        lines = explain(chain, deviceCall("bob"))
        self.assertTrue(lines[0].startswith("hook: failed: ZeroDivisionError: boom ("), lines[0])
        self.assertTrue(lines[0].endswith("-> reject 500 Routing failed  <- chosen"), lines[0])
        self.assertEqual(lines[-1].split(": ")[0:2], ["result", "hook"])
        self.assertEqual(chain.failures, 0)

    def test_pending(self) -> None:
        """An asynchronous router that has not answered leaves the result open."""
        pending: defer.Deferred[Decision | None] = defer.Deferred()
        chain = RoutingChain([FixedRouter("slow", lambda call: pending), StaticRouter(RULES)])
        lines = explain(chain, deviceCall("+4930123456"))
        self.assertEqual(
            lines,
            [
                "slow: no answer yet (asynchronous)",
                f"static: user alice@{DOMAIN}  (not reached)",
                "result: open (waiting for an asynchronous router)",
            ],
        )


class HookRouterTests(SynchronousTestCase):
    """HookRouter's handling of answers; loading files is tested in test_hook."""

    def router(self, answer: object) -> HookRouter:
        return HookRouter(lambda call: answer, [DOMAIN, OTHER], trunks=TRUNKS)

    def test_interface(self) -> None:
        """HookRouter provides IRouter."""
        self.assertTrue(verifyObject(IRouter, self.router(None)))

    def test_bareNames(self) -> None:
        """A bare user name is completed with the caller's domain; user@domain is kept."""
        router = HookRouter(lambda call: [UserTarget("bob"), UserTarget(f"carol@{OTHER}")], [DOMAIN, OTHER])
        decision = router.route(deviceCall("x", caller=f"dave@{OTHER}"))
        assert decision is not None
        self.assertEqual(decision.targets, targets(UserTarget(f"bob@{OTHER}"), UserTarget(f"carol@{OTHER}")))

    def test_unknownTrunk(self) -> None:
        """A trunk the config does not name fails the hook's answer."""
        with self.assertRaises(HookError) as caught:
            self.router(TrunkTarget("nope", "+1")).route(deviceCall("x"))
        self.assertIn("no such trunk", str(caught.exception))

    def test_slowHookLogged(self) -> None:
        """A hook slower than the threshold is logged, then only at 10, 100, ... slow calls."""
        ticks = iter(range(0, 1000, 1))
        router = HookRouter(lambda call: None, timer=lambda: float(next(ticks)))
        events = LogRecorder()
        router.log = Logger(observer=events)
        for _ in range(12):
            router.route(deviceCall("x"))
        self.assertEqual(router.slowCalls, 12)
        self.assertEqual([e["count"] for e in events.events], [1, 10])


class LoadRoutingTests(SynchronousTestCase):
    """The [routing] table's loader (sbc.config.routing.loadRouting)."""

    base = Path("/etc/sbc")
    path = base / "sbc.toml"

    def parse(self, toml: str, domains: tuple[str, ...] = (DOMAIN,)) -> RoutingSettings:
        return self.load(tomllib.loads(toml), trunks=TRUNKS, domains=domains)

    def load(
        self, data: dict[str, Any], trunks: tuple[str, ...], domains: tuple[str, ...]
    ) -> RoutingSettings:
        return loadRouting(Table(self.path, "", data), self.base, trunks=trunks, domains=domains)

    def error(self, toml: str, domains: tuple[str, ...] = (DOMAIN,)) -> ConfigError:
        with self.assertRaises(ConfigError) as caught:
            self.parse(toml, domains)
        error: ConfigError = caught.exception
        return error

    def test_documentedSnippet(self) -> None:
        """The documented TOML gives the rules the other tests use, the hook path and the domain."""
        settings = self.parse(ROUTING_TOML)
        self.assertEqual(settings.rules, RULES)
        self.assertEqual(dict(settings.rules.dids), dict(RULES.dids))
        self.assertEqual(settings.hookPath, self.base / "routing.py")
        self.assertEqual(settings.defaultDomain, DOMAIN)

    def test_defaults(self) -> None:
        """No [routing] table: no hook, no rules, the first registrar domain as default domain."""
        settings = self.load({}, trunks=(), domains=("A.test", "b.test"))
        self.assertEqual(settings, RoutingSettings(RoutingRules(), "a.test", None))
        self.assertEqual(self.load({}, trunks=(), domains=()).defaultDomain, None)

    def test_bareDIDUser(self) -> None:
        """A DID to a bare user name means that user in the default domain."""
        settings = self.parse('[routing.dids]\n"+1 555" = "bob"\n')
        self.assertEqual(dict(settings.rules.dids), {"+1555": f"bob@{DOMAIN}"})

    def test_errors(self) -> None:
        """Each mistake names its key."""
        cases = {
            "[routing]\nnonsense = 1\n": "routing.nonsense",
            '[routing]\nhook = ""\n': "routing.hook",
            '[routing]\ndefault_domain = "elsewhere.test"\n': "routing.default_domain",
            '[routing.numbers]\ncountry = "49"\n': "routing.numbers.country",
            '[routing.numbers]\ncountry_code = "+49"\n': "routing.numbers.country_code",
            '[routing.numbers]\nnational_prefix = "0"\n': "routing.numbers.national_prefix",
            '[routing.dids]\n"alice" = "alice"\n': 'routing.dids."alice"',
            '[routing.dids]\n"+1 5" = "alice"\n"+15" = "bob"\n': 'routing.dids."+15"',
            '[routing.dids]\n"+15" = "alice@elsewhere.test"\n': 'routing.dids."+15"',
            '[routing.dids]\n"+15" = 15\n': 'routing.dids."+15"',
            "[routing]\nroutes = 1\n": "routing.routes",
            '[[routing.routes]]\nprefix = "+1"\ntrunks = ["nope"]\n': "routing.routes[0].trunks",
            '[[routing.routes]]\nprefix = "+1"\ntrunks = []\n': "routing.routes[0].trunks",
            '[[routing.routes]]\nprefix = "+1"\ntrunks = ["demo", "demo"]\n': "routing.routes[0].trunks",
            '[[routing.routes]]\nprefix = "x1"\ntrunks = ["demo"]\n': "routing.routes[0].prefix",
            '[[routing.routes]]\ntrunks = ["demo"]\n[[routing.routes]]\nprefix = ""\ntrunks = ["intl"]\n': (
                "routing.routes[1].prefix"
            ),
            '[[routing.routes]]\ntrunks = ["demo"]\ntransit = "yes"\n': "routing.routes[0].transit",
            '[[routing.routes]]\ntrunks = ["demo"]\nvia = "x"\n': "routing.routes[0].via",
        }
        for toml, key in cases.items():
            error = self.error(toml)
            self.assertEqual(error.key, key, toml)
            self.assertEqual(error.path, self.path)

    def test_bareDIDNeedsDomain(self) -> None:
        """With no registrar domain, a DID must name user@domain."""
        self.assertEqual(self.error('[routing.dids]\n"+15" = "bob"\n', domains=()).key, 'routing.dids."+15"')
