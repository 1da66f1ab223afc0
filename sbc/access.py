"""Who may talk to us at all: trunk and device whitelists, and bans, checked before parsing.

The policy object is immutable and swapped whole on reload. Lookups go through a small cache
keyed by the source host string, so a flood from one address costs one dict lookup a packet.
Bans outlive reloads: they belong to the running server, and persist through a `BanTable`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from netaddr import AddrFormatError, IPAddress, IPSet
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

if TYPE_CHECKING:
    from sbc.state import BanTable

TRUNK = "trunk"
DEVICES = "devices"

_CACHE_LIMIT = 65536
_MISSING = object()


@dataclass(frozen=True, slots=True)
class Peer:
    """What a source address is to us: a trunk (by name) or a device network."""

    kind: str
    name: str


DEVICE_NETWORK = Peer(DEVICES, "devices")


class AccessPolicy:
    """Maps a source address to the first whitelist that holds it, or to None."""

    __slots__ = ("_cache", "_sets")

    def __init__(self, whitelists: Mapping[Peer, IPSet]) -> None:
        self._sets: tuple[tuple[Peer, IPSet], ...] = tuple(whitelists.items())
        self._cache: dict[str, Peer | None] = {}

    @property
    def peers(self) -> tuple[Peer, ...]:
        return tuple(peer for peer, _ in self._sets)

    def classify(self, host: str) -> Peer | None:
        """The peer whose whitelist holds ``host`` (trunks before devices), or None."""
        cached = self._cache.get(host, _MISSING)
        if cached is not _MISSING:
            return cached  # type: ignore[return-value]
        result = self._lookup(host)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[host] = result
        return result

    def _lookup(self, host: str) -> Peer | None:
        text = host.partition("%")[0]  # drop an IPv6 zone index
        if text.startswith("::ffff:") and "." in text:  # IPv4 seen through a dual-stack socket
            text = text[7:]
        try:
            address = IPAddress(text)
        except (AddrFormatError, ValueError):
            return None
        for peer, addresses in self._sets:
            if address in addresses:
                return peer
        return None


@dataclass(frozen=True)
class BanSettings:
    """``failures`` failed authentications within ``window`` seconds ban a source for ``duration``."""

    failures: int = 5
    window: float = 60.0
    duration: float = 600.0


class Bans:
    """Sources that failed authentication too often, refused at the gate until their ban ends."""

    log = Logger()

    def __init__(self, clock: IReactorTime, settings: BanSettings, table: BanTable | None = None) -> None:
        self.clock = clock
        self.settings = settings
        self.table = table
        self.active: dict[str, float] = {}
        self.failures: dict[str, deque[float]] = {}
        self.banCount = 0
        if table is not None:
            now = clock.seconds()
            table.purge(now)
            self.active = {host: until for host, (until, _) in table.load().items() if until > now}

    def banned(self, host: str) -> bool:
        """True while ``host`` is banned; an ended ban is forgotten here."""
        until = self.active.get(host)
        if until is None:
            return False
        if self.clock.seconds() < until:
            return True
        del self.active[host]
        if self.table is not None:
            self.table.delete(host)
        return False

    def failure(self, host: str) -> bool:
        """Count one failed authentication; True when it bans the source."""
        now = self.clock.seconds()
        settings = self.settings
        recent = self.failures.get(host)
        if recent is None:
            if len(self.failures) >= _CACHE_LIMIT:
                self._forgetOld(now)
            recent = self.failures[host] = deque(maxlen=settings.failures)
        recent.append(now)
        if len(recent) >= settings.failures and now - recent[0] <= settings.window:
            del self.failures[host]
            self.ban(host, settings.duration, f"{settings.failures} failed authentications")
            return True
        return False

    def success(self, host: str) -> None:
        self.failures.pop(host, None)

    def ban(self, host: str, duration: float, reason: str) -> None:
        until = self.clock.seconds() + duration
        self.active[host] = until
        self.banCount += 1
        if self.table is not None:
            self.table.save(host, until, reason)
        self.log.warn(
            "banned {host} for {duration:.0f}s: {reason}", host=host, duration=duration, reason=reason
        )

    def _forgetOld(self, now: float) -> None:
        window = self.settings.window
        self.failures = {h: d for h, d in self.failures.items() if d and now - d[-1] <= window}
        if len(self.failures) >= _CACHE_LIMIT:
            self.failures.clear()
