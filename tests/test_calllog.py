"""Tests for sbc.calls.calllog: one summary line per call attempt, with the reason when the SBC ended it."""

from __future__ import annotations

import dataclasses

from twisted.logger import LogEvent, LogLevel, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from sbc.calls import calllog
from sbc.calls.cdr import CDR
from sbc.config import LogSettings
from tests.calls import ALICE, TRUNK, CallTestCase, answer, invite
from tests.fakes import LogRecorder, answered


def record(**changes: object) -> CDR:
    """An answered trunk call to alice, 60.25 s long, from a URI with a password, with C{changes}."""
    cdr = answered(
        fromUri="sip:+15551234:secret@127.0.0.2",
        toUri="sip:alice@127.0.0.1",
        start=100.0,
        answer=104.0,
        end=164.25,
    )
    return dataclasses.replace(cdr, **changes)  # type: ignore[arg-type]


class CaptureMixin:
    """Collect what sbc.calls.calllog logs while a test runs."""

    def captureCallLog(self, test: SynchronousTestCase) -> list[LogEvent]:
        recorder = LogRecorder(namespace="sbc.calls")
        test.patch(calllog, "log", recorder.log)
        return recorder.events


class LogCallTests(SynchronousTestCase, CaptureMixin):
    def test_answeredCall(self) -> None:
        """An answered call is one info line naming both parties, the status and the duration."""
        events = self.captureCallLog(self)
        calllog.logCall(record())
        (event,) = events
        self.assertEqual(event["log_level"], LogLevel.info)
        self.assertEqual(
            formatEvent(event),
            "call b2b-1: trunk demo -> user alice@demo.acme.sbc.test "
            "(sip:+15551234@127.0.0.2 -> sip:alice@127.0.0.1): 200 answered, 60.2 s, ended by caller",
        )
        self.assertEqual((event["callId"], event["status"], event["duration"]), ("b2b-1", 200, 60.25))

    def test_reasonMakesAWarning(self) -> None:
        """A call the SBC ended carries its reason and is a warning."""
        events = self.captureCallLog(self)
        calllog.logCall(
            record(
                status=408,
                answer=None,
                disposition="no-answer",
                releasedBy="sbc",
                bLeg=None,
                reason="no answer (Timer C)",
            )
        )
        (event,) = events
        self.assertEqual(event["log_level"], LogLevel.warn)
        text = formatEvent(event)
        self.assertTrue(text.endswith("408 no-answer, 0.0 s, ended by sbc: no answer (Timer C)"))
        self.assertIn("trunk demo -> nobody", formatEvent(event))
        self.assertEqual(event["reason"], "no answer (Timer C)")

    def test_noSecrets(self) -> None:
        """A password in a URI never reaches the log."""
        events = self.captureCallLog(self)
        calllog.logCall(record())
        self.assertNotIn("secret", formatEvent(events[0]))


class CallSummaryTests(CallTestCase, CaptureMixin):
    def test_oneLinePerCall(self) -> None:
        """A whole call, caller hanging up, logs exactly one line, without a reason."""
        events = self.captureCallLog(self)
        self.connect()
        self.receive(self.aRequest("BYE", 11, "z9hG4bKbye"), TRUNK)
        (event,) = events
        self.assertEqual((event["status"], event["releasedBy"], event.get("reason")), (200, "caller", None))

    def test_noAckReason(self) -> None:
        """A call whose caller never ACKs our 2xx ends with one line saying so, and its CDR too."""
        events = self.captureCallLog(self)
        self.bind()
        self.receive(invite(), TRUNK)
        (bInvite,) = self.requestsTo(ALICE, "INVITE")
        self.receive(answer(bInvite, 200, contact="<sip:alice@10.1.1.1:5070>"), ALICE)
        self.drain()
        (event,) = events
        self.assertEqual(event["reason"], "no ACK")
        self.assertEqual(self.cdrs.records[0].reason, "no ACK")

    def test_timerCReason(self) -> None:
        """Ringing past the no-answer time logs the call with Timer C as the reason."""
        events = self.captureCallLog(self)
        self.bind()
        self.receive(invite(), TRUNK)
        (bInvite,) = self.requestsTo(ALICE, "INVITE")
        self.receive(answer(bInvite, 180), ALICE)
        self.clock.advance(181)
        (event,) = events
        self.assertEqual((event["status"], event["reason"]), (408, "no answer (Timer C)"))

    def test_routingRejectReason(self) -> None:
        """A call routing refuses is logged with the refusal."""
        events = self.captureCallLog(self)
        self.receive(invite("sip:nobody@127.0.0.1"), TRUNK)
        (event,) = events
        self.assertEqual(event["status"], 404)
        self.assertIn("rejected by routing", event["reason"])

    def test_turnedOff(self) -> None:
        """[log] calls = false logs no call lines, and CDRs are still written."""
        events = self.captureCallLog(self)
        self.server.setConfig(dataclasses.replace(self.server.config, log=LogSettings(calls=False)))
        self.connect()
        self.receive(self.aRequest("BYE", 11, "z9hG4bKbye"), TRUNK)
        self.assertEqual(events, [])
        self.assertEqual(len(self.cdrs.records), 1)
