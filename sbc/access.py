"""Who may talk to us at all: the trunk whitelists, checked before a byte is parsed.

The policy object is immutable and swapped whole on reload. Lookups go through a small cache
keyed by the source host string, so a flood from one address costs one dict lookup a packet.
"""

from __future__ import annotations

from collections.abc import Mapping

from netaddr import AddrFormatError, IPAddress, IPSet

_CACHE_LIMIT = 65536
_MISSING = object()


class AccessPolicy:
    """Maps a source address to the trunk whose whitelist holds it, or to None."""

    __slots__ = ("_cache", "_sets")

    def __init__(self, whitelists: Mapping[str, IPSet]) -> None:
        self._sets: tuple[tuple[str, IPSet], ...] = tuple(whitelists.items())
        self._cache: dict[str, str | None] = {}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self._sets)

    def classify(self, host: str) -> str | None:
        """The name of the first whitelist that holds ``host``, or None for a stranger."""
        cached = self._cache.get(host, _MISSING)
        if cached is not _MISSING:
            return cached  # type: ignore[return-value]
        result = self._lookup(host)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[host] = result
        return result

    def _lookup(self, host: str) -> str | None:
        text = host.partition("%")[0]  # drop an IPv6 zone index
        if text.startswith("::ffff:") and "." in text:  # IPv4 seen through a dual-stack socket
            text = text[7:]
        try:
            address = IPAddress(text)
        except (AddrFormatError, ValueError):
            return None
        for name, addresses in self._sets:
            if address in addresses:
                return name
        return None
