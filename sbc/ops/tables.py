"""What ``sbc-ctl status``, ``trunks``, ``calls``, ``registrations`` and ``registrants`` print: the
HTTP API's JSON (`sbc.ops.api`) as aligned tables a person can read.

Each function takes the decoded JSON of one endpoint and returns the lines to print. They are
lenient about what they are given (a field missing or of another type shows as ``-``), so an
older or newer SBC still gets a readable answer rather than a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sbc.printable import printable

__all__ = [
    "callsTable",
    "duration",
    "registrantsTable",
    "registrationsTable",
    "statusLines",
    "table",
    "trunksTable",
]

MISSING = "-"
GAP = "  "


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns as wide as their widest cell, two spaces apart, under a header line; numbers align
    right. Every cell is made printable (a peer's reason phrase may hold ESC or BEL: never raw)."""
    rows = [[printable(cell) for cell in row] for row in rows]
    widths = [len(header) for header in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    numeric = [bool(rows) and all(_isNumber(row[i]) for row in rows) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        padded = [
            cell.rjust(width) if right else cell.ljust(width)
            for cell, width, right in zip(cells, widths, numeric, strict=True)
        ]
        return GAP.join(padded).rstrip()

    return [line(headers), *(line(row) for row in rows)]


def _isNumber(cell: str) -> bool:
    return cell == MISSING or cell.replace(".", "", 1).isdigit()


def text(value: object) -> str:
    """One cell: None as ``-``, floats without a useless ``.0``, anything else as str()."""
    if value is None or value == "":
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, dict)):
        return ", ".join(text(item) for item in value) if isinstance(value, list) else MISSING
    return printable(str(value))


def duration(seconds: object) -> str:
    """Seconds as ``1d 02:03:04``, ``02:03:04`` or ``03:04``; ``-`` for anything not a number."""
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds < 0:
        return MISSING
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}" if hours or days else f"{minutes:02d}:{secs:02d}"
    return f"{days}d {clock}" if days else clock


def _rows(body: object, key: str) -> list[Mapping[str, Any]]:
    """The list of objects under ``key`` (or ``body`` itself when it is the list)."""
    items = body.get(key) if isinstance(body, Mapping) else body
    if not isinstance(items, list):
        return []
    return [item for item in items if isinstance(item, Mapping)]


def statusLines(body: Mapping[str, Any]) -> list[str]:
    """``/status``: version, uptime, config generation, and how the last reload went."""
    last = body.get("last_reload")
    if not isinstance(last, Mapping):
        reload = "none since start"
    elif last.get("ok"):
        changes = last.get("changes") or []
        reload = f"ok, {len(changes)} change{'' if len(changes) == 1 else 's'}"
    else:
        reload = f"failed: {text(last.get('error'))} (the previous config stays in force)"
    uptime = body.get("uptime")
    rows = [
        ("version", text(body.get("version"))),
        ("uptime", f"{duration(uptime)} ({uptime:.0f} s)" if isinstance(uptime, (int, float)) else MISSING),
        ("config generation", text(body.get("config_generation"))),
        ("reload failures", text(body.get("reload_failures"))),
        ("last reload", reload),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name.ljust(width)}  {value}" for name, value in rows]
    if isinstance(last, Mapping) and last.get("ok"):
        lines.extend(f"  {printable(str(change))}" for change in last.get("changes") or [])
    return lines


def _limit(value: object) -> str:
    return "no limit" if value is None else text(value)


