"""Tests for sbc.ops.logformat: one flat JSON object per log line, for log shippers."""

from __future__ import annotations

import io
import json

from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from sbc.ops.logformat import jsonLines


class JSONLinesTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.output = io.StringIO()
        self.log = Logger(namespace="sbc.calls", observer=jsonLines(self.output))

    def lines(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.output.getvalue().splitlines()]

    def test_oneObjectPerLine(self) -> None:
        """Each event is one line: time, level, namespace, the text and the event's scalar fields."""
        self.log.warn("call {callId}: {status}", callId="b2b-1", status=408, extra={"not": "scalar"})
        self.log.info("second")
        first, second = self.lines()
        self.assertEqual(first["text"], "call b2b-1: 408")
        self.assertEqual((first["level"], first["namespace"]), ("warn", "sbc.calls"))
        self.assertEqual((first["callId"], first["status"]), ("b2b-1", 408))
        self.assertNotIn("extra", first)
        self.assertRegex(str(first["time"]), r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$")
        self.assertEqual(second["text"], "second")

    def test_failureCarriesTraceback(self) -> None:
        """A logged failure keeps its traceback in the line, still one line of JSON."""
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            self.log.failure("it broke", Failure())
        (line,) = self.lines()
        self.assertIn("ZeroDivisionError", str(line["traceback"]))
        self.assertEqual(len(self.output.getvalue().splitlines()), 1)
