"""Guards the public names of `sbc.sip` (and its package-level re-exports)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

import sbc.sip

EXPECTED = [
    "COMPACT_FORMS",
    "KEEPALIVE",
    "KNOWN_METHODS",
    "MAGIC_COOKIE",
    "REASON_PHRASES",
    "URI",
    "CSeq",
    "HeaderField",
    "Headers",
    "Keepalive",
    "Limits",
    "Message",
    "MessageParseError",
    "NameAddr",
    "Request",
    "Response",
    "SIPParseError",
    "StreamFramer",
    "Via",
    "displayName",
    "headerKey",
    "parseCSeq",
    "parseMessage",
    "parseNameAddr",
    "parseURI",
    "parseVia",
    "responseTo",
    "splitList",
    "unescape",
    "validateRequest",
    "validateResponse",
]


class ExportTests(SynchronousTestCase):
    """`sbc.sip.__all__` is the public API; changing it must be deliberate."""

    def test_all(self) -> None:
        """``__all__`` lists exactly the expected names, once each."""
        self.assertEqual(sbc.sip.__all__, EXPECTED)
        self.assertEqual(len(set(sbc.sip.__all__)), len(sbc.sip.__all__))

    def test_importable(self) -> None:
        """Every exported name is bound in the package and ``import *`` yields each of them."""
        namespace: dict[str, object] = {}
        exec("from sbc.sip import *", namespace)
        for name in EXPECTED:
            self.assertIsNotNone(getattr(sbc.sip, name), name)
            self.assertIs(namespace[name], getattr(sbc.sip, name))

    def test_reexportsAreTheImplementations(self) -> None:
        """Each re-export is the object its private module defines, not a copy."""
        modules = {
            "errors": ["SIPParseError"],
            "framing": ["KEEPALIVE", "Keepalive", "StreamFramer"],
            "headers": ["COMPACT_FORMS", "HeaderField", "Headers", "displayName", "headerKey", "splitList"],
            "structured": ["CSeq", "NameAddr", "Via", "parseCSeq", "parseNameAddr", "parseVia"],
            "message": [
                "KNOWN_METHODS",
                "MAGIC_COOKIE",
                "REASON_PHRASES",
                "Limits",
                "Message",
                "MessageParseError",
                "Request",
                "Response",
                "parseMessage",
                "responseTo",
            ],
            "validate": ["validateRequest", "validateResponse"],
            "uri": ["URI", "parseURI", "unescape"],
        }
        covered = []
        for module, names in modules.items():
            implementation = importlib.import_module(f"sbc.sip.{module}")
            for name in names:
                self.assertIs(getattr(sbc.sip, name), getattr(implementation, name), name)
                covered.append(name)
        self.assertEqual(sorted(covered), sorted(EXPECTED))

    def test_noTwistedNoIO(self) -> None:
        """No module of sbc.sip imports Twisted or anything that does I/O (sockets, files, time)."""
        # Pure standard-library modules; add one here only if it does no I/O and keeps no clock.
        allowed = {
            "__future__", "abc", "base64", "binascii", "collections", "dataclasses", "enum", "functools",
            "hashlib", "hmac", "ipaddress", "itertools", "re", "secrets", "string", "typing", "sbc",
        }  # fmt: skip
        package = Path(sbc.sip.__file__ or "").parent
        modules = sorted(package.glob("*.py"))
        self.assertGreaterEqual(len(modules), 6)
        for path in modules:
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    root = name.split(".")[0]
                    self.assertIn(root, allowed, f"{path.name} imports {name}")
                    if root == "sbc":  # the codec is the bottom floor: it imports nothing else of ours
                        self.assertTrue(name.startswith("sbc.sip."), f"{path.name} imports {name}")
