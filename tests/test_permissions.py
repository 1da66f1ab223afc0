"""Tests for sbc.ops.permissions: secrets that other accounts can read are named, one line each."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from sbc.config import loadConfig
from sbc.ops.permissions import exposedSecrets, exposure
from tests.fakes import DEMO_TOML, writeConfig


class ExposureTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.directory)

    def test_file(self) -> None:
        """A file readable by group or others is named with its mode; 0600 and 0200 are not."""
        path = self.directory / "users.txt"
        path.write_text("")
        for mode, exposed in ((0o600, False), (0o200, False), (0o640, True), (0o604, True)):
            path.chmod(mode)
            warning = exposure(path, "the users file")
            self.assertEqual(warning is not None, exposed, oct(mode))
        self.assertIn("mode 0604", warning or "")

    def test_directory(self) -> None:
        """A directory others can list or enter is named; 0700 is not; a missing path is not."""
        self.directory.chmod(0o711)
        self.assertIn("chmod 700", exposure(self.directory, "the state directory") or "")
        self.directory.chmod(0o700)
        self.assertIsNone(exposure(self.directory, "the state directory"))
        self.assertIsNone(exposure(self.directory / "absent", "x"))

    def test_config(self) -> None:
        """The users file, TLS key and state directory of a config each get one warning."""
        (self.directory / "users.txt").write_text("")
        (self.directory / "tls.key").write_text("")
        (self.directory / "state").mkdir()
        toml = DEMO_TOML.replace("[state]", '[tls]\ncertificate = "tls.key"\nkey = "tls.key"\n\n[state]')
        toml += '\n[registrar]\nusers = "users.txt"\n'
        config = loadConfig(writeConfig(self.directory, toml))
        for path in (self.directory / "users.txt", self.directory / "tls.key", self.directory / "state"):
            path.chmod(0o755)
        warnings = exposedSecrets(config)
        self.assertEqual(len(warnings), 3, warnings)
        for path in (self.directory / "users.txt", self.directory / "tls.key", self.directory / "state"):
            path.chmod(0o700)
        self.assertEqual(exposedSecrets(config), [])

    def test_inlineRegistrantPassword(self) -> None:
        """A config readable by others that holds a registrant's password inline gets a warning
        naming the registrant (never the password); readable by its owner alone, none."""
        toml = DEMO_TOML + '\n[registrants.peer-b]\nregistrar = "sip:127.0.0.5"\naor = "sip:a@b.example"\n'
        path = writeConfig(self.directory, toml + 'password = "hunter2-pw"\n')
        (self.directory / "state").mkdir(mode=0o700, exist_ok=True)
        path.chmod(0o644)
        warnings = [w for w in exposedSecrets(loadConfig(path)) if str(path) in w]
        self.assertEqual(len(warnings), 1, warnings)
        self.assertIn("registrant peer-b", warnings[0])
        self.assertNotIn("hunter2", warnings[0])
        path.chmod(0o600)
        self.assertFalse([w for w in exposedSecrets(loadConfig(path)) if str(path) in w])
