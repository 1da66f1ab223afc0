"""A trunk's ``gateways``: where its outbound calls go, each an address or a DNS name (RFC 3263).

An entry is a string (``"192.0.2.1:5080"``, ``"sip.peer.example"``,
``"sip.peer.example;transport=tls"``) or a table (``{ host = "...", port = 5060, transport =
"udp", priority = 10, weight = 50 }``). A port or transport left out is found by DNS (NAPTR and
SRV) for a name, or is the transport's default for an address.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sbc.config.errors import ConfigError
from sbc.config.sip import Transport, parseHostPort
from sbc.config.table import Table
from sbc.sip.uri import isDigits

__all__ = ["Gateway", "loadDNSServers", "parseGateway"]


_TABLE_KEYS = frozenset({"host", "port", "transport", "priority", "weight"})


@dataclass(frozen=True)
class Gateway:
    """One configured gateway: a host (address or name), and what DNS would otherwise choose."""

    host: str
    # None: from SRV for a name, the transport's default (5060, 5061 for TLS) for an address.
    port: int | None = None
    # None: from NAPTR/SRV for a name, UDP for an address.
    transport: Transport | None = None
    # Among a trunk's gateways: the lowest priority first; within one, a draw by weight (RFC 2782).
    priority: int = 0
    weight: int = 0

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        text = host if self.port is None else f"{host}:{self.port}"
        return text if self.transport is None else f"{text};transport={self.transport}"


def parseGateway(path: Path, key: str, entry: Any) -> Gateway:
    """One ``gateways`` entry, string or table; a `ConfigError` naming ``key`` otherwise."""
    if isinstance(entry, dict):
        return _fromTable(path, key, entry)
    if not isinstance(entry, str) or not entry:
        raise ConfigError(path, "each gateway is a host[:port][;transport=T] string or a table", key=key)
    text, _, params = entry.partition(";")
    transport = None
    if params:
        name, _, value = params.partition("=")
        if name.strip().lower() != "transport":
            raise ConfigError(path, f"unknown gateway parameter in {entry!r} (only transport=)", key=key)
        transport = _transport(path, key, value.strip().lower())
    host, port = _hostPort(path, key, text, entry)
    return Gateway(host, port, transport)


def _hostPort(path: Path, key: str, text: str, entry: str) -> tuple[str, int | None]:
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        portText = rest[1:] if rest.startswith(":") else None
        if rest and portText is None:
            raise ConfigError(path, f"not a host[:port]: {entry!r}", key=key)
    elif text.count(":") > 1:  # a bare IPv6 address
        host, portText = text, None
    else:
        host, _, port = text.partition(":")
        portText = port if ":" in text else None
    return _checkHost(path, key, host, entry), _port(path, key, portText, entry)


def _checkHost(path: Path, key: str, host: Any, entry: object) -> str:
    if not isinstance(host, str) or not host or any(c.isspace() or c in "/@;," for c in host):
        raise ConfigError(path, f"not a gateway host: {entry!r}", key=key)
    return host.strip("[]")


def _port(path: Path, key: str, text: str | None, entry: object) -> int | None:
    if text is None:
        return None
    if not isDigits(text) or not 0 < int(text) < 65536:
        raise ConfigError(path, f"not a port (1-65535) in {entry!r}", key=key)
    return int(text)


def _transport(path: Path, key: str, value: str) -> Transport:
    try:
        return Transport(value)
    except ValueError:
        allowed = " or ".join(f'"{p.value}"' for p in Transport)
        raise ConfigError(path, f"a gateway's transport must be {allowed}", key=key) from None


def _fromTable(path: Path, key: str, entry: dict[str, Any]) -> Gateway:
    unknown = sorted(set(entry) - _TABLE_KEYS)
    if unknown:
        raise ConfigError(path, f"unknown gateway key(s) {', '.join(unknown)}", key=key)
    host = _checkHost(path, key, entry.get("host"), entry)
    port = entry.get("port")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536):
        raise ConfigError(path, "a gateway's port must be from 1 to 65535", key=key)
    transport = entry.get("transport")
    if transport is not None and not isinstance(transport, str):
        raise ConfigError(path, "a gateway's transport must be a string", key=key)
    numbers = {}
    for name in ("priority", "weight"):
        value = entry.get(name, getattr(Gateway, name))
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
            raise ConfigError(path, f"a gateway's {name} must be from 0 to 65535", key=key)
        numbers[name] = value
    return Gateway(
        host,
        port,
        None if transport is None else _transport(path, key, transport.lower()),
        numbers["priority"],
        numbers["weight"],
    )


def loadDNSServers(top: Table) -> tuple[tuple[str, int], ...]:
    """``[dns] servers``: the name servers gateway names are asked of (empty: resolv.conf's)."""
    table = top.table("dns")
    servers = tuple(parseHostPort(top.path, table.key("servers"), s) for s in table.get("servers", list, []))
    table.done()
    return servers
