"""Tests for sbc.ops.reload: whitelists follow their files, and a bad file changes nothing."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from netaddr import IPSet
from twisted.application.internet import TimerService
from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from sbc.access import TRUNK, Peer
from sbc.config import Config, ConfigError, Trunk, loadConfig
from sbc.config.gateways import Gateway
from sbc.ops.reload import RETIRED_CHECK_INTERVAL, ConfigReloader
from sbc.routing import CallRequest, Decision, Reject, TrunkTarget
from sbc.server import SIPServer
from sbc.transport.listeners import SignalReload
from tests.calls import ALICE, SDP, CallTestCase, _access, answer, invite
from tests.calls import TRUNK as TRUNK_SOURCE
from tests.fakes import DEMO_TOML, writeConfig

DEMO = Peer(TRUNK, "demo")


class ReloadTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.directory)
        self.path = writeConfig(self.directory)
        self.applied: list[Config] = []
        self.reloader = ConfigReloader(loadConfig(self.path), self.applied.append)
        self.whitelist = self.directory / "whitelist" / "demo.txt"
        self.tick = 1_000_000_000

    def rewrite(self, text: str) -> None:
        """Write the whitelist and move its mtime on, as an editor saving it would."""
        self.whitelist.write_text(text)
        self.tick += 1
        os.utime(self.whitelist, (self.tick, self.tick))


class PollTests(ReloadTestCase):
    def test_unchangedNoReload(self) -> None:
        """Polling unchanged files reloads nothing."""
        self.reloader.poll()
        self.assertEqual(self.applied, [])

    def test_goodFileReloaded(self) -> None:
        """A changed whitelist is picked up and swapped in whole."""
        self.rewrite("127.0.0.2/32\n127.0.0.3/32\n")
        self.reloader.poll()
        self.assertEqual(len(self.applied), 1)
        self.assertEqual(self.applied[0].access.classify("127.0.0.3"), DEMO)
        self.assertIs(self.reloader.config, self.applied[0])

    def test_registrantChangesListed(self) -> None:
        """A reload that adds a registrant lists it among its changes, without its password."""
        self.path.write_text(
            DEMO_TOML + '\n[registrants.peer-b]\nregistrar = "sip:127.0.0.5"\n'
            'aor = "sip:sbc@peer-b.example"\npassword = "hunter2-pw"\n'
        )
        self.assertTrue(self.reloader.reload())
        self.assertIn("registrant peer-b added", self.reloader.lastChanges)
        self.assertNotIn("hunter2", " ".join(self.reloader.lastChanges))

    def test_badFileKeepsOld(self) -> None:
        """A whitelist with an error keeps the old one and logs file, line and reason."""
        old = self.reloader.config
        self.rewrite("127.0.0.3/32\nbogus\n")
        with capturedLogs() as events:
            self.reloader.poll()
        self.assertEqual(self.applied, [])
        self.assertIs(self.reloader.config, old)
        self.assertEqual(self.reloader.failures, 1)
        text = " ".join(formatEvent(e) for e in events)
        self.assertIn(f"{self.whitelist}:2:", text)
        self.assertIn("bogus", text)
        self.assertIsNone(old.access.classify("127.0.0.3"))

    def test_badThenFixed(self) -> None:
        """After a bad save, the next good save is applied."""
        self.rewrite("bogus\n")
        self.reloader.poll()
        self.rewrite("127.0.0.4/32\n")
        self.reloader.poll()
        self.assertEqual(self.applied[-1].access.classify("127.0.0.4"), DEMO)

    def test_onInjectedClock(self) -> None:
        """The poll runs on the injected clock at the configured interval."""
        clock = Clock()
        poller = TimerService(self.reloader.config.whitelistPollInterval, self.reloader.poll)
        poller.clock = clock
        poller.startService()
        self.addCleanup(poller.stopService)
        self.rewrite("127.0.0.5/32\n")
        self.assertEqual(self.applied, [])
        clock.advance(self.reloader.config.whitelistPollInterval)
        self.assertEqual(len(self.applied), 1)


class ReloadLogTests(ReloadTestCase):
    """What a reload says: the diff per trunk, the new config's warnings, or why it was refused."""

    def logged(self) -> str:
        with capturedLogs() as events:
            self.reloader.reload()
        return "\n".join(formatEvent(e) for e in events)

    def test_diffLogged(self) -> None:
        """The log lists the networks added and removed per trunk, and each setting changed."""
        self.rewrite("127.0.0.3/32\n127.0.0.2/32\n")
        self.path.write_text(DEMO_TOML + "failover_timeout = 4\n")
        text = self.logged()
        self.assertIn("reload: trunk demo: networks added: 127.0.0.3/32", text)
        self.assertIn("reload: trunk demo: failover_timeout 2.0 -> 4.0", text)
        self.rewrite("127.0.0.3/32\n")
        self.assertIn("reload: trunk demo: networks removed: 127.0.0.2/32", self.logged())

    def test_trunksAddedAndRemoved(self) -> None:
        """A trunk added or removed by the reload is logged as such."""
        (self.directory / "whitelist" / "peer.txt").write_text("127.0.0.7\n")
        self.path.write_text(
            DEMO_TOML.replace("[trunks.demo]", "[trunks.peer]").replace("demo.txt", "peer.txt")
        )
        text = self.logged()
        self.assertIn("reload: trunk demo removed", text)
        self.assertIn("reload: trunk peer added: 127.0.0.7/32", text)

    def test_warningsLogged(self) -> None:
        """A reload that leaves a gateway outside its trunk's whitelist applies, and warns."""
        self.rewrite("127.0.0.3/32\n")
        text = self.logged()
        self.assertEqual(len(self.applied), 1)
        self.assertIn("trunk demo: gateway 127.0.0.2:5080 is not in the trunk's whitelist", text)

    def test_hostBitsKeepOld(self) -> None:
        """A whitelist line with host bits set is refused with file and line; the old whitelist stays."""
        self.rewrite("127.0.0.2/32\n127.0.0.5/24\n")
        text = self.logged()
        self.assertEqual(self.applied, [])
        self.assertIn(
            f"{self.whitelist}:2: 127.0.0.5/24 has host bits set: write the network 127.0.0.0/24", text
        )
        self.assertEqual(self.reloader.config.access.classify("127.0.0.2"), DEMO)


