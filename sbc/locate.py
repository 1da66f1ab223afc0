"""Locating a peer's SIP servers by DNS (RFC 3263 section 4): NAPTR, then SRV, then A/AAAA.

Carriers hand out hostnames, not addresses. `ServerLocator.locate` turns a gateway's host, port,
transport and security into the ordered hops to try: each hop is one failover step. Answers are
cached for the records' TTL on the injected clock, so a cached gateway costs no Deferred: the hops
come back as a plain list (`sbc.waiting.whenReady` joins the two cases). SRV targets are ordered
by priority and, within one priority, by a weighted random draw (RFC 2782), drawn again for every
call so that load spreads as the carrier asked.

When DNS does not answer (a timeout, SERVFAIL) for a name that resolved before, the last good
answer is served stale (RFC 8767) for up to `STALE_LIMIT` past its TTL, asked again every
`NEGATIVE_TTL` seconds, with one rate-limited log line: gateways stay reachable, and whitelisted,
through a DNS outage. An answer that the name has no records (NXDOMAIN) is an answer, not an
outage: it replaces the old one at once.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, FirstError, gatherResults, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger, LogLevel
from twisted.names import dns
from twisted.names.error import DNSNameError
from twisted.python.failure import Failure

from sbc.config.sip import Transport
from sbc.droplog import DropLog

__all__ = ["Hop", "LocateError", "ServerLocator"]


# NAPTR service fields and SRV prefixes per transport (RFC 3263 sections 4.1 and 4.2).
_NAPTR_SERVICES = {b"SIP+D2U": Transport.UDP, b"SIP+D2T": Transport.TCP, b"SIPS+D2T": Transport.TLS}
_SRV_PREFIX = {Transport.UDP: "_sip._udp.", Transport.TCP: "_sip._tcp.", Transport.TLS: "_sips._tcp."}
_DEFAULT_PORT = {Transport.UDP: 5060, Transport.TCP: 5060, Transport.TLS: 5061}
# Without NAPTR records, SRV is asked for each transport we support, in this order.
_SRV_ORDER = (Transport.UDP, Transport.TCP, Transport.TLS)
# How long a failed lookup is remembered, so that a dead name is not asked on every call.
NEGATIVE_TTL = 30.0
# A floor for cached answers: a TTL of 0 would send a query per call.
MINIMUM_TTL = 1.0
# How long past its TTL a good answer is served while DNS does not answer (RFC 8767 suggests
# one to three days; a day, then the name is down until DNS answers again).
STALE_LIMIT = 86400.0


class LocateError(Exception):
    """No hop could be found for a gateway's name: it does not resolve, or DNS did not answer."""


@dataclass(frozen=True, slots=True)
class Hop:
    """One place to send a request to: an address, a port, a transport, and the name it was found by.

    ``name`` is the host the gateway was configured with: a TLS peer's certificate must prove that
    name (RFC 5922 section 4), not the SRV target's.
    """

    host: str
    port: int
    transport: Transport
    name: str


@dataclass(frozen=True, slots=True)
class _Service:
    """One SRV record with the addresses of its target."""

    priority: int
    weight: int
    port: int
    transport: Transport
    addresses: tuple[str, ...]


_Answer = tuple[float, tuple[_Service, ...]]  # (TTL, services in DNS order)
_Stale = tuple[float, float, tuple[_Service, ...]]  # (when it arrived, served until, services)
_Key = tuple[str, int | None, "Transport | None", bool]


