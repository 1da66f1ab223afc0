"""Rate-limited debug logging of messages we drop, so a flood cannot flood the log."""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from sbc.interfaces import Address


class DropLog:
    """Logs the first drop, then at most one summary line per ``interval`` seconds."""

    log = Logger()

    def __init__(self, clock: IReactorTime, interval: float = 10.0) -> None:
        self.clock = clock
        self.interval = interval
        self.suppressed = 0
        self._next = float("-inf")

    def drop(self, reason: str, source: Address) -> None:
        now = self.clock.seconds()
        if now < self._next:
            self.suppressed += 1
            return
        self.log.debug(
            "dropped a message from {host}:{port}: {reason} ({suppressed} more dropped since last report)",
            host=source[0],
            port=source[1],
            reason=reason,
            suppressed=self.suppressed,
        )
        self.suppressed = 0
        self._next = now + self.interval
