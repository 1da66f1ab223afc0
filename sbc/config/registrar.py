"""Who may register and how: ``[registrar]``, ``[registrar.networks.NAME]``, ``[devices]`` and ``[bans]``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from netaddr import IPSet

from sbc.access import BanSettings
from sbc.config.errors import ConfigError
from sbc.config.networks import DeviceNetwork, NetworkMap
from sbc.config.table import Table
from sbc.config.users import ALGORITHMS, Account, UserDirectory, loadUsers
from sbc.config.whitelist import Entry, loadEntries, loadWhitelist


@dataclass(frozen=True)
class RegistrarSettings:
    """Who may register, and for how long (RFC 3261 section 10, RFC 7616)."""

    domains: tuple[str, ...] = ()
    usersPath: Path | None = None
    users: UserDirectory = field(default_factory=UserDirectory, compare=False, repr=False)
    minExpires: int = 60
    maxExpires: int = 3600
    defaultExpires: int = 3600
    # Digest challenges, one header each, in this order. MD5 alone: phones in the field built on
    # libre (baresip) give up at the first non-MD5 challenge even with MD5 beside it. SHA-256 is
    # opt-in, per device network or per account, or here for all.
    algorithms: tuple[str, ...] = ("MD5",)
    # [registrar.networks.NAME]: parts of the device networks with algorithms of their own.
    networks: NetworkMap = field(default_factory=NetworkMap, compare=False, repr=False)
    nonceLifetime: float = 300.0
    qualifyInterval: float = 0.0

    def servesDomain(self, domain: str) -> bool:
        """Whether ``domain`` is one of ours (case-insensitive)."""
        return domain.lower() in self.domains

    def algorithmsFor(self, host: str, account: Account | None = None) -> tuple[str, ...]:
        """The account's algorithms, else those of the network holding ``host``, else the default."""
        if account is not None and account.algorithms:
            return account.algorithms
        network = self.networks.lookup(host)
        return self.algorithms if network is None else network.algorithms


def loadRegistrar(top: Table, base: Path) -> RegistrarSettings:
    """The ``[registrar]`` table with its users file and device networks."""
    table = top.table("registrar")
    path = table.path
    domains = table.get("domains", list, [])
    if not all(isinstance(d, str) and d and " " not in d for d in domains):
        raise ConfigError(path, "must be a list of domain names", key="registrar.domains")
    usersName = table.get("users", str, None)
    usersPath = base / usersName if usersName is not None else None
    algorithms = _algorithms(table, RegistrarSettings.algorithms)
    networksTable = table.table("networks")
    networks = NetworkMap(
        tuple(_network(base, networksTable.table(name), name) for name in list(networksTable.data))
    )
    networksTable.done()
    _checkNetworks(path, networks)
    minExpires = table.integer("min_expires", RegistrarSettings.minExpires, minimum=1, maximum=86400)
    maxExpires = table.integer("max_expires", RegistrarSettings.maxExpires, minimum=1, maximum=7 * 86400)
    if maxExpires < minExpires:
        raise ConfigError(path, "must not be below min_expires", key="registrar.max_expires")
    settings = RegistrarSettings(
        domains=tuple(d.lower() for d in domains),
        usersPath=usersPath,
        users=loadUsers(usersPath) if usersPath is not None else UserDirectory(),
        minExpires=minExpires,
        maxExpires=maxExpires,
        defaultExpires=table.integer(
            "default_expires", RegistrarSettings.defaultExpires, minimum=1, maximum=7 * 86400
        ),
        algorithms=algorithms,
        networks=networks,
        nonceLifetime=table.number(
            "nonce_lifetime", RegistrarSettings.nonceLifetime, minimum=5, maximum=86400
        ),
        qualifyInterval=table.number(
            "qualify_interval", RegistrarSettings.qualifyInterval, minimum=0, maximum=86400
        ),
    )
    table.done()
    return settings