def _isAddress(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


_Result = tuple[list[dns.RRHeader], Any, Any]
_P = TypeVar("_P")


def _records(result: _Result, kind: type[_P]) -> list[tuple[_P, int]]:
    """The answer section's records of one type, with their TTLs (the resolver follows CNAMEs)."""
    return [(record.payload, record.ttl) for record in result[0] if isinstance(record.payload, kind)]


def _ttl(ttls: Sequence[int]) -> float:
    return max(MINIMUM_TTL, float(min(ttls, default=NEGATIVE_TTL)))


def _why(failure: Failure) -> str:
    """What went wrong, for the log: the first error of a joined lookup, by its name."""
    while isinstance(failure.value, FirstError):
        failure = failure.value.subFailure
    return failure.getErrorMessage() or getattr(failure.type, "__name__", "no answer")


def _noRecords(failure: Failure) -> _Result:
    """NXDOMAIN is an answer (no records), not an error: the next step of RFC 3263 is tried."""
    failure.trap(DNSNameError)
    return ([], [], [])


class ServerLocator:
    """The RFC 3263 client side on a twisted.names ``IResolver``, with a TTL cache on a clock."""

    log = Logger()

    def __init__(
        self,
        resolver: Any,
        clock: IReactorTime,
        chance: random.Random | None = None,
        sourceLog: DropLog | None = None,
    ) -> None:
        self.resolver = resolver
        self.clock = clock
        self.chance = chance or random.Random()
        self.sourceLog = sourceLog or DropLog(clock)  # one line per name and minute
        self._cache: dict[_Key, _Answer] = {}
        # The last good answer of each name, served stale while DNS does not answer.
        self._good: dict[_Key, _Stale] = {}
        # Lookups under way, with who else waits for each: one query chain per name at a time.
        self._waiting: dict[_Key, list[Deferred[_Answer]]] = {}

    def locate(
        self, host: str, port: int | None = None, transport: Transport | None = None, secure: bool = False
    ) -> list[Hop] | Deferred[list[Hop]]:
        """The hops for a gateway, in the order to try them: now when known, else a Deferred.

        Fails (raises, or errbacks) with `LocateError` when the name has no usable records.
        """
        if secure:
            transport = Transport.TLS
        if _isAddress(host):
            chosen = transport or Transport.UDP
            return [Hop(host.strip("[]"), port or _DEFAULT_PORT[chosen], chosen, host)]
        key = (host.lower(), port, transport, secure)
        cached = self._cache.get(key)
        if cached is not None and cached[0] > self.clock.seconds():
            return self._hops(host, cached[1])
        waiters = self._waiting.get(key)
        if waiters is not None:  # the same name is being looked up already: wait for that answer
            waiter: Deferred[_Answer] = Deferred()
            waiters.append(waiter)
            return waiter.addCallback(lambda answer: self._hops(host, answer[1]))
        self._waiting[key] = []
        d = self._lookup(host, port, transport, secure)
        d.addCallbacks(self._answered, self._unanswered, callbackArgs=(key,), errbackArgs=(host, key))
        return d.addCallback(self._remember, key, host)

    def forget(self) -> None:
        """Drop every cached answer (a reload may point a name elsewhere); the last good ones
        stay, to be served stale should DNS not answer the new lookups."""
        self._cache.clear()
        now = self.clock.seconds()
        self._good = {key: good for key, good in self._good.items() if good[1] > now}

    def _answered(self, answer: _Answer, key: _Key) -> _Answer:
        """DNS answered: the answer is the last good one now (none, when the name has no records)."""
        if answer[1]:
            now = self.clock.seconds()
            self._good[key] = (now, now + answer[0] + STALE_LIMIT, answer[1])
        else:
            self._good.pop(key, None)
        return answer

    def _unanswered(self, failure: Failure, host: str, key: _Key) -> _Answer:
        """DNS did not answer (timeout, SERVFAIL): the last good answer, served stale for
        `NEGATIVE_TTL` seconds at a time; without one, no hops for a while, like NXDOMAIN."""
        now = self.clock.seconds()
        good = self._good.get(key)
        if good is None or good[1] <= now:
            self._good.pop(key, None)
            return (NEGATIVE_TTL, ())
        self.sourceLog.emit(
            self.log,
            LogLevel.warn,
            host,
            "DNS did not answer for {name} ({why}): its last answer, {age} s old, is used meanwhile",
            name=host,
            why=_why(failure),
            age=round(now - good[0]),
        )
        return (NEGATIVE_TTL, good[2])

    def _remember(self, answer: _Answer, key: _Key, host: str) -> list[Hop]:
        self._cache[key] = (self.clock.seconds() + answer[0], answer[1])
        for waiter in self._waiting.pop(key, ()):
            waiter.callback(answer)
        return self._hops(host, answer[1])

    def _hops(self, host: str, services: tuple[_Service, ...]) -> list[Hop]:
        if not services:
            raise LocateError(f"{host} does not resolve")
        hops: list[Hop] = []
        for service in self._ordered(services):
            hops.extend(Hop(address, service.port, service.transport, host) for address in service.addresses)
        return hops

    def _ordered(self, services: tuple[_Service, ...]) -> list[_Service]:
        """RFC 2782: lowest priority first; within one, a weighted random draw, each pick removed."""
        ordered: list[_Service] = []
        for priority in sorted({service.priority for service in services}):
            pool = [service for service in services if service.priority == priority]
            while pool:
                total = sum(service.weight for service in pool)
                if total == 0:
                    ordered.extend(pool)
                    break
                # Zero-weight records first in the running sum, as RFC 2782 says, so they get a
                # small chance and are otherwise tried last.
                pool.sort(key=lambda service: service.weight != 0)
                point = self.chance.randint(0, total)
                running = 0
                for index, service in enumerate(pool):
                    running += service.weight
                    if running >= point:
                        ordered.append(pool.pop(index))
                        break
        return ordered

    # --- the lookups ------------------------------------------------------------------------

    def _lookup(
        self, host: str, port: int | None, transport: Transport | None, secure: bool
    ) -> Deferred[_Answer]:
        if port is not None:
            # Section 4.2: an explicit port means A/AAAA on the host itself.
            return self._addresses(host, port, transport or Transport.UDP, None)
        if transport is not None:
            return self._srv(host, [transport]).addCallback(self._orAddresses, host, transport)
        d: Deferred[_Result] = self.resolver.lookupNamingAuthorityPointer(host).addErrback(_noRecords)
        return d.addCallback(self._naptr, host, secure)

    def _naptr(self, result: _Result, host: str, secure: bool) -> Deferred[_Answer]:
        """Section 4.1: the best NAPTR whose transport we support names the SRV domain to ask."""
        usable: list[tuple[int, int, Transport, str, int]] = []
        for naptr, ttl in _records(result, dns.Record_NAPTR):
            service = _NAPTR_SERVICES.get(naptr.service.string.upper())
            if service is None or naptr.flags.string.lower() != b"s":
                continue
            if secure and service is not Transport.TLS:
                continue
            usable.append((naptr.order, naptr.preference, service, naptr.replacement.name.decode(), ttl))
        if usable:
            usable.sort(key=lambda item: (item[0], item[1]))
            _, _, transport, replacement, ttl = usable[0]
            d = self._services(replacement, transport)
            return d.addCallback(self._orAddresses, host, transport, ttl)
        order = [Transport.TLS] if secure else list(_SRV_ORDER)
        return self._srv(host, order).addCallback(self._orAddresses, host, order[0])

    def _srv(self, host: str, transports: list[Transport]) -> Deferred[_Answer]:
        """SRV for each transport in turn; the first that has records wins (section 4.1)."""
        transport, rest = transports[0], transports[1:]
        d = self._services(_SRV_PREFIX[transport] + host, transport)
        if rest:
            d.addCallback(lambda answer: answer if answer[1] else self._srv(host, rest))
        return d

    def _services(self, name: str, transport: Transport) -> Deferred[_Answer]:
        d: Deferred[_Result] = self.resolver.lookupService(name).addErrback(_noRecords)
        return d.addCallback(self._targets, transport)

    def _targets(self, result: _Result, transport: Transport) -> Deferred[_Answer]:
        # A target of "." says the service is decidedly not available (RFC 2782).
        records = [
            (srv, ttl) for srv, ttl in _records(result, dns.Record_SRV) if srv.target.name not in (b"", b".")
        ]
        if not records:
            return succeed((NEGATIVE_TTL, ()))
        ttl = _ttl([ttl for _, ttl in records])
        lookups = [self._addresses(srv.target.name.decode(), srv.port, transport, srv) for srv, _ in records]

        def joined(answers: list[_Answer]) -> _Answer:
            services = tuple(service for answer in answers for service in answer[1])
            return (min([ttl, *(answer[0] for answer in answers)]), services)

        return gatherResults(lookups, consumeErrors=True).addCallback(joined)

    def _orAddresses(
        self, answer: _Answer, host: str, transport: Transport, ttl: float | None = None
    ) -> _Answer | Deferred[_Answer]:
        """Section 4.2: no SRV records means A/AAAA on the host at the transport's default port."""
        if answer[1]:
            return answer if ttl is None else (min(answer[0], max(MINIMUM_TTL, ttl)), answer[1])
        return self._addresses(host, _DEFAULT_PORT[transport], transport, None)

    def _addresses(
        self, host: str, port: int, transport: Transport, srv: dns.Record_SRV | None
    ) -> Deferred[_Answer]:
        """A and AAAA records of ``host``, as one service (the SRV record's priority and weight)."""
        if _isAddress(host):
            return succeed((NEGATIVE_TTL, (_Service(0, 0, port, transport, (host.strip("[]"),)),)))
        v4: Deferred[_Result] = self.resolver.lookupAddress(host).addErrback(_noRecords)
        v6: Deferred[_Result] = self.resolver.lookupIPV6Address(host).addErrback(_noRecords)

        def joined(results: list[_Result]) -> _Answer:
            found = [(a.dottedQuad(), ttl) for a, ttl in _records(results[0], dns.Record_A)]
            for aaaa, ttl in _records(results[1], dns.Record_AAAA):
                found.append((str(ipaddress.IPv6Address(aaaa.address)), ttl))
            addresses = tuple(dict.fromkeys(address for address, _ in found))
            if not addresses:
                return (NEGATIVE_TTL, ())
            priority, weight = (srv.priority, srv.weight) if srv is not None else (0, 0)
            service = _Service(priority, weight, port, transport, addresses)
            return (_ttl([ttl for _, ttl in found]), (service,))

        return gatherResults([v4, v6], consumeErrors=True).addCallback(joined)
