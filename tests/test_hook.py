"""Tests for sbc.hook: loading the ops-written routing hook, its helpers, and the shipped sample."""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
import textwrap
from pathlib import Path
from types import MappingProxyType

from twisted.trial.unittest import SynchronousTestCase

from sbc.access import DEVICE_NETWORK, TRUNK, Peer
from sbc.config.errors import ConfigError
from sbc.config.users import Account, UserDirectory
from sbc.hook import Hook, call_trunk, call_user, loadHook, reject
from sbc.routing import (
    ROUTING_FAILED,
    CallRequest,
    Decision,
    HookError,
    HookRouter,
    NumberPlan,
    PrefixRoute,
    Reject,
    RoutingRules,
    RoutingSettings,
    TrunkTarget,
    UserTarget,
    explain,
    shippedChain,
)

SAMPLE = Path(__file__).resolve().parents[1] / "etc" / "routing.py"
DOMAIN = "demo.acme.sbc.test"
DEMO = Peer(TRUNK, "demo")
USERS = UserDirectory(
    [Account("alice", DOMAIN, MappingProxyType({})), Account("bob", DOMAIN, MappingProxyType({}))]
)
RULES = RoutingRules(
    NumberPlan("49", "0", "00"), {"+4930123456": f"alice@{DOMAIN}"}, (PrefixRoute("*", ("demo",)),)
)

CALLS = [
    CallRequest(DEMO, "+4940999", "198.51.100.7", "+4930123456", "127.0.0.1"),
    CallRequest(DEMO, "+4940999", "198.51.100.7", "bob", "127.0.0.1"),
    CallRequest(DEMO, "+4940999", "198.51.100.7", "+3312345", "127.0.0.1"),
    CallRequest(DEVICE_NETWORK, "alice", DOMAIN, "bob", DOMAIN, f"alice@{DOMAIN}"),
    CallRequest(DEVICE_NETWORK, "alice", DOMAIN, "+4919001234", DOMAIN, f"alice@{DOMAIN}"),
    CallRequest(DEVICE_NETWORK, "alice", DOMAIN, "mallory", DOMAIN, f"alice@{DOMAIN}"),
]


def device(user: str) -> CallRequest:
    return CallRequest(DEVICE_NETWORK, "alice", DOMAIN, user, DOMAIN, f"alice@{DOMAIN}")


class HelperTests(SynchronousTestCase):
    def test_callUser(self) -> None:
        """call_user keeps a bare name for the router to complete, and lower-cases a domain."""
        self.assertEqual(call_user("alice"), UserTarget("alice"))
        self.assertEqual(call_user("alice@Demo.ACME.sbc.test"), UserTarget(f"alice@{DOMAIN}"))
        for bad in ("", "al ice", "@x", "alice@", 5):
            self.assertRaises(ValueError, call_user, bad)

    def test_callTrunk(self) -> None:
        """call_trunk names a trunk and a number, sent as given."""
        self.assertEqual(call_trunk("demo", "+4930"), TrunkTarget("demo", "+4930"))
        self.assertRaises(ValueError, call_trunk, "", "+4930")
        self.assertRaises(ValueError, call_trunk, "demo", "+49 30")

    def test_reject(self) -> None:
        """reject gives a Reject, and refuses codes that are not final errors."""
        self.assertEqual(reject(403), Reject(403))
        self.assertEqual(reject(603, "Declined"), Reject(603, "Declined"))
        self.assertRaises(ValueError, reject, 200)


class HookFileTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.directory)

    def write(self, source: str, name: str = "routing.py") -> Path:
        path = self.directory / name
        path.write_text(textwrap.dedent(source))
        return path

    def load(self, source: str) -> Hook:
        return loadHook(self.write(source))

    def error(self, source: str) -> ConfigError:
        with self.assertRaises(ConfigError) as caught:
            self.load(source)
        error: ConfigError = caught.exception
        return error

    def decide(self, source: str, call: CallRequest) -> Decision | None:
        router = HookRouter(self.load(source), [DOMAIN], trunks=("demo", "backup"))
        return router.route(call)


