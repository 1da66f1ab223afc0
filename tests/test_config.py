"""Tests for sbc.config: etc/ files to a frozen Config, and errors that name file and key."""

from __future__ import annotations

import dataclasses
from contextlib import ExitStack
from pathlib import Path
from unittest import mock

from sbc.access import TRUNK, BanSettings, Peer
from sbc.config import (
    CallSettings,
    Config,
    Fork,
    MediaEngine,
    MediaMode,
    MediaSettings,
    Redirect,
    Refer,
    RegistrarSettings,
    SIPSettings,
    Transport,
    Trunk,
    loadConfig,
)
from sbc.config.errors import ConfigError
from tests.fakes import DEMO_TOML, ConfigTestCase

ETC = Path(__file__).resolve().parents[1] / "etc"

DEMO = Peer(TRUNK, "demo")


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

    def test_trunkByName(self) -> None:
        """Config.trunk finds a trunk by name (None for an unknown one), and survives replace()."""
        config = loadConfig(ETC / "sbc.toml")
        self.assertIs(config.trunk("demo"), config.trunks[0])
        self.assertIsNone(config.trunk("nope"))
        self.assertEqual(config.trunkNames, ("demo",))
        changed = dataclasses.replace(config, trunks=())
        self.assertIsNone(changed.trunk("demo"))

    def test_closedChoicesAreEnums(self) -> None:
        """Closed choices load as their enum's members (equal to the strings ops write)."""
        config = loadConfig(ETC / "sbc.toml")
        self.assertIs(config.calls.fork, Fork.PARALLEL)
        self.assertIs(config.calls.redirect, Redirect.REJECT)
        self.assertIs(config.media.engine, MediaEngine.RELAY)
        self.assertIs(config.trunks[0].refer, Refer.REJECT)
        self.assertIs(config.trunks[0].media, MediaMode.RELAY)
        self.assertEqual(config.calls.fork, "parallel")
        error = self.error(DEMO_TOML + '\n[calls]\nfork = "random"\n')
        self.assertIn('calls.fork: must be "parallel" or "sequential"', str(error))

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
        self.assertEqual(config.trunks[0].whitelistPaths, (self.directory / "whitelist" / "demo.txt",))
        self.assertEqual(config.stateDirectory, self.directory / "state")

    def test_limitsConfigurable(self) -> None:
        """max_message_size and max_headers come from [sip]."""
        config = self.load(DEMO_TOML.replace("[sip]", "[sip]\nmax_message_size = 4000\nmax_headers = 20"))
        self.assertEqual(config.sip.limits.maxMessageSize, 4000)
        self.assertEqual(config.sip.limits.maxHeaders, 20)

    def test_gateSettings(self) -> None:
        """[sip] connection limits and message deadline, [bans] failures_per_source and ipv6_prefix."""
        config = self.load(DEMO_TOML)
        self.assertEqual(
            (config.sip.maxConnectionsPerSource, config.sip.maxConnectionsPerTrunkSource), (32, 256)
        )
        self.assertEqual((config.sip.messageDeadline, config.bans.failuresPerSource), (10.0, 20))
        self.assertEqual(config.bans.ipv6Prefix, 64)
        config = self.load(
            DEMO_TOML.replace(
                "[sip]",
                "[bans]\nfailures_per_source = 9\nipv6_prefix = 56\n\n[sip]\n"
                "max_connections_per_source = 4\nmax_connections_per_trunk_source = 40\nmessage_deadline = 3",
            )
        )
        self.assertEqual(
            (config.sip.maxConnectionsPerSource, config.sip.maxConnectionsPerTrunkSource), (4, 40)
        )
        self.assertEqual((config.sip.messageDeadline, config.bans.failuresPerSource), (3.0, 9))
        self.assertEqual(config.bans.ipv6Prefix, 56)

    def test_banDefaultsFromTheDataclass(self) -> None:
        """[bans] keys left out take BanSettings' defaults, written once in the dataclass."""
        defaults = {"failures": 7, "window": 45.0, "duration": 900.0}
        with ExitStack() as stack:
            for name, value in defaults.items():
                stack.enter_context(mock.patch.object(BanSettings, name, value))
            bans = self.load(DEMO_TOML).bans
        self.assertEqual((bans.failures, bans.window, bans.duration), (7, 45.0, 900.0))

    def test_defaultsFromTheDataclasses(self) -> None:
        """Keys left out take the defaults written once in each section's dataclass."""
        patched: dict[type, dict[str, object]] = {
            SIPSettings: {"idleTimeout": 30.0, "t1": 0.25, "t2": 2.0, "t4": 2.5, "serverName": "edge"},
            RegistrarSettings: {"minExpires": 30, "maxExpires": 600, "defaultExpires": 300},
            CallSettings: {"noAnswerTimeout": 90.0, "drainGrace": 5.0},
            MediaSettings: {"portMin": 25000, "timeout": 20.0},
            Trunk: {"failoverTimeout": 1.5, "noAnswerTimeout": 60.0, "failoverCodes": (503,)},
            Config: {"whitelistPollInterval": 4.0},
        }
        with ExitStack() as stack:
            for section, defaults in patched.items():
                for name, value in defaults.items():
                    stack.enter_context(mock.patch.object(section, name, value))
            config = self.load(DEMO_TOML.replace("poll_interval = 1.0", "").replace("t1 = 0.5", ""))
        sip, registrar, trunk = config.sip, config.registrar, config.trunks[0]
        self.assertEqual(
            (sip.idleTimeout, sip.t1, sip.t2, sip.t4, sip.serverName), (30.0, 0.25, 2.0, 2.5, "edge")
        )
        self.assertEqual(
            (registrar.minExpires, registrar.maxExpires, registrar.defaultExpires), (30, 600, 300)
        )
        self.assertEqual((config.calls.noAnswerTimeout, config.calls.drainGrace), (90.0, 5.0))
        self.assertEqual((config.media.portMin, config.media.timeout), (25000, 20.0))
        self.assertEqual(
            (trunk.failoverTimeout, trunk.noAnswerTimeout, trunk.failoverCodes), (1.5, 60.0, (503,))
        )
        self.assertEqual(config.whitelistPollInterval, 4.0)

    def test_sharedDefaults(self) -> None:
        """A default shared by two sections is one value: a trunk's call timers are [calls]' own."""
        self.assertEqual(Trunk.noAnswerTimeout, CallSettings.noAnswerTimeout)
        self.assertEqual(Trunk.maxCallLength, CallSettings.maxCallLength)
        self.assertEqual((SIPSettings.t1, SIPSettings.t2, SIPSettings.t4), (0.5, 4.0, 5.0))

    def test_listenerTransports(self) -> None:
        """A listener's transport loads as a Transport member, whatever its case in the file."""
        config = self.load(DEMO_TOML.replace('transport = "udp"', 'transport = "TCP"'))
        self.assertIs(config.listeners[0].transport, Transport.TCP)
        self.assertEqual(config.listeners[0].transport, "tcp")

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

    def test_oneAlgorithmByDefault(self) -> None:
        """Without [registrar] algorithms, challenges offer MD5 alone, and so does the shipped file."""
        self.assertEqual(self.load(DEMO_TOML).registrar.algorithms, ("MD5",))
        self.assertEqual(loadConfig(ETC / "sbc.toml").registrar.algorithms, ("MD5",))

    def test_registrarNetworks(self) -> None:
        """[registrar.networks.NAME] from addresses or a whitelist file picks algorithms by source."""
        (self.directory / "whitelist").mkdir(exist_ok=True)
        (self.directory / "whitelist" / "modern.txt").write_text("192.0.2.0/24\n")
        config = self.load(
            DEMO_TOML
            + '[registrar.networks.modern]\nwhitelist = "whitelist/modern.txt"\nalgorithms = ["SHA-256"]\n'
            + '[registrar.networks.lab]\naddresses = ["192.0.2.7"]\nalgorithms = ["SHA-256", "MD5"]\n'
        )
        registrar = config.registrar
        self.assertEqual(registrar.algorithmsFor("192.0.2.1"), ("SHA-256",))
        self.assertEqual(registrar.algorithmsFor("192.0.2.7"), ("SHA-256", "MD5"))
        self.assertEqual(registrar.algorithmsFor("198.51.100.1"), ("MD5",))
        self.assertIn(self.directory / "whitelist" / "modern.txt", config.watchedFiles())

    def test_registrarNetworkErrors(self) -> None:
        """A network needs algorithms and exactly one of whitelist/addresses; a prefix belongs to one."""
        cases = [
            ('[registrar.networks.a]\naddresses = ["192.0.2.0/24"]\n', "registrar.networks.a.algorithms"),
            ('[registrar.networks.a]\nalgorithms = ["MD5"]\n', "registrar.networks.a"),
            (
                '[registrar.networks.a]\naddresses = ["x"]\nalgorithms = ["MD5"]\n',
                "registrar.networks.a.addresses",
            ),
            (
                '[registrar.networks.a]\naddresses = ["192.0.2.0/24"]\nalgorithms = ["SHA-512"]\n',
                "registrar.networks.a.algorithms",
            ),
            (
                '[registrar.networks.a]\naddresses = ["192.0.2.0/24"]\nalgorithms = ["MD5"]\n'
                '[registrar.networks.b]\naddresses = ["192.0.2.0/24"]\nalgorithms = ["SHA-256"]\n',
                "registrar.networks",
            ),
        ]
        for extra, key in cases:
            self.assertEqual(self.error(DEMO_TOML + extra).key, key, extra)

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


