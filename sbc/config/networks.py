"""Named parts of the device networks, each with its own digest algorithms (``[registrar.networks]``).

The device whitelist says who may talk to us at all; a network here only says how its devices
are challenged, so ops can move modern phones to SHA-256 while old ones keep MD5. When networks
overlap, the longest prefix holding the source wins, as in a routing table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from netaddr import AddrFormatError, IPAddress, IPNetwork, IPSet

__all__ = ["DeviceNetwork", "NetworkMap", "sourceAddress"]


@dataclass(frozen=True)
class DeviceNetwork:
    """One ``[registrar.networks.NAME]`` table: its addresses and the algorithms it is challenged with."""

    name: str
    algorithms: tuple[str, ...]
    addresses: IPSet = field(compare=False, repr=False)
    # The whitelist-format file the addresses came from (watched for reload), if any.
    whitelistPath: Path | None = None


def sourceAddress(host: str) -> IPAddress | None:
    """The IP address of a source host string (zone index dropped, v4-mapped v6 unwrapped), or None."""
    text = host.partition("%")[0]
    if text.startswith("::ffff:") and "." in text:
        text = text[7:]
    try:
        return IPAddress(text)
    except (AddrFormatError, ValueError):
        return None


class NetworkMap:
    """Finds the network whose longest prefix holds a source; immutable, swapped whole on reload."""

    __slots__ = ("_cache", "_prefixes", "networks")

    def __init__(self, networks: tuple[DeviceNetwork, ...] = ()) -> None:
        self.networks = networks
        prefixes = [(cidr, network) for network in networks for cidr in network.addresses.iter_cidrs()]
        # Longest prefix first; IPv4 and IPv6 prefixes never hold each other's addresses.
        prefixes.sort(key=lambda item: item[0].prefixlen, reverse=True)
        self._prefixes: tuple[tuple[IPNetwork, DeviceNetwork], ...] = tuple(prefixes)
        self._cache: dict[str, DeviceNetwork | None] = {}

    def lookup(self, host: str) -> DeviceNetwork | None:
        """The network of ``host`` (the longest prefix that holds it), or None."""
        if not self._prefixes:
            return None
        if host in self._cache:
            return self._cache[host]
        address = sourceAddress(host)
        found = None
        if address is not None:
            for cidr, network in self._prefixes:
                if cidr.version == address.version and address in cidr:
                    found = network
                    break
        if len(self._cache) >= 65536:
            self._cache.clear()
        self._cache[host] = found
        return found
