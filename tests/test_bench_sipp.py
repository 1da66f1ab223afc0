"""Tests for `bench.sipp`: reading what SIPp wrote, and the loads with RTP."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

import bench.sipp
from bench.media import RTP_FILE
from bench.sipp import (
    CALLEE_HOST,
    CALLEE_STARTS,
    CALLER_HOST,
    RTP_SCENARIOS,
    RTP_TAIL,
    SCENARIOS,
    CallLoad,
    Sipp,
    percentile,
)


def line(epoch: float, direction: str, callId: str, cseq: str, first: str) -> str:
    """One row of SIPp's -trace_shortmsg file."""
    return f"2026-11-26\t12:00:00.000000\t{epoch:.6f}\t{direction}\t{callId}\tCSeq:{cseq}\t{first}\n"


class ExactLatenciesTests(SynchronousTestCase):
    def setUp(self) -> None:
        directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, directory)
        self.sipp = Sipp([], "uac.xml", directory)

    def test_inviteTo200(self) -> None:
        """The first INVITE sent to the first 200 for it, in ms; other messages do not count."""
        (self.sipp.directory / "messages.csv").write_text(
            line(100.000000, "S", "a", "1 INVITE", "INVITE sip:1@127.0.0.1 SIP/2.0")
            + line(100.000900, "R", "a", "1 INVITE", "SIP/2.0 100 Trying")
            + line(100.500000, "S", "a", "1 INVITE", "INVITE sip:1@127.0.0.1 SIP/2.0")  # resent
            + line(100.501250, "R", "a", "1 INVITE", "SIP/2.0 200 OK")
            + line(100.502000, "R", "a", "1 INVITE", "SIP/2.0 200 OK")  # resent by the far end
            + line(100.600000, "S", "a", "2 BYE", "BYE sip:1@127.0.0.1 SIP/2.0")
            + line(100.600300, "R", "a", "2 BYE", "SIP/2.0 200 OK")
            + line(101.000000, "S", "b", "1 INVITE", "INVITE sip:1@127.0.0.1 SIP/2.0")
            + line(101.002000, "R", "b", "1 INVITE", "SIP/2.0 200 OK")
            + line(102.000000, "S", "c", "1 INVITE", "INVITE sip:1@127.0.0.1 SIP/2.0")  # never answered
            + "a torn last li"
        )
        latencies = sorted(self.sipp.exactLatencies())
        self.assertEqual(len(latencies), 2)
        self.assertAlmostEqual(latencies[0], 2.0, places=3)
        self.assertAlmostEqual(latencies[1], 501.25, places=3)

    def test_noTrace(self) -> None:
        """No trace file: no latencies (and no percentile), not an error."""
        self.assertEqual(self.sipp.exactLatencies(), [])
        self.assertIsNone(percentile([], 0.99))


class RtpLoadTests(SynchronousTestCase):
    def load(self, rtpSeconds: float = 0.0, holdSeconds: float = 0.0) -> CallLoad:
        """A load that is built (its directories and arguments) but never started."""
        load = CallLoad(
            ("127.0.0.12", 5060), 5080, calls=10, rate=5, rtpSeconds=rtpSeconds, holdSeconds=holdSeconds
        )
        self.addCleanup(shutil.rmtree, load.directory, ignore_errors=True)
        return load

    def test_rtpScenarios(self) -> None:
        """With RTP seconds, both ends run the RTP scenarios with a media port each, and the PCMU file."""
        load = self.load(rtpSeconds=1.5)
        self.assertEqual((load.callerScenario, load.calleeScenario), RTP_SCENARIOS)
        self.assertIn(RTP_SCENARIOS[0], load.caller.args)
        self.assertIn(RTP_SCENARIOS[1], load.callee.args)
        for side in (load.caller, load.callee):
            port = int(side.args[side.args.index("-mp") + 1])
            self.assertEqual(port % 2, 0)
            self.assertEqual(len((side.directory / RTP_FILE).read_bytes()), 75 * 160)
        self.assertEqual(load.holdSeconds, 1.5 + RTP_TAIL)
        self.assertIn("2000", load.caller.args)  # -d: each call outlasts its RTP by RTP_TAIL

    def test_longerHold(self) -> None:
        """A hold longer than the RTP stays: held calls send RTP at their start only."""
        load = self.load(rtpSeconds=1.0, holdSeconds=30.0)
        self.assertEqual(load.holdSeconds, 30.0)
        self.assertEqual(len((load.caller.directory / RTP_FILE).read_bytes()), 50 * 160)

    def test_noRtp(self) -> None:
        """Without RTP seconds, the plain scenarios run with no media port and no PCMU file."""
        load = self.load()
        self.assertIn("uac.xml", load.caller.args)
        self.assertIn("uas.xml", load.callee.args)
        self.assertNotIn("-mp", load.caller.args)
        self.assertNotIn("-mp", load.callee.args)
        self.assertFalse((load.caller.directory / RTP_FILE).exists())


