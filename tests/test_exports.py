"""Guards the public names of the packages the layers above import: `sbc.config`, `sbc.routing`, and
`sbc.hook` (the API ops' hook files import)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path
from types import ModuleType

from twisted.trial.unittest import SynchronousTestCase

import sbc.config
import sbc.hook
import sbc.routing

ROUTING = {
    "sbc.config.routing": ["NumberPlan", "PrefixRoute", "RoutingRules", "RoutingSettings"],
    "sbc.routing.chain": ["RoutingChain", "buildChain", "shippedChain"],
    "sbc.routing.explain": ["explain"],
    "sbc.routing.hook": ["Hook", "HookError", "HookRouter", "loadHook"],
    "sbc.routing.routers": ["RegistrarRouter", "StaticRouter", "TrunkRouter", "callerDomain"],
    "sbc.routing.values": [
        "NO_ROUTE",
        "ROUTING_FAILED",
        "CallRequest",
        "Decision",
        "Reject",
        "Target",
        "TrunkTarget",
        "UserTarget",
    ],
}

HOOK = {
    "sbc.routing.hook": ["Hook", "call_trunk", "call_user", "loadHook", "reject"],
    "sbc.routing.values": ["CallRequest", "Reject", "TrunkTarget", "UserTarget"],
}

CONFIG = {
    "sbc.config.calls": ["CallSettings", "Fork", "LogSettings", "MediaEngine", "MediaSettings", "Redirect"],
    "sbc.config.errors": ["ConfigError"],
    "sbc.config.model": ["Config", "loadConfig"],
    "sbc.config.registrar": ["RegistrarSettings"],
    "sbc.config.routing": ["NumberPlan", "PrefixRoute", "RoutingRules", "RoutingSettings"],
    "sbc.config.sip": ["Listener", "SIPSettings", "TLSSettings", "Transport"],
    "sbc.config.table": ["Table"],
    "sbc.config.trunks": ["MediaMode", "Refer", "Trunk"],
}


class ExportTestsMixin:
    """What every guarded package must hold: ``__all__`` as expected, bound to the implementations."""

    def assertExports(self, package: ModuleType, expected: dict[str, list[str]]) -> None:
        """``package.__all__`` is exactly the expected names, each the object its module defines."""
        case: SynchronousTestCase = self  # type: ignore[assignment]
        names = sorted(name for names in expected.values() for name in names)
        exported = package.__all__
        case.assertEqual(sorted(exported), names)
        case.assertEqual(len(set(exported)), len(exported))
        namespace: dict[str, object] = {}
        exec(f"from {package.__name__} import *", namespace)
        for module, moduleNames in expected.items():
            implementation = importlib.import_module(module)
            for name in moduleNames:
                case.assertIs(getattr(package, name), getattr(implementation, name), name)
                case.assertIs(namespace[name], getattr(implementation, name), name)


class RoutingExportTests(ExportTestsMixin, SynchronousTestCase):
    """`sbc.routing.__all__` is the public API; changing it must be deliberate."""

    def test_routing(self) -> None:
        """The package re-exports exactly its public names, from the modules that define them."""
        self.assertExports(sbc.routing, ROUTING)

    def test_noOldNames(self) -> None:
        """The names the redesign retired are gone: no second config parser, no ``Route``."""
        for name in ("Route", "parseRoutingConfig"):
            self.assertFalse(hasattr(sbc.routing, name), name)


class HookExportTests(ExportTestsMixin, SynchronousTestCase):
    """`sbc.hook` is what ops' hook files import (etc/routing.py): it must not shrink by accident."""

    def test_hook(self) -> None:
        """The hook API re-exports exactly its names, from the routing package."""
        self.assertExports(sbc.hook, HOOK)


class ConfigExportTests(ExportTestsMixin, SynchronousTestCase):
    """`sbc.config.__all__` is the public API; changing it must be deliberate."""

    def test_config(self) -> None:
        """The package re-exports exactly its public names, from the modules that define them."""
        self.assertExports(sbc.config, CONFIG)

    def test_arrowsPointDown(self) -> None:
        """sbc.config imports only the floors below it: nothing of routing, hooks, calls or the server."""
        allowed = ("sbc.access", "sbc.config", "sbc.prefixes", "sbc.sip", "sbc.transaction")
        package = Path(sbc.config.__file__ or "").parent
        modules = sorted(package.glob("*.py"))
        self.assertGreaterEqual(len(modules), 10)
        for path in modules:
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                elif isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                else:
                    continue
                for name in names:
                    if name == "sbc" or name.startswith("sbc."):
                        self.assertTrue(name.startswith(allowed), f"{path.name} imports {name}")
