"""Tests for sbc.tap and the twistd plugin: options, bad config, and the service tree."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import cast

from twisted.application import internet
from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IServiceMaker
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.task import Clock
from twisted.names import client
from twisted.plugin import getPlugins
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import Site

from sbc import tap
from sbc.access import SYNC_INTERVAL
from sbc.tap import Options, SBCService, makeService
from sbc.transport.listeners import DatagramListener, SignalReload
from tests.calls import callConfig
from tests.fakes import DEMO_TOML, LogRecorder, writeConfig

TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")
ROOT = Path(__file__).resolve().parents[1]


class TapTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.directory)


class OptionsTests(TapTestCase):
    def test_goodConfig(self) -> None:
        """A good config file is loaded while options are parsed."""
        options = Options()
        options.parseOptions(["--config", str(writeConfig(self.directory))])
        self.assertEqual(options["parsedConfig"].trunks[0].name, "demo")

    def test_badConfigIsUsageError(self) -> None:
        """A bad config becomes a UsageError naming the file and key."""
        path = writeConfig(self.directory, DEMO_TOML.replace("t1 = 0.5", "t1 = -1"))
        with self.assertRaises(usage.UsageError) as caught:
            Options().parseOptions(["--config", str(path)])
        self.assertIn(f"{path}: sip.t1:", str(caught.exception))

    def test_badHookIsUsageError(self) -> None:
        """A routing hook that does not load stops the start: a UsageError naming its file and line."""
        path = writeConfig(self.directory, DEMO_TOML + '\n[routing]\nhook = "routing.py"\n')
        (self.directory / "routing.py").write_text("def route(call):\n    return (\n")
        with self.assertRaises(usage.UsageError) as caught:
            Options().parseOptions(["--config", str(path)])
        self.assertIn(f"{self.directory / 'routing.py'}:2: syntax error", str(caught.exception))

    def test_everyOptionDocumented(self) -> None:
        """--help documents every option."""
        text = str(Options())
        self.assertIn("--config", text)
        self.assertIn("configuration file", text)


class MakeServiceTests(TapTestCase):
    def test_tree(self) -> None:
        """makeService builds the listeners, the timers, SIGHUP, and the state database."""
        toml = DEMO_TOML + '\n[[listen]]\ntransport = "tcp"\nhost = "::1"\nport = 5060\n'
        options = Options()
        options.parseOptions(["--config", str(writeConfig(self.directory, toml))])
        top = makeService(options)
        self.assertIsInstance(top, SBCService)
        kinds = [type(child) for child in top]
        self.assertEqual(kinds.count(DatagramListener), 1)
        self.assertEqual(kinds.count(internet.TCPServer), 1)
        # whitelist poll, binding expiry, gateway pings, ban sync
        self.assertEqual(kinds.count(internet.TimerService), 4)
        self.assertEqual(kinds.count(SignalReload), 1)
        self.assertTrue((self.directory / "state" / "sbc.sqlite").exists())

    def test_apiService(self) -> None:
        """With an ``[api]`` table the tree has the API's TCP listener on its address, serving a Site."""
        api = '\n[api]\nlisten = "127.0.0.1:18080"\ntoken = "a-token-long-enough-for-this"\n'
        options = Options()
        options.parseOptions(["--config", str(writeConfig(self.directory, DEMO_TOML + api))])
        top = cast(SBCService, makeService(options))
        self.addCleanup(top.cdrs.close)  # type: ignore[union-attr]
        [web] = [child for child in top if isinstance(child, StreamServerEndpointService)]
        endpoint = cast(TCP4ServerEndpoint, web.endpoint)
        self.assertEqual((endpoint._interface, endpoint._port), ("127.0.0.1", 18080))
        self.assertIsInstance(web.factory, Site)

    def test_noAPIWithoutTable(self) -> None:
        """Without an ``[api]`` table no HTTP listener is made."""
        options = Options()
        options.parseOptions(["--config", str(writeConfig(self.directory))])
        top = cast(SBCService, makeService(options))
        self.addCleanup(top.cdrs.close)  # type: ignore[union-attr]
        self.assertEqual([c for c in top if isinstance(c, StreamServerEndpointService)], [])

    def test_chainFromOptions(self) -> None:
        """The server routes with the chain Options built: the hook file loads once at startup."""
        path = writeConfig(self.directory, DEMO_TOML + '\n[routing]\nhook = "routing.py"\n')
        (self.directory / "routing.py").write_text("def route(call):\n    return None\n")
        options = Options()
        options.parseOptions(["--config", str(path)])
        top = cast(SBCService, makeService(options))
        self.addCleanup(top.cdrs.close)  # type: ignore[union-attr]
        self.assertIs(top.server.chain, options["chain"])
        self.assertEqual(top.server.chain.routers[0].name, "hook")

    def test_connectionsCountedAsBansCount(self) -> None:
        """The stream listeners count an IPv6 source's connections by the bans' prefix."""
        toml = DEMO_TOML + '\n[[listen]]\ntransport = "tcp"\nhost = "::1"\nport = 5060\n'
        options = Options()
        options.parseOptions(["--config", str(writeConfig(self.directory, toml))])
        top = makeService(options)
        (tcp,) = [child for child in top if isinstance(child, internet.TCPServer)]
        connections = tcp.args[1].connections
        self.assertEqual(connections.sourceKey("2001:db8:1:2::5"), "2001:db8:1:2::/64")

    def test_bansSynced(self) -> None:
        """A timer syncs the bans with the table every SYNC_INTERVAL, so sbc-ctl unban takes effect."""
        options = Options()
        options.parseOptions(["--config", str(writeConfig(self.directory))])
        top = cast(SBCService, makeService(options))
        self.addCleanup(top.cdrs.close)  # type: ignore[union-attr]
        timers = [child for child in top if isinstance(child, internet.TimerService)]
        syncs = [timer for timer in timers if timer.call[0] == top.server.bans.sync]
        self.assertEqual([timer.step for timer in syncs], [SYNC_INTERVAL])

    def test_hangupReopensCDRs(self) -> None:
        """SIGHUP's handler reloads the config and starts a new CDR file after logrotate moved it."""
        options = Options()
        options.parseOptions(["--config", str(writeConfig(self.directory))])
        top = makeService(options)
        self.addCleanup(cast(SBCService, top).cdrs.close)  # type: ignore[union-attr]
        (hangup,) = [child for child in top if isinstance(child, SignalReload)]
        cdrs = self.directory / "state" / "cdr.jsonl"
        cdrs.rename(self.directory / "state" / "cdr.jsonl.1")
        hangup.reload()
        self.assertTrue(cdrs.exists())

    def test_exposedSecretsWarned(self) -> None:
        """makeService warns, one line each, about secrets other accounts can read."""
        events = LogRecorder()
        self.patch(tap, "log", events.log)
        options = Options()
        options.parseOptions(["--config", str(writeConfig(self.directory))])
        (self.directory / "state").mkdir(mode=0o755)
        (self.directory / "state").chmod(0o755)
        top = makeService(options)
        self.addCleanup(cast(SBCService, top).cdrs.close)  # type: ignore[union-attr]
        warnings = [str(e["warning"]) for e in events.events if "warning" in e]
        self.assertEqual(len(warnings), 1, warnings)
        self.assertIn("state directory", warnings[0])

    def test_configWarningsLogged(self) -> None:
        """makeService logs the config's warnings (a gateway outside its trunk's whitelist)."""
        events = LogRecorder()
        self.patch(tap, "log", events.log)
        options = Options()
        options.parseOptions(["--config", str(writeConfig(self.directory, whitelist="127.0.0.3/32\n"))])
        top = makeService(options)
        self.addCleanup(cast(SBCService, top).cdrs.close)  # type: ignore[union-attr]
        warnings = [str(e["warning"]) for e in events.events if "warning" in e]
        self.assertEqual(len(warnings), 1, warnings)
        self.assertIn("gateway 127.0.0.2:5080 is not in the trunk's whitelist", warnings[0])

    def test_plugin(self) -> None:
        """twistd finds the sbc plugin, and it points at sbc.tap."""
        import twisted.plugins

        makers = {maker.tapname: maker for maker in getPlugins(IServiceMaker, twisted.plugins)}
        self.assertIn("sbc", makers)
        self.assertEqual(makers["sbc"].module, "sbc.tap")  # type: ignore[attr-defined]


class TwistdTests(TapTestCase):
    def twistd(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [TWISTD, "-n", "--pidfile=", "sbc", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def test_badConfigExits(self) -> None:
        """twistd exits non-zero on a bad config and says file, line and reason."""
        path = writeConfig(self.directory, DEMO_TOML.replace("t1 = 0.5", "t1 = = 2"))
        result = self.twistd("--config", str(path))
        self.assertNotEqual(result.returncode, 0)
        self.assertIn(f"{path}:3: TOML syntax", result.stdout + result.stderr)

    def test_helpListsOptions(self) -> None:
        """twistd -n sbc --help documents --config."""
        result = self.twistd("--help")
        self.assertEqual(result.returncode, 0)
        self.assertIn("--config", result.stdout)


class DNSResolverTests(SynchronousTestCase):
    """Where gateway names are resolved."""

    def test_configuredServersOnly(self) -> None:
        """With ``[dns] servers`` only those are asked: no resolv.conf is read."""
        config = replace(callConfig(), dnsServers=(("127.0.0.1", 5353),))
        resolver = tap.dnsResolver(Clock(), config)
        assert isinstance(resolver, client.Resolver)
        self.assertEqual((resolver.servers, resolver.resolv), ([("127.0.0.1", 5353)], None))
