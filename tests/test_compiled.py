"""Tests for `sbc.compiled`: the mypyc-compiled codec is used whole and current, or not at all."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

import sbc
import sbc.sip.message
from sbc.compiled import CHECKOUT, CODEC, CODEC_DIRECTORY, StaleBuildError, builtModule, checkBuild

MODULES = ("errors", "uri")


class CheckBuildTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = Path(tempfile.mkdtemp())
        for name in MODULES:
            (self.directory / f"{name}.py").write_text("")

    def build(self, name: str, age: float) -> Path:
        """A stand-in compiled module, ``age`` seconds newer (negative: older) than its source."""
        path = self.directory / f"{name}{EXTENSION_SUFFIXES[0]}"
        path.write_bytes(b"")
        source = (self.directory / f"{name}.py").stat().st_mtime
        os.utime(path, (source + age, source + age))
        return path

    def test_pure(self) -> None:
        """With no compiled module the codec runs as pure Python."""
        self.assertFalse(checkBuild(self.directory, MODULES))
        self.assertIsNone(builtModule(self.directory, "errors"))

    def test_compiled(self) -> None:
        """Every module compiled after its source: the codec runs compiled."""
        built = [self.build(name, 5) for name in MODULES]
        self.assertTrue(checkBuild(self.directory, MODULES))
        self.assertEqual(builtModule(self.directory, "uri"), built[1])

    def test_stale(self) -> None:
        """A source edited after the build stops the import, naming the file and the way out."""
        self.build("errors", 5)
        self.build("uri", -5)
        error = self.assertRaises(StaleBuildError, checkBuild, self.directory, MODULES, checkout=True)
        self.assertIsInstance(error, ImportError)
        self.assertIn(str(self.directory / "uri.py"), str(error))
        self.assertIn("make compiled", str(error))

    def test_installedCopy(self) -> None:
        """Outside a checkout the installer wrote both files, in any order: their mtimes are not read."""
        self.build("errors", 5)
        self.build("uri", -5)
        self.assertTrue(checkBuild(self.directory, MODULES, checkout=False))

    def test_partial(self) -> None:
        """Part of the group compiled and part not is refused too: both halves must be one build."""
        self.build("errors", 5)
        error = self.assertRaises(StaleBuildError, checkBuild, self.directory, MODULES, checkout=False)
        self.assertIn("lacks uri", str(error))


class CodecBuildTests(SynchronousTestCase):
    def test_checkout(self) -> None:
        """The tests run from a checkout, where the stale-build check is on."""
        self.assertTrue(CHECKOUT)

    def test_everyCodecModule(self) -> None:
        """Every module of sbc/sip is in the compiled group, so none falls back to slow calls."""
        modules = {path.stem for path in CODEC_DIRECTORY.glob("*.py")} - {"__init__"}
        self.assertEqual(set(CODEC), modules)

    def test_pureOnRequest(self) -> None:
        """SBC_PURE=1 imports the codec from its sources even where a compiled one sits beside them."""
        query = "import sbc, sbc.sip.message as m; print(sbc.CODEC_COMPILED, m.__file__)"
        environment = {**os.environ, "SBC_PURE": "1"}
        output = subprocess.run(
            [sys.executable, "-c", query], capture_output=True, text=True, env=environment, check=True
        ).stdout.split()
        self.assertEqual(output, ["False", str(CODEC_DIRECTORY / "message.py")])

    def test_compiledInCI(self) -> None:
        """In CI (`make test`) the tests run against the compiled codec, as `make run` serves it."""
        if os.environ.get("SBC_PURE"):
            self.skipTest("SBC_PURE=1: this run is the pure-Python codec's, on purpose")
        if not os.environ.get("CI") and not sbc.CODEC_COMPILED:
            self.skipTest("the codec is not compiled here (`make compiled`)")
        self.assertTrue(sbc.CODEC_COMPILED)
        path = sbc.sip.message.__file__ or ""
        self.assertTrue(any(path.endswith(suffix) for suffix in EXTENSION_SUFFIXES), path)
