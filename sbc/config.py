"""etc/ files to one frozen `Config`; every mistake becomes a `ConfigError` naming file and key.

A reload builds a whole new `Config` and the server swaps it in one assignment, so a request sees
the old configuration or the new one, never a mix. A file that fails to load changes nothing.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from netaddr import AddrFormatError, IPNetwork, IPSet

from sbc.access import DEVICE_NETWORK, TRUNK, AccessPolicy, BanSettings, Peer, isLoopback
from sbc.errors import ConfigError
from sbc.hook import Hook, loadHook
from sbc.registrar.networks import DeviceNetwork, NetworkMap
from sbc.registrar.users import ALGORITHMS, Account, UserDirectory, isValidDomain, loadUsers
from sbc.routing import RoutingSettings, parseRoutingConfig
from sbc.sip.message import Limits
from sbc.sip.uri import isDigits
from sbc.whitelist import loadWhitelist

TRANSPORTS = ("udp", "tcp", "tls")

E = TypeVar("E", bound=StrEnum)


@dataclass(frozen=True)
class Listener:
    """A socket we listen on. ``advertise`` is the host written into our Via and Contact instead
    of ``host``: required when ``host`` is a wildcard (0.0.0.0 or ::), which names no address a peer
    could reach, and useful behind NAT, where the bound address is private."""

    transport: str
    host: str
    port: int
    advertise: str | None = None


@dataclass(frozen=True)
class TLSSettings:
    certificate: Path
    key: Path
    chain: tuple[Path, ...] = ()


@dataclass(frozen=True)
class SIPSettings:
    limits: Limits = field(default_factory=Limits)
    idleTimeout: float = 300.0
    # Seconds a message may take from its first byte to its last on a stream (slow senders).
    messageDeadline: float = 10.0
    # Open TCP/TLS connections one source may hold; a whitelisted trunk source gets the second.
    maxConnectionsPerSource: int = 32
    maxConnectionsPerTrunkSource: int = 256
    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    serverName: str = "sbc"


DEFAULT_FAILOVER = (408, 500, 502, 503, 504)


class Refer(StrEnum):
    """What a trunk's REFER gets: refused, or relayed to the other leg."""

    REJECT = "reject"
    RELAY = "relay"


class MediaMode(StrEnum):
    """A trunk's media: anchored in the SBC, or its SDP left untouched."""

    RELAY = "relay"
    BYPASS = "bypass"


class MediaEngine(StrEnum):
    """Where media is anchored: the built-in relay or an rtpengine daemon."""

    RELAY = "relay"
    RTPENGINE = "rtpengine"


class Fork(StrEnum):
    """How a user's phones ring: all at once, or one by one by q."""

    PARALLEL = "parallel"
    SEQUENTIAL = "sequential"


class Redirect(StrEnum):
    """What a callee's 3xx does: nothing reaches the caller but 480, or its Contact is routed."""

    REJECT = "reject"
    FOLLOW = "follow"


@dataclass(frozen=True)
class CallSettings:
    """Call handling that is not per trunk."""

    cdrPath: Path | None = None
    # On shutdown, seconds to let calls finish before they are released with BYE.
    drainGrace: float = 0.0
    # Ring every binding of a user at once, or one by one, best q first.
    fork: Fork = Fork.PARALLEL
    # Timer C for calls to users: seconds of ringing before the caller gets 408.
    noAnswerTimeout: float = 180.0
    # A 3xx from a callee: the caller gets 480, or its Contact is routed.
    redirect: Redirect = Redirect.REJECT
    # The longest call allowed, unless its trunk says otherwise (no key of its own).
    maxCallLength: float = 4 * 3600.0


@dataclass(frozen=True)
class Trunk:
    name: str
    whitelistPath: Path
    whitelist: IPSet = field(compare=False, repr=False)
    gateways: tuple[tuple[str, int], ...] = ()
    description: str = ""
    # Seconds without any provisional answer before the next gateway is tried.
    failoverTimeout: float = 2.0
    # Final codes that send the call to the next gateway (4xx and 6xx otherwise go back).
    failoverCodes: tuple[int, ...] = DEFAULT_FAILOVER
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
        return domain.lower() in self.domains

    def algorithmsFor(self, host: str, account: Account | None = None) -> tuple[str, ...]:
        """The account's algorithms, else those of the network holding ``host``, else the default."""
        if account is not None and account.algorithms:
            return account.algorithms
        network = self.networks.lookup(host)
        return self.algorithms if network is None else network.algorithms


