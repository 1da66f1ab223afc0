"""Known SIP scanners, by the User-Agent they announce: their requests are dropped without a word.

A scanner that gets any answer learns that something listens; one that gets none moves on. The
list is matched case-insensitively as substrings of the User-Agent (and of Server, which some
tools send instead); ops extend it in config. Renamed tools are caught by the rate limit and the
bans, not here: this is the cheap first filter, not the defence.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["KNOWN_SCANNERS", "ScannerFilter"]

KNOWN_SCANNERS = (
    "friendly-scanner",
    "sipvicious",
    "sipcli",
    "vaxsipuseragent",
    "sip-scan",
    "sundayddr",
    "iwar",
    "smap",
    "pplsip",
    "siparmyknife",
)


class ScannerFilter:
    """Says whether a User-Agent names a known scanner; built once per config."""

    __slots__ = ("_patterns",)

    def __init__(self, patterns: Iterable[str] = KNOWN_SCANNERS) -> None:
        self._patterns = tuple(dict.fromkeys(pattern.lower() for pattern in patterns if pattern))

    @property
    def patterns(self) -> tuple[str, ...]:
        """The substrings matched, lower-cased."""
        return self._patterns

    def isScanner(self, userAgent: str | None) -> bool:
        """Whether ``userAgent`` contains one of the patterns (no header: not a scanner)."""
        if not userAgent:
            return False
        agent = userAgent.lower()
        return any(pattern in agent for pattern in self._patterns)
