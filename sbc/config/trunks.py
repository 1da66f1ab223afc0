"""The ``[trunks.NAME]`` tables: the peers we exchange calls with, their gateways and their policy."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from netaddr import AddrFormatError, IPAddress, IPSet
from service_identity.hazmat import DNS_ID

from sbc.config.calls import CallSettings
from sbc.config.errors import ConfigError
from sbc.config.gateways import Gateway, parseGateway
from sbc.config.limits import CallLimits, loadCallLimits
from sbc.config.table import Table
from sbc.config.whitelist import Entry, checkTies, loadTrunkWhitelist, whitelistFiles


class Refer(StrEnum):
    """What a trunk's REFER gets: refused, or relayed to the other leg."""

    REJECT = "reject"
    RELAY = "relay"


class MediaMode(StrEnum):
    """A trunk's media: anchored in the SBC, or its SDP left untouched."""

    RELAY = "relay"
    BYPASS = "bypass"


@dataclass(frozen=True)
class Trunk:
    """One peer trunk: who it is (its whitelist), where its calls go (gateways), and its policy."""

    name: str
    # The whitelist files (one or more), their addresses, and their lines (each naming file and line).
    whitelistPaths: tuple[Path, ...]
    whitelist: IPSet = field(compare=False, repr=False)
    whitelistEntries: tuple[Entry, ...] = field(default=(), compare=False, repr=False)
    # Let the whitelist hold 0.0.0.0/0 or ::/0 (every address on the internet is this trunk).
    allowAny: bool = False
    # Where outbound calls go, in the order to try (addresses or DNS names; sbc.config.gateways).
    gateways: tuple[Gateway, ...] = ()
    # Add a hostname gateway's resolved addresses to this trunk's whitelist (refreshed with the TTL).
    whitelistGateways: bool = False
    # Seconds between OPTIONS pings to each gateway; None sends none (every gateway counts as up).
    pingInterval: float | None = None
    # Pings in a row without an answer that take a gateway down (failover skips it until it answers).
    pingMisses: int = 3
    description: str = ""
    # Seconds without any provisional answer before the next gateway is tried.
    failoverTimeout: float = 2.0
    # Final codes that send the call to the next gateway (4xx and 6xx otherwise go back).
    failoverCodes: tuple[int, ...] = (408, 500, 502, 503, 504)
    # Timer C: seconds of ringing before we give up on the callee.
    noAnswerTimeout: float = CallSettings.noAnswerTimeout
    maxCallLength: float = CallSettings.maxCallLength
    # Trust this trunk's P-Asserted-Identity (and pass ours to it).
    trusted: bool = False
    # Extra headers that may cross the SBC on calls through this trunk, beyond the built-in list.
    passHeaders: tuple[str, ...] = ()
    # REFER from this trunk: refused (default) or relayed.
    refer: Refer = Refer.REJECT
    # Media anchored in the SBC (default), or SDP left untouched (only when asked for).
    media: MediaMode = MediaMode.RELAY
    # Codecs (encoding names) allowed on this trunk's calls; None allows all.
    codecs: tuple[str, ...] | None = None
    # Pass ISUP body parts (SIP-I/SIP-T) with the anchored SDP; only between two trunks that both
    # say so. Off: the other leg gets the SDP alone.
    passIsup: bool = False
    # Calls per second, concurrent calls and accepted numbers (sbc.config.limits); none by default.
    limits: CallLimits = field(default_factory=CallLimits)
    # Accept this trunk's traffic over TLS only: its plain UDP and TCP are dropped at the gate.
    requireTls: bool = False
    # DNS names the peer's client certificate must prove one of (mutual TLS; needs [tls] ca).
    tlsIdentities: tuple[str, ...] = ()


def loadTrunks(top: Table, base: Path) -> tuple[Trunk, ...]:
    """Every ``[trunks.NAME]`` table, in file order."""
    table = top.table("trunks")
    trunks = tuple(_trunk(base, table.table(name), name) for name in list(table.data))
    table.done()
    checkTies({trunk.name: trunk.whitelistEntries for trunk in trunks})
    return trunks