@dataclass(frozen=True)
class MediaSettings:
    """Where media is anchored: the built-in relay (default) or an rtpengine daemon."""

    engine: MediaEngine = MediaEngine.RELAY
    address: str = "127.0.0.1"
    portMin: int = 20000
    portMax: int = 29999
    timeout: float = 60.0
    rtpengine: tuple[str, int] = ("127.0.0.1", 2223)
    # Seconds a latched media source must be silent before another allowed source may take over.
    relatchAfter: float = 2.0
    # Networks no SDP may send media to (488); "self" is the SBC's own addresses (the media
    # address and every listener host). Checked for either engine (sbc.media.targets).
    forbiddenTargets: tuple[str, ...] = ("self", "224.0.0.0/4", "ff00::/8", "0.0.0.0/8", "::/128")
    # m= lines one SDP may have (488 beyond).
    maxStreams: int = 8
    # Relay ports (four per stream) that the SDP of one trunk, or of one registered account, may
    # hold open at once (503 with Retry-After beyond).
    maxPortsPerTrunk: int = 4000
    maxPortsPerAccount: int = 64

    def forbiddenNetworks(self, listeners: tuple[Listener, ...] = ()) -> IPSet:
        """``forbiddenTargets`` as one set, "self" standing for ``address`` and the listener hosts."""
        networks: list[str] = []
        for entry in self.forbiddenTargets:
            if entry == "self":
                hosts = [self.address, *(listener.host for listener in listeners)]
                networks += [h.strip("[]") for h in hosts if _isAddress(h.strip("[]"))]
            else:
                networks.append(entry)
        return IPSet(networks)


def _isAddress(text: str) -> bool:
    try:
        IPNetwork(text)
    except (AddrFormatError, ValueError, TypeError):
        return False
    return True


@dataclass(frozen=True)
class LogSettings:
    """What the SBC logs beyond errors and state changes."""

    # One line per call attempt at its end (sbc.calls.calllog).
    calls: bool = True


@dataclass(frozen=True)
class Config:
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
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    hook: Hook | None = field(default=None, compare=False, repr=False)
    calls: CallSettings = field(default_factory=CallSettings)
    media: MediaSettings = field(default_factory=MediaSettings)
    log: LogSettings = field(default_factory=LogSettings)
    access: AccessPolicy = field(compare=False, repr=False, default_factory=lambda: AccessPolicy({}))
    # The trunks by name, built once: calls look a trunk up on every message of theirs.
    _trunksByName: Mapping[str, Trunk] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        byName = MappingProxyType({trunk.name: trunk for trunk in self.trunks})
        object.__setattr__(self, "_trunksByName", byName)

    def trunk(self, name: str) -> Trunk | None:
        """The trunk called ``name``, or None (say, one a reload removed while its call goes on)."""
        return self._trunksByName.get(name)

    @property
    def trunkNames(self) -> tuple[str, ...]:
        """Every trunk's name, in config order."""
        return tuple(self._trunksByName)

    def watchedFiles(self) -> tuple[Path, ...]:
        """The files whose change triggers a reload."""
        files = [self.path, *(trunk.whitelistPath for trunk in self.trunks)]
        if self.devicesWhitelistPath is not None:
            files.append(self.devicesWhitelistPath)
        if self.registrar.usersPath is not None:
            files.append(self.registrar.usersPath)
        files.extend(n.whitelistPath for n in self.registrar.networks.networks if n.whitelistPath is not None)
        if self.routing.hookPath is not None:
            files.append(self.routing.hookPath)
        return tuple(files)

    @property
    def loopbackOnly(self) -> bool:
        """True when every listener is on a loopback address: the demo accounts work only then."""
        return all(isLoopback(listener.host) for listener in self.listeners)


