"""The whole configuration as one frozen `Config`, and `loadConfig`: one loader per section.

A reload builds a whole new `Config` and the server swaps it in one assignment, so a request sees
the old configuration or the new one, never a mix. A file that fails to load changes nothing.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from sbc.access import DEVICE_NETWORK, AccessPolicy, BanSettings, Peer, PeerKind, isLoopback
from sbc.config.api import APISettings, loadAPI
from sbc.config.calls import CallSettings, LogSettings, MediaSettings, loadCalls, loadLog, loadMedia
from sbc.config.errors import ConfigError
from sbc.config.gateways import loadDNSServers
from sbc.config.registrants import Registrant, loadRegistrants
from sbc.config.registrar import RegistrarSettings, loadBans, loadDevices, loadRegistrar
from sbc.config.routing import RoutingSettings, loadRouting
from sbc.config.sip import (
    Listener,
    SIPSettings,
    TLSSettings,
    Transport,
    loadListeners,
    loadPollInterval,
    loadSIP,
    loadStateDirectory,
    loadTLS,
)
from sbc.config.table import Table
from sbc.config.trunks import Trunk, gatewayWarnings, loadTrunks
from sbc.config.whitelist import Entry


@dataclass(frozen=True)
class Config:
    """Everything etc/ says, checked: each section's settings, and the access policy they make."""

    path: Path
    listeners: tuple[Listener, ...]
    sip: SIPSettings
    stateDirectory: Path
    trunks: tuple[Trunk, ...]
    tls: TLSSettings | None = None
    whitelistPollInterval: float = 2.0
    devicesWhitelistPath: Path | None = None
    registrar: RegistrarSettings = field(default_factory=RegistrarSettings)
    bans: BanSettings = field(default_factory=BanSettings)
    # The routing hook is only a path here: `sbc.routing.buildChain` loads it.
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    calls: CallSettings = field(default_factory=CallSettings)
    media: MediaSettings = field(default_factory=MediaSettings)
    log: LogSettings = field(default_factory=LogSettings)
    # What loaded but looks wrong (a gateway outside its trunk's whitelist): logged at start and reload.
    warnings: tuple[str, ...] = ()
    # ``[dns] servers``: where gateway names are resolved; empty: the system's resolv.conf.
    dnsServers: tuple[tuple[str, int], ...] = ()
    # ``[api]``: the HTTP API (sbc.ops.api); None without the table. Its listener and token are
    # taken at start only; ``otherNodes`` is read per request, so it follows a reload.
    api: APISettings | None = None
    # ``[registrants.NAME]``: registrations we keep at peers' registrars (sbc.registrant).
    registrants: tuple[Registrant, ...] = ()
    access: AccessPolicy = field(compare=False, repr=False, default_factory=lambda: AccessPolicy({}))
    # The trunks by name, built once: calls look a trunk up on every message of theirs.
    _trunksByName: Mapping[str, Trunk] = field(init=False, compare=False, repr=False)
    # The trunks that accept TLS only: empty, the gate asks nothing more of a message's transport.
    tlsTrunks: frozenset[str] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        byName = MappingProxyType({trunk.name: trunk for trunk in self.trunks})
        object.__setattr__(self, "_trunksByName", byName)
        object.__setattr__(self, "tlsTrunks", frozenset(t.name for t in self.trunks if t.requireTls))

    def trunk(self, name: str) -> Trunk | None:
        """The trunk called ``name``, or None (say, one a reload removed while its call goes on)."""
        return self._trunksByName.get(name)

    @property
    def trunkNames(self) -> tuple[str, ...]:
        """Every trunk's name, in config order."""
        return tuple(self._trunksByName)

    def watchedFiles(self) -> tuple[Path, ...]:
        """The files whose change triggers a reload."""
        files = [self.path, *(path for trunk in self.trunks for path in trunk.whitelistPaths)]
        if self.devicesWhitelistPath is not None:
            files.append(self.devicesWhitelistPath)
        if self.registrar.usersPath is not None:
            files.append(self.registrar.usersPath)
        files.extend(n.whitelistPath for n in self.registrar.networks.networks if n.whitelistPath is not None)
        if self.routing.hookPath is not None:
            files.append(self.routing.hookPath)
        files.extend(r.passwordFile for r in self.registrants if r.passwordFile is not None)
        return tuple(files)

    @property
    def loopbackOnly(self) -> bool:
        """True when every listener is on a loopback address: the demo accounts work only then."""
        return all(isLoopback(listener.host) for listener in self.listeners)


