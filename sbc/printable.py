"""Text that came from a peer, made safe for a log line, the API and a terminal.

A reason phrase (or any other peer-chosen string) may hold ESC, BEL or other control characters:
printed raw they could move a terminal's cursor, rewrite what ops read, or forge a log line.
"""

from __future__ import annotations

__all__ = ["REPLACEMENT", "printable"]

# What stands in for each character that is not printable.
REPLACEMENT = "?"


def printable(text: str) -> str:
    """``text`` with every non-printable character (controls, line breaks) replaced by ``?``."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else REPLACEMENT for ch in text)
