"""Tests for sbc.config: etc/ files to a frozen Config, and errors that name file and key."""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from sbc.access import TRUNK, Peer
from sbc.config import Config, loadConfig
from sbc.errors import ConfigError
from tests.fakes import DEMO_TOML, writeConfig

ETC = Path(__file__).resolve().parents[1] / "etc"

DEMO = Peer(TRUNK, "demo")


class ConfigTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.directory)

    def load(self, toml: str, whitelist: str = "127.0.0.2/32\n") -> Config:
        return loadConfig(writeConfig(self.directory, toml, whitelist))

    def error(self, toml: str, whitelist: str = "127.0.0.2/32\n") -> ConfigError:
        with self.assertRaises(ConfigError) as caught:
            self.load(toml, whitelist)
        error: ConfigError = caught.exception
        return error


class LoadConfigTests(ConfigTestCase):
    def test_shippedDemo(self) -> None:
        """The shipped etc/sbc.toml loads: UDP and TCP on 5060, TLS on 5061, trunk demo on 127.0.0.2."""
        config = loadConfig(ETC / "sbc.toml")
        self.assertEqual(
            {(lst.transport, lst.host, lst.port) for lst in config.listeners},
            {("udp", "127.0.0.1", 5060), ("tcp", "127.0.0.1", 5060), ("tls", "127.0.0.1", 5061)},
        )
        self.assertEqual([t.name for t in config.trunks], ["demo"])
        self.assertEqual(config.access.classify("127.0.0.2"), DEMO)
        self.assertIsNone(config.access.classify("127.0.0.9"))
        self.assertIsNotNone(config.tls)

    def test_frozen(self) -> None:
        """Config cannot be changed in place; a reload builds a new one."""
        config = self.load(DEMO_TOML)
        with self.assertRaises(dataclasses.FrozenInstanceError):
            config.trunks = ()  # type: ignore[misc]

    def test_defaults(self) -> None:
        """Limits default to 64 KiB and 256 headers; paths are relative to the config file."""
        config = self.load(DEMO_TOML)
        self.assertEqual(config.sip.limits.maxMessageSize, 65536)
        self.assertEqual(config.sip.limits.maxHeaders, 256)
        self.assertEqual(config.trunks[0].whitelistPath, self.directory / "whitelist" / "demo.txt")
        self.assertEqual(config.stateDirectory, self.directory / "state")

    def test_limitsConfigurable(self) -> None:
        """max_message_size and max_headers come from [sip]."""
        config = self.load(DEMO_TOML.replace("[sip]", "[sip]\nmax_message_size = 4000\nmax_headers = 20"))
        self.assertEqual(config.sip.limits.maxMessageSize, 4000)
        self.assertEqual(config.sip.limits.maxHeaders, 20)

    def test_ipv6Listener(self) -> None:
        """A listener may be on an IPv6 address."""
        config = self.load(DEMO_TOML.replace('host = "127.0.0.1"', 'host = "::1"'))
        self.assertEqual(config.listeners[0].host, "::1")


class ConfigErrorTests(ConfigTestCase):
    def test_syntaxErrorHasLine(self) -> None:
        """A TOML syntax error names the file and line."""
        error = self.error(DEMO_TOML.replace("t1 = 0.5", "t1 = "))
        self.assertEqual(error.line, 3)
        self.assertIn("sbc.toml:3:", str(error))

    def test_unknownKey(self) -> None:
        """A misspelt key is refused by name."""
        error = self.error(DEMO_TOML.replace("t1 = 0.5", "t_1 = 0.5"))
        self.assertEqual(error.key, "sip.t_1")

    def test_wrongType(self) -> None:
        """A value of the wrong type names its key and the expected type."""
        error = self.error(DEMO_TOML.replace("t1 = 0.5", 't1 = "fast"'))
        self.assertEqual(error.key, "sip.t1")
        self.assertIn("number", error.reason)

    def test_outOfRange(self) -> None:
        """A value out of range names its key and the range."""
        error = self.error(DEMO_TOML.replace("[sip]", "[sip]\nmax_message_size = 10"))
        self.assertEqual(error.key, "sip.max_message_size")

    def test_badTransport(self) -> None:
        """An unknown transport is refused."""
        error = self.error(DEMO_TOML.replace('transport = "udp"', 'transport = "sctp"'))
        self.assertEqual(error.key, "listen[0].transport")

    def test_tlsNeedsSettings(self) -> None:
        """A TLS listener without a [tls] table is refused."""
        error = self.error(DEMO_TOML.replace('transport = "udp"', 'transport = "tls"'))
        self.assertEqual(error.key, "tls")

    def test_noListener(self) -> None:
        """At least one listener is needed."""
        toml = DEMO_TOML.split("[[listen]]")[0] + DEMO_TOML.split("port = 5060\n")[1]
        self.assertEqual(self.error(toml).key, "listen")

    def test_badWhitelistNamesItsLine(self) -> None:
        """A bad whitelist line fails the whole load, naming the whitelist file and line."""
        error = self.error(DEMO_TOML, whitelist="127.0.0.2\n300.1.1.1\n")
        self.assertEqual(error.path, self.directory / "whitelist" / "demo.txt")
        self.assertEqual(error.line, 2)

    def test_missingFile(self) -> None:
        """A missing config file is an error naming it."""
        with self.assertRaises(ConfigError) as caught:
            loadConfig(self.directory / "nope.toml")
        self.assertIn("nope.toml", str(caught.exception))
