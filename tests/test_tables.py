"""Tests for sbc.ops.tables: the HTTP API's JSON as the tables sbc-ctl prints."""

from __future__ import annotations

import json
import re

from twisted.trial.unittest import SynchronousTestCase

from sbc.ops.tables import (
    callsTable,
    duration,
    registrantsTable,
    registrationsTable,
    statusLines,
    table,
    trunksTable,
)

# /registrants as the API answers it (sbc.ops.api.registrantSummaries), with a nested field added
# that has no place in a cell.
REGISTRANTS = json.loads(
    """
{"registrants": [
  {"name": "carrier-a", "registrar": "sip:carrier-a.example", "aor": "sip:+15550100@carrier-a.example",
   "state": "registered", "up": true, "last_code": 200, "last_reason": "OK", "next_attempt_in": 1800.5,
   "expires_in": 3590.2, "destination": "192.0.2.7:5060", "failures": 0, "auth": {"user": "x"}},
  {"name": "carrier-b", "registrar": "sip:b.example", "aor": "sip:9876@b.example", "state": "failed",
   "up": false, "last_code": 403, "last_reason": "Forbidden", "next_attempt_in": 3600, "expires_in": null,
   "destination": null, "failures": 2}
]}
"""
)


class TableTests(SynchronousTestCase):
    def test_aligned(self) -> None:
        """Columns are as wide as their widest cell, two spaces apart; numeric columns align right."""
        self.assertEqual(
            table(["NAME", "CALLS"], [["demo", "3"], ["longer-name", "120"]]),
            ["NAME         CALLS", "demo             3", "longer-name    120"],
        )

    def test_duration(self) -> None:
        """Seconds read as minutes:seconds, hours, then days; a non-number as -."""
        self.assertEqual(duration(65.7), "01:05")
        self.assertEqual(duration(3600 * 2 + 5), "02:00:05")
        self.assertEqual(duration(86400 + 61), "1d 00:01:01")
        self.assertEqual(duration(None), "-")
        self.assertEqual(duration(-1), "-")


class StatusTests(SynchronousTestCase):
    def test_reloaded(self) -> None:
        """A good reload shows its number of changes, then each change."""
        lines = statusLines(
            {
                "version": "1.0",
                "uptime": 90061.2,
                "config_generation": 2,
                "reload_failures": 0,
                "last_reload": {"ok": True, "changes": ["trunk demo: +192.0.2.0/24"], "error": None},
            }
        )
        self.assertEqual(lines[1], "uptime             1d 01:01:01 (90061 s)")
        self.assertEqual(lines[4:], ["last reload        ok, 1 change", "  trunk demo: +192.0.2.0/24"])

    def test_failedReload(self) -> None:
        """A failed reload shows its error and that the old config stays."""
        lines = statusLines({"last_reload": {"ok": False, "changes": [], "error": "x.txt:3: bad"}})
        self.assertIn("failed: x.txt:3: bad (the previous config stays in force)", lines[-1])


class TrunksTests(SynchronousTestCase):
    def test_trunksGatewaysAndRefusals(self) -> None:
        """One row per trunk with its limits, a gateway table with states, and the refusal counters."""
        lines = trunksTable(
            {
                "trunks": [
                    {
                        "name": "carrier",
                        "whitelist_entries": 12,
                        "limits": {"max_cps": 10.0, "cps_burst": 20.0, "max_calls": 300},
                        "calls": 41,
                        "gateways": {"192.0.2.10:5060": "up", "192.0.2.11:5060": "down"},
                    },
                    {"name": "demo", "whitelist_entries": 1, "limits": {}, "calls": 0, "gateways": {}},
                ],
                "refused": {"trunk_refused_cps": 7, "trunk_refused_calls": 0},
            }
        )
        self.assertEqual(
            lines,
            [
                "TRUNK    WHITELIST  MAX CPS   BURST     MAX CALLS  CALLS",
                "carrier         12  10        20        300           41",
                "demo             1  no limit  no limit  no limit       0",
                "",
                "TRUNK    GATEWAY          STATE",
                "carrier  192.0.2.10:5060  up",
                "carrier  192.0.2.11:5060  down",
                "",
                "INVITEs refused by trunk limits since start: calls 0, cps 7",
            ],
        )

    def test_noGatewaysPinged(self) -> None:
        """Without pinged gateways the table says so instead of showing an empty one."""
        lines = trunksTable({"trunks": [{"name": "demo", "limits": {}}], "refused": {}})
        self.assertEqual(lines[-1], "no gateway is pinged (no trunk has a ping_interval)")

    def test_noTrunks(self) -> None:
        """No trunks at all is said in words."""
        self.assertEqual(trunksTable({"trunks": []}), ["no trunks configured"])


