"""Per-trunk call limits at run time: a calls-per-second bucket and a count of calls, by trunk name.

`CallManager` owns one `TrunkCounters` for the node's life. Counts are kept by trunk *name*, not
by `Trunk` object, so that a reload keeps them: a changed limit applies to new calls, and a call
counted under a trunk is uncounted when it ends, even if a reload removed that trunk meanwhile.
Calls already up are never touched; only new INVITEs (and new attempts towards a trunk) are refused.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import NamedTuple

from twisted.internet.interfaces import IReactorTime

from sbc.config import Trunk
from sbc.config.limits import CallLimits
from sbc.rates import Rate, TokenBucket

__all__ = ["BUSY_RETRY_AFTER", "Refusal", "TrunkCounters", "registrantKey"]


def registrantKey(name: str) -> str:
    """What calls through registration ``name`` are counted under: never a trunk's name (those
    have no ``:``), so a registrant and a trunk of the same name never share counters."""
    return f"registrant:{name}"


# Seconds a 503 for a trunk at its max_calls asks it to wait (Retry-After): calls end at no
# predictable time, so a short fixed wait.
BUSY_RETRY_AFTER = 5


class Refusal(NamedTuple):
    """Why a trunk's new INVITE is refused: the status, its reason phrase, the metric and headers."""

    status: int
    reason: str
    metric: str
    extra: tuple[tuple[str, str], ...] = ()


# RFC 3261 section 21.4.5: 404 says the server knows the user does not exist at the domain of the
# Request-URI; from the trunk's side a number it may not call is not ours (RFC 3398 maps ISUP cause
# 1, unallocated number, to 404), so its switch gives up on us cleanly. 403 (21.4.4) would tell a
# peer that the number exists here but is barred to it, which is more than it needs to know.
_NOT_ACCEPTED = Refusal(404, "Not Found", "trunk_refused_number")


class TrunkCounters:
    """Calls-per-second buckets and concurrent-call counts by trunk name, and which call holds what."""

    def __init__(self, clock: IReactorTime, counts: Counter[str] | None = None) -> None:
        self.clock = clock
        # Refusals by reason (``trunk_refused_cps`` and so on): the server's metrics counters.
        self.counts: Counter[str] = counts if counts is not None else Counter()
        self._buckets: dict[str, TokenBucket] = {}
        self._calls: Counter[str] = Counter()
        # By call id: the trunk names the call is counted under (one entry per direction).
        self._held: dict[str, list[str]] = {}

    def calls(self, name: str) -> int:
        """Calls counted under trunk ``name`` now (both directions)."""
        return self._calls[name]

    def admit(self, trunk: Trunk, number: str | None) -> Refusal | None:
        """A new INVITE from ``trunk`` to ``number`` (E.164, None if it is no number): None if it
        may become a call (it took a token), else why not. Count it with `hold` once it is a call."""
        return self.admitUnder(trunk.name, trunk.limits, number)

    def admitUnder(
        self, name: str, limits: CallLimits, number: str | None = None, metric: str = "trunk"
    ) -> Refusal | None:
        """`admit` for the calls counted under ``name`` (a trunk's name, or `registrantKey`), with
        ``limits``; refusals are counted as ``<metric>_refused_<reason>``."""
        refusal: Refusal | None = None
        # The token is taken before the number is looked at: INVITEs to numbers a trunk may not
        # call count against its rate too, or they would be a way around it.
        if limits.maxCalls is not None and self._calls[name] >= limits.maxCalls:
            refusal = _BUSY
        else:
            refusal = self._rate(name, limits)
            if refusal is None and not limits.accepts(number):
                refusal = _NOT_ACCEPTED
        if refusal is not None:
            self.counts[metric + refusal.metric.removeprefix("trunk")] += 1
        return refusal

    def _rate(self, name: str, limits: CallLimits) -> Refusal | None:
        """Take a token from the bucket of ``name`` (made, or given the new rate after a reload)."""
        cps = limits.cps
        if cps is None:
            self._buckets.pop(name, None)
            return None
        now = self.clock.seconds()
        bucket = self._buckets.get(name)
        if bucket is None:
            bucket = self._buckets[name] = TokenBucket(Rate(*cps), now)
        elif (bucket.rate.perSecond, bucket.rate.burst) != cps:
            rate = Rate(*cps)
            # A reload changed the limit: what the old rate refilled up to now stays (within the
            # new burst), and the new rate holds from now on.
            old = bucket.rate
            bucket.tokens = min(old.burst, rate.burst, bucket.tokens + (now - bucket.stamp) * old.perSecond)
            bucket.stamp = now
            bucket.rate = rate
        if bucket.take(now):
            return None
        wait = max(1, math.ceil(bucket.wait(now)))
        return Refusal(503, "Service Unavailable (calls per second)", "trunk_refused_cps", _retry(wait))

    def hold(self, key: str, name: str) -> None:
        """Count call ``key`` under trunk ``name`` (its caller's trunk) until `release`."""
        self._calls[name] += 1
        self._held.setdefault(key, []).append(name)

    def outbound(self, trunk: Trunk, key: str) -> bool:
        """Whether call ``key`` may place a leg to ``trunk``: True if the trunk has room (the call
        is then counted under it, once however many gateways it tries) or already counts it."""
        held = self._held.get(key)
        if held is not None and _outbound(trunk.name) in held:
            return True
        maxCalls = trunk.limits.maxCalls
        if maxCalls is not None and self._calls[trunk.name] >= maxCalls:
            self.counts["trunk_refused_outbound"] += 1
            return False
        self._calls[trunk.name] += 1
        self._held.setdefault(key, []).append(_outbound(trunk.name))
        return True

    def releaseOutbound(self, key: str, name: str | None) -> None:
        """Call ``key``'s leg to trunk ``name`` failed (a failover step): uncount it there."""
        held = self._held.get(key)
        if name is not None and held is not None and _outbound(name) in held:
            held.remove(_outbound(name))
            self._uncount(name)

    def keepOutbound(self, key: str, name: str | None) -> None:
        """Call ``key`` was answered by trunk ``name`` (None: a user): other trunks it tried are
        uncounted now."""
        held = self._held.get(key)
        if held is None:
            return
        for entry in [e for e in held if e.startswith(_OUT) and e != _outbound(name or "")]:
            held.remove(entry)
            self._uncount(entry[len(_OUT) :])

    def release(self, key: str) -> None:
        """Call ``key`` ended: every count it held is given back."""
        for entry in self._held.pop(key, ()):
            self._uncount(entry[len(_OUT) :] if entry.startswith(_OUT) else entry)

    def _uncount(self, name: str) -> None:
        left = self._calls[name] - 1
        if left > 0:
            self._calls[name] = left
        else:
            del self._calls[name]


# Outbound holdings are marked so that a call from trunk X to trunk X counts twice (two channels).
_OUT = ">"


def _outbound(name: str) -> str:
    return _OUT + name


def _retry(seconds: int) -> tuple[tuple[str, str], ...]:
    return (("Retry-After", str(seconds)),)


_BUSY = Refusal(503, "Service Unavailable (too many calls)", "trunk_refused_calls", _retry(BUSY_RETRY_AFTER))
