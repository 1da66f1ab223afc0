# Twisted's trial assertions carry no annotations.
# mypy: disable-error-code="no-untyped-call"
"""
The package as users get it: built into a wheel and an sdist, installed into a fresh virtualenv outside
the checkout (README's own install commands, run as written with C{HOME} in a temporary directory), and
run as C{twistd -n sbc}, found through the twistd plugin the wheel carries.

These tests reach PyPI (C{pip} installs the dependencies; C{python -m build} its build backend), as a
user's install does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from sbc.ops.probe import sendOptions

from .readme import REPO_ROOT, Background, command, portsFree, run
from .service import SERVICE_ERRORS
from .tools import inCI

# Building and installing with dependencies from PyPI: generous, but bounded.
INSTALL_TIMEOUT = 600.0

# What every built package must carry.
PLUGIN = "twisted/plugins/sbc_plugin.py"
EXAMPLES = ("sbc.toml", "users.txt", "routing.py", "whitelist/demo.txt", "whitelist/devices.txt")


def userEnvironment(home: Path) -> dict[str, str]:
    """
    A user's environment: C{HOME} in C{home}, and nothing that would put the checkout or the test
    venv on C{sys.path}.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    venvBin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venvBin)
    env["HOME"] = str(home)
    return env


class BuildTests(SynchronousTestCase):
    def test_wheelAndSdist(self) -> None:
        """`python -m build` makes an sdist, and from it a wheel; both carry the plugin, the example
        config and the license, and neither makes twisted/ or twisted/plugins/ a regular package."""
        out = Path(tempfile.mkdtemp(prefix="sbc-build-"))
        self.addCleanup(shutil.rmtree, out, ignore_errors=True)
        result = subprocess.run(
            [sys.executable, "-m", "build", "--outdir", str(out), str(REPO_ROOT)],
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT,
        )
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        (wheel,) = out.glob("sbc-*.whl")
        (sdist,) = out.glob("sbc-*.tar.gz")
        with zipfile.ZipFile(wheel) as archive:
            names = set(archive.namelist())
        self.assertIn(PLUGIN, names)
        self.assertNotIn("twisted/__init__.py", names)
        self.assertNotIn("twisted/plugins/__init__.py", names)
        for name in EXAMPLES:
            self.assertIn(f"sbc/examples/etc/{name}", names)
        self.assertTrue(any(n.endswith(".dist-info/licenses/LICENSE") for n in names), sorted(names))
        with tarfile.open(sdist) as archive:
            members = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
        for name in (PLUGIN, "LICENSE", "contrib/sbc.service", "MANIFEST.in", "setup.py"):
            self.assertIn(name, members)
        for name in EXAMPLES:
            self.assertIn(f"etc/{name}", members)
        self.assertNotIn("twisted/plugins/__init__.py", members)


class InstallTests(SynchronousTestCase):
    def test_readmeInstall(self) -> None:
        """README's install commands, as written: a fresh venv with `pip install .`, `sbc-ctl init`,
        then `twistd -n sbc` outside the checkout answers OPTIONS from the demo trunk."""
        if not portsFree():
            message = "127.0.0.1:5060/5061 are in use; the starter config listens there"
            if inCI():
                raise AssertionError(message)
            from unittest import SkipTest

            raise SkipTest(message)
        home = Path(tempfile.mkdtemp(prefix="sbc-home-"))
        self.addCleanup(shutil.rmtree, home, ignore_errors=True)
        env = userEnvironment(home)
        install = command("python3 -m venv ~/sbc-venv")
        result = run(install.text, REPO_ROOT, env, timeout=INSTALL_TIMEOUT)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        venv = home / "sbc-venv"

        # The package, its plugin and its dependencies come from the venv alone, not the checkout.
        where = subprocess.run(
            [
                str(venv / "bin" / "python"),
                "-c",
                "import sbc, twisted.plugins.sbc_plugin as p; print(sbc.__file__); print(p.__file__)",
            ],
            cwd=home,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual(where.returncode, 0, where.stderr)
        for path in where.stdout.split():
            self.assertTrue(Path(path).is_relative_to(venv), where.stdout)
        helpText = run("~/sbc-venv/bin/twistd --help", home, env, timeout=60)
        self.assertIn(" sbc ", helpText.stdout.replace("\n", " "), helpText.stdout)

        # Without a config, twistd says how to make one.
        bare = run("~/sbc-venv/bin/twistd -n --pidfile= sbc", home, env, timeout=60)
        self.assertNotEqual(bare.returncode, 0)
        self.assertIn("sbc-ctl init", bare.stdout + bare.stderr)

        init = run(command("~/sbc-venv/bin/sbc-ctl init").text, home, env, timeout=60)
        self.assertEqual(init.returncode, 0, init.stdout + init.stderr)
        self.assertTrue((home / "sbc" / "sbc.toml").exists())
        self.assertEqual((home / "sbc" / "state" / "tls" / "sbc.key").stat().st_mode & 0o077, 0)

        line = command("~/sbc-venv/bin/twistd -n --pidfile= sbc --config")
        service = Background(line.text, home, home / "twistd.log", env)
        self.addCleanup(service.stop)
        service.waitForSIP()
        answered = sendOptions("sip:127.0.0.1:5060", "127.0.0.2", timeout=5)
        self.assertIsNotNone(answered.response, service.output())
        assert answered.response is not None
        self.assertEqual(answered.response.status, 200)
        self.assertIsNone(sendOptions("sip:127.0.0.1:5060", "127.0.0.9", timeout=2).response)
        service.stop()
        for sign in SERVICE_ERRORS:
            self.assertNotIn(sign, service.output())