class HookReloadTests(ReloadTestCase):
    """The routing hook is loaded when the server takes a config: one that fails keeps the old."""

    def setUp(self) -> None:
        super().setUp()
        self.hook = self.directory / "routing.py"
        self.saveHook(403)
        self.path.write_text(DEMO_TOML + '\n[routing]\nhook = "routing.py"\n')
        self.server = SIPServer(loadConfig(self.path), Clock())
        self.reloader = ConfigReloader(self.server.config, self.server.setConfig)

    def saveHook(self, status: int | None) -> None:
        """Write the hook (rejecting with ``status``, or broken for None) as an editor saving it would."""
        body = "    return (\n" if status is None else f"    return reject({status})\n"
        self.hook.write_text(f"from sbc.hook import reject\ndef route(call):\n{body}")
        self.tick += 1
        os.utime(self.hook, (self.tick, self.tick))

    def decided(self) -> Decision:
        call = CallRequest(DEMO, "+4940999", "198.51.100.7", "bob", "127.0.0.1")
        decision = self.server.chain.decide(call)
        assert isinstance(decision, Decision)
        return decision

    def test_badHookKeepsOld(self) -> None:
        """A hook that no longer loads keeps the running config and hook, and the log names its line."""
        config, chain = self.server.config, self.server.chain
        self.saveHook(None)
        with capturedLogs() as events:
            self.reloader.poll()
        self.assertIs(self.server.config, config)
        self.assertIs(self.server.chain, chain)
        self.assertIs(self.reloader.config, config)
        self.assertEqual(self.reloader.failures, 1)
        self.assertIn(f"{self.hook}:3: syntax error", " ".join(formatEvent(e) for e in events))
        self.assertEqual(self.decided().reject, Reject(403))

    def test_fixedHookApplied(self) -> None:
        """After a broken save, the next good one is loaded and decides."""
        self.saveHook(None)
        self.reloader.poll()
        self.saveHook(404)
        self.reloader.poll()
        self.assertEqual(self.decided().reject, Reject(404))
        self.assertIs(self.server.config, self.reloader.config)

    def test_setConfigRefusesBadHook(self) -> None:
        """setConfig loads the hook before it assigns anything: a bad one raises and changes nothing."""
        config, chain = self.server.config, self.server.chain
        self.saveHook(None)
        self.assertRaises(ConfigError, self.server.setConfig, loadConfig(self.path))
        self.assertIs(self.server.config, config)
        self.assertIs(self.server.registrar.config, config)
        self.assertIs(self.server.chain, chain)


