"""Whitelist files: one IPv4/IPv6 address or CIDR per line, ``#`` comments, as ops write them."""

from __future__ import annotations

from pathlib import Path

from netaddr import AddrFormatError, IPNetwork, IPSet

from sbc.config.errors import ConfigError


def parseWhitelist(text: str, path: Path) -> IPSet:
    """Build the set; the first bad line raises `ConfigError` naming the file and line."""
    networks: list[IPNetwork] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        if " " in entry or "\t" in entry:
            raise ConfigError(path, f"one address or CIDR per line, got {entry!r}", line=lineno)
        try:
            networks.append(IPNetwork(entry))
        except (AddrFormatError, ValueError, TypeError) as e:
            raise ConfigError(path, f"not an IP address or CIDR: {entry!r} ({e})", line=lineno) from None
    return IPSet(networks)


def loadWhitelist(path: Path) -> IPSet:
    """Read and parse the whitelist file at ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(path, f"cannot read whitelist: {e}") from None
    return parseWhitelist(text, path)
