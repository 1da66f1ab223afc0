"""One log line per call attempt, at its end: who called whom, through what, how it ended and why.

The line is built from the call's CDR, so the log and ``cdr.jsonl`` never disagree. A call the SBC
ended or failed by itself (no ACK for its 2xx, Timer C, a media timeout, a routing or hook error)
carries the reason and is logged as a warning; every other call is an info line. ``[log] calls =
false`` turns the lines off. The event also carries the CDR's fields as keys (``callId``,
``status``, ``reason``, ...), which `sbc.logformat`'s JSON lines keep for log shippers.
"""

from __future__ import annotations

from twisted.logger import Logger

from sbc.cdr import CDR

__all__ = ["logCall"]

log = Logger(namespace="sbc.calls")

_LINE = (
    "call {callId}: {caller} -> {callee} ({fromUri} -> {toUri}): {status} {disposition}, "
    "{duration:.1f} s, ended by {releasedBy}"
)


def _party(leg: dict[str, str] | None) -> str:
    return "nobody" if leg is None else f"{leg['kind']} {leg['name']}"


def logCall(cdr: CDR) -> None:
    """Log the summary line of a call attempt that has just ended."""
    record = cdr.toJSON()
    fields = {
        "callId": record["callId"],
        "caller": _party(record["aLeg"]),
        "callee": _party(record["bLeg"]),
        "fromUri": record["fromUri"],
        "toUri": record["toUri"],
        "status": record["status"],
        "disposition": record["disposition"],
        "duration": record["duration"],
        "releasedBy": record["releasedBy"],
    }
    reason = record["reason"]
    if reason:
        log.warn(_LINE + ": {reason}", reason=reason, **fields)
    else:
        log.info(_LINE, **fields)
