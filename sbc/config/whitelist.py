"""Whitelist files: one IPv4/IPv6 address or CIDR per line, ``#`` comments, as ops write them.

Each line becomes an `Entry` that remembers its file and line, so that every error and
``sbc-ctl explain`` can point at the line to edit. A trunk may name several files.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from netaddr import AddrFormatError, IPNetwork, IPSet

from sbc.config.errors import ConfigError
from sbc.config.table import Table
from sbc.prefixes import Entry

__all__ = [
    "Entry",
    "checkTies",
    "loadEntries",
    "loadTrunkWhitelist",
    "loadWhitelist",
    "parseEntries",
    "parseWhitelist",
    "whitelistFiles",
]


def parseEntries(text: str, path: Path) -> tuple[Entry, ...]:
    """Every entry of the file; the first bad line raises `ConfigError` naming the file and line."""
    entries: list[Entry] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        if " " in entry or "\t" in entry:
            raise ConfigError(path, f"one address or CIDR per line, got {entry!r}", line=lineno)
        try:
            network = IPNetwork(entry)
        except (AddrFormatError, ValueError, TypeError) as e:
            raise ConfigError(path, f"not an IP address or CIDR: {entry!r} ({e})", line=lineno) from None
        if network.ip != network.network:
            host = f"{network.ip}/{32 if network.version == 4 else 128}"
            raise ConfigError(
                path,
                f"{entry} has host bits set: write the network {network.cidr}, or {host} for the one host",
                line=lineno,
            )
        entries.append(Entry(network.cidr, path, lineno))
    return tuple(entries)


def parseWhitelist(text: str, path: Path) -> IPSet:
    """The set of addresses the file lists (checked as `parseEntries` checks it)."""
    return IPSet(entry.network for entry in parseEntries(text, path))


def loadEntries(path: Path) -> tuple[Entry, ...]:
    """Read and parse the whitelist file at ``path`` into its entries."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(path, f"cannot read whitelist: {e}") from None
    return parseEntries(text, path)


def loadWhitelist(path: Path) -> IPSet:
    """Read and parse the whitelist file at ``path`` into its set of addresses."""
    return IPSet(entry.network for entry in loadEntries(path))


def whitelistFiles(table: Table, base: Path, name: str) -> tuple[Path, ...]:
    """A trunk's ``whitelist``: one file or a list of files (default ``whitelist/NAME.txt``)."""
    value = table.get("whitelist", (str, list), f"whitelist/{name}.txt")
    names = [value] if isinstance(value, str) else value
    if not names or not all(isinstance(n, str) and n for n in names):
        raise table.error("whitelist", "must be a file name or a list of file names")
    if len(set(names)) != len(names):
        raise table.error("whitelist", "lists the same file twice")
    return tuple(base / n for n in names)


def loadTrunkWhitelist(paths: Iterable[Path], trunk: str, allowAny: bool) -> tuple[Entry, ...]:
    """A trunk's entries from all its files: no network twice, no ``0.0.0.0/0`` unless allowed."""
    seen: dict[IPNetwork, Entry] = {}
    for path in paths:
        for entry in loadEntries(path):
            if entry.network.prefixlen == 0 and not allowAny:
                raise ConfigError(
                    path,
                    f"{entry.network} admits every address on the internet as trunk {trunk}: list the "
                    f"peer's own networks, or set allow_any = true in [trunks.{trunk}] if that is meant",
                    line=entry.line,
                )
            first = seen.setdefault(entry.network, entry)
            if first is not entry:
                raise ConfigError(
                    path,
                    f"{entry.network} is listed twice for trunk {trunk}, here and at {first.where}: "
                    "delete one of the two lines",
                    line=entry.line,
                )
    return tuple(seen.values())


def checkTies(whitelists: Mapping[str, Iterable[Entry]]) -> None:
    """One network in two trunks leaves the longest prefix undecided: refuse it, naming both lines."""
    owners: dict[IPNetwork, tuple[str, Entry]] = {}
    for trunk, entries in whitelists.items():
        for entry in entries:
            owner, first = owners.setdefault(entry.network, (trunk, entry))
            if owner != trunk:
                raise ConfigError(
                    entry.path or Path("?"),
                    f"{entry.network} is in trunk {trunk} here and in trunk {owner} at {first.where}: "
                    "a source belongs to one trunk; remove one line, or give the trunk that should "
                    "win a longer prefix",
                    line=entry.line,
                )