class HookAnswerTests(HookFileTestCase):
    def test_callUser(self) -> None:
        """call_user("bob") from a hook reaches bob in the caller's domain."""
        source = """
            from sbc.hook import call_user
            def route(call):
                return call_user("bob")
        """
        self.assertEqual(
            self.decide(source, CALLS[0]), Decision((UserTarget(f"bob@{DOMAIN}"),), router="hook")
        )

    def test_callTrunk(self) -> None:
        """call_trunk from a hook sends the call out through that trunk."""
        source = """
            from sbc.hook import call_trunk
            def route(call):
                return call_trunk("backup", call.user)
        """
        self.assertEqual(
            self.decide(source, device("+331")), Decision((TrunkTarget("backup", "+331"),), router="hook")
        )

    def test_reject(self) -> None:
        """reject from a hook refuses the call."""
        source = """
            from sbc.hook import reject
            def route(call):
                return reject(403, "Premium numbers not allowed")
        """
        self.assertEqual(
            self.decide(source, device("+4919001")),
            Decision(reject=Reject(403, "Premium numbers not allowed"), router="hook"),
        )

    def test_list(self) -> None:
        """A list (or tuple) of targets is tried in its order; an empty one passes."""
        source = """
            from sbc.hook import call_trunk, call_user
            def route(call):
                if call.user == "empty":
                    return []
                targets = [call_user("alice"), call_trunk("demo", "+491701"), call_trunk("backup", "+491701")]
                return targets if call.user == "list" else tuple(targets)
        """
        expected = (
            UserTarget(f"alice@{DOMAIN}"),
            TrunkTarget("demo", "+491701"),
            TrunkTarget("backup", "+491701"),
        )
        for user in ("list", "tuple"):
            decision = self.decide(source, device(user))
            assert decision is not None
            self.assertEqual(decision.targets, expected)
        self.assertIsNone(self.decide(source, device("empty")))

    def test_none(self) -> None:
        """None passes the call to the next router."""
        self.assertIsNone(self.decide("def route(call):\n    return None\n", device("bob")))

    def test_callSeesRequest(self) -> None:
        """The hook sees the call's fields and headers."""
        source = """
            from sbc.hook import reject
            def route(call):
                if call.fromTrunk and call.source.name == "demo" and "diversion" in call.headers:
                    return reject(486)
        """
        call = CallRequest(DEMO, "x", "y", "bob", "z", headers={"Diversion": "<sip:+1@x>"})
        self.assertEqual(self.decide(source, call), Decision(reject=Reject(486), router="hook"))

    def test_raises(self) -> None:
        """An exception in the hook is raised by the router, and the chain answers 500."""
        source = """
            def route(call):
                return 1 / 0
        """
        router = HookRouter(self.load(source))
        self.assertRaises(ZeroDivisionError, router.route, device("bob"))
        chain = shippedChain(RoutingSettings(RULES), users=USERS, domains=[DOMAIN], hook=router.hook)
        decision = chain.route(device("bob"))
        self.assertEqual(decision, Decision(reject=ROUTING_FAILED, router="hook"))
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_exitDoesNotStopServer(self) -> None:
        """A hook that calls sys.exit() fails its call, and nothing more."""
        source = """
            import sys
            def route(call):
                sys.exit(1)
        """
        self.assertRaises(HookError, HookRouter(self.load(source)).route, device("bob"))

    def test_wrongAnswers(self) -> None:
        """Answers that are not targets, rejections or None fail the call."""
        for answer in (
            '"bob"',
            "42",
            "[reject(403)]",
            '["bob"]',
            'call_trunk("nope", "+1")',
            'call_user("x"), 1',
        ):
            source = f"""
                from sbc.hook import call_trunk, call_user, reject
                def route(call):
                    return {answer}
            """
            router = HookRouter(self.load(source), [DOMAIN], trunks=("demo",))
            self.assertRaises(HookError, router.route, device("bob"))

    def test_bareNameWithoutDomain(self) -> None:
        """A bare name for a caller without a domain fails: the hook must write user@domain."""
        source = """
            from sbc.hook import call_user
            def route(call):
                return call_user("bob")
        """
        router = HookRouter(self.load(source))
        with self.assertRaises(HookError) as caught:
            router.route(CallRequest(DEMO, "x", "y", "bob", "127.0.0.1"))
        self.assertIn("user@domain", str(caught.exception))