def _trunk(base: Path, table: Table, name: str) -> Trunk:
    path = table.path
    if not name.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(path, "trunk names are letters, digits, - and _", key=table.name)
    whitelistPaths = whitelistFiles(table, base, name)
    allowAny = table.get("allow_any", bool, Trunk.allowAny)
    entries = loadTrunkWhitelist(whitelistPaths, name, allowAny)
    gateways = tuple(parseGateway(path, table.key("gateways"), g) for g in table.get("gateways", list, []))
    description = table.get("description", str, Trunk.description)
    codes = table.get("failover_codes", list, list(Trunk.failoverCodes))
    if not all(isinstance(c, int) and 300 <= c <= 699 for c in codes):
        raise table.error("failover_codes", "must be a list of SIP status codes")
    passHeaders = table.get("pass_headers", list, [])
    if not all(isinstance(h, str) and h for h in passHeaders):
        raise table.error("pass_headers", "must be a list of header names")
    codecList = table.get("codecs", list, None)
    if codecList is not None and not all(isinstance(c, str) and c for c in codecList):
        raise table.error("codecs", "must be a list of codec names")
    trunk = Trunk(
        name=name,
        whitelistPaths=whitelistPaths,
        whitelist=IPSet(entry.network for entry in entries),
        whitelistEntries=entries,
        allowAny=allowAny,
        gateways=gateways,
        whitelistGateways=table.get("whitelist_gateways", bool, Trunk.whitelistGateways),
        pingInterval=_pingInterval(table),
        pingMisses=table.integer("ping_misses", Trunk.pingMisses, minimum=1, maximum=100),
        description=description,
        failoverTimeout=table.number("failover_timeout", Trunk.failoverTimeout, minimum=0.1, maximum=300),
        failoverCodes=tuple(codes),
        noAnswerTimeout=table.number("no_answer_timeout", Trunk.noAnswerTimeout, minimum=1, maximum=3600),
        maxCallLength=table.number("max_call_length", Trunk.maxCallLength, minimum=1, maximum=7 * 86400),
        trusted=table.get("trusted", bool, Trunk.trusted),
        passHeaders=tuple(h.lower() for h in passHeaders),
        refer=table.choice("refer", Trunk.refer),
        media=table.choice("media", Trunk.media),
        codecs=None if codecList is None else tuple(c.lower() for c in codecList),
        passIsup=table.get("pass_isup", bool, Trunk.passIsup),
        limits=loadCallLimits(table),
        requireTls=table.get("require_tls", bool, Trunk.requireTls),
        tlsIdentities=_tlsIdentities(table),
    )
    if trunk.tlsIdentities and not trunk.requireTls:
        raise table.error("tls_identities", "needs require_tls = true")
    table.done()
    return trunk


def _tlsIdentities(table: Table) -> tuple[str, ...]:
    """``tls_identities``: DNS names, each one a client certificate may prove."""
    names = table.get("tls_identities", list, list(Trunk.tlsIdentities))
    for name in names:
        try:
            DNS_ID(name)
        except (TypeError, ValueError):
            raise table.error("tls_identities", f"{name!r} is not a DNS name") from None
    return tuple(names)


def _pingInterval(table: Table) -> float | None:
    """``ping_interval``: unset sends no pings."""
    value = table.get("ping_interval", (int, float), Trunk.pingInterval)
    if value is not None and not 1 <= value <= 3600:
        raise table.error("ping_interval", "must be between 1 and 3600 seconds")
    return None if value is None else float(value)


def gatewayWarnings(trunks: tuple[Trunk, ...]) -> tuple[str, ...]:
    """Gateway addresses outside their own trunk's whitelist: allowed, but likely a mistake.

    The gate drops what such a gateway sends us (answers, BYEs) unless another whitelist holds it.
    A gateway given by DNS name is not checked here: its addresses are known only once resolved.
    """
    warnings = []
    for trunk in trunks:
        for gateway in trunk.gateways:
            try:
                address = IPAddress(gateway.host)
            except (AddrFormatError, ValueError):
                continue
            if address not in trunk.whitelist:
                files = ", ".join(str(path) for path in trunk.whitelistPaths)
                warnings.append(
                    f"trunk {trunk.name}: gateway {gateway} is not in the trunk's whitelist ({files}); "
                    "what it sends us is dropped unless another whitelist holds it: add it there"
                )
    return tuple(warnings)
