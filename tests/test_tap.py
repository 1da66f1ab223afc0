"""Tests for sbc.tap and the twistd plugin: options, bad config, and the service tree."""

from __future__ import annotations

import gc
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

from twisted.application import internet, service
from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IServiceMaker
from twisted.internet import defer
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.task import Clock
from twisted.names import client
from twisted.plugin import getPlugins
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import Site

from sbc import tap
from sbc.access import SYNC_INTERVAL
from sbc.config import Transport
from sbc.locate import Hop
from sbc.media.relay import MediaRelay
from sbc.ops.state import loadSecret
from sbc.registrant import RegistrantService
from sbc.server import SIPServer
from sbc.tap import Options, SBCService, makeService
from sbc.transport.listeners import DatagramListener, SignalReload
from tests.calls import callConfig
from tests.fakes import DEMO_TOML, FakeUDPReactor, LogRecorder, RecordingTransport, writeConfig

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
        # whitelist poll, binding expiry, gateway pings, registrars' names, ban sync
        self.assertEqual(kinds.count(internet.TimerService), 5)
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

    def test_fileLimitRaisedAndLogged(self) -> None:
        """makeService raises the open-file soft limit before the relay sizes its idle pairs, says
        what it got, and exports the relay's idle pairs as a gauge."""
        limits = FakeLimits(1024, 65536)
        self.patch(resource, "getrlimit", limits.getrlimit)
        self.patch(resource, "setrlimit", limits.setrlimit)
        events = LogRecorder()
        self.patch(tap, "log", events.log)
        options = Options()
        options.parseOptions(["--config", str(writeConfig(self.directory))])
        top = cast(SBCService, makeService(options))
        self.addCleanup(top.cdrs.close)  # type: ignore[union-attr]
        self.assertEqual([e["limit"] for e in events.events if "limit" in e], [65536])
        relay: object = top.relay
        assert isinstance(relay, MediaRelay)
        self.assertEqual(relay.spare, min(relay.pool.capacity, 65536 // 8))
        self.assertEqual(top.server.metrics["media_idle_pairs"], 0)

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

    def test_shortTimeouts(self) -> None:
        """A DNS server that does not answer fails the lookup after 1 + 3 seconds on the
        injected reactor, and leaves no timer behind."""
        reactor = ClockedUDP()
        config = replace(callConfig(), dnsServers=(("127.0.0.1", 5353),))
        resolver: Any = tap.dnsResolver(reactor, config)  # as sbc.locate asks it
        lookup = resolver.lookupAddress("gw.peer.test")
        reactor.advance(1)  # the first try times out; the second waits three seconds
        reactor.advance(2.9)
        self.assertNoResult(lookup)
        reactor.advance(0.1)
        self.failureResultOf(lookup, defer.TimeoutError)
        self.assertEqual(reactor.getDelayedCalls(), [])

    def test_resolvConfReadOnce(self) -> None:
        """Without ``[dns] servers``: the hosts file first, then resolv.conf's servers, read once,
        asked on the injected reactor with the short time-outs; nothing is left on the reactor
        to stop (no re-read timer), before or after a lookup."""
        directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, directory)
        (directory / "resolv.conf").write_text("# comment\nnameserver 127.0.0.53\nnameserver\n")
        (directory / "hosts").write_text("127.0.0.7 gw.local.test\n")
        reactor = ClockedUDP()
        resolver: Any = tap.dnsResolver(reactor, callConfig(), directory / "resolv.conf", directory / "hosts")
        self.assertEqual(reactor.getDelayedCalls(), [])
        local = self.successResultOf(resolver.lookupAddress("gw.local.test"))
        self.assertEqual(local[0][0].payload.dottedQuad(), "127.0.0.7")
        lookup = resolver.lookupAddress("gw.peer.test")
        self.assertEqual([to for port in reactor.ports for _, to in port.written], [("127.0.0.53", 53)])
        reactor.advance(1)
        reactor.advance(3)
        self.failureResultOf(lookup, defer.TimeoutError)
        self.assertEqual(reactor.getDelayedCalls(), [])

    def test_nameservers(self) -> None:
        """resolv.conf's nameserver lines, in order; the local server when there is none or no file."""
        directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, directory)
        path = directory / "resolv.conf"
        path.write_text("nameserver 192.0.2.53\noptions ndots:1\nnameserver ::1\n")
        self.assertEqual(tap.nameservers(path), [("192.0.2.53", 53), ("::1", 53)])
        self.assertEqual(tap.nameservers(directory / "missing"), [("127.0.0.1", 53)])