class _Table:
    """One TOML table, read key by key so that unknown keys and wrong types are reported."""

    def __init__(self, path: Path, name: str, data: Any) -> None:
        if not isinstance(data, dict):
            raise ConfigError(path, "must be a table", key=name)
        self.path = path
        self.name = name
        self.data: dict[str, Any] = data
        self.used: set[str] = set()

    def _key(self, key: str) -> str:
        return f"{self.name}.{key}" if self.name else key

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        self.used.add(key)
        if key not in self.data:
            if default is ...:
                raise ConfigError(self.path, "missing", key=self._key(key))
            return default
        value = self.data[key]
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise ConfigError(self.path, f"must be {_kindName(kind)}", key=self._key(key))
        if not isinstance(value, kind):
            raise ConfigError(self.path, f"must be {_kindName(kind)}", key=self._key(key))
        return value

    def number(self, key: str, default: float, *, minimum: float, maximum: float) -> float:
        value = self.get(key, (int, float), default)
        if not minimum <= value <= maximum:
            raise ConfigError(self.path, f"must be between {minimum} and {maximum}", key=self._key(key))
        return float(value)

    def integer(self, key: str, default: int, *, minimum: int, maximum: int) -> int:
        value = self.get(key, int, default)
        if not minimum <= value <= maximum:
            raise ConfigError(self.path, f"must be between {minimum} and {maximum}", key=self._key(key))
        return int(value)

    def choice(self, key: str, default: E) -> E:
        """One of a closed set of strings, as the member of ``default``'s enum; the error lists them."""
        kind = type(default)
        value = self.get(key, str, default.value)
        try:
            return kind(value)
        except ValueError:
            allowed = " or ".join(f'"{member.value}"' for member in kind)
            raise ConfigError(self.path, f"must be {allowed}", key=self._key(key)) from None

    def table(self, key: str) -> _Table:
        return _Table(self.path, self._key(key), self.get(key, dict, {}))

    def done(self) -> None:
        for key in self.data:
            if key not in self.used:
                raise ConfigError(self.path, "unknown key", key=self._key(key))


