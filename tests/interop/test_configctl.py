# Twisted's trial assertions carry no annotations.
# mypy: disable-error-code="no-untyped-call"
"""
``sbc-ctl check`` and ``sbc-ctl reload`` (sbc.ops.configctl) against the real service and the shipped etc/.

``reload`` finds the running ``twistd -n sbc`` through the pidfile twistd writes by default
(``twistd.pid`` in its working directory), signals it, and the service's log shows the reload.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from .service import REPO_ROOT, SHIPPED_CONFIG, ServiceProcess
from .tools import requireTool

# The service's log line for a reload that took (sbc.ops.reload.ConfigReloader.reload).
RELOADED = "configuration reloaded from"
RELOAD_TIMEOUT = 10.0
COMMAND_TIMEOUT = 30.0


class PidfileService(ServiceProcess):
    """The service started as ops start it by hand: twistd writes its default pidfile, twistd.pid."""

    def command(self) -> list[str]:
        """twistd's command line without ``--pidfile=``."""
        return [part for part in super().command() if part != "--pidfile="]


def sbcCtl(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the installed ``sbc-ctl`` script in ``cwd``, bounded in time."""
    return subprocess.run(
        [requireTool("sbc-ctl"), *argv], cwd=cwd, capture_output=True, text=True, timeout=COMMAND_TIMEOUT
    )


class ReloadTests(SynchronousTestCase):
    def test_reloadThroughPidfile(self) -> None:
        """`sbc-ctl reload` in the service's directory signals it (twistd.pid); its log shows a reload."""
        requireTool("twistd")
        service = PidfileService()
        self.addCleanup(service.removeDirectory)
        self.addCleanup(service.stop)
        service.start()
        pidfile = service.directory / "twistd.pid"
        self.assertTrue(pidfile.exists(), service.describe())
        assert service.process is not None
        self.assertEqual(int(pidfile.read_text()), service.process.pid)
        self.assertNotIn(RELOADED, service.log())

        done = sbcCtl("reload", cwd=service.directory)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn(f"process {service.process.pid}", done.stdout)
        deadline = time.monotonic() + RELOAD_TIMEOUT
        while RELOADED not in service.log() and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertIn(RELOADED, service.log(), service.describe())
        self.assertTrue(service.running)
        self.assertEqual(service.errors(), [], service.describe())

        # The service gone, its pidfile is gone too: reload says so and fails.
        service.stop()
        done = sbcCtl("reload", "--pidfile", str(pidfile), cwd=service.directory)
        self.assertEqual(done.returncode, 1)
        self.assertIn("no pidfile at", done.stderr)


class CheckTests(SynchronousTestCase):
    def test_shippedConfig(self) -> None:
        """`sbc-ctl check` passes the shipped etc/ (with the certificate `make` writes): exit 0, a summary."""
        done = sbcCtl("check", "--config", str(SHIPPED_CONFIG), cwd=REPO_ROOT)
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        summary = r"^etc/sbc\.toml: OK: 1 trunk \(demo\), \d+ networks? whitelisted, \d+ users?\n$"
        self.assertRegex(done.stdout, summary)

    def test_brokenCopy(self) -> None:
        """A copy of etc/ with one bad whitelist line fails the check, naming the file and line."""
        service = ServiceProcess(additions={"whitelist/demo.txt": ["203.0.113.300/32"]})
        self.addCleanup(service.removeDirectory)
        service.prepare()
        done = sbcCtl("check", "--config", str(service.configPath), cwd=service.directory)
        self.assertEqual(done.returncode, 1, done.stdout)
        lines = (REPO_ROOT / "etc" / "whitelist" / "demo.txt").read_text().count("\n") + 1
        self.assertIn(f"{service.configPath.parent / 'whitelist' / 'demo.txt'}:{lines}: ", done.stderr)


# The sbc-ctl lines proposed for README's "Editing a whitelist" (run from the checkout, as README's
# commands are); RUN_BY in test_readme.py names this test for each once README shows them.
README_COMMANDS = {
    ".venv/bin/sbc-ctl check": (0, "etc/sbc.toml: OK: 1 trunk (demo)"),
    ".venv/bin/sbc-ctl explain 127.0.0.2:5060": (
        0,
        "127.0.0.2:5060: accepted: trunk demo, by 127.0.0.2/32 (etc/whitelist/demo.txt:",
    ),
    ".venv/bin/sbc-ctl explain 127.0.0.9": (1, "127.0.0.9: dropped: no trunk whitelist"),
    '.venv/bin/sbc-ctl explain --call 127.0.0.2 "+1 555 0100"': (
        0,
        "result: static: user alice@demo.acme.sbc.test",
    ),
}


class ReadmeTests(SynchronousTestCase):
    def test_commands(self) -> None:
        """The sbc-ctl check and explain lines for README work as written on the shipped etc/."""
        requireTool("sbc-ctl")
        for text, (status, shown) in README_COMMANDS.items():
            done = subprocess.run(
                ["sh", "-c", text], cwd=REPO_ROOT, capture_output=True, text=True, timeout=COMMAND_TIMEOUT
            )
            self.assertEqual(done.returncode, status, f"{text}\n{done.stdout}{done.stderr}")
            self.assertIn(shown, done.stdout, text)
