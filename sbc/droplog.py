"""Rate-limited logging of what network input causes, so that a flood cannot flood the log.

Every log line that a peer's message can cause (a drop, a refused route, a bug hit by hostile
bytes) goes through one `DropLog`: each source gets at most one line per ``interval`` (a
minute) and log level, and the next line it gets at that level says how many were held back.
Each level has its own budget, so that routine lines (a debug drop, an info line each call
writes) never use up the minute in which a traceback (critical) must be seen. Sources are keyed
by host (a peer's ports are free to change). Each level's table is bounded: when it is full,
expired sources are pruned (at most once a second), and sources that still find no room share
one line per interval.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from sbc.interfaces import Address

INTERVAL = 60.0
MAX_SOURCES = 4096
# The key of the sources that found the table full.
OVERFLOW = "*"


class DropLog:
    """At most one log line per source host, level and ``interval`` seconds; the rest only counted."""

    log = Logger()

    def __init__(
        self, clock: IReactorTime, interval: float = INTERVAL, maxSources: int = MAX_SOURCES
    ) -> None:
        self.clock = clock
        self.interval = interval
        self.maxSources = maxSources
        self.suppressed = 0  # lines held back since start, all sources and levels together
        # level -> host -> [when its next line may be written, lines held back since its last one]
        self._levels: dict[LogLevel, dict[str, list[float]]] = {}
        self._nextPrune: dict[LogLevel, float] = {}

    def _admit(self, level: LogLevel, host: str) -> int | None:
        """How many lines ``host`` had held back at ``level``, if it may log now; None (and one
        more held back) if not."""
        now = self.clock.seconds()
        sources = self._levels.get(level)
        if sources is None:
            sources = self._levels[level] = {}
        entry = sources.get(host)
        if entry is None:
            if len(sources) >= self.maxSources:
                self._prune(level, sources, now)
            if len(sources) >= self.maxSources:
                host = OVERFLOW
                entry = sources.get(host)
            if entry is None:
                entry = sources[host] = [float("-inf"), 0]
        if now < entry[0]:
            entry[1] += 1
            self.suppressed += 1
            return None
        held = int(entry[1])
        entry[0] = now + self.interval
        entry[1] = 0
        return held

    def _prune(self, level: LogLevel, sources: dict[str, list[float]], now: float) -> None:
        if now < self._nextPrune.get(level, float("-inf")):
            return
        self._nextPrune[level] = now + 1.0
        for host in [h for h, (until, _) in sources.items() if until <= now]:
            del sources[host]

    def emit(
        self,
        logger: Logger,
        level: LogLevel,
        host: str,
        format: str,
        failure: Failure | None = None,
        /,
        **kwargs: Any,
    ) -> bool:
        """Log ``format`` on ``logger`` for input from ``host``, if its minute allows; whether it did."""
        held = self._admit(level, host)
        if held is None:
            return False
        if held:
            format += " ({held} more line(s) from {source} held back)"
        kwargs.setdefault("source", host)
        if failure is not None:
            logger.failure(format, failure, level, held=held, **kwargs)
        else:
            logger.emit(level, format, held=held, **kwargs)
        return True

    def failure(
        self, logger: Logger, host: str, format: str, failure: Failure | None = None, /, **kwargs: Any
    ) -> bool:
        """A traceback for input from ``host`` (``failure`` defaults to the one being handled)."""
        return self.emit(logger, LogLevel.critical, host, format, failure or Failure(), **kwargs)

    def info(self, logger: Logger, host: str, format: str, /, **kwargs: Any) -> bool:
        """An info line for input from ``host`` (a call placed, say), within its own per-minute budget."""
        return self.emit(logger, LogLevel.info, host, format, **kwargs)

    def drop(self, reason: str, source: Address) -> None:
        """A message from ``source`` we dropped, and why."""
        self.emit(
            self.log,
            LogLevel.debug,
            source[0],
            "dropped a message from {host}:{port}: {reason}",
            host=source[0],
            port=source[1],
            reason=reason,
        )
