"""One TOML table read key by key, so that unknown keys, wrong types and ranges become `ConfigError`s."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from sbc.config.errors import ConfigError

E = TypeVar("E", bound=StrEnum)


class Table:
    """One TOML table of the file at ``path``, named ``name`` (dotted); each key read is marked used."""

    def __init__(self, path: Path, name: str, data: Any) -> None:
        if not isinstance(data, dict):
            raise ConfigError(path, "must be a table", key=name or None)
        self.path = path
        self.name = name
        self.data: dict[str, Any] = data
        self.used: set[str] = set()

    def key(self, key: str) -> str:
        """The dotted name of ``key`` in this table, as errors name it."""
        return f"{self.name}.{key}" if self.name else key

    def error(self, key: str, reason: str) -> ConfigError:
        """A `ConfigError` for ``key`` of this table (the table itself when ``key`` is empty)."""
        return ConfigError(self.path, reason, key=(self.key(key) if key else self.name) or None)

    def has(self, key: str) -> bool:
        """Whether the table holds ``key`` at all."""
        return key in self.data

    def raw(self, key: str, default: Any = None) -> Any:
        """The value of ``key`` unchecked (the caller checks it and names its own error)."""
        self.used.add(key)
        return self.data.get(key, default)

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        """The value of ``key`` of type ``kind``; without ``default`` the key is required."""
        self.used.add(key)
        if key not in self.data:
            if default is ...:
                raise self.error(key, "missing")
            return default
        value = self.data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kind):
            raise self.error(key, f"must be {_kindName(kind)}")
        return value

    def number(self, key: str, default: float, *, minimum: float, maximum: float) -> float:
        """A number (int or float) from ``minimum`` to ``maximum``, as a float."""
        value = self.get(key, (int, float), default)
        if not minimum <= value <= maximum:
            raise self.error(key, f"must be between {minimum} and {maximum}")
        return float(value)

    def integer(self, key: str, default: int, *, minimum: int, maximum: int) -> int:
        """An integer from ``minimum`` to ``maximum``."""
        value = self.get(key, int, default)
        if not minimum <= value <= maximum:
            raise self.error(key, f"must be between {minimum} and {maximum}")
        return int(value)

    def choice(self, key: str, default: E) -> E:
        """One of a closed set of strings, as the member of ``default``'s enum; the error lists them."""
        kind = type(default)
        value = self.get(key, str, default.value)
        try:
            return kind(value)
        except ValueError:
            allowed = " or ".join(f'"{member.value}"' for member in kind)
            raise self.error(key, f"must be {allowed}") from None

    def table(self, key: str) -> Table:
        """The sub-table ``key`` (empty when absent)."""
        return Table(self.path, self.key(key), self.get(key, dict, {}))

    def done(self) -> None:
        """Refuse the first key that nobody read: a typo must not pass silently."""
        for key in self.data:
            if key not in self.used:
                raise self.error(key, "unknown key")


def _kindName(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {int: "a number", float: "a number", str: "a string", list: "a list", dict: "a table"}
    return " or ".join(sorted({names.get(k, k.__name__) for k in kinds}))
