"""``sbc-ctl explain``: why the SBC accepts or drops a source, and where it routes a call from it.

`explainSource` follows the gate (`sbc.server.SIPServer.admit`): the whitelists first (which trunk or
device network holds the source, and by which line of which file), then bans (as the state database
records them), then a trunk's TLS requirement against the transport asked about. `explainCall` builds
the `CallRequest` the calls layer would (`sbc.calls.admission.admit`) and asks every router of the chain
through `sbc.routing.explain`.
"""

from __future__ import annotations

import datetime
import ipaddress
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sbc.access import DEVICES, Peer
from sbc.config import Config, Transport
from sbc.ops.state import BanTable
from sbc.routing import CallRequest, RoutingChain, explain
from sbc.sip.uri import unescape

__all__ = ["Explained", "Source", "explainCall", "explainSource", "parseSource", "readBans"]

# What the state database holds of bans: source key (an address or IPv6 network) -> (until, reason).
BanRecords = Mapping[str, tuple[float, str]]


class SourceError(ValueError):
    """The source given is not an IP address with an optional port."""


@dataclass(frozen=True)
class Source:
    """A source as ops write it: ``203.0.113.5``, ``203.0.113.5:5060``, ``::1``, ``[::1]:5060``."""

    host: str
    port: int | None = None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host and self.port is not None else self.host
        return host if self.port is None else f"{host}:{self.port}"


@dataclass(frozen=True)
class Explained:
    """The answer: whether the source gets in (or the call is routed), and the lines saying why."""

    accepted: bool
    lines: tuple[str, ...]
    peer: Peer | None = None


def parseSource(text: str) -> Source:
    """``IP[:PORT]`` (an IPv6 address with a port in brackets) as a `Source`; else `SourceError`."""
    host, port = text, None
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise SourceError(f"not IP[:PORT]: {text!r}")
        port = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise SourceError(f"not an IP address: {host!r}") from None
    if port is None:
        return Source(str(address))
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise SourceError(f"not a port: {port!r}")
    return Source(str(address), int(port))


def readBans(database: Path) -> BanRecords | str:
    """The bans the state database at ``database`` records (none without one: the SBC never ran with
    it), or why they cannot be read (a sentence). The database is opened read-only."""
    if not database.exists():
        return {}
    try:
        connection = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True)
        try:
            return BanTable(connection).load()
        finally:
            connection.close()
    except sqlite3.Error as e:
        return f"cannot read bans from {database}: {e}"


def _ban(host: str, bans: BanRecords, now: float) -> tuple[str, float, str] | None:
    """The ban in force on ``host`` (its own, or its IPv6 network's): (key, until, reason), or None."""
    address = ipaddress.ip_address(host)
    for key, (until, reason) in bans.items():
        if until <= now:
            continue
        try:
            network = ipaddress.ip_network(key, strict=False)
        except ValueError:
            continue
        if address.version == network.version and address in network:
            return key, until, reason
    return None


def _admittedBy(config: Config, host: str, peer: Peer) -> str:
    """``trunk demo, by 203.0.113.0/24 (etc/whitelist/demo.txt:4)``: the peer and the whitelist line."""
    found = config.access.why(host)
    return _describe(peer) + ("" if found is None else f", by {found[1]}")


def _describe(peer: Peer) -> str:
    """``trunk NAME`` or ``a device network``."""
    return "a device network" if peer.kind == DEVICES else f"trunk {peer.name}"


def explainSource(
    config: Config, source: Source, transport: Transport | None, bans: BanRecords | str, now: float
) -> Explained:
    """Whether the SBC takes traffic from ``source`` over ``transport`` (any, when None), and why."""
    name = str(source) + (f" over {transport}" if transport is not None else "")
    if transport is not None and not any(listener.transport == transport for listener in config.listeners):
        return Explained(False, (f"{name}: dropped: no [[listen]] table of {config.path} takes {transport}",))
    peer = config.access.classify(source.host)
    if peer is None:
        return Explained(
            False, (f"{name}: dropped: no trunk whitelist and no device network holds {source.host}",)
        )
    who = _admittedBy(config, source.host, peer)
    notes: tuple[str, ...] = ()
    if isinstance(bans, str):
        notes = (f"  (bans unknown: {bans})",)
    else:
        ban = _ban(source.host, bans, now)
        if ban is not None:
            key, until, reason = ban
            stamp = datetime.datetime.fromtimestamp(until, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            return Explained(
                False, (f"{name}: dropped: {key} is banned until {stamp} ({reason}); it is {who}",), peer
            )
    trunk = config.trunk(peer.name) if peer.kind != DEVICES else None
    if trunk is not None and trunk.requireTls and transport is not None and transport != Transport.TLS:
        return Explained(False, (f"{name}: dropped: trunk {trunk.name} requires TLS; it is {who}",), peer)
    return Explained(True, (f"{name}: accepted: {who}", *notes), peer)


def explainCall(
    config: Config,
    chain: RoutingChain,
    source: Source,
    number: str,
    *,
    domain: str | None = None,
    authenticatedUser: str | None = None,
) -> Explained:
    """What each router says about a call from ``source`` to ``number``, and the chain's decision.

    The request is the one `sbc.calls.admission.admit` builds for an INVITE to ``number@domain``
    (``domain`` defaults to our default domain); a device's call is routed only once it has
    authenticated, as ``authenticatedUser``.
    """
    peer = config.access.classify(source.host)
    if peer is None:
        return Explained(
            False, (f"{source}: dropped at the gate: no trunk whitelist and no device network holds it",)
        )
    host = domain or config.routing.defaultDomain or config.listeners[0].host
    request = CallRequest(
        source=peer,
        fromUser=(authenticatedUser or "").rpartition("@")[0],
        fromDomain=(authenticatedUser or "").rpartition("@")[2] or source.host,
        user=unescape(number),
        domain=host.lower(),
        authenticatedUser=authenticatedUser,
    )
    who = _describe(peer) + (f", authenticated as {authenticatedUser}" if authenticatedUser else "")
    lines = [f"call from {source} ({who}) to {number}@{host}:"]
    answers = explain(chain, request)
    lines.extend(f"  {line}" for line in answers[:-1])
    lines.append(answers[-1])
    return Explained(True, tuple(lines), peer)