class FakeLimits:
    """RLIMIT_NOFILE as ``soft`` and ``hard``, for `resource`'s getrlimit and setrlimit;
    ``refuse`` makes setrlimit fail as a limited account's would."""

    def __init__(self, soft: int, hard: int, refuse: bool = False) -> None:
        self.soft, self.hard, self.refuse = soft, hard, refuse
        self.set: list[tuple[int, int]] = []

    def getrlimit(self, which: int) -> tuple[int, int]:
        assert which == resource.RLIMIT_NOFILE
        return self.soft, self.hard

    def setrlimit(self, which: int, limits: tuple[int, int]) -> None:
        assert which == resource.RLIMIT_NOFILE
        self.set.append(limits)
        if self.refuse:
            raise ValueError("not allowed to raise maximum limit")
        self.soft, self.hard = limits


class FileLimitTests(SynchronousTestCase):
    def test_raisedToHard(self) -> None:
        """The soft open-file limit goes up to the hard one (a shell's 1024 would starve the relay)."""
        limits = FakeLimits(1024, 65536)
        self.patch(resource, "getrlimit", limits.getrlimit)
        self.patch(resource, "setrlimit", limits.setrlimit)
        self.assertEqual(tap.raiseFileLimit(), (65536, 65536))
        self.assertEqual(limits.set, [(65536, 65536)])

    def test_refusedOrAlreadyThere(self) -> None:
        """A refused raise keeps the limit as it was; a soft limit at the hard one is left alone."""
        limits = FakeLimits(1024, 4096, refuse=True)
        self.patch(resource, "getrlimit", limits.getrlimit)
        self.patch(resource, "setrlimit", limits.setrlimit)
        self.assertEqual(tap.raiseFileLimit(), (1024, 4096))
        limits.soft, limits.refuse, limits.set = 4096, False, []
        self.assertEqual((tap.raiseFileLimit(), limits.set), ((4096, 4096), []))


class ClockedUDP(FakeUDPReactor, Clock):
    """A Clock that binds fake UDP sockets: what a twisted.names client needs of a reactor."""

    def __init__(self) -> None:
        FakeUDPReactor.__init__(self)
        Clock.__init__(self)


class RegistrantWiringTests(TapTestCase):
    """The registrant service in the tree: after the listeners, reloaded, unregistered first on stop."""

    REGISTRANT = (
        '\n[registrants.peer-b]\nregistrar = "sip:127.0.0.5"\n'
        'aor = "sip:sbc@peer-b.example"\npassword = "x"\n'
    )

    def test_afterListeners(self) -> None:
        """The registrant service is a child after the UDP listener, with the config's registrants."""
        options = Options()
        options.parseOptions(["--config", str(writeConfig(self.directory, DEMO_TOML + self.REGISTRANT))])
        top = cast(SBCService, makeService(options))
        self.addCleanup(top.cdrs.close)  # type: ignore[union-attr]
        registrants = top.registrants
        assert registrants is not None
        self.assertIs(registrants, top.getServiceNamed("registrants"))
        children = list(top)
        kinds = [type(child) for child in children]
        self.assertLess(kinds.index(DatagramListener), children.index(registrants))
        self.assertEqual([r.name for r in registrants.registrants], ["peer-b"])

    def test_contactSecretShared(self) -> None:
        """The registrant service and the inbound match derive Contact users from the state
        directory's secret (one secret: what we register is what we accept)."""
        options = Options()
        options.parseOptions(["--config", str(writeConfig(self.directory, DEMO_TOML + self.REGISTRANT))])
        top = cast(SBCService, makeService(options))
        self.addCleanup(top.cdrs.close)  # type: ignore[union-attr]
        assert top.registrants is not None
        self.assertEqual(top.registrants.secret, top.server.registrars.secret)
        self.assertEqual(top.registrants.secret, loadSecret(top.server.config.stateDirectory))

    def test_reloadReachesRegistrants(self) -> None:
        """A reload hands the new registrants to the service."""
        path = writeConfig(self.directory)
        options = Options()
        options.parseOptions(["--config", str(path)])
        top = cast(SBCService, makeService(options))
        self.addCleanup(top.cdrs.close)  # type: ignore[union-attr]
        path.write_text(DEMO_TOML + self.REGISTRANT)
        (hangup,) = [child for child in top if isinstance(child, SignalReload)]
        hangup.reload()
        assert top.registrants is not None
        self.assertEqual([r.name for r in top.registrants.registrants], ["peer-b"])

    def test_registrantTransport(self) -> None:
        """REGISTERs leave by the UDP socket, or by our TCP connection to the registrar."""
        toml = DEMO_TOML + '\n[[listen]]\ntransport = "tcp"\nhost = "127.0.0.1"\nport = 5062\n'
        options = Options()
        options.parseOptions(["--config", str(writeConfig(self.directory, toml))])
        top = cast(SBCService, makeService(options))
        self.addCleanup(top.cdrs.close)  # type: ignore[union-attr]
        transportFor = tap.registrantTransport(top.server)
        datagram = RecordingTransport()
        top.server.calls.legs.datagram = datagram
        self.assertIs(transportFor(Hop("127.0.0.5", 5060, Transport.UDP, "127.0.0.5")), datagram)
        stream = transportFor(Hop("127.0.0.5", 5060, Transport.TCP, "127.0.0.5"))
        assert stream is not None
        self.assertEqual((stream.name, stream.localAddress), ("TCP", ("127.0.0.1", 5062)))
        # No TLS listener, so no TLS connection either.
        self.assertIsNone(transportFor(Hop("127.0.0.5", 5061, Transport.TLS, "peer.example")))

    def test_stopWaitsForUnregisters(self) -> None:
        """Stopping the tree unregisters first, and stops transactions only once that is done
        (their answers need the transaction layer and the listeners)."""
        clock = Clock()
        server = SIPServer(callConfig(), clock)
        top = SBCService(server, clock)
        registrants = RegistrantService(
            (), clock, server.transactions, server.gateways.locator.locate, lambda hop: None
        )
        registrants.setServiceParent(top)
        top.registrants = registrants
        pending: defer.Deferred[None] = defer.Deferred()
        answers = [pending, defer.succeed(None)]
        events: list[str] = []

        def unregister() -> defer.Deferred[None]:
            events.append("unregister")
            return answers.pop(0)

        self.patch(registrants, "stopService", unregister)
        self.patch(server.transactions, "stop", lambda: events.append("transactions stopped"))
        stopped = top.stopService()
        self.assertEqual(events, ["unregister"])
        self.assertNoResult(stopped)
        pending.callback(None)
        self.successResultOf(stopped)
        self.assertEqual(events, ["unregister", "unregister", "transactions stopped"])