def trunksTable(body: Mapping[str, Any]) -> list[str]:
    """``/trunks``: one row per trunk, then each pinged gateway's state, then the refusal counters."""
    trunks = _rows(body, "trunks")
    rows: list[list[str]] = []
    gateways: list[list[str]] = []
    for trunk in trunks:
        given = trunk.get("limits")
        limits: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
        rows.append(
            [
                text(trunk.get("name")),
                text(trunk.get("whitelist_entries")),
                _limit(limits.get("max_cps")),
                _limit(limits.get("cps_burst")),
                _limit(limits.get("max_calls")),
                text(trunk.get("calls")),
            ]
        )
        states = trunk.get("gateways")
        if isinstance(states, Mapping):
            gateways.extend(
                [text(trunk.get("name")), str(gateway), text(state)] for gateway, state in states.items()
            )
    if not trunks:
        return ["no trunks configured"]
    lines = table(["TRUNK", "WHITELIST", "MAX CPS", "BURST", "MAX CALLS", "CALLS"], rows)
    lines.append("")
    if gateways:
        lines.extend(table(["TRUNK", "GATEWAY", "STATE"], gateways))
    else:
        lines.append("no gateway is pinged (no trunk has a ping_interval)")
    refused = body.get("refused")
    if isinstance(refused, Mapping) and refused:
        counts = ", ".join(
            f"{name.removeprefix('trunk_refused_')} {text(value)}" for name, value in sorted(refused.items())
        )
        lines.extend(["", f"INVITEs refused by trunk limits since start: {counts}"])
    return lines


def callsTable(body: Mapping[str, Any], now: float) -> list[str]:
    """``/calls``: id, from, to, state and how long since the call started (and was answered).

    ``now`` is the wall clock, as the SBC's own clock is: the API gives start and answer times.
    """
    calls = _rows(body, "calls")
    if not calls:
        return ["no calls in progress"]
    rows = []
    for call in calls:
        start, answer = call.get("start"), call.get("answer")
        rows.append(
            [
                text(call.get("id")),
                text(call.get("from")),
                text(call.get("to")),
                text(call.get("state")),
                duration(now - start) if isinstance(start, (int, float)) else MISSING,
                duration(now - answer) if isinstance(answer, (int, float)) else MISSING,
            ]
        )
    return table(["CALL", "FROM", "TO", "STATE", "DURATION", "ANSWERED"], rows)


def registrationsTable(body: Mapping[str, Any]) -> list[str]:
    """``/registrations``: each binding's AOR, contact, transport, source and seconds left."""
    bindings = _rows(body, "registrations")
    if not bindings:
        return ["no registrations"]
    rows = [
        [
            text(b.get("aor")),
            text(b.get("contact")),
            text(b.get("transport")),
            text(b.get("source")),
            text(b.get("expires_in")),
        ]
        for b in bindings
    ]
    return table(["AOR", "CONTACT", "TRANSPORT", "SOURCE", "EXPIRES IN"], rows)


# The columns of /registrants shown first, in this order, under these headings; every other
# field that holds a plain value follows under its own name in capitals.
REGISTRANT_COLUMNS = (
    ("name", "NAME"),
    ("aor", "AOR"),
    ("state", "STATE"),
    ("last_code", "CODE"),
    ("last_reason", "REASON"),
    ("next_attempt", "NEXT ATTEMPT"),
    ("next_attempt_in", "NEXT ATTEMPT IN"),
)


def registrantsTable(body: object) -> list[str]:
    """``/registrants``: our registrations to peers' registrars, whatever fields they carry.

    Known fields (name, AOR, state, last code and reason, next attempt) come first; any other
    field with a plain value follows, so that a new field shows without a new sbc-ctl.
    """
    registrants = _rows(body, "registrants")
    if not registrants:
        return ["no registrants configured"]
    known = {key for key, _ in REGISTRANT_COLUMNS}
    columns = [(key, heading) for key, heading in REGISTRANT_COLUMNS if any(key in r for r in registrants)]
    extra: list[str] = []
    for registrant in registrants:
        for key, value in registrant.items():
            plain = value is None or isinstance(value, (str, int, float, bool))
            if key not in known and key not in extra and plain:
                extra.append(key)
    columns.extend((key, key.replace("_", " ").upper()) for key in extra)
    rows = [[text(registrant.get(key)) for key, _ in columns] for registrant in registrants]
    return table([heading for _, heading in columns], rows)