class RetiredTrunkTests(CallTestCase):
    """Calls in flight survive a reload that removes their trunk, and end normally."""

    def removeTrunk(self) -> None:
        self.server.setConfig(replace(self.server.config, trunks=(), access=_access(())))

    def test_trunkHangsUp(self) -> None:
        """The removed trunk's BYE still reaches its call: alice gets it, the trunk its 200, one CDR."""
        self.connect()
        self.removeTrunk()
        self.receive(self.aRequest("BYE", 11, "z9hG4bKbye"), TRUNK_SOURCE)
        self.assertEqual(len(self.requestsTo(ALICE, "BYE")), 1)
        self.assertEqual(self.statuses(TRUNK_SOURCE)[-1], 200)
        (bye,) = self.requestsTo(ALICE, "BYE")
        self.receive(answer(bye, 200), ALICE)
        self.assertEqual([(r.status, r.releasedBy) for r in self.cdrs.records], [(200, "caller")])

    def test_ringingCallCompletes(self) -> None:
        """An INVITE transaction in flight when its trunk goes is answered, and its ACK passes."""
        self.bind()
        self.receive(invite(), TRUNK_SOURCE)
        (bInvite,) = self.requestsTo(ALICE, "INVITE")
        self.receive(answer(bInvite, 180), ALICE)
        self.removeTrunk()
        self.receive(answer(bInvite, 200, body=SDP, contact="<sip:alice@10.1.1.1:5070>"), ALICE)
        self.assertEqual(self.statuses(TRUNK_SOURCE)[-1], 200)
        self.receive(self.aRequest("ACK", 10, "z9hG4bKack"), TRUNK_SOURCE)
        self.assertEqual(len(self.requestsTo(ALICE, "ACK")), 1)

    def test_ringingOutToRemovedTrunk(self) -> None:
        """A call still ringing out to a trunk that a reload removes is answered through it."""
        carrierGateway = ("127.0.0.12", 5080)
        carrier = Trunk(
            name="carrier",
            whitelistPaths=(Path("carrier.txt"),),
            whitelist=IPSet(["127.0.0.12/32"]),
            gateways=(Gateway(*carrierGateway),),
        )
        config = self.server.config
        trunks = (*config.trunks, carrier)
        self.server.setConfig(replace(config, trunks=trunks, access=_access(trunks)))
        self.server.calls.decide = lambda call: Decision(targets=(TrunkTarget("carrier", call.user),))
        self.receive(invite("sip:+15559999@127.0.0.1"), TRUNK_SOURCE)
        (bInvite,) = self.requestsTo(carrierGateway, "INVITE")
        self.receive(answer(bInvite, 180), carrierGateway)
        demoOnly = tuple(trunk for trunk in trunks if trunk.name != "carrier")
        self.server.setConfig(replace(self.server.config, trunks=demoOnly, access=_access(demoOnly)))
        self.receive(answer(bInvite, 200, body=SDP, contact="<sip:gw@127.0.0.12:5080>"), carrierGateway)
        self.assertEqual(self.statuses(TRUNK_SOURCE)[-1], 200)

    def test_noNewCalls(self) -> None:
        """The removed trunk's source gets no new call while its old one goes on: 403."""
        self.connect()
        self.removeTrunk()
        self.receive(invite(callId="new@127.0.0.2", branch="z9hG4bKnew", fromTag="n"), TRUNK_SOURCE)
        self.assertEqual(self.statuses(TRUNK_SOURCE)[-1], 403)
        self.assertEqual(len(self.requestsTo(ALICE, "INVITE")), 1)

    def test_strangerAfterLastCall(self) -> None:
        """Once the removed trunk's last call has ended, its source is a stranger again."""
        bInvite = self.connect()
        self.removeTrunk()
        self.assertFalse(self.server.refused(TRUNK_SOURCE[0]))
        self.receive(self.bRequest(bInvite, "BYE", 2, "z9hG4bKbye"), ALICE)
        self.assertTrue(self.server.admit(TRUNK_SOURCE[0]))  # until the next look
        self.clock.advance(RETIRED_CHECK_INTERVAL)
        self.assertFalse(self.server.admit(TRUNK_SOURCE[0]))
        self.assertTrue(self.server.refused(TRUNK_SOURCE[0]))
        self.assertIsNone(self.server.retired.access)

    def test_noCallsNothingRetired(self) -> None:
        """A trunk removed with no call in progress is a stranger at once."""
        self.removeTrunk()
        self.assertIsNone(self.server.retired.access)
        self.assertFalse(self.server.admit(TRUNK_SOURCE[0]))


class FakeReactor:
    def __init__(self) -> None:
        self.calls: list[Callable[[], object]] = []

    def callFromThread(self, f: Callable[[], object]) -> None:
        self.calls.append(f)


class SignalTests(ReloadTestCase):
    def test_sighup(self) -> None:
        """SIGHUP schedules a reload on the reactor, even with unchanged mtimes."""
        reactor = FakeReactor()
        service = SignalReload(reactor, self.reloader.reload)  # type: ignore[arg-type]
        service.startService()
        self.addCleanup(service.stopService)
        self.whitelist.write_text("127.0.0.6/32\n")
        os.kill(os.getpid(), signal.SIGHUP)
        self.assertEqual(len(reactor.calls), 1)
        reactor.calls[0]()
        self.assertEqual(self.applied[-1].access.classify("127.0.0.6"), DEMO)
