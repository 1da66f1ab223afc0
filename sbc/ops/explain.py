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

from sbc.access import DEVICES, REGISTRANT, TRUNK, Peer
from sbc.config import Config, Transport, Trunk
from sbc.ops.state import BanTable
from sbc.routing import CallRequest, RoutingChain, explain
from sbc.routing.registrars import registrantsAt
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
    """``trunk demo, by 203.0.113.0/24 (etc/whitelist/demo.txt:4)``: the peer and the whitelist
    line; a registrar: every registrant whose registrar or outbound proxy it is."""
    if peer.kind == REGISTRANT:
        names = registrantsAt(config, host) or (peer.name,)
        return f"the registrar of registrant{'s' if len(names) > 1 else ''} {', '.join(names)}"
    found = config.access.why(host)
    return _describe(peer) + ("" if found is None else f", by {found[1]}")


def _registrarNotes(config: Config, host: str) -> tuple[str, ...]:
    """What a registrar may send: new INVITEs to its registrants' Contacts alone."""
    names = set(registrantsAt(config, host))
    ways = [f"{r.name} (over {r.transport})" for r in config.registrants if r.name in names]
    return (
        f"  only for new INVITEs to the Contact of registrant {', '.join(ways)}; any other new INVITE"
        " gets 404, REGISTER 403",
    )


def _describe(peer: Peer) -> str:
    """``trunk NAME``, ``a device network`` or ``the registrar of registrant NAME``."""
    if peer.kind == REGISTRANT:
        return f"the registrar of registrant {peer.name}"
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
        dropped = f"{name}: dropped: no trunk whitelist and no device network holds {source.host}"
        return Explained(False, (dropped, *_byDNS(config)))
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
    trunk = config.trunk(peer.name) if peer.kind == TRUNK else None
    if trunk is not None and trunk.requireTls and transport is not None and transport != Transport.TLS:
        return Explained(False, (f"{name}: dropped: trunk {trunk.name} requires TLS; it is {who}",), peer)
    if trunk is not None and trunk.requireTls:
        if transport is None:
            notes += (f"  over TLS only: trunk {trunk.name} requires TLS, its UDP and TCP are dropped",)
        if trunk.tlsIdentities:
            notes += (f"  its client certificate must prove {' or '.join(trunk.tlsIdentities)}",)
    if peer.kind == REGISTRANT:
        notes += _registrarNotes(config, source.host)
    return Explained(True, (f"{name}: accepted: {who}", *notes), peer)


def _byDNS(config: Config) -> tuple[str, ...]:
    """What the running SBC may admit beyond the files: the addresses of the gateway names of
    trunks with ``whitelist_gateways`` (explain does not resolve them: DNS answers change)."""
    lines: list[str] = []
    for trunk in config.trunks:
        if not trunk.whitelistGateways:
            continue
        for gateway in trunk.gateways:
            try:
                ipaddress.ip_address(gateway.host.strip("[]"))
            except ValueError:
                lines.append(
                    f"  unless {gateway.host} resolves to it: then it is trunk {trunk.name} "
                    "(whitelist_gateways), as long as DNS says so"
                )
    return tuple(lines)


def _trunkLimits(config: Config, trunk: Trunk, number: str) -> tuple[list[str], str | None]:
    """What a trunk's own limits say of its new INVITE to ``number``: lines, and the refusal
    (``reject 404 ...``) when its ``accept`` list does not hold the number (checked before routing)."""
    limits = trunk.limits
    cps = limits.cps
    parts = [f"max_cps {cps[0]:g} (burst {cps[1]:g})"] if cps is not None else []
    parts += [f"max_calls {limits.maxCalls}"] if limits.maxCalls is not None else []
    said = ", ".join(parts) + ": past either, 503 with Retry-After" if parts else "none"
    lines = [f"  trunk {trunk.name} limits: {said}"]
    if limits.accept is None:
        return lines, None
    normalised = config.routing.rules.plan.normalise(unescape(number))
    accept = ", ".join(limits.accept)
    if limits.accepts(normalised):
        return [*lines, f"  trunk {trunk.name} accepts {normalised} (accept = {accept})"], None
    lines.append(f"  trunk {trunk.name} may not call {normalised}: not in accept = [{accept}]  <- refused")
    return lines, "reject 404 Not Found (trunk accept list)"


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
        dropped = f"{source}: dropped at the gate: no trunk whitelist and no device network holds it"
        return Explained(False, (dropped, *_byDNS(config)))
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
    trunk = config.trunk(peer.name) if peer.kind == TRUNK else None
    if trunk is not None:
        limits, refused = _trunkLimits(config, trunk, number)
        lines.extend(limits)
        if refused is not None:  # past the gate, refused as the chain's rejects are: exit 0
            return Explained(True, (*lines, f"result: {refused}"), peer)
    answers = explain(chain, request)
    lines.extend(f"  {line}" for line in answers[:-1])
    lines.append(answers[-1])
    return Explained(True, tuple(lines), peer)
