"""Tests for sbc.ops.starter: ``sbc-ctl init`` writes the loopback demo config, ready to run."""

from __future__ import annotations

import shutil
import stat
import tempfile
from pathlib import Path

from cryptography import x509
from twisted.trial.unittest import SynchronousTestCase

from sbc.config import loadConfig
from sbc.config.api import DEMO_TOKEN
from sbc.ops import starter


class StarterTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.directory)

    def test_loadsAndKeepsItsStateInside(self) -> None:
        """The starter config loads, with its state and TLS files in DIR/state."""
        path = starter.writeStarter(self.directory / "sbc")
        config = loadConfig(path)
        state = (self.directory / "sbc" / "state").resolve()
        self.assertEqual(config.stateDirectory.resolve(), state)
        assert config.tls is not None
        self.assertEqual(config.tls.certificate.resolve(), state / "tls" / "sbc.crt")
        self.assertTrue(config.loopbackOnly)
        self.assertIn('directory = "state"', path.read_text())

    def test_stateElsewhere(self) -> None:
        """--state outside DIR is written as an absolute path."""
        state = self.directory / "var" / "sbc"
        config = loadConfig(starter.writeStarter(self.directory / "etc", state))
        self.assertEqual(config.stateDirectory, state)
        self.assertTrue((state / "tls" / "sbc.key").exists())

    def test_secretsPrivate(self) -> None:
        """The users file, the API token, the key and the state directory are for their owner alone."""
        starter.writeStarter(self.directory)
        secrets = ("users.txt", "api.token", "state", "state/tls/sbc.key")
        for path in (self.directory / name for name in secrets):
            self.assertEqual(stat.S_IMODE(path.stat().st_mode) & 0o077, 0, path)

    def test_sameAsShipped(self) -> None:
        """Every file but sbc.toml is the shipped example byte for byte; sbc.toml differs only in paths."""
        starter.writeStarter(self.directory)
        source = starter.examplesDirectory()
        for path in source.rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.name != "sbc.toml":
                self.assertEqual((self.directory / path.relative_to(source)).read_bytes(), path.read_bytes())
        shipped = (source / "sbc.toml").read_text().replace(starter.SHIPPED_STATE, '"state')
        shipped = shipped.replace(starter.SHIPPED_TOKEN, f'token_file = "{starter.TOKEN_FILE}"')
        self.assertEqual((self.directory / "sbc.toml").read_text(), shipped)

    def test_ownAPIToken(self) -> None:
        """The starter's API takes a random token from its own file, never the demo's; two starters differ."""
        first = loadConfig(starter.writeStarter(self.directory / "a"))
        second = loadConfig(starter.writeStarter(self.directory / "b"))
        assert first.api is not None and second.api is not None
        self.assertNotEqual(first.api.token, DEMO_TOKEN)
        self.assertEqual(len(first.api.token or ""), 64)
        self.assertNotEqual(first.api.token, second.api.token)
        self.assertNotIn(DEMO_TOKEN, (self.directory / "a" / "sbc.toml").read_text())

    def test_neverOverwrites(self) -> None:
        """An existing sbc.toml stays, and nothing else is written."""
        (self.directory / "sbc.toml").write_text("# mine\n")
        self.assertRaises(starter.StarterError, starter.writeStarter, self.directory)
        self.assertEqual(sorted(p.name for p in self.directory.iterdir()), ["sbc.toml"])

    def test_certificate(self) -> None:
        """The certificate names 127.0.0.1, ::1 and localhost, for the loopback listeners."""
        starter.writeSelfSignedCertificate(self.directory)
        certificate = x509.load_pem_x509_certificate((self.directory / "sbc.crt").read_bytes())
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        self.assertEqual({str(ip) for ip in names.get_values_for_type(x509.IPAddress)}, {"127.0.0.1", "::1"})
        self.assertEqual(names.get_values_for_type(x509.DNSName), ["localhost"])
