"""Log lines as JSON, one object per line, for log shippers: ``twistd --logger=sbc.ops.logformat.jsonLines``.

Twisted's own ``jsonFileLogObserver`` writes record-separated dumps meant for Twisted to read back;
shippers (Vector, Fluent Bit, Promtail) want one flat object per line. Each line holds ``time``
(UTC, ISO 8601), ``level``, ``namespace`` and ``text`` (the line the text log would show), plus the
event's own scalar fields (a call's ``callId``, ``status``, ``reason``, ...), and ``traceback`` when
the event carries a failure.
"""

from __future__ import annotations

import datetime
import json
import sys
from collections.abc import Callable
from typing import IO, Any

from twisted.logger import FileLogObserver, ILogObserver, LogEvent, formatEvent

__all__ = ["eventAsJSON", "jsonLines"]

_SCALARS = (str, int, float, bool, type(None))


def eventAsJSON(event: LogEvent) -> str:
    """One event as one line of JSON (without the newline)."""
    record: dict[str, Any] = {}
    when = event.get("log_time")
    if isinstance(when, int | float):
        record["time"] = datetime.datetime.fromtimestamp(when, datetime.UTC).isoformat(
            timespec="milliseconds"
        )
    level = event.get("log_level")
    record["level"] = getattr(level, "name", "info")
    record["namespace"] = event.get("log_namespace", "")
    record["text"] = formatEvent(event)
    for key, value in event.items():
        if not key.startswith("log_") and key not in record and isinstance(value, _SCALARS):
            record[key] = value
    failure = event.get("log_failure")
    if failure is not None:
        record["traceback"] = failure.getTraceback()
    return json.dumps(record, ensure_ascii=False, default=str)


def jsonLines(output: IO[str] | None = None) -> ILogObserver:
    """A log observer writing `eventAsJSON` lines to ``output`` (standard output by default).

    twistd calls it with no argument as the ``--logger`` factory.
    """
    formatter: Callable[[LogEvent], str] = lambda event: eventAsJSON(event) + "\n"  # noqa: E731
    return FileLogObserver(output if output is not None else sys.stdout, formatter)