class MediaSecurityConfigTests(ConfigTestCase):
    def test_defaults(self) -> None:
        """[media] defaults: 2 s to relatch, 8 streams, the SBC's own addresses forbidden."""
        media = self.load(DEMO_TOML).media
        self.assertEqual((media.relatchAfter, media.maxStreams), (2.0, 8))
        self.assertEqual(media.forbiddenTargets[0], "self")
        self.assertGreater(media.maxPortsPerTrunk, media.maxPortsPerAccount)

    def test_shippedMatchesDefaults(self) -> None:
        """The shipped etc/sbc.toml writes out the same values as the defaults."""
        shipped, default = loadConfig(ETC / "sbc.toml").media, self.load(DEMO_TOML).media
        names = (
            "relatchAfter",
            "readWindow",
            "forbiddenTargets",
            "maxStreams",
            "maxPortsPerTrunk",
            "maxPortsPerAccount",
        )
        for name in names:
            self.assertEqual(getattr(shipped, name), getattr(default, name), name)

    def test_forbiddenNetworks(self) -> None:
        """The word self means the media address and listener hosts: 127.0.0.1 is forbidden, 127.0.0.4 not."""
        config = loadConfig(ETC / "sbc.toml")
        networks = config.media.forbiddenNetworks(config.listeners)
        for address in ("127.0.0.1", "224.0.0.1", "ff02::1", "0.1.2.3", "::"):
            self.assertIn(address, networks)
        for address in ("127.0.0.2", "127.0.0.4", "10.0.0.1", "::1"):
            self.assertNotIn(address, networks)

    def test_values(self) -> None:
        """Ops' values are read; a list without "self" does not forbid the SBC's own address."""
        media = self.load(
            DEMO_TOML
            + '[media]\nrelatch_after = 0.5\nmax_streams = 2\nforbidden_targets = ["10.0.0.0/8"]\n'
            + "max_ports_per_trunk = 100\nmax_ports_per_account = 8\n"
        ).media
        self.assertEqual(
            (media.relatchAfter, media.maxStreams, media.maxPortsPerTrunk, media.maxPortsPerAccount),
            (0.5, 2, 100, 8),
        )
        networks = media.forbiddenNetworks()
        self.assertIn("10.1.2.3", networks)
        self.assertNotIn(media.address, networks)

    def test_badValues(self) -> None:
        """A forbidden target that is no network, or a stream cap of 0, names its key."""
        for extra, key in [
            ('forbidden_targets = ["intranet"]', "media.forbidden_targets"),
            ("forbidden_targets = [1]", "media.forbidden_targets"),
            ("max_streams = 0", "media.max_streams"),
            ("relatch_after = -1", "media.relatch_after"),
            ("max_ports_per_account = 0", "media.max_ports_per_account"),
        ]:
            self.assertEqual(self.error(DEMO_TOML + f"[media]\n{extra}\n").key, key, extra)

    def test_readWindow(self) -> None:
        """[media] read_window is read (0 turns the window off); without it, MediaSettings' default."""
        self.assertEqual(self.load(DEMO_TOML).media.readWindow, MediaSettings.readWindow)
        for value in (0, 0.005):
            media = self.load(DEMO_TOML + f"[media]\nread_window = {value}\n").media
            self.assertEqual(media.readWindow, value)

    def test_readWindowRange(self) -> None:
        """A negative read window, or one of a second (far beyond a jitter buffer), names its key."""
        for value in ("-1", "1"):
            error = self.error(DEMO_TOML + f"[media]\nread_window = {value}\n")
            self.assertEqual(error.key, "media.read_window", value)