def _kindName(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {int: "a number", float: "a number", str: "a string", list: "a list", dict: "a table"}
    return " or ".join(sorted({names.get(k, k.__name__) for k in kinds}))


def loadConfig(path: Path | str) -> Config:
    """Read the main config file and every file it names."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise ConfigError(path, f"cannot read: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        match = re.search(r"\(at line (\d+), column \d+\)", str(e))
        reason = str(e) if match is None else str(e)[: match.start()].strip()
        raise ConfigError(
            path, f"TOML syntax: {reason}", line=int(match.group(1)) if match else None
        ) from None
    base = path.parent
    top = _Table(path, "", data)

    sipTable = top.table("sip")
    sip = SIPSettings(
        limits=Limits(
            maxMessageSize=sipTable.integer("max_message_size", 65536, minimum=1500, maximum=1 << 20),
            maxHeaders=sipTable.integer("max_headers", 256, minimum=16, maximum=4096),
        ),
        idleTimeout=sipTable.number("idle_timeout", 300.0, minimum=1, maximum=86400),
        messageDeadline=sipTable.number(
            "message_deadline", SIPSettings.messageDeadline, minimum=0.1, maximum=3600
        ),
        maxConnectionsPerSource=sipTable.integer(
            "max_connections_per_source", SIPSettings.maxConnectionsPerSource, minimum=1, maximum=65535
        ),
        maxConnectionsPerTrunkSource=sipTable.integer(
            "max_connections_per_trunk_source",
            SIPSettings.maxConnectionsPerTrunkSource,
            minimum=1,
            maximum=65535,
        ),
        t1=sipTable.number("t1", 0.5, minimum=0.01, maximum=60),
        t2=sipTable.number("t2", 4.0, minimum=0.01, maximum=600),
        t4=sipTable.number("t4", 5.0, minimum=0.01, maximum=600),
        serverName=sipTable.get("server_name", str, "sbc"),
    )
    sipTable.done()

    stateTable = top.table("state")
    stateDirectory = base / stateTable.get("directory", str, "../state")
    stateTable.done()

    tls: TLSSettings | None = None
    if "tls" in data:
        tlsTable = top.table("tls")
        chain = tlsTable.get("chain", list, [])
        if not all(isinstance(item, str) for item in chain):
            raise ConfigError(path, "must be a list of file names", key="tls.chain")
        tls = TLSSettings(
            certificate=base / tlsTable.get("certificate", str),
            key=base / tlsTable.get("key", str),
            chain=tuple(base / item for item in chain),
        )
        tlsTable.done()

    whitelistTable = top.table("whitelist")
    pollInterval = whitelistTable.number("poll_interval", 2.0, minimum=0.1, maximum=3600)
    whitelistTable.done()

    listeners = tuple(_listener(path, index, item) for index, item in enumerate(top.get("listen", list, [])))
    if not listeners:
        raise ConfigError(path, "at least one [[listen]] table is needed", key="listen")
    if any(listener.transport == "tls" for listener in listeners) and tls is None:
        raise ConfigError(path, "a TLS listener needs a [tls] table", key="tls")
    seen: set[tuple[str, str, int]] = set()
    for listener in listeners:
        proto = "udp" if listener.transport == "udp" else "tcp"
        if (proto, listener.host, listener.port) in seen:
            raise ConfigError(path, f"{listener.host}:{listener.port} is listed twice", key="listen")
        seen.add((proto, listener.host, listener.port))

    trunksTable = top.table("trunks")
    trunks = tuple(_trunk(path, base, trunksTable.table(name), name) for name in list(trunksTable.data))
    trunksTable.done()

    whitelists: dict[Peer, IPSet] = {Peer(TRUNK, trunk.name): trunk.whitelist for trunk in trunks}
    devicesTable = top.table("devices")
    devicesPath: Path | None = None
    if "whitelist" in devicesTable.data:
        devicesPath = base / devicesTable.get("whitelist", str)
        whitelists[DEVICE_NETWORK] = loadWhitelist(devicesPath)
    devicesTable.done()

    registrar = _registrar(path, base, top.table("registrar"))
    bansTable = top.table("bans")
    bans = BanSettings(
        failures=bansTable.integer("failures", BanSettings.failures, minimum=1, maximum=1000),
        failuresPerSource=bansTable.integer(
            "failures_per_source", BanSettings.failuresPerSource, minimum=1, maximum=10000
        ),
        window=bansTable.number("window", BanSettings.window, minimum=1, maximum=86400),
        duration=bansTable.number("duration", BanSettings.duration, minimum=1, maximum=30 * 86400),
        ipv6Prefix=bansTable.integer("ipv6_prefix", BanSettings.ipv6Prefix, minimum=1, maximum=128),
    )
    bansTable.done()
    routing = parseRoutingConfig(
        path, base, top.get("routing", dict, {}), trunks=[t.name for t in trunks], domains=registrar.domains
    )
    hook = loadHook(routing.hookPath) if routing.hookPath is not None else None
    callsTable = top.table("calls")
    calls = CallSettings(
        redirect=callsTable.choice("redirect", CallSettings.redirect),
        cdrPath=stateDirectory / callsTable.get("cdr_file", str, "cdr.jsonl"),
        drainGrace=callsTable.number("drain_grace", CallSettings.drainGrace, minimum=0, maximum=3600),
        fork=callsTable.choice("fork", CallSettings.fork),
        noAnswerTimeout=callsTable.number(
            "no_answer_timeout", CallSettings.noAnswerTimeout, minimum=1, maximum=3600
        ),
    )
    callsTable.done()
    mediaTable = top.table("media")
    defaultEngine = "{}:{}".format(*MediaSettings.rtpengine)
    media = MediaSettings(
        engine=mediaTable.choice("engine", MediaSettings.engine),
        address=mediaTable.get("address", str, MediaSettings.address),
        portMin=mediaTable.integer("port_min", MediaSettings.portMin, minimum=1024, maximum=65534),
        portMax=mediaTable.integer("port_max", MediaSettings.portMax, minimum=1025, maximum=65535),
        timeout=mediaTable.number("timeout", MediaSettings.timeout, minimum=1, maximum=3600),
        rtpengine=_gateway(path, "media.rtpengine", mediaTable.get("rtpengine", str, defaultEngine)),
        relatchAfter=mediaTable.number("relatch_after", MediaSettings.relatchAfter, minimum=0, maximum=3600),
        forbiddenTargets=_forbiddenTargets(path, mediaTable),
        maxStreams=mediaTable.integer("max_streams", MediaSettings.maxStreams, minimum=1, maximum=64),
        maxPortsPerTrunk=mediaTable.integer(
            "max_ports_per_trunk", MediaSettings.maxPortsPerTrunk, minimum=4, maximum=1_000_000
        ),
        maxPortsPerAccount=mediaTable.integer(
            "max_ports_per_account", MediaSettings.maxPortsPerAccount, minimum=4, maximum=1_000_000
        ),
    )
    if media.portMax - media.portMin < 3:
        raise ConfigError(path, "the port range must hold at least two RTP/RTCP pairs", key="media.port_max")
    if _isWildcard(media.address):
        # Written into every SDP as where to send media: 0.0.0.0 there means "on hold" (RFC 2543).
        raise ConfigError(
            path, "must be the one address peers send media to, not a wildcard", key="media.address"
        )
    mediaTable.done()
    logTable = top.table("log")
    log = LogSettings(calls=logTable.get("calls", bool, LogSettings.calls))
    logTable.done()
    top.done()
    return Config(
        path=path,
        listeners=listeners,
        sip=sip,
        stateDirectory=stateDirectory,
        trunks=trunks,
        tls=tls,
        whitelistPollInterval=pollInterval,
        devicesWhitelistPath=devicesPath,
        registrar=registrar,
        bans=bans,
        routing=routing,
        hook=hook,
        calls=calls,
        media=media,
        log=log,
        access=AccessPolicy(whitelists),
    )


def _registrar(path: Path, base: Path, table: _Table) -> RegistrarSettings:
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
    minExpires = table.integer("min_expires", 60, minimum=1, maximum=86400)
    maxExpires = table.integer("max_expires", 3600, minimum=1, maximum=7 * 86400)
    if maxExpires < minExpires:
        raise ConfigError(path, "must not be below min_expires", key="registrar.max_expires")
    settings = RegistrarSettings(
        domains=tuple(d.lower() for d in domains),
        usersPath=usersPath,
        users=loadUsers(usersPath) if usersPath is not None else UserDirectory(),
        minExpires=minExpires,
        maxExpires=maxExpires,
        defaultExpires=table.integer("default_expires", 3600, minimum=1, maximum=7 * 86400),
        algorithms=algorithms,
        networks=networks,
        nonceLifetime=table.number("nonce_lifetime", 300.0, minimum=5, maximum=86400),
        qualifyInterval=table.number("qualify_interval", 0.0, minimum=0, maximum=86400),
    )
    table.done()
    return settings


def _algorithms(table: _Table, default: tuple[str, ...] | None) -> tuple[str, ...]:
    """The ``algorithms`` key of ``table``; required when there is no default."""
    algorithms = (
        table.get("algorithms", list) if default is None else table.get("algorithms", list, list(default))
    )
    if (
        not algorithms
        or not all(a in ALGORITHMS for a in algorithms)
        or len(set(algorithms)) != len(algorithms)
    ):
        raise ConfigError(
            table.path, 'must list "MD5" and/or "SHA-256", each once', key=table._key("algorithms")
        )
    return tuple(algorithms)


def _network(base: Path, table: _Table, name: str) -> DeviceNetwork:
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
            raise ConfigError(
                table.path, "must list addresses or CIDRs", key=table._key("addresses")
            ) from None
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


def _forbiddenTargets(path: Path, table: _Table) -> tuple[str, ...]:
    entries = table.get("forbidden_targets", list, list(MediaSettings.forbiddenTargets))
    for entry in entries:
        if not isinstance(entry, str) or (entry != "self" and not _isAddress(entry)):
            raise ConfigError(
                path, f'must list "self" and networks (CIDR), not {entry!r}', key="media.forbidden_targets"
            )
    return tuple(entries)


def _listener(path: Path, index: int, item: Any) -> Listener:
    table = _Table(path, f"listen[{index}]", item)
    transport = table.get("transport", str).lower()
    if transport not in TRANSPORTS:
        raise ConfigError(path, f"must be one of {', '.join(TRANSPORTS)}", key=f"listen[{index}].transport")
    host = table.get("host", str)
    port = table.integer("port", 5061 if transport == "tls" else 5060, minimum=1, maximum=65535)
    advertise = table.get("advertise", str, None)
    table.done()
    if advertise is not None and (_isWildcard(advertise) or not _isHost(advertise)):
        raise ConfigError(
            path,
            f"must be an address or host name peers can reach, not {advertise!r}",
            key=f"listen[{index}].advertise",
        )
    if advertise is None and _isWildcard(host):
        raise ConfigError(
            path,
            f"host {host!r} listens on every address but names none for Via and Contact:"
            ' add advertise = "<the address peers reach us at>"',
            key=f"listen[{index}].advertise",
        )
    return Listener(transport, host, port, advertise)


def _isWildcard(host: str) -> bool:
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


def _trunk(path: Path, base: Path, table: _Table, name: str) -> Trunk:
    if not name.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(path, "trunk names are letters, digits, - and _", key=table.name)
    whitelistPath = base / table.get("whitelist", str, f"whitelist/{name}.txt")
    gateways = tuple(_gateway(path, f"{table.name}.gateways", g) for g in table.get("gateways", list, []))
    description = table.get("description", str, "")
    codes = table.get("failover_codes", list, list(DEFAULT_FAILOVER))
    if not all(isinstance(c, int) and 300 <= c <= 699 for c in codes):
        raise ConfigError(path, "must be a list of SIP status codes", key=f"{table.name}.failover_codes")
    passHeaders = table.get("pass_headers", list, [])
    if not all(isinstance(h, str) and h for h in passHeaders):
        raise ConfigError(path, "must be a list of header names", key=f"{table.name}.pass_headers")
    codecList = table.get("codecs", list, None)
    if codecList is not None and not all(isinstance(c, str) and c for c in codecList):
        raise ConfigError(path, "must be a list of codec names", key=f"{table.name}.codecs")
    trunk = Trunk(
        name=name,
        whitelistPath=whitelistPath,
        whitelist=loadWhitelist(whitelistPath),
        gateways=gateways,
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
    )
    table.done()
    return trunk


def _gateway(path: Path, key: str, text: Any) -> tuple[str, int]:
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