class WarmUpWiringTests(TapTestCase):
    """The service binds the built-in relay's idle pairs at start, before it freezes the heap."""

    MEDIA = "\n[media]\nport_min = 41000\nport_max = 41039\n"  # 20 pairs

    def start(self, toml: str) -> tuple[SBCService, FakeUDPReactor, LogRecorder, list[int]]:
        """makeService on ``toml``, its relay binding on a fake, then startService with the
        children (listeners, timers on the real reactor) left stopped and the collector untouched;
        returns the service, the relay's sockets, the service's log, and the idle pairs at freeze."""
        udp = FakeUDPReactor()
        real = tap.mediaRelay
        self.patch(tap, "mediaRelay", lambda reactor, config: real(reactor, config, udp))
        limits = FakeLimits(65536, 65536)
        self.patch(resource, "getrlimit", limits.getrlimit)
        self.patch(resource, "setrlimit", limits.setrlimit)
        events = LogRecorder()
        self.patch(SBCService, "log", events.log)
        options = Options()
        options.parseOptions(["--config", str(writeConfig(self.directory, toml))])
        top = cast(SBCService, makeService(options))
        self.addCleanup(top.cdrs.close)  # type: ignore[union-attr]
        frozen: list[int] = []
        relay: object = top.relay

        def freeze() -> None:
            frozen.append(relay.idlePairs if isinstance(relay, MediaRelay) else -1)

        self.patch(gc, "freeze", freeze)
        self.patch(gc, "set_threshold", lambda *thresholds: None)
        self.patch(service.MultiService, "startService", service.Service.startService)
        self.assertEqual(udp.binds, [])  # nothing bound before the service starts
        top.startService()
        if isinstance(relay, MediaRelay):
            self.addCleanup(relay.close)
        return top, udp, events, frozen

    def test_startBindsIdlePairs(self) -> None:
        """Starting the service binds the relay's idle pairs (the whole small range), says how many,
        and does so before the heap is frozen; the gauge shows them."""
        top, udp, events, frozen = self.start(DEMO_TOML + self.MEDIA)
        relay: object = top.relay
        assert isinstance(relay, MediaRelay)
        self.assertEqual((relay.spare, relay.idlePairs, relay.pool.inUse), (20, 20, 0))
        self.assertEqual(set(udp.open), set(range(41000, 41040)))
        self.assertEqual([port.reading for port in udp.open.values()], [False] * 40)
        [event] = [e for e in events.events if "idle port pairs bound" in e["log_format"]]
        self.assertEqual(event["pairs"], 20)
        self.assertEqual(frozen, [20])
        self.assertEqual(top.server.metrics["media_idle_pairs"], 20)

    def test_rtpengineNoWarmUp(self) -> None:
        """With rtpengine as the engine there is no warm-up, and starting logs no idle pairs."""
        top, udp, events, frozen = self.start(DEMO_TOML + '\n[media]\nengine = "rtpengine"\n')
        self.assertIsNone(top.warmUp)
        relay: object = top.relay
        self.assertNotIsInstance(relay, MediaRelay)
        self.assertEqual([e for e in events.events if "idle port pairs" in e["log_format"]], [])
        self.assertEqual((udp.binds, frozen), ([], [-1]))
