"""Errors that ops see: each names the file, and the line or key, that needs fixing."""

from __future__ import annotations

from pathlib import Path


class ConfigError(Exception):
    """A mistake in a file ops edit, with the file and, where known, the line or the key."""

    def __init__(self, path: Path | str, reason: str, *, line: int | None = None, key: str | None = None):
        super().__init__(reason)
        self.path = Path(path)
        self.reason = reason
        self.line = line
        self.key = key

    def __str__(self) -> str:
        where = str(self.path)
        if self.line is not None:
            where += f":{self.line}"
        if self.key is not None:
            where += f": {self.key}"
        return f"{where}: {self.reason}"