def loadConfig(path: Path | str) -> Config:
    """Read the main config file and every file it names."""
    path = Path(path)
    top = Table(path, "", _read(path))
    base = path.parent
    sip = loadSIP(top)
    stateDirectory = loadStateDirectory(top, base)
    tls = loadTLS(top, base)
    pollInterval = loadPollInterval(top, Config.whitelistPollInterval)
    listeners = loadListeners(top, tls)
    trunks = loadTrunks(top, base)
    _checkTLSTrunks(path, trunks, tls, listeners)
    whitelists: dict[Peer, tuple[Entry, ...]] = {
        Peer(PeerKind.TRUNK, trunk.name): trunk.whitelistEntries for trunk in trunks
    }
    devices = loadDevices(top, base)
    if devices is not None:
        whitelists[DEVICE_NETWORK] = devices[1]
    registrar = loadRegistrar(top, base)
    bans = loadBans(top)
    routing = loadRouting(top, base, trunks=[t.name for t in trunks], domains=registrar.domains)
    calls = loadCalls(top, stateDirectory)
    media = loadMedia(top)
    log = loadLog(top)
    dnsServers = loadDNSServers(top)
    api = loadAPI(top, base)
    registrants = loadRegistrants(top, base, listeners)
    top.done()
    return Config(
        path=path,
        listeners=listeners,
        sip=sip,
        stateDirectory=stateDirectory,
        trunks=trunks,
        tls=tls,
        whitelistPollInterval=pollInterval,
        devicesWhitelistPath=None if devices is None else devices[0],
        registrar=registrar,
        bans=bans,
        routing=routing,
        calls=calls,
        media=media,
        log=log,
        dnsServers=dnsServers,
        api=api,
        registrants=registrants,
        access=AccessPolicy(whitelists),
        warnings=gatewayWarnings(trunks) + _unreachableGateways(trunks, listeners),
    )


def _unreachableGateways(trunks: tuple[Trunk, ...], listeners: tuple[Listener, ...]) -> tuple[str, ...]:
    """A TCP or TLS gateway needs a listener of its transport (our Via names it); without one it
    is skipped at every call: say so at load."""
    have = {item.transport for item in listeners}
    return tuple(
        f"trunk {trunk.name}: gateway {gateway} is skipped: no {gateway.transport} [[listen]] table"
        for trunk in trunks
        for gateway in trunk.gateways
        if gateway.transport in (Transport.TCP, Transport.TLS) and gateway.transport not in have
    )


def _checkTLSTrunks(
    path: Path, trunks: tuple[Trunk, ...], tls: TLSSettings | None, listeners: tuple[Listener, ...]
) -> None:
    """A trunk that requires TLS needs a TLS listener, and one that names identities a CA to check them."""
    for trunk in trunks:
        if trunk.requireTls and not any(item.transport == Transport.TLS for item in listeners):
            raise ConfigError(path, "needs a TLS [[listen]] table", key=f"trunks.{trunk.name}.require_tls")
        plain = [g.host for g in trunk.gateways if g.transport is not Transport.TLS]
        if trunk.requireTls and plain:
            # Its answers would come back in plain and be dropped: a TLS-only trunk sends over TLS.
            raise ConfigError(
                path,
                f"a trunk that requires TLS is reached over TLS only: gateway {plain[0]} needs transport=tls",
                key=f"trunks.{trunk.name}.gateways",
            )
        if trunk.tlsIdentities and (tls is None or tls.ca is None):
            raise ConfigError(
                path,
                "needs [tls] ca, the CA that client certificates are checked against",
                key=f"trunks.{trunk.name}.tls_identities",
            )


def _read(path: Path) -> object:
    """The TOML of ``path``; a syntax error names its line."""
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise ConfigError(path, f"cannot read: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        match = re.search(r"\(at line (\d+), column \d+\)", str(e))
        reason = str(e) if match is None else str(e)[: match.start()].strip()
        raise ConfigError(
            path, f"TOML syntax: {reason}", line=int(match.group(1)) if match else None
        ) from None
