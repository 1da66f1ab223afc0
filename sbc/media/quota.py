"""Relay ports held per trunk and per registered account, so that no one party can take them all.

One offer may open up to ``[media] max_streams`` streams, and each relayed stream holds four ports
(an RTP/RTCP pair facing each side). Without a limit per party, a single trunk or account could
hold the whole range and leave every other call without media (issue 15). The call layer charges
the ports a stream will need to the party whose SDP opens it (the offerer: the caller for an
initial offer, either side for a re-offer that adds streams) before the relay binds them, and
releases them when the call ends. A charge beyond the party's limit fails with
`PortQuotaExceededError`, a kind of `PortPoolExhaustedError`: the call gets 503 with Retry-After.

The same accounting counts every relayed call's ports, with or without a party: `PortQuota.total`
is the ports-in-use metric, the same for the built-in relay and for rtpengine.
"""

from __future__ import annotations

from dataclasses import dataclass

from sbc.media.ports import PortPoolExhaustedError

# Ports one relayed stream holds: an RTP and an RTCP port facing each side.
PORTS_PER_STREAM = 4


class PortQuotaExceededError(PortPoolExhaustedError):
    """The party already holds as many relay ports as it may: 503 with Retry-After, like an empty pool."""


@dataclass(frozen=True, slots=True)
class PortOwner:
    """A party that relay ports are charged to: ``key`` is ``trunk:NAME`` or ``account:AOR``."""

    key: str
    limit: int


class PortQuota:
    """How many relay ports each party holds now, against its limit; and how many all calls hold."""

    def __init__(self) -> None:
        self.held: dict[str, int] = {}
        self.total = 0

    def charge(self, owner: PortOwner | None, ports: int) -> None:
        """Charge ``ports`` to ``owner`` (None: to nobody, counted in the total only), or raise."""
        if owner is not None:
            now = self.held.get(owner.key, 0)
            if now + ports > owner.limit:
                raise PortQuotaExceededError(
                    f"{owner.key} holds {now} relay ports; {ports} more would pass its limit of {owner.limit}"
                )
            self.held[owner.key] = now + ports
        self.total += ports

    def release(self, owner: PortOwner | None, ports: int) -> None:
        """Give back what `charge` took; a party that holds nothing is forgotten."""
        if owner is not None:
            left = self.held.get(owner.key, 0) - ports
            if left > 0:
                self.held[owner.key] = left
            else:
                self.held.pop(owner.key, None)
        self.total = max(0, self.total - ports)

    def heldBy(self, key: str) -> int:
        """How many ports the owner ``key`` holds now."""
        return self.held.get(key, 0)


__all__ = ["PORTS_PER_STREAM", "PortOwner", "PortQuota", "PortQuotaExceededError"]
