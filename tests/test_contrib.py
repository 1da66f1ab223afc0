"""Tests for contrib/sbc.service: systemd accepts the unit, and it keeps its promises.

``systemd-analyze verify`` checks that every command in a unit is executable, and the unit
runs ``/opt/sbc/bin/twistd``, which a test machine does not have. So the unit is verified as
a copy whose ExecStart names this venv's twistd instead; every other line is the shipped one.
Verify reports most mistakes (an unknown key, a bad value) as warnings on stderr, some with exit
status 0, so any output about the unit counts as a failure. It does not check values such as
capability names, which the parsed-unit tests below pin down.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# What twistd parses on Linux (twisted.scripts.twistd picks it without exporting it).
from twisted.scripts._twistd_unix import ServerOptions
from twisted.trial.unittest import SynchronousTestCase

from tests.fakes import writeConfig

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "contrib" / "sbc.service"
INSTALLED_TWISTD = "/opt/sbc/bin/twistd"
TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")

Unit = dict[str, dict[str, list[str]]]


def parseUnit(text: str) -> Unit:
    """Parse systemd unit syntax: every value of every key, by section, in file order."""
    unit: Unit = {}
    section: dict[str, list[str]] | None = None
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith(("#", ";"))):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        if line.startswith("[") and line.endswith("]"):
            section = unit.setdefault(line[1:-1], {})
            continue
        if section is None or "=" not in line:
            raise ValueError(f"not a unit file line: {raw!r}")
        key, value = line.split("=", 1)
        section.setdefault(key.strip(), []).append(value.strip())
    return unit


def verify(text: str) -> str:
    """Run systemd-analyze verify on a copy of the unit text; return what it said about it."""
    assert SYSTEMD_ANALYZE is not None
    directory = Path(tempfile.mkdtemp())
    try:
        path = directory / "sbc.service"
        path.write_text(text.replace(INSTALLED_TWISTD, TWISTD))
        result = subprocess.run(
            [SYSTEMD_ANALYZE, "verify", "--man=no", "--recursive-errors=no", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        shutil.rmtree(directory)
    said = (result.stdout + result.stderr).strip()
    if result.returncode != 0 and not said:
        said = f"systemd-analyze verify exited with status {result.returncode}"
    return said


class VerifyTests(SynchronousTestCase):
    def setUp(self) -> None:
        if SYSTEMD_ANALYZE is None:
            self.skipTest("systemd-analyze is not installed")
        self.text = UNIT.read_text()

    def test_shippedUnitVerifies(self) -> None:
        """systemd-analyze verify accepts the shipped unit without a word."""
        self.assertTrue(os.access(TWISTD, os.X_OK), TWISTD)
        self.assertIn(f"ExecStart={INSTALLED_TWISTD} ", self.text)
        self.assertEqual(verify(self.text), "")

    def test_brokenUnitIsRejected(self) -> None:
        """A misspelt key, a bad value or a missing command in the unit fails verification."""
        breakages = [
            ("Restart=on-failure", "Restrat=on-failure"),
            ("Restart=on-failure", "Restart=sometimes"),
            ("ProtectSystem=strict", "ProtectSystem=very"),
            ("ExecReload=/bin/kill", "ExecReload=/bin/no-such-kill"),
        ]
        for good, bad in breakages:
            self.assertIn(good, self.text)
            self.assertNotEqual(verify(self.text.replace(good, bad)), "", bad)


class PromisesTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.unit = parseUnit(UNIT.read_text())
        self.service = self.unit["Service"]

    def one(self, key: str) -> str:
        """The value of a key set exactly once in [Service]."""
        self.assertEqual(len(self.service.get(key, [])), 1, key)
        return self.service[key][0]

    def test_command(self) -> None:
        """The service runs twistd in the foreground, without a pidfile, on /etc/sbc/sbc.toml."""
        self.assertEqual(self.one("Type"), "simple")
        self.assertEqual(
            shlex.split(self.one("ExecStart")),
            [INSTALLED_TWISTD, "-n", "--pidfile=", "sbc", "--config", "/etc/sbc/sbc.toml"],
        )

    def test_commandParses(self) -> None:
        """twistd accepts the unit's arguments: our plugin, no daemon, no pidfile, that config."""
        directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, directory)
        config = str(writeConfig(directory))
        arguments = shlex.split(self.one("ExecStart"))[1:]
        options = ServerOptions()
        options.parseOptions([config if a == "/etc/sbc/sbc.toml" else a for a in arguments])
        self.assertEqual(options.subCommand, "sbc")
        self.assertTrue(options["nodaemon"])
        self.assertEqual(options["pidfile"], "")
        self.assertEqual(options.subOptions["config"], config)

    def test_unprivilegedUser(self) -> None:
        """The service runs as the user and group sbc, never root."""
        self.assertEqual(self.one("User"), "sbc")
        self.assertEqual(self.one("Group"), "sbc")
        self.assertNotIn("DynamicUser", self.service)

    def test_onlyBindCapability(self) -> None:
        """CAP_NET_BIND_SERVICE is the one capability the service has and can ever gain."""
        self.assertEqual(self.one("AmbientCapabilities"), "CAP_NET_BIND_SERVICE")
        self.assertEqual(self.one("CapabilityBoundingSet"), "CAP_NET_BIND_SERVICE")
        self.assertEqual(self.one("NoNewPrivileges"), "yes")

    def test_reloadAndRestart(self) -> None:
        """Reload sends SIGHUP to twistd; a crash restarts the service after a pause."""
        self.assertEqual(self.one("ExecReload"), "/bin/kill -HUP $MAINPID")
        self.assertEqual(self.one("Restart"), "on-failure")
        self.assertIn(self.one("RestartSec"), {"5", "5s"})

    def test_stateDirectory(self) -> None:
        """systemd makes /var/lib/sbc, private to sbc, and the only place it may write."""
        self.assertEqual(self.one("StateDirectory"), "sbc")
        self.assertEqual(self.one("StateDirectoryMode"), "0700")
        self.assertEqual(self.one("WorkingDirectory"), "/var/lib/sbc")
        self.assertEqual(self.one("ProtectSystem"), "strict")
        self.assertEqual(self.one("ProtectHome"), "yes")
        self.assertEqual(self.one("PrivateTmp"), "yes")

    def test_sipCanStillWork(self) -> None:
        """The sandbox leaves IPv4 and IPv6 sockets and the network; /etc/sbc stays readable."""
        families = self.one("RestrictAddressFamilies").split()
        self.assertIn("AF_INET", families)
        self.assertIn("AF_INET6", families)
        for key in ("PrivateNetwork", "IPAddressDeny", "InaccessiblePaths", "PrivateUsers"):
            self.assertNotIn(key, self.service)

    def test_installed(self) -> None:
        """systemctl enable hooks the service into the normal boot."""
        self.assertEqual(self.unit["Install"]["WantedBy"], ["multi-user.target"])
