"""Tests for sbc.config.gateways: gateway entries (address or name, port, transport, priority,
weight), the trunk's health and whitelist_gateways keys, and ``[dns] servers``."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from sbc.config import Config, Trunk, loadConfig
from sbc.config.errors import ConfigError
from sbc.config.gateways import Gateway, parseGateway
from sbc.config.sip import Transport
from tests.fakes import DEMO_TOML, writeConfig

PATH = Path("sbc.toml")
KEY = "trunks.demo.gateways"


class ParseGatewayTests(SynchronousTestCase):
    """Each form of a ``gateways`` entry."""

    def parse(self, entry: object) -> Gateway:
        """``entry`` as the loader reads it."""
        return parseGateway(PATH, KEY, entry)

    def error(self, entry: object) -> ConfigError:
        """The error ``entry`` gives."""
        with self.assertRaises(ConfigError) as caught:
            self.parse(entry)
        error: ConfigError = caught.exception
        return error

    def test_addressAndPort(self) -> None:
        """The old host:port form still reads, as an address with its port and no transport."""
        self.assertEqual(self.parse("192.0.2.1:5080"), Gateway("192.0.2.1", 5080))

    def test_nameAlone(self) -> None:
        """A bare name leaves port and transport to DNS."""
        self.assertEqual(self.parse("sip.peer.example"), Gateway("sip.peer.example"))

    def test_transportParameter(self) -> None:
        """``;transport=tls`` names the transport (case does not matter)."""
        self.assertEqual(
            self.parse("sip.peer.example;transport=TLS"),
            Gateway("sip.peer.example", None, Transport.TLS),
        )

    def test_ipv6(self) -> None:
        """An IPv6 address in brackets with a port, and bare without one."""
        self.assertEqual(self.parse("[2001:db8::1]:5062"), Gateway("2001:db8::1", 5062))
        self.assertEqual(self.parse("2001:db8::1"), Gateway("2001:db8::1"))

    def test_table(self) -> None:
        """A table gives host, port, transport, priority and weight."""
        entry = {"host": "gw.peer.example", "port": 5070, "transport": "udp", "priority": 10, "weight": 50}
        self.assertEqual(self.parse(entry), Gateway("gw.peer.example", 5070, Transport.UDP, 10, 50))

    def test_tableDefaults(self) -> None:
        """A table with only a host takes the defaults written in Gateway."""
        self.assertEqual(self.parse({"host": "gw.peer.example"}), Gateway("gw.peer.example"))

    def test_errorsNameTheKey(self) -> None:
        """Wrong entries are errors naming the gateways key."""
        for entry in (
            "",
            5060,
            "gw:99999",
            "gw:x",
            "gw;transport=sctp",
            "gw;maddr=1.2.3.4",
            "gw with space",
            {"port": 5060},
            {"host": "gw", "port": True},
            {"host": "gw", "priority": -1},
            {"host": "gw", "weight": 70000},
            {"host": "gw", "transport": "ws"},
            {"host": "gw", "color": "red"},
        ):
            self.assertEqual(self.error(entry).key, KEY, entry)

    def test_str(self) -> None:
        """A gateway prints as it could be written, for logs and sbc-ctl."""
        self.assertEqual(str(Gateway("2001:db8::1", 5060, Transport.TLS)), "[2001:db8::1]:5060;transport=tls")
        self.assertEqual(str(Gateway("gw.peer.example")), "gw.peer.example")


class TrunkGatewayKeysTests(SynchronousTestCase):
    """The trunk keys around gateways, loaded from a file."""

    def setUp(self) -> None:
        self.directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.directory)

    def load(self, extra: str = "", top: str = "") -> Config:
        """The demo config with ``extra`` lines in its trunk and ``top`` tables before it."""
        toml = DEMO_TOML.replace("[trunks.demo]\n", f"{top}\n[trunks.demo]\n{extra}\n")
        return loadConfig(writeConfig(self.directory, toml))

    def error(self, extra: str = "", top: str = "") -> ConfigError:
        """The error the demo config with ``extra`` gives."""
        with self.assertRaises(ConfigError) as caught:
            self.load(extra, top)
        error: ConfigError = caught.exception
        return error

    def test_defaults(self) -> None:
        """No pings, misses from the dataclass, gateways not whitelisted, no DNS servers."""
        config = self.load()
        (trunk,) = config.trunks
        self.assertEqual(trunk.gateways, (Gateway("127.0.0.2", 5080),))
        self.assertIsNone(trunk.pingInterval)
        self.assertEqual(trunk.pingMisses, Trunk.pingMisses)
        self.assertFalse(trunk.whitelistGateways)
        self.assertEqual(config.dnsServers, ())

    def test_keysRead(self) -> None:
        """ping_interval, ping_misses and whitelist_gateways are read."""
        (trunk,) = self.load("ping_interval = 5\nping_misses = 2\nwhitelist_gateways = true").trunks
        self.assertEqual((trunk.pingInterval, trunk.pingMisses, trunk.whitelistGateways), (5.0, 2, True))

    def test_rangesChecked(self) -> None:
        """Out-of-range health keys are errors naming them."""
        self.assertEqual(self.error("ping_interval = 0").key, "trunks.demo.ping_interval")
        self.assertEqual(self.error("ping_misses = 0").key, "trunks.demo.ping_misses")

    def test_tableGatewaysInFile(self) -> None:
        """TOML inline tables and strings mix in one gateways list."""
        toml = 'gateways = [{ host = "gw.peer.example", priority = 5 }, "127.0.0.3:5060;transport=udp"]'
        config = loadConfig(
            writeConfig(self.directory, DEMO_TOML.replace('gateways = ["127.0.0.2:5080"]', toml))
        )
        self.assertEqual(
            config.trunks[0].gateways,
            (Gateway("gw.peer.example", priority=5), Gateway("127.0.0.3", 5060, Transport.UDP)),
        )

    def test_streamGatewayWithoutListenerWarned(self) -> None:
        """A TCP or TLS gateway with no listener of its transport (our Via would name none) is a
        warning at load; with the listener there is none."""
        gateways = 'gateways = ["127.0.0.2:5080", "127.0.0.2:5081;transport=tcp"]'
        toml = DEMO_TOML.replace('gateways = ["127.0.0.2:5080"]', gateways)
        config = loadConfig(writeConfig(self.directory, toml))
        self.assertEqual(
            config.warnings,
            ("trunk demo: gateway 127.0.0.2:5081;transport=tcp is skipped: no tcp [[listen]] table",),
        )
        listener = '[[listen]]\ntransport = "tcp"\nhost = "127.0.0.1"\nport = 5060\n\n[trunks.demo]'
        config = loadConfig(writeConfig(self.directory, toml.replace("[trunks.demo]", listener)))
        self.assertEqual(config.warnings, ())

    def test_dnsServers(self) -> None:
        """``[dns] servers`` lists host:port name servers; a bad one is an error naming the key."""
        config = self.load(top='[dns]\nservers = ["127.0.0.1:5353"]\n')
        self.assertEqual(config.dnsServers, (("127.0.0.1", 5353),))
        self.assertEqual(self.error(top='[dns]\nservers = ["127.0.0.1:x"]\n').key, "dns.servers")
