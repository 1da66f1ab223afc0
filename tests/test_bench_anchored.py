"""Tests for `bench.anchored`: the anchored-media rows' systems and their configs."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from bench.__main__ import anchoredMethod
from bench.anchored import RELAY_PORTS, KamailioRtpengine, SbcRtpengine, anchoredSystems, relayedPackets
from bench.gate import STRANGER
from bench.plan import FULL, QUICK
from bench.rtpengine import RTPENGINE_HOST
from bench.sipp import CALLEE_HOST, CALLER_HOST
from bench.systems import HERE, Ceiling, Kamailio, Media, Sbc, Sippy, System, UnavailableError
from sbc.config.calls import MediaEngine
from sbc.config.model import loadConfig
from sbc.config.trunks import MediaMode

PYTHON = Path(sys.executable)


class SbcConfigTests(SynchronousTestCase):
    def sbc(self, media: Media, mediaPorts: tuple[int, int] | None = None) -> Sbc:
        """An sbc row with media C{media}."""
        return Sbc(PYTHON, host="127.0.0.12", media=media, mediaPorts=mediaPorts)

    def written(self, system: Sbc) -> Path:
        """Write the row's sbc.toml (and whitelists) into a fresh directory, as its start would; the file."""
        directory = Path(tempfile.mkdtemp(prefix="test-bench-"))
        self.addCleanup(shutil.rmtree, directory, ignore_errors=True)
        system.directory = directory
        system.port = 5060
        system.command(5080)
        return directory / "sbc.toml"

    def test_relay(self) -> None:
        """The relay row loads as sbc reads it: both trunks anchored in the built-in relay, no port quota."""
        config = loadConfig(self.written(self.sbc(Media.RELAY, mediaPorts=RELAY_PORTS)))
        self.assertEqual(config.media.engine, MediaEngine.RELAY)
        self.assertEqual((config.media.portMin, config.media.portMax), RELAY_PORTS)
        self.assertEqual(config.media.address, "127.0.0.12")
        self.assertEqual({trunk.media for trunk in config.trunks}, {MediaMode.RELAY})
        self.assertEqual(config.media.maxPortsPerTrunk, 1_000_000)

    def test_rtpengine(self) -> None:
        """The rtpengine row anchors both trunks' media in the daemon whose ng address it was given."""
        system = self.sbc(Media.RTPENGINE)
        system.rtpengine = (RTPENGINE_HOST, 31234)
        config = loadConfig(self.written(system))
        self.assertEqual(config.media.engine, MediaEngine.RTPENGINE)
        self.assertEqual(config.media.rtpengine, (RTPENGINE_HOST, 31234))
        self.assertEqual({trunk.media for trunk in config.trunks}, {MediaMode.RELAY})

    def test_rtpengineWithoutDaemon(self) -> None:
        """An rtpengine row with no daemon to name cannot start."""
        self.assertRaises(UnavailableError, self.written, self.sbc(Media.RTPENGINE))

    def test_bypassUnchanged(self) -> None:
        """The bypassed row keeps its config: media bypassed, the default port quota, no RTP."""
        system = self.sbc(Media.BYPASS)
        config = loadConfig(self.written(system))
        self.assertEqual({trunk.media for trunk in config.trunks}, {MediaMode.BYPASS})
        self.assertNotIn("max_ports_per_trunk", (config.path).read_text())
        self.assertFalse(system.sendsRtp)


class KamailioRtpengineTests(SynchronousTestCase):
    def test_defines(self) -> None:
        """The rtpengine row's config gets the daemon's ng socket and no WITH_TOPOH (topoh is built in)."""
        system = KamailioRtpengine()
        system.port = 5060
        system.useDaemon((RTPENGINE_HOST, 31234))
        defines = system.defines(5080)
        self.assertIn(f'#!substdef "!RTPENGINE_SOCK!udp:{RTPENGINE_HOST}:31234!g"\n', defines)
        self.assertIn(f'#!substdef "!UAS_HOSTPORT!{CALLEE_HOST}:5080!g"\n', defines)
        self.assertFalse([line for line in defines if "WITH_TOPOH" in line])

    def test_config(self) -> None:
        """The shipped config loads topoh and rtpengine and manages media on INVITE, replies and BYE."""
        text = (HERE / KamailioRtpengine.configName).read_text()
        for needed in (
            'loadmodule "topoh.so"',
            'loadmodule "rtpengine.so"',
            '"rtpengine_sock", "RTPENGINE_SOCK"',
        ):
            self.assertIn(needed, text)
        self.assertEqual(text.count("rtpengine_manage();"), 5)  # BYE, CANCEL, INVITE, reply, failure
        self.assertIn('t_on_reply("MANAGE_REPLY")', text)
        self.assertTrue(text.startswith("#!KAMAILIO\n"))


class AnchoredSystemsTests(SynchronousTestCase):
    def test_rows(self) -> None:
        """Three rows whose keys --only takes, each sending RTP, each on a loopback address of its own."""
        anchored = anchoredSystems(PYTHON)
        self.assertEqual(
            [system.key for system in anchored], ["sbc-relay", "sbc-rtpengine", "kamailio-topoh-rtpengine"]
        )
        self.assertTrue(all(system.sendsRtp for system in anchored))
        self.assertIsInstance(anchored[1], SbcRtpengine)
        others: list[System] = [Ceiling(), Kamailio(False), Kamailio(True), Sippy(None), Sbc(PYTHON)]
        hosts = [system.host for system in anchored + others if system.key != "sipp"]
        hosts += [CALLER_HOST, CALLEE_HOST, RTPENGINE_HOST, STRANGER, "127.0.0.8"]  # 8: sbc on PyPy
        self.assertEqual(len(hosts), len(set(hosts)))

    def test_noDaemonNoMediaPid(self) -> None:
        """Before it starts, an rtpengine row has no media engine to measure or ask."""
        system = KamailioRtpengine()
        self.assertIsNone(system.mediaPid)
        self.assertIsNone(system.relayedPackets())


class RelayedPacketsTests(SynchronousTestCase):
    def test_total(self) -> None:
        """The relayed packets of rtpengine's ng statistics reply."""
        reply = {"statistics": {b"totalstatistics": {b"relayedpackets": 1984, b"managedsessions": 20}}}
        self.assertEqual(relayedPackets(reply), 1984)

    def test_missing(self) -> None:
        """A reply without the figure gives none."""
        self.assertIsNone(relayedPackets({"result": b"error"}))
        self.assertIsNone(relayedPackets({"statistics": {b"totalstatistics": {}}}))


class MethodTests(SynchronousTestCase):
    def test_rtpSeconds(self) -> None:
        """The report's method note says how long each anchored call sends RTP, from the plan."""
        self.assertIn(f"for {FULL.rtpCallSeconds:g} s after the ACK", anchoredMethod(FULL))
        self.assertIn("--delete-delay=0", anchoredMethod(QUICK))