class LoadHookTests(HookFileTestCase):
    def test_syntaxError(self) -> None:
        """A syntax error is a ConfigError with the file and line."""
        error = self.error("def route(call):\n    return None\n\ndef broken(:\n    pass\n")
        self.assertEqual((error.path, error.line), (self.directory / "routing.py", 4))
        self.assertIn("syntax error", error.reason)
        self.assertTrue(str(error).startswith(f"{self.directory / 'routing.py'}:4: syntax error"))

    def test_missingRoute(self) -> None:
        """A file without route() is refused."""
        error = self.error("def rout(call):\n    return None\n")
        self.assertIn("route(call)", error.reason)

    def test_routeNotAFunction(self) -> None:
        """route must be a function of one argument, and a plain (synchronous) one."""
        self.assertIn("not int", self.error("route = 5\n").reason)
        self.assertEqual(self.error("x = 1\n\ndef route(call, other):\n    pass\n").line, 3)
        self.assertEqual(self.error("async def route(call):\n    return None\n").line, 1)
        self.assertIn("synchronously", self.error("def route(call):\n    yield None\n").reason)

    def test_errorWhileLoading(self) -> None:
        """An exception while the file runs is a ConfigError with the line that raised it."""
        error = self.error("import os\n\nTABLE = {}['missing']\n\ndef route(call):\n    pass\n")
        self.assertEqual(error.line, 3)
        self.assertIn("KeyError", error.reason)
        self.assertEqual(self.error("import sys\nsys.exit(3)\n").line, 2)

    def test_missingFile(self) -> None:
        """A hook file that cannot be read is a ConfigError."""
        with self.assertRaises(ConfigError) as caught:
            loadHook(self.directory / "absent.py")
        self.assertIn("cannot read", caught.exception.reason)

    def test_privateModule(self) -> None:
        """Each load gets its own module, outside sys.modules, and writes no bytecode next to the file."""
        source = """
            import dataclasses

            @dataclasses.dataclass(frozen=True)
            class Rule:
                prefix: str

            COUNT = [0]

            def route(call):
                COUNT[0] += 1
        """
        first, second = self.load(source), self.load(source)
        self.assertIsNot(first.module, second.module)
        first(device("x"))
        self.assertEqual((first.module.COUNT, second.module.COUNT), ([1], [0]))
        self.assertNotIn(first.module.__name__, sys.modules)
        self.assertEqual(first.module.__file__, str(self.directory / "routing.py"))
        self.assertEqual([p.name for p in self.directory.iterdir()], ["routing.py"])

    def test_editTakesEffect(self) -> None:
        """Loading an edited file at once gives the new code (no stale bytecode cache)."""
        path = self.write("from sbc.hook import reject\ndef route(call):\n    return reject(403)\n")
        self.assertEqual(loadHook(path)(device("x")), Reject(403))
        path.write_text("from sbc.hook import reject\ndef route(call):\n    return reject(404)\n")
        self.assertEqual(loadHook(path)(device("x")), Reject(404))


class SampleHookTests(SynchronousTestCase):
    def test_loadsAndPasses(self) -> None:
        """The shipped etc/routing.py loads and passes every call, so the chain decides as without it."""
        hook = loadHook(SAMPLE)
        withHook = shippedChain(RoutingSettings(RULES), users=USERS, domains=[DOMAIN], hook=hook)
        without = shippedChain(RoutingSettings(RULES), users=USERS, domains=[DOMAIN])
        for call in CALLS:
            self.assertIsNone(hook(call))
            self.assertEqual(withHook.route(call), without.route(call))
            self.assertEqual(explain(withHook, call)[0], "hook: pass")

    def test_examplesWork(self) -> None:
        """The sample's commented examples, uncommented, load and do what their comments say."""
        text = SAMPLE.read_text()
        text = re.sub(r"^# (DIDS|BLOCKED_PREFIXES) =", r"\1 =", text, flags=re.M)
        text = re.sub(r"^    # (if |    return )", r"    \1", text, flags=re.M)
        directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, directory)
        path = directory / "routing.py"
        path.write_text(text)
        hook = loadHook(path)
        router = HookRouter(hook, [DOMAIN], trunks=("demo",))
        trunk = CallRequest(DEMO, "x", "y", "+4930123456", "127.0.0.1")

        def decide(call: CallRequest) -> Decision | None:
            return router.route(call)

        self.assertEqual(decide(trunk), Decision((UserTarget(f"alice@{DOMAIN}"),), router="hook"))
        premium = decide(device("+4919001234"))
        assert premium is not None
        self.assertEqual(premium.reject, Reject(403, "Premium numbers not allowed"))
        blocked = decide(CallRequest(DEMO, "x", "y", "+19005550100", "127.0.0.1"))
        assert blocked is not None
        self.assertEqual(blocked.reject, Reject(403))
        sales = decide(device("sales"))
        assert sales is not None
        self.assertEqual(sales.targets, (UserTarget(f"alice@{DOMAIN}"), TrunkTarget("demo", "+491701234567")))
        self.assertIsNone(decide(device("bob")))
