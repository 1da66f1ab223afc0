"""Hostile input against the whole controller: nothing escapes, nothing is logged as a bug."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sbc.server import SIPServer
from tests.calls import SDP, invite
from tests.fakes import RecordingTransport, demoConfig, options
from tests.rfc4475 import messages

SEEDS = [invite(), invite(body=SDP), options(), *(p.read_bytes() for p in messages())]


PIECES = [b"\r\n", b";", b",", b"<", b">", b'"', b":", b" ", b"\x00", b"%"]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.integers(0, 3))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == 0 and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == 1:
            data[at:at] = draw(st.sampled_from(PIECES))
        elif kind == 2:
            del data[at : at + draw(st.integers(1, 20))]
        else:
            data = data[:at]
    return bytes(data)


class FuzzTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.directory)
        self.clock = Clock()
        self.server = SIPServer(demoConfig(self.directory), self.clock)
        self.transport = RecordingTransport()
        self.server.transportStarted(self.transport)

    @settings(max_examples=400, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(mutated())
    def test_mutatedMessages(self, data: bytes) -> None:
        """Mutated requests and responses never raise out of the controller nor log a bug."""
        self.server.messageReceived(data, self.transport, ("127.0.0.2", 5062))
        self.clock.advance(1)
        self.assertEqual(self.server.metrics["internal_errors"], 0)
        self.assertEqual(self.flushLoggedErrors(), [])


class CallFuzzTests(SynchronousTestCase):
    """Mutated answers and in-dialog requests from the callee of a live call."""

    def setUp(self) -> None:
        from tests.calls import ALICE, TRUNK, CallTestCase

        self.case = CallTestCase("run")
        self.case.setUp()
        self.case.bind()
        self.case.receive(invite(), TRUNK)
        (self.bInvite,) = self.case.requestsTo(ALICE, "INVITE")
        self.alice = ALICE

    @settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.data())
    def test_mutatedAnswers(self, data: st.DataObject) -> None:
        """Whatever the callee sends back, the controller neither raises nor logs a bug."""
        from tests.calls import answer

        status = data.draw(st.sampled_from([180, 183, 200, 486, 302, 503]))
        body = SDP if status < 300 else b""
        seed = bytearray(answer(self.bInvite, status, body=body, contact="<sip:a@10.1.1.1>"))
        for _ in range(data.draw(st.integers(0, 4))):
            at = data.draw(st.integers(0, len(seed) - 1))
            seed[at : at + data.draw(st.integers(0, 3))] = data.draw(
                st.sampled_from([b"", b";", b"<", b"\r\n", b" ", b"\xff", b"0", b","])
            )
        server = self.case.server
        server.messageReceived(bytes(seed), self.case.udp, self.alice)
        self.case.clock.advance(1)
        self.assertEqual(server.metrics["internal_errors"], 0)
        self.assertEqual(self.flushLoggedErrors(), [])