class CallsTests(SynchronousTestCase):
    def test_rows(self) -> None:
        """Each call's id, From, To, state, time since start and since answer (- while ringing)."""
        lines = callsTable(
            {
                "calls": [
                    {
                        "id": "c1",
                        "from": "sip:a@x",
                        "to": "sip:b@y",
                        "state": "confirmed",
                        "start": 100.0,
                        "answer": 110.0,
                    },
                    {
                        "id": "c2",
                        "from": "sip:c@x",
                        "to": "sip:d@y",
                        "state": "proceeding",
                        "start": 160.0,
                        "answer": None,
                    },
                ]
            },
            now=190.0,
        )
        self.assertEqual(lines[0].split(), ["CALL", "FROM", "TO", "STATE", "DURATION", "ANSWERED"])
        self.assertEqual(lines[1].split(), ["c1", "sip:a@x", "sip:b@y", "confirmed", "01:30", "01:20"])
        self.assertEqual(lines[2].split(), ["c2", "sip:c@x", "sip:d@y", "proceeding", "00:30", "-"])


class RegistrationsTests(SynchronousTestCase):
    def test_rows(self) -> None:
        """Each binding's AOR, contact, transport, source and seconds left; none said in words."""
        lines = registrationsTable(
            {"registrations": [{"aor": "alice@x", "contact": "sip:alice@10.0.0.5:5060;ob", "expires_in": 30}]}
        )
        self.assertEqual(lines[1].split(), ["alice@x", "sip:alice@10.0.0.5:5060;ob", "-", "-", "30"])
        self.assertEqual(registrationsTable({"registrations": []}), ["no registrations"])


class RegistrantsTests(SynchronousTestCase):
    def test_sample(self) -> None:
        """Known fields first under short headings, then other plain fields; nested ones left out."""
        lines = registrantsTable(REGISTRANTS)
        self.assertEqual(
            re.split(r"\s{2,}", lines[0]),
            [
                "NAME",
                "AOR",
                "STATE",
                "CODE",
                "REASON",
                "NEXT ATTEMPT IN",
                "REGISTRAR",
                "UP",
                "EXPIRES IN",
                "DESTINATION",
                "FAILURES",
            ],
        )
        self.assertEqual(
            lines[1].split(),
            [
                "carrier-a",
                "sip:+15550100@carrier-a.example",
                "registered",
                "200",
                "OK",
                "1800.5",
                "sip:carrier-a.example",
                "yes",
                "3590.2",
                "192.0.2.7:5060",
                "0",
            ],
        )
        self.assertEqual(lines[2].split()[2:5], ["failed", "403", "Forbidden"])
        self.assertEqual(lines[2].split()[-4:], ["no", "-", "-", "2"])
        self.assertNotIn("AUTH", lines[0])

    def test_bareList(self) -> None:
        """A bare list of objects is read as well as one under "registrants"; none is said in words."""
        self.assertEqual(registrantsTable([{"name": "a", "state": "trying"}])[1].split(), ["a", "trying"])
        self.assertEqual(registrantsTable({"registrants": []}), ["no registrants configured"])
        self.assertEqual(registrantsTable({"error": "x"}), ["no registrants configured"])


class PrintableTests(SynchronousTestCase):
    def test_controlCharactersReplaced(self) -> None:
        """A peer's reason phrase with ESC or BEL reaches no terminal raw: every cell and every
        status line is made printable."""
        lines = registrantsTable([{"name": "a", "state": "failed", "last_reason": "Bad\x1b[2J\x07\r\nx"}])
        self.assertFalse([line for line in lines if not line.isprintable()])
        self.assertIn("Bad?[2J???x", lines[1])
        self.assertEqual(table(["A"], [["\x1b]0;t\x07"]])[1], "?]0;t?")
        status = statusLines({"last_reload": {"ok": True, "changes": ["trunk \x1bx"]}})
        self.assertEqual(status[-1], "  trunk ?x")
