"""Who may talk to us at all: trunk and device whitelists, and bans, checked before parsing.

The policy object is immutable and swapped whole on reload. Lookups go through a small cache
keyed by the source host string, so a flood from one address costs one dict lookup a packet.
Bans outlive reloads: they belong to the running server, and persist through a `BanTable`.
"""

from __future__ import annotations

import ipaddress
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from netaddr import AddrFormatError, IPAddress, IPNetwork, IPSet
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from sbc.prefixes import Entry, PrefixTable

if TYPE_CHECKING:
    from sbc.ops.state import BanTable


class PeerKind(StrEnum):
    """What a source is to us: one of the trunks, the device networks, or the registrar (or
    outbound proxy) of one of our registrants (`sbc.routing.registrars`)."""

    TRUNK = "trunk"
    DEVICES = "devices"
    REGISTRANT = "registrant"


# The members under their old module names, so code that compares with these stays as it is.
TRUNK = PeerKind.TRUNK
DEVICES = PeerKind.DEVICES
REGISTRANT = PeerKind.REGISTRANT

_CACHE_LIMIT = 65536
_MISSING = object()


@dataclass(frozen=True, slots=True)
class Peer:
    """What a source address is to us: a trunk (by name), a device network, or a registrant (by
    name: at the gate the first of the registrants whose registrar is there; admission then names
    the one a request is for)."""

    kind: PeerKind
    name: str


DEVICE_NETWORK = Peer(DEVICES, "devices")


def isLoopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (127.0.0.0/8 or ::1): where demo accounts may work."""
    return host == "::1" or host.startswith("127.")


class AccessPolicy:
    """Maps a source address to the trunk or device network whose whitelist holds it, or to None.

    Trunks come before device networks; among the trunks the longest prefix holding the source
    wins (the config refuses one network in two trunks, so there is no tie to break). A whitelist
    is given as its entries (each naming its file and line, for `why`) or as a bare `IPSet`.
    """

    __slots__ = ("_cache", "_tables")

    def __init__(self, whitelists: Mapping[Peer, IPSet | Iterable[Entry]]) -> None:
        trunks: list[tuple[IPNetwork, tuple[Peer, Entry]]] = []
        others: list[tuple[IPNetwork, tuple[Peer, Entry]]] = []
        for peer, listed in whitelists.items():
            entries = (Entry(cidr) for cidr in listed.iter_cidrs()) if isinstance(listed, IPSet) else listed
            side = trunks if peer.kind is PeerKind.TRUNK else others
            side.extend((entry.network, (peer, entry)) for entry in entries)
        self._tables = (PrefixTable(trunks), PrefixTable(others))
        self._cache: dict[str, Peer | None] = {}

    def classify(self, host: str) -> Peer | None:
        """The peer whose whitelist holds ``host`` (trunks before devices), or None."""
        cached = self._cache.get(host, _MISSING)
        if cached is not _MISSING:
            return cached  # type: ignore[return-value]
        found = self.why(host)
        result = None if found is None else found[0]
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[host] = result
        return result

    def why(self, host: str) -> tuple[Peer, Entry] | None:
        """The peer that admits ``host`` and the whitelist entry (file, line) that does, or None.

        Not cached: `classify` is the gate's question, this is ``explain``'s.
        """
        text = host.partition("%")[0]  # drop an IPv6 zone index
        if text.startswith("::ffff:") and "." in text:  # IPv4 seen through a dual-stack socket
            text = text[7:]
        try:
            address = IPAddress(text)
        except (AddrFormatError, ValueError):
            return None
        for table in self._tables:
            found = table.lookup(address)
            if found is not None:
                return found
        return None


@dataclass(frozen=True)
class BanSettings:
    """When failed authentications within ``window`` seconds, or a flood, ban a source, and for how long.

    ``failures`` counts one username from one source; ``failuresPerSource`` counts every username
    from one source, so spreading guesses over many accounts bans too. IPv6 sources count (and are
    banned) by their ``ipv6Prefix``: one host commonly owns a whole /64, and would otherwise start
    afresh with each address.
    """

    failures: int = 5
    failuresPerSource: int = 20
    window: float = 60.0
    duration: float = 600.0
    ipv6Prefix: int = 64
    # The flood limit (`sbc.flood`): requests a second one device source may send, on average
    # (0: no limit) and at once; past it the source is banned for ``requestBanDuration``.
    requestRate: float = 20.0
    requestBurst: int = 60
    requestBanDuration: float = 60.0
    # User-Agent substrings dropped silently, besides `sbc.scanners.KNOWN_SCANNERS`.
    scanners: tuple[str, ...] = ()


# How often ended bans and stale counters are dropped (memory and the BanTable), in seconds.
PRUNE_INTERVAL = 60.0
# How often the running server looks for bans lifted in the table (`Bans.sync`), in seconds.
SYNC_INTERVAL = 5.0

# What a ban reaches beyond the failing host: given a predicate "is this host banned?", close
# what the host holds open (the transport layer's stream connections).
OnBan = Callable[[Callable[[str], bool]], object]


def sourceKey(host: str, ipv6Prefix: int) -> str:
    """What bans count and refuse: an IPv4 address itself, an IPv6 address by its prefix."""
    if ":" not in host or "/" in host:
        return host
    text = host.partition("%")[0]  # drop an IPv6 zone index
    if text.startswith("::ffff:") and "." in text:  # IPv4 seen through a dual-stack socket
        return text[7:]
    try:
        return str(ipaddress.IPv6Network((text, ipv6Prefix), strict=False))
    except ValueError:
        return host


def _widen(key: str, prefix: int) -> str:
    """The IPv6 network of ``prefix`` that holds the source ``key`` (a longer network); else ``key``."""
    if "/" not in key:
        return key
    try:
        network = ipaddress.IPv6Network(key)
    except ValueError:
        return key
    if network.prefixlen <= prefix:
        return key
    return str(network.supernet(new_prefix=prefix))


class BanKind(StrEnum):
    """Why a source was banned, as the metrics count bans: a closed set, unlike the reason text
    that is logged and stored with each ban."""

    AUTH = "auth"  # failed authentications
    REQUEST_RATE = "request_rate"  # a device source past [bans] request_rate (sbc.flood)
    OTHER = "other"


class Bans:
    """Sources that failed authentication too often, refused at the gate until their ban ends.

    Failures count per (source, username) and per source across usernames, each against its own
    threshold; a success clears only its own (source, username) pair, so good logins to one
    account do not hide guesses at another. Ended bans are pruned on the clock, here and in the
    table. ``onBan`` is told of each new ban, so that open connections of the source close too.

    The counters are bounded: past ``_CACHE_LIMIT`` sources (or pairs) the one whose last failure
    is oldest makes room, so a flood of fresh sources (an attacker with many /64s) cannot wipe
    the counts of sources that keep failing. They are kept in order of last failure, so both that
    eviction and pruning take the oldest first, in O(1) each.

    A reload may change ``ipv6Prefix`` (assign ``settings``; see `_reprefix` for what happens to
    the bans and counters made under the old prefix).
    """

    log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        settings: BanSettings,
        table: BanTable | None = None,
        *,
        onBan: OnBan | None = None,
    ) -> None:
        self.clock = clock
        self._settings = settings
        self.table = table
        self.onBan = onBan
        self.active: dict[str, float] = {}
        # Both in order of last failure, oldest first (see _count).
        self.failures: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()
        self.sourceFailures: OrderedDict[str, deque[float]] = OrderedDict()
        self.banCount = 0
        self.banKinds: Counter[BanKind] = Counter()  # bans made since start, by kind (a metric)
        # The IPv6 prefix lengths a ban or counter may be filed under: the current one first,
        # then those of bans and counters made under an earlier prefix (see _reprefix).
        self._lengths: tuple[int, ...] = (settings.ipv6Prefix,)
        # host -> its key under each of _lengths (cached, bounded)
        self._keys: dict[str, tuple[str, ...]] = {}
        now = clock.seconds()
        self._nextPrune = now + PRUNE_INTERVAL
        if table is not None:
            table.purge(now)
            for host, (until, _) in table.load().items():
                if until > now:
                    key = self.key(host)
                    self.active[key] = max(until, self.active.get(key, until))
            self._findLengths()

    @property
    def settings(self) -> BanSettings:
        """The thresholds in force; a reload sets new ones (and keeps the bans and counts)."""
        return self._settings

    @settings.setter
    def settings(self, settings: BanSettings) -> None:
        """Take reloaded settings; a new ``ipv6Prefix`` re-keys what was counted under the old."""
        old = self._settings.ipv6Prefix
        self._settings = settings
        if settings.ipv6Prefix != old:
            self._reprefix(old, settings.ipv6Prefix)

    def key(self, host: str) -> str:
        """The source ``host`` counts as: itself, or its IPv6 prefix (cached, bounded)."""
        return self._sources(host)[0]

    def _sources(self, host: str) -> tuple[str, ...]:
        """Every key a ban or count of ``host`` may be filed under, the current prefix's first."""
        if ":" not in host:
            return (host,)
        keys = self._keys.get(host)
        if keys is None:
            if len(self._keys) >= _CACHE_LIMIT:
                self._keys.clear()
            keys = self._keys[host] = tuple(sourceKey(host, length) for length in self._lengths)
        return keys

    def banned(self, host: str) -> bool:
        """True while ``host`` (or its IPv6 prefix) is banned; an ended ban is forgotten here."""
        now = self.clock.seconds()
        if now >= self._nextPrune:
            self.prune()
        for key in self._sources(host):
            until = self.active.get(key)
            if until is None:
                continue
            if now < until:
                return True
            del self.active[key]
            if self.table is not None:
                self.table.delete(key)
        return False

    def failure(self, host: str, username: str) -> bool:
        """Count one failed authentication as ``username``; True when it bans the source."""
        now = self.clock.seconds()
        if now >= self._nextPrune:
            self.prune()
        settings = self.settings
        keys = self._sources(host)
        key = keys[0]
        for stale in keys[1:]:  # counted under an earlier, shorter prefix: the count carries on here
            self._merge(self.failures, (stale, username), (key, username))
            self._merge(self.sourceFailures, stale, key)
        pair = self._count(self.failures, (key, username), settings.failures, now)
        source = self._count(self.sourceFailures, key, settings.failuresPerSource, now)
        if not (pair or source):
            return False
        self.failures.pop((key, username), None)
        self.sourceFailures.pop(key, None)
        if pair:
            reason = f"{settings.failures} failed authentications as {username!r}"
        else:
            reason = f"{settings.failuresPerSource} failed authentications"
        self._ban(key, settings.duration, reason, BanKind.AUTH)
        return True

    def success(self, host: str, username: str) -> None:
        """A good password clears that username's count from that source, and nothing else."""
        self.failures.pop((self.key(host), username), None)

    def ban(self, host: str, duration: float, reason: str, kind: BanKind = BanKind.OTHER) -> None:
        """Ban ``host`` (an IPv6 host by its prefix) for ``duration`` seconds, logging ``reason``."""
        self._ban(self.key(host), duration, reason, kind)

    def prune(self) -> None:
        """Drop ended bans (here and in the table) and counters older than the window."""
        now = self.clock.seconds()
        self._nextPrune = now + PRUNE_INTERVAL
        self.active = {key: until for key, until in self.active.items() if until > now}
        if self.table is not None:
            self.table.purge(now)
        window = self.settings.window
        for counters in (self.failures, self.sourceFailures):
            while counters:  # oldest last failure first: stop at the first one still in the window
                oldest = next(iter(counters.values()))
                if oldest and now - oldest[-1] <= window:
                    break
                counters.popitem(last=False)
        if len(self._lengths) > 1:  # some bans or counters of an earlier prefix may have ended
            self._findLengths()

    def sync(self) -> int:
        """Forget bans lifted in the table by another process (``sbc-ctl unban``); returns how many.

        The table is the store `sbc-ctl` edits: a ban active here without its row was lifted.
        """
        if self.table is None or not self.active:
            return 0
        stored = self.table.load()
        lifted = [key for key in self.active if key not in stored]
        for key in lifted:
            del self.active[key]
            self.log.info("ban on {host} lifted", host=key)
        return len(lifted)

    def _reprefix(self, old: int, new: int) -> None:
        """Carry bans and counters made under IPv6 prefix ``old`` over to prefix ``new``.

        Bans keep the network they were made for, each checked by containment (a lookup under
        every prefix length still in use, cached per host) until it ends. Re-keying them to the
        new prefix would get them wrong both ways: a /64 ban turned into its /56 would refuse 255
        neighbouring /64s that never failed, and a /56 ban turned into a /64 would lift the ban
        on the rest of the /56 at once. A ban is what was decided at the time; it ends on its own.

        Counters are re-keyed where that is exact: under a shorter prefix each old source lies
        in one new source, and counts of several old sources add up there, as they would have had
        the new prefix counted from the start. Under a longer prefix an old source spans many new
        ones, and its failures cannot be told apart: they stay under the old network and carry on
        with the first new source inside it that fails again (see `failure`), so a reload never
        gives a source a fresh count. Either way they end with the window.
        """
        if new < old:
            self.failures = self._rekeyed(self.failures, lambda pair: (_widen(pair[0], new), pair[1]))
            self.sourceFailures = self._rekeyed(self.sourceFailures, lambda key: _widen(key, new))
        self._findLengths()

    @staticmethod
    def _rekeyed(
        counters: OrderedDict[Any, deque[float]], rekey: Callable[[Any], Any]
    ) -> OrderedDict[Any, deque[float]]:
        """``counters`` under new keys, merged where keys meet, still in order of last failure."""
        merged: dict[Any, deque[float]] = {}
        for key, recent in counters.items():
            Bans._merge(merged, key, rekey(key), recent)
        return OrderedDict(sorted(merged.items(), key=lambda item: item[1][-1] if item[1] else float("-inf")))

    @staticmethod
    def _merge(
        counters: dict[Any, deque[float]], old: Any, new: Any, recent: deque[float] | None = None
    ) -> None:
        """Move the failures under ``old`` (or ``recent``) to ``new``, joining any already there."""
        if recent is None:
            recent = counters.pop(old, None)
            if recent is None:
                return
        there = counters.get(new)
        if there is None:
            counters[new] = deque(recent, maxlen=recent.maxlen)
            return
        maxlen = max(there.maxlen or 0, recent.maxlen or 0) or None
        counters[new] = deque(sorted((*there, *recent)), maxlen=maxlen)

    def _findLengths(self) -> None:
        """Note the IPv6 prefix lengths that bans and counters are filed under, besides the current."""
        current = self.settings.ipv6Prefix
        keys = (*self.active, *self.sourceFailures, *(key for key, _ in self.failures))
        others = {int(key.rpartition("/")[2]) for key in keys if "/" in key} - {current}
        lengths = (current, *sorted(others, reverse=True))
        if lengths != self._lengths:
            self._lengths = lengths
            self._keys.clear()

    def _count(self, counters: OrderedDict[Any, deque[float]], key: Any, threshold: int, now: float) -> bool:
        """Record a failure under ``key``; True when ``threshold`` of them fall within the window.

        ``key`` moves to the end (its last failure is now the newest); a new key past the limit
        evicts the key whose last failure is oldest.
        """
        recent = counters.get(key)
        if recent is None:
            if len(counters) >= _CACHE_LIMIT:
                counters.popitem(last=False)
            recent = counters[key] = deque(maxlen=threshold)
        else:
            counters.move_to_end(key)
            if recent.maxlen != threshold:  # the threshold was reloaded
                recent = counters[key] = deque(recent, maxlen=threshold)
        recent.append(now)
        return len(recent) >= threshold and now - recent[0] <= self.settings.window

    def _ban(self, key: str, duration: float, reason: str, kind: BanKind) -> None:
        until = self.clock.seconds() + duration
        self.active[key] = until
        if "/" in key and key.rpartition("/")[2] != str(self._lengths[0]):  # a network given as such
            self._findLengths()
        self.banCount += 1
        self.banKinds[kind] += 1
        if self.table is not None:
            self.table.save(key, until, reason)
        self.log.warn(
            "banned {host} for {duration:.0f}s: {reason}", host=key, duration=duration, reason=reason
        )
        if self.onBan is not None:
            self.onBan(self.banned)
