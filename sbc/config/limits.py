"""A trunk's limits on its calls: calls per second, concurrent calls, and the numbers it may call.

The keys live in each ``[trunks.NAME]`` table (``max_cps``, ``cps_burst``, ``max_calls``,
``accept``); unset means no limit. `sbc.calls.limits` enforces them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sbc.config.table import Table

__all__ = ["CallLimits", "loadCallLimits"]

# Visual separators ops may type in a number (as in [routing.dids]); they are dropped.
_SEPARATORS = re.compile(r"[\s\-.()/]")
# An E.164 number or prefix: "+" and digits, or a prefix ending in "*" ("*" alone: any number).
_PATTERN = re.compile(r"\+?[0-9]+\*?|\+?\*")


@dataclass(frozen=True)
class CallLimits:
    """Limits on one trunk's calls; None (the default for each) means no limit."""

    # Calls per second this trunk may start (a token bucket), inbound INVITEs; None: no limit.
    maxCps: float | None = None
    # INVITEs the bucket lets through at once; None: one second's worth (max_cps, at least 1).
    cpsBurst: float | None = None
    # Calls with this trunk at once, both directions; None: no limit.
    maxCalls: int | None = None
    # Numbers (E.164) this trunk's INVITEs may be addressed to: exact, or prefixes ending in "*".
    accept: tuple[str, ...] | None = None

    @property
    def cps(self) -> tuple[float, float] | None:
        """The token bucket: calls per second and burst; None when calls per second are not limited."""
        if self.maxCps is None:
            return None
        burst = self.cpsBurst if self.cpsBurst is not None else max(1.0, self.maxCps)
        return (self.maxCps, burst)

    def accepts(self, number: str | None) -> bool:
        """Whether a call to ``number`` (E.164 as the number plan makes it, None if it is no
        number) is one this trunk may make."""
        accept = self.accept
        if accept is None:
            return True
        if number is None:
            return False
        for pattern in accept:
            if pattern[-1:] == "*":
                if number.startswith(pattern[:-1]):
                    return True
            elif number == pattern:
                return True
        return False


def loadCallLimits(table: Table) -> CallLimits:
    """The limit keys of one ``[trunks.NAME]`` table (the trunk's loader reads the rest)."""
    maxCps = table.number("max_cps", 1.0, minimum=0.01, maximum=100000) if table.has("max_cps") else None
    cpsBurst = None
    if table.has("cps_burst"):
        if maxCps is None:
            raise table.error("cps_burst", "needs max_cps")
        cpsBurst = table.number("cps_burst", 1.0, minimum=1, maximum=100000)
    maxCalls = None
    if table.has("max_calls"):
        maxCalls = table.integer("max_calls", 1, minimum=1, maximum=10_000_000)
    accept: tuple[str, ...] | None = None
    if table.has("accept"):
        patterns = table.get("accept", list)
        if not patterns:
            raise table.error("accept", "must name at least one number or prefix (remove it to accept any)")
        cleaned = []
        for pattern in patterns:
            text = _SEPARATORS.sub("", pattern) if isinstance(pattern, str) else ""
            if not _PATTERN.fullmatch(text):
                raise table.error(
                    "accept", f"{pattern!r} is not a number or prefix (+ and digits, optionally ending in *)"
                )
            cleaned.append(text)
        accept = tuple(cleaned)
    return CallLimits(maxCps=maxCps, cpsBurst=cpsBurst, maxCalls=maxCalls, accept=accept)