class RtpScenarioTests(SynchronousTestCase):
    def test_mediaPortAndStream(self) -> None:
        """Each RTP scenario names SIPp's own stream port in its SDP and streams the harness's file."""
        for name in RTP_SCENARIOS:
            text = (SCENARIOS / name).read_text()
            self.assertIn("m=audio [rtpstream_audio_port] RTP/AVP 0", text)
            self.assertIn(f'<exec rtp_stream="{RTP_FILE},1,0"/>', text)

    def test_anchoringChecked(self) -> None:
        """Each side fails a call whose SDP still names the other side's own address (media not anchored)."""
        for name, other in zip(RTP_SCENARIOS, (CALLEE_HOST, CALLER_HOST), strict=True):
            text = (SCENARIOS / name).read_text()
            escaped = other.replace(".", "\\.")
            self.assertIn(f'regexp="c=IN IP4 {escaped}[^0-9]"', text)
            self.assertIn('check_it_inverse="true"', text)


class RtpCountTests(SynchronousTestCase):
    def test_counted(self) -> None:
        """A load that counts RTP samples both SIPp media sockets; one that does not, none."""
        load = CallLoad(("127.0.0.12", 5060), 5080, calls=10, rate=5, rtpSeconds=1.0, countRtp=True)
        self.addCleanup(shutil.rmtree, load.directory, ignore_errors=True)
        assert load.arrivals is not None
        self.assertEqual([host for host, _ in load.arrivals.sockets], [CALLER_HOST, CALLEE_HOST])
        self.assertEqual(
            [port for _, port in load.arrivals.sockets],
            [int(side.args[side.args.index("-mp") + 1]) for side in (load.caller, load.callee)],
        )
        quiet = CallLoad(("127.0.0.12", 5060), 5080, calls=10, rate=5, rtpSeconds=1.0)
        self.addCleanup(shutil.rmtree, quiet.directory, ignore_errors=True)
        self.assertIsNone(quiet.arrivals)


class CalleeStartTests(SynchronousTestCase):
    """A callee SIPp that exits at once (its port taken between choice and bind) is started again."""

    def setUp(self) -> None:
        self.load = CallLoad(("127.0.0.12", 5060), 5080, calls=10, rate=5)
        self.addCleanup(shutil.rmtree, self.load.directory, ignore_errors=True)
        self.starts = 0
        self.patch(self.load.callee, "start", self.start)
        self.patch(self.load.callee, "stop", lambda: None)
        self.patch(self.load.caller, "start", lambda: None)
        self.patch(time, "sleep", lambda seconds: None)

    def start(self) -> None:
        self.starts += 1

    def failing(self, times: int) -> None:
        """The first ``times`` starts exit at once; later ones listen."""
        self.patch(Sipp, "exitCode", property(lambda sipp: 1 if self.starts <= times else None))
        self.patch(bench.sipp, "udpPortBound", lambda host, port: self.starts > times)

    def test_startedAgain(self) -> None:
        """Two quick exits, then it listens: the load starts."""
        self.failing(2)
        self.load.start()
        self.assertEqual(self.starts, 3)
        self.assertGreater(self.load.started, 0)

    def test_givesUp(self) -> None:
        """Past CALLEE_STARTS the load is not run, and the error says why."""
        self.failing(CALLEE_STARTS)
        self.assertRaises(RuntimeError, self.load.start)
        self.assertEqual(self.starts, CALLEE_STARTS)
