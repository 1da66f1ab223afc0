"""The SIP side of the config: ``[sip]``, ``[[listen]]``, ``[tls]``, ``[state]`` and ``[whitelist]``."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from netaddr import AddrFormatError, IPNetwork

from sbc.config.errors import ConfigError
from sbc.config.table import Table
from sbc.config.users import isValidDomain
from sbc.sip.message import DEFAULT_LIMITS, Limits
from sbc.sip.uri import isDigits
from sbc.transaction.lifecycle import Timers


class Transport(StrEnum):
    """What a listener speaks: SIP over UDP, TCP or TLS."""

    UDP = "udp"
    TCP = "tcp"
    TLS = "tls"


@dataclass(frozen=True)
class Listener:
    """A socket we listen on. ``advertise`` is the host written into our Via and Contact instead
    of ``host``: required when ``host`` is a wildcard (0.0.0.0 or ::), which names no address a peer
    could reach, and useful behind NAT, where the bound address is private."""

    transport: Transport
    host: str
    port: int
    advertise: str | None = None


@dataclass(frozen=True)
class TLSSettings:
    """The ``[tls]`` table: our certificate, its key, and the chain sent with it."""

    certificate: Path
    key: Path
    chain: tuple[Path, ...] = ()
    # CA bundle that client certificates are verified against; set, TLS clients are asked for one.
    ca: Path | None = None


@dataclass(frozen=True)
class SIPSettings:
    """The ``[sip]`` table: codec limits, stream limits, RFC 3261 timers, and our Server name."""

    limits: Limits = field(default_factory=Limits)
    idleTimeout: float = 300.0
    # Seconds a message may take from its first byte to its last on a stream (slow senders).
    messageDeadline: float = 10.0
    # Open TCP/TLS connections one source may hold; a whitelisted trunk source gets the second.
    maxConnectionsPerSource: int = 32
    maxConnectionsPerTrunkSource: int = 256
    t1: float = Timers.T1
    t2: float = Timers.T2
    t4: float = Timers.T4
    serverName: str = "sbc"


def loadSIP(top: Table) -> SIPSettings:
    """The ``[sip]`` table."""
    table = top.table("sip")
    sip = SIPSettings(
        limits=Limits(
            maxMessageSize=table.integer(
                "max_message_size", DEFAULT_LIMITS.maxMessageSize, minimum=1500, maximum=1 << 20
            ),
            maxHeaders=table.integer("max_headers", DEFAULT_LIMITS.maxHeaders, minimum=16, maximum=4096),
        ),
        idleTimeout=table.number("idle_timeout", SIPSettings.idleTimeout, minimum=1, maximum=86400),
        messageDeadline=table.number(
            "message_deadline", SIPSettings.messageDeadline, minimum=0.1, maximum=3600
        ),
        maxConnectionsPerSource=table.integer(
            "max_connections_per_source", SIPSettings.maxConnectionsPerSource, minimum=1, maximum=65535
        ),
        maxConnectionsPerTrunkSource=table.integer(
            "max_connections_per_trunk_source",
            SIPSettings.maxConnectionsPerTrunkSource,
            minimum=1,
            maximum=65535,
        ),
        t1=table.number("t1", SIPSettings.t1, minimum=0.01, maximum=60),
        t2=table.number("t2", SIPSettings.t2, minimum=0.01, maximum=600),
        t4=table.number("t4", SIPSettings.t4, minimum=0.01, maximum=600),
        serverName=table.get("server_name", str, SIPSettings.serverName),
    )
    table.done()
    return sip


def loadStateDirectory(top: Table, base: Path) -> Path:
    """``[state] directory``: where the database, secret and CDRs live."""
    table = top.table("state")
    directory: str = table.get("directory", str, "../state")
    table.done()
    return base / directory


def loadTLS(top: Table, base: Path) -> TLSSettings | None:
    """The ``[tls]`` table, or None when there is none."""
    if not top.has("tls"):
        return None
    table = top.table("tls")
    chain = table.get("chain", list, [])
    if not all(isinstance(item, str) for item in chain):
        raise table.error("chain", "must be a list of file names")
    ca = table.get("ca", str, None)
    tls = TLSSettings(
        certificate=base / table.get("certificate", str),
        key=base / table.get("key", str),
        chain=tuple(base / item for item in chain),
        ca=None if ca is None else base / ca,
    )
    table.done()
    return tls


def loadPollInterval(top: Table, default: float) -> float:
    """``[whitelist] poll_interval``: seconds between looks at the watched files."""
    table = top.table("whitelist")
    interval = table.number("poll_interval", default, minimum=0.1, maximum=3600)
    table.done()
    return interval


def loadListeners(top: Table, tls: TLSSettings | None) -> tuple[Listener, ...]:
    """Every ``[[listen]]`` table: at least one, none twice, TLS only with ``[tls]``."""
    path = top.path
    listeners = tuple(_listener(path, index, item) for index, item in enumerate(top.get("listen", list, [])))
    if not listeners:
        raise ConfigError(path, "at least one [[listen]] table is needed", key="listen")
    if any(listener.transport == Transport.TLS for listener in listeners) and tls is None:
        raise ConfigError(path, "a TLS listener needs a [tls] table", key="tls")
    seen: set[tuple[str, str, int]] = set()
    for listener in listeners:
        proto = "udp" if listener.transport == Transport.UDP else "tcp"
        if (proto, listener.host, listener.port) in seen:
            raise ConfigError(path, f"{listener.host}:{listener.port} is listed twice", key="listen")
        seen.add((proto, listener.host, listener.port))
    return listeners


def _listener(path: Path, index: int, item: Any) -> Listener:
    table = Table(path, f"listen[{index}]", item)
    try:
        transport = Transport(table.get("transport", str).lower())
    except ValueError:
        allowed = ", ".join(Transport)
        raise table.error("transport", f"must be one of {allowed}") from None
    host = table.get("host", str)
    port = table.integer("port", 5061 if transport == Transport.TLS else 5060, minimum=1, maximum=65535)
    advertise = table.get("advertise", str, None)
    table.done()
    if advertise is not None and (isWildcard(advertise) or not _isHost(advertise)):
        raise table.error("advertise", f"must be an address or host name peers can reach, not {advertise!r}")
    if advertise is None and isWildcard(host):
        raise table.error(
            "advertise",
            f"host {host!r} listens on every address but names none for Via and Contact:"
            ' add advertise = "<the address peers reach us at>"',
        )
    return Listener(transport, host, port, advertise)


def isAddress(text: str) -> bool:
    """Whether ``text`` is an IP address or network (CIDR)."""
    try:
        IPNetwork(text)
    except (AddrFormatError, ValueError, TypeError):
        return False
    return True


def isWildcard(host: str) -> bool:
    """Whether a listener host means "every address" (0.0.0.0, ::, or empty)."""
    try:
        return not host or ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def _isHost(text: str) -> bool:
    """An IP address or a DNS name: what a Via sent-by may hold."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return isValidDomain(text)
    return True


def parseHostPort(path: Path, key: str, text: Any) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port``; the port defaults to 5060."""
    if not isinstance(text, str) or not text:
        raise ConfigError(path, "must be a list of host:port strings", key=key)
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else "5060"
    else:
        host, _, port = text.partition(":")
        port = port or "5060"
    if not host or not isDigits(port) or not 0 < int(port) < 65536:
        raise ConfigError(path, f"not a host:port: {text!r}", key=key)
    return (host, int(port))