class ListenerAddressConfigTests(ConfigTestCase):
    def test_wildcardNeedsAdvertise(self) -> None:
        """A listener on 0.0.0.0 or :: without `advertise` is refused, naming the key to add."""
        for host in ("0.0.0.0", "::", "0:0::0"):
            toml = DEMO_TOML.replace('host = "127.0.0.1"\nport = 5060', f'host = "{host}"\nport = 5060', 1)
            error = self.error(toml)
            self.assertEqual(error.key, "listen[0].advertise", host)
            self.assertIn("advertise =", error.reason)

    def test_advertiseRead(self) -> None:
        """A wildcard listener with `advertise` loads, and keeps both addresses."""
        toml = DEMO_TOML.replace(
            'host = "127.0.0.1"\nport = 5060', 'host = "0.0.0.0"\nport = 5060\nadvertise = "192.0.2.10"', 1
        )
        (listener,) = self.load(toml).listeners
        self.assertEqual((listener.host, listener.advertise), ("0.0.0.0", "192.0.2.10"))

    def test_advertiseMustNameAHost(self) -> None:
        """`advertise` may not itself be a wildcard, nor something that is no host."""
        for value in ("::", "not a host!"):
            toml = DEMO_TOML.replace(
                'host = "127.0.0.1"\nport = 5060', f'host = "0.0.0.0"\nport = 5060\nadvertise = "{value}"', 1
            )
            self.assertEqual(self.error(toml).key, "listen[0].advertise", value)

    def test_mediaAddressNotWildcard(self) -> None:
        """A wildcard media address (written into SDP, where it means hold) is refused."""
        self.assertEqual(self.error(DEMO_TOML + '[media]\naddress = "0.0.0.0"\n').key, "media.address")

    def test_rtpengineMedia(self) -> None:
        """rtpengine_media takes addresses (brackets dropped) and refuses anything else, naming the key."""
        media = self.load(DEMO_TOML + '[media]\nrtpengine_media = ["203.0.113.20", "[2001:db8::5]"]\n').media
        self.assertEqual(media.rtpengineMedia, ("203.0.113.20", "2001:db8::5"))
        self.assertEqual(
            self.error(DEMO_TOML + '[media]\nrtpengine_media = ["media.example"]\n').key,
            "media.rtpengine_media",
        )

    def test_gatewayPortNotAsciiDigits(self) -> None:
        """A gateway port of non-ASCII digits is a config error naming the key, not a crash."""
        toml = DEMO_TOML.replace('"127.0.0.2:5080"', '"127.0.0.2:50\u00b2"')
        self.assertIn("gateways", self.error(toml).key or "")