def loadDevices(top: Table, base: Path) -> tuple[Path, tuple[Entry, ...]] | None:
    """``[devices] whitelist``: the file of addresses devices may register from, and its entries."""
    table = top.table("devices")
    devices: tuple[Path, tuple[Entry, ...]] | None = None
    if table.has("whitelist"):
        path = base / table.get("whitelist", str)
        devices = (path, loadEntries(path))
    table.done()
    return devices


def loadBans(top: Table) -> BanSettings:
    """The ``[bans]`` table: what bans a source (failed authentications, a flood), for how long; scanners."""
    table = top.table("bans")
    bans = BanSettings(
        failures=table.integer("failures", BanSettings.failures, minimum=1, maximum=1000),
        failuresPerSource=table.integer(
            "failures_per_source", BanSettings.failuresPerSource, minimum=1, maximum=10000
        ),
        window=table.number("window", BanSettings.window, minimum=1, maximum=86400),
        duration=table.number("duration", BanSettings.duration, minimum=1, maximum=30 * 86400),
        ipv6Prefix=table.integer("ipv6_prefix", BanSettings.ipv6Prefix, minimum=1, maximum=128),
        requestRate=table.number("request_rate", BanSettings.requestRate, minimum=0, maximum=100000),
        requestBurst=table.integer("request_burst", BanSettings.requestBurst, minimum=1, maximum=1000000),
        requestBanDuration=table.number(
            "request_ban_duration", BanSettings.requestBanDuration, minimum=1, maximum=30 * 86400
        ),
        scanners=_scanners(table),
    )
    table.done()
    return bans


def _scanners(table: Table) -> tuple[str, ...]:
    """``[bans] scanners``: more User-Agent substrings to drop silently, besides the built-in list."""
    scanners = table.get("scanners", list, list(BanSettings.scanners))
    if not all(isinstance(item, str) and item.strip() for item in scanners):
        raise table.error("scanners", "must list non-empty strings")
    return tuple(item.strip() for item in scanners)


def _algorithms(table: Table, default: tuple[str, ...] | None) -> tuple[str, ...]:
    """The ``algorithms`` key of ``table``; required when there is no default."""
    algorithms = (
        table.get("algorithms", list) if default is None else table.get("algorithms", list, list(default))
    )
    if (
        not algorithms
        or not all(a in ALGORITHMS for a in algorithms)
        or len(set(algorithms)) != len(algorithms)
    ):
        raise table.error("algorithms", 'must list "MD5" and/or "SHA-256", each once')
    return tuple(algorithms)


def _network(base: Path, table: Table, name: str) -> DeviceNetwork:
    """One ``[registrar.networks.NAME]``: ``whitelist`` (a file, as [devices]) or ``addresses`` (CIDRs)."""
    whitelistName = table.get("whitelist", str, None)
    addresses = table.get("addresses", list, None)
    if (whitelistName is None) == (addresses is None):
        raise ConfigError(table.path, "give either whitelist or addresses", key=table.name)
    whitelistPath = None if whitelistName is None else base / whitelistName
    if whitelistPath is not None:
        addressSet = loadWhitelist(whitelistPath)
    else:
        try:
            if not all(isinstance(item, str) for item in addresses):
                raise ValueError(addresses)
            addressSet = IPSet(addresses)
        except Exception:
            raise table.error("addresses", "must list addresses or CIDRs") from None
    network = DeviceNetwork(name, _algorithms(table, None), addressSet, whitelistPath)
    table.done()
    return network


def _checkNetworks(path: Path, networks: NetworkMap) -> None:
    """The same prefix in two networks would make the choice depend on file order: refuse it."""
    owner: dict[str, str] = {}
    for network in networks.networks:
        for cidr in network.addresses.iter_cidrs():
            other = owner.setdefault(str(cidr), network.name)
            if other != network.name:
                raise ConfigError(
                    path, f"{cidr} is in networks {other} and {network.name}", key="registrar.networks"
                )
