"""Whitelist entries (a network and the file line it came from), found by the longest prefix."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from netaddr import IPAddress, IPNetwork

V = TypeVar("V")

_BITS = {4: 32, 6: 128}


@dataclass(frozen=True, slots=True)
class Entry:
    """One whitelist line: its network, and where ops wrote it, so errors and ``explain`` can say."""

    network: IPNetwork
    path: Path | None = None
    line: int | None = None

    @property
    def where(self) -> str:
        """``file:line`` (or what there is of it) as errors and ``explain`` name the entry."""
        if self.path is None:
            return "no file"
        return str(self.path) if self.line is None else f"{self.path}:{self.line}"

    def __str__(self) -> str:
        return f"{self.network.cidr} ({self.where})"


class PrefixTable(Generic[V]):
    """Values by network; `lookup` finds the longest prefix holding an address.

    One dict per prefix length in use (network address as an int -> value), longest first, so a
    lookup is one mask and one dict probe per length. The first value given for a network wins.
    """

    __slots__ = ("_tables",)

    def __init__(self, items: Iterable[tuple[IPNetwork, V]]) -> None:
        byLength: dict[tuple[int, int], dict[int, V]] = {}
        for network, value in items:
            table = byLength.setdefault((network.version, network.prefixlen), {})
            table.setdefault(network.first, value)
        tables: dict[int, list[tuple[int, dict[int, V]]]] = {4: [], 6: []}
        for (version, length), table in sorted(byLength.items(), key=lambda item: -item[0][1]):
            bits = _BITS[version]
            mask = ((1 << bits) - 1) ^ ((1 << (bits - length)) - 1)
            tables[version].append((mask, table))
        self._tables = {version: tuple(found) for version, found in tables.items()}

    def lookup(self, address: IPAddress) -> V | None:
        """The value of the longest prefix that holds ``address``, or None."""
        value = int(address)
        for mask, table in self._tables[address.version]:
            found = table.get(value & mask)
            if found is not None:
                return found
        return None
