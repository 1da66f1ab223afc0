# Twisted's trial assertions carry no annotations.
# mypy: disable-error-code="no-untyped-call"
"""
README's commands, run as written against the demo they describe.

Each test reads its commands from README (L{tests.interop.readme}), runs them with C{sh} from the
checkout, and checks the outcome README promises beside them.  The demo commands need the demo's own
ports (127.0.0.1:5060 and 5061), as a reader's would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from unittest import SkipTest

from twisted.trial.unittest import SynchronousTestCase

from sbc.ops.probe import sendOptions

from .readme import REPO_ROOT, Background, Command, command, commands, portsFree, run
from .service import SERVICE_ERRORS
from .tools import inCI

# The test that runs each command README shows; a command missing here fails test_everyCommandRun.
RUN_BY = {
    "make run": "test_readme.DemoTests.test_tryIt",
    "make test": "test_readme.ReadmeCommandsTests.test_firstScreen (CI runs it)",
    ".venv/bin/sbc-ctl options sip:127.0.0.1:5060 --from 127.0.0.2": "test_readme.DemoTests.test_tryIt",
    ".venv/bin/sbc-ctl options sip:127.0.0.1:5060 --from 127.0.0.9": "test_readme.DemoTests.test_tryIt",
    ".venv/bin/sbc-ctl --users etc/users.txt adduser carol@demo.acme.sbc.test": (
        "test_readme.AdduserCommandTests.test_adduser"
    ),
    ".venv/bin/twistd -n --pidfile= --logger=sbc.ops.logformat.jsonLines sbc --config etc/sbc.toml": (
        "test_readme.JSONLogTests.test_jsonLines"
    ),
    ".venv/bin/sbc-ctl check": "test_configctl.ReadmeTests.test_commands",
    ".venv/bin/sbc-ctl explain 127.0.0.2:5060": "test_configctl.ReadmeTests.test_commands",
    ".venv/bin/sbc-ctl explain 127.0.0.9": "test_configctl.ReadmeTests.test_commands",
    '.venv/bin/sbc-ctl explain --call 127.0.0.2 "+1 555 0100"': "test_configctl.ReadmeTests.test_commands",
    "python3 -m venv ~/sbc-venv && ~/sbc-venv/bin/pip install .": "test_install.InstallTests",
    "~/sbc-venv/bin/sbc-ctl init ~/sbc": "test_install.InstallTests",
    "~/sbc-venv/bin/twistd -n --pidfile= sbc --config ~/sbc/sbc.toml": "test_install.InstallTests",
    ".venv/bin/sbc-ctl status": "test_readme.DemoTests.test_tryIt",
    ".venv/bin/sbc-ctl trunks": "test_readme.DemoTests.test_tryIt",
    ".venv/bin/sbc-ctl calls": "test_readme.DemoTests.test_tryIt",
    ".venv/bin/sbc-ctl registrations": "test_readme.DemoTests.test_tryIt",
    ".venv/bin/sbc-ctl registrants": "test_readme.DemoTests.test_tryIt",
}

# What each API command of README must print against the running demo (besides exiting 0).
# Each command and what its output must hold, one of (a table's heading, or the line
# sbc.ops.tables prints for an empty list).
API_TABLES = {
    ".venv/bin/sbc-ctl status": ("generation",),
    ".venv/bin/sbc-ctl trunks": ("demo",),
    ".venv/bin/sbc-ctl calls": ("CALL ", "no calls in progress"),
    ".venv/bin/sbc-ctl registrations": ("AOR ", "no registrations"),
    ".venv/bin/sbc-ctl registrants": ("NAME ", "no registrants configured"),
}

TRUNK = "127.0.0.2"


def requireCheckoutVenv() -> None:
    """
    The demo commands use the checkout's C{.venv}, which C{make} builds; without it they cannot run.
    """
    if not (REPO_ROOT / ".venv" / "bin" / "sbc-ctl").exists():
        message = "README's demo commands need the checkout's .venv (make venv)"
        if inCI():
            raise AssertionError(message)
        raise SkipTest(message)


def requireDemoPorts() -> None:
    """
    README's commands use the demo's ports; something else holding them (a `make run` of the
    developer's) makes the test impossible, which CI must never hide.
    """
    if not portsFree():
        message = "127.0.0.1:5060/5061/8080 are in use (is `make run` running?); README's commands need them"
        if inCI():
            raise AssertionError(message)
        raise SkipTest(message)


def assertPromise(test: SynchronousTestCase, line: Command, result: subprocess.CompletedProcess[str]) -> None:
    """
    The outcome README promises in C{line}'s comment: a 200, or no answer at all.
    """
    detail = f"{line.text!r}: exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    if "200 OK" in line.promise:
        test.assertEqual(result.returncode, 0, detail)
        test.assertTrue(result.stdout.startswith("SIP/2.0 200 OK\n"), detail)
    elif "no answer" in line.promise:
        test.assertEqual(result.returncode, 1, detail)
        test.assertEqual(result.stdout, "", detail)
        test.assertIn("no answer", result.stderr, detail)
    else:
        test.fail(f"no known promise in README's comment {line.promise!r}")


class ReadmeCommandsTests(SynchronousTestCase):
    def test_everyCommandRun(self) -> None:
        """Every command README shows is run by a test named in RUN_BY, and RUN_BY names no other."""
        self.assertEqual({c.text for c in commands()}, set(RUN_BY))

    def test_firstScreen(self) -> None:
        """README opens with `make run` and `make test`, and `make test` is what CI runs."""
        first = commands()[:2]
        self.assertEqual([c.text for c in first], ["make run", "make test"])
        ci = (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8")
        self.assertIn("\nmake test\n", ci)

    def test_parse(self) -> None:
        """A command's comment is its promise, and a trailing & runs it in the background."""
        text = "x\n```sh\nmake run &\na --b   # it works\n# a comment\n```\n"
        self.assertEqual(commands(text), [Command("make run", "", True), Command("a --b", "it works", False)])


class DemoTests(SynchronousTestCase):
    def test_tryIt(self) -> None:
        """README's "Try it": `make run &`, then OPTIONS from the demo trunk gets 200 OK and from a
        stranger nothing at all."""
        requireCheckoutVenv()
        requireDemoPorts()
        tryIt = [c for c in commands() if c.text.startswith(".venv/bin/sbc-ctl options")]
        self.assertEqual(len(tryIt), 2)
        log = Path(tempfile.mkdtemp(prefix="readme-")) / "make-run.log"
        self.addCleanup(shutil.rmtree, log.parent, ignore_errors=True)
        (makeRun,) = [c for c in commands() if c.text == "make run" and c.background]
        demo = Background(makeRun.text, REPO_ROOT, log)
        self.addCleanup(demo.stop)
        demo.waitForSIP()
        for line in tryIt:
            assertPromise(self, line, run(line.text, REPO_ROOT, timeout=30))
        # README's API commands: each asks the demo's HTTP API and prints its table.
        for text, shows in API_TABLES.items():
            result = run(command(text).text, REPO_ROOT, timeout=30)
            detail = f"{text}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
            self.assertEqual(result.returncode, 0, detail)
            self.assertTrue(any(sign in result.stdout for sign in shows), detail)
            self.assertNotIn("demo-token", result.stdout + result.stderr, detail)
        # README: a plain `sbc-ctl reload` in the checkout reloads the demo (through twistd.pid).
        reload = run(".venv/bin/sbc-ctl reload", REPO_ROOT, timeout=30)
        self.assertEqual(reload.returncode, 0, reload.stdout + reload.stderr)
        deadline = time.monotonic() + 10
        while "configuration reloaded" not in demo.output() and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertIn("configuration reloaded", demo.output())
        demo.stop()
        for sign in SERVICE_ERRORS:
            self.assertNotIn(sign, demo.output())


class JSONLogTests(SynchronousTestCase):
    def test_jsonLines(self) -> None:
        """README's JSON-log command runs the demo, and every line it prints is one JSON object."""
        requireCheckoutVenv()
        requireDemoPorts()
        if not (REPO_ROOT / "state" / "tls" / "sbc.crt").exists():
            self.assertEqual(run("make state/tls/sbc.crt", REPO_ROOT).returncode, 0)
        line = command(".venv/bin/twistd -n --pidfile= --logger=sbc.ops.logformat.jsonLines")
        log = Path(tempfile.mkdtemp(prefix="readme-")) / "twistd.log"
        self.addCleanup(shutil.rmtree, log.parent, ignore_errors=True)
        service = Background(line.text, REPO_ROOT, log)
        self.addCleanup(service.stop)
        service.waitForSIP()
        result = sendOptions("sip:127.0.0.1:5060", TRUNK, timeout=5)
        self.assertIsNotNone(result.response)
        service.stop()
        records = [json.loads(text) for text in service.output().splitlines() if text.strip()]
        self.assertTrue(records, service.output())
        for record in records:
            self.assertLessEqual({"time", "level", "namespace", "text"}, set(record), record)
        self.assertTrue(any("compiled" in r["text"] or "pure Python" in r["text"] for r in records))


class AdduserCommandTests(SynchronousTestCase):
    def test_adduser(self) -> None:
        """README's adduser command, in a copy of the checkout's etc/, adds carol with hashes only."""
        requireCheckoutVenv()
        line = command(".venv/bin/sbc-ctl --users etc/users.txt adduser")
        directory = Path(tempfile.mkdtemp(prefix="readme-"))
        self.addCleanup(shutil.rmtree, directory, ignore_errors=True)
        shutil.copytree(REPO_ROOT / "etc", directory / "etc")
        os.symlink(REPO_ROOT / ".venv", directory / ".venv")
        before = (REPO_ROOT / "etc" / "users.txt").read_bytes()
        password = "carol-readme-test"
        result = run(line.text, directory, stdin=f"{password}\n{password}\n", timeout=30)
        detail = f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
        self.assertEqual(result.returncode, 0, detail)
        self.assertIn("added carol@demo.acme.sbc.test", result.stdout)
        users = (directory / "etc" / "users.txt").read_text(encoding="utf-8")
        self.assertIn("carol@demo.acme.sbc.test", users)
        self.assertNotIn(password, users + result.stdout + result.stderr)
        self.assertEqual((REPO_ROOT / "etc" / "users.txt").read_bytes(), before)
