"""A trunk's gateways as the hops a call tries, and the pings that keep their health.

`Gateways.hops` orders a trunk's gateways (lowest priority first, a weighted draw within one, as
RFC 2782 orders SRV records), resolves each through `ServerLocator` (RFC 3263; cached for the
TTL, so a known answer is a plain list, joined with `sbc.waiting`), and leaves out what cannot be
used: a gateway that does not resolve (one rate-limited log line; it shows as down), a hop over
a transport we cannot open (TCP or TLS without a listener of that transport to name in our Via),
and a gateway that the pings say is down. Each hop left is one failover step. `Gateways.reach`
says what a hop is sent on: our UDP socket, or a TCP/TLS connection from
`sbc.transport.outbound` (TLS verifying the name the gateway must prove, `serverName`).

`GatewayWatch` pings the gateways of every trunk with a ``ping_interval`` (its own interval and
``ping_misses``), resolving names as calls do, and says each gateway's state for sbc-ctl and the
metrics.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path

from netaddr import IPNetwork
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from sbc.access import TRUNK, AccessPolicy, Peer
from sbc.addresses import addressOf, hostport
from sbc.config import Config, Trunk
from sbc.config.gateways import Gateway
from sbc.config.sip import Transport
from sbc.droplog import DropLog
from sbc.interfaces import Address, ISIPTransport
from sbc.locate import Hop, LocateError, ServerLocator
from sbc.prefixes import Entry
from sbc.routing.health import GatewayHealth, GatewayState
from sbc.transport.outbound import OutboundStreams
from sbc.waiting import Maybe, whenAllReady, whenReady

__all__ = ["Admitted", "GatewayAccess", "GatewayWatch", "Gateways", "ordered", "withAdmitted"]

# The name of each gateway's up/down gauge, before its labels.
GAUGE = "gateway_up"
_UDP_ONLY = frozenset({Transport.UDP})


def ordered(gateways: Sequence[Gateway], chance: random.Random) -> list[Gateway]:
    """Lowest priority first; within one priority, a weighted draw (RFC 2782), zero weights last
    and in file order (so that gateways without weights keep the order they are written in)."""
    result: list[Gateway] = []
    for priority in sorted({gateway.priority for gateway in gateways}):
        pool = [gateway for gateway in gateways if gateway.priority == priority]
        weighted = [gateway for gateway in pool if gateway.weight > 0]
        while weighted:
            point = chance.randint(1, sum(gateway.weight for gateway in weighted))
            running = 0
            for index, gateway in enumerate(weighted):
                running += gateway.weight
                if running >= point:
                    result.append(weighted.pop(index))
                    break
        result.extend(gateway for gateway in pool if gateway.weight == 0)
    return result


class Gateways:
    """Turns a trunk's gateways into the hops to try: ordered, resolved, unusable ones left out."""

    log = Logger()

    def __init__(
        self,
        locator: ServerLocator,
        sourceLog: DropLog,
        health: GatewayHealth | None = None,
        chance: random.Random | None = None,
    ) -> None:
        self.locator = locator
        self.sourceLog = sourceLog
        self.health = health
        self.chance = chance or random.Random()
        self.unresolved: set[Gateway] = set()  # gateways whose last lookup found nothing
        # What hops are sent on: the UDP socket (set once it is bound) and our TCP/TLS connections.
        self.datagram: ISIPTransport | None = None
        self.streams: OutboundStreams | None = None

    @property
    def reachable(self) -> frozenset[Transport]:
        """The transports a gateway can be reached over: UDP, and the stream ones we can open."""
        streams = self.streams
        return _UDP_ONLY if streams is None else _UDP_ONLY | streams.transports

    def reach(self, trunk: Trunk, hop: Hop) -> ISIPTransport | None:
        """What a request to ``hop`` is sent on (None: no way there)."""
        if hop.transport is Transport.UDP:
            return self.datagram
        if self.streams is None:
            return None
        return self.streams.stream(hop.transport, (hop.host, hop.port), serverName(trunk, hop), trunk.name)

    def hops(self, trunk: Trunk) -> Maybe[list[Hop]]:
        """Every usable hop of ``trunk``, in order: a list at once when every name is cached."""
        found = [self.resolve(trunk, gateway) for gateway in ordered(trunk.gateways, self.chance)]
        results: list[list[Hop]] = [answer if isinstance(answer, list) else [] for answer in found]

        def joined() -> list[Hop]:
            return [hop for hops in results for hop in hops if self.usable(trunk, hop)]

        pending = [answer for answer in found if isinstance(answer, Deferred)]
        if not pending:
            return joined()

        def keep(hops: list[Hop], index: int) -> None:
            results[index] = hops

        for index, answer in enumerate(found):
            if isinstance(answer, Deferred):
                answer.addCallback(keep, index)
        done: Deferred[list[Hop]] = Deferred()
        whenAllReady(pending, lambda: done.callback(joined()))
        return done

    def resolve(self, trunk: Trunk, gateway: Gateway) -> Maybe[list[Hop]]:
        """``gateway``'s hops (none when it does not resolve: logged, and remembered as down)."""

        def found(hops: list[Hop]) -> list[Hop]:
            self.unresolved.discard(gateway)
            return hops

        def failed(failure: Failure) -> list[Hop]:
            failure.trap(LocateError)
            self.unresolved.add(gateway)
            self.sourceLog.info(
                self.log,
                gateway.host,
                "trunk {trunk}: gateway {gateway} skipped: {why}",
                trunk=trunk.name,
                gateway=str(gateway),
                why=failure.getErrorMessage(),
            )
            return []

        try:
            transport = gateway.transport
            answer = self.locator.locate(gateway.host, gateway.port, transport)
        except LocateError:
            return failed(Failure())
        return whenReady(answer, found, failed)

    def usable(self, trunk: Trunk, hop: Hop) -> bool:
        """Whether a call may go to ``hop``: a transport we can open, and not down."""
        if hop.transport not in self.reachable:
            self.sourceLog.info(
                self.log,
                hop.host,
                "trunk {trunk}: gateway {name} at {host}:{port} skipped: no {transport} listener",
                trunk=trunk.name,
                name=hop.name,
                host=hop.host,
                port=hop.port,
                transport=str(hop.transport),
            )
            return False
        return self.health is None or self.health.isUp((hop.host, hop.port))


def serverName(trunk: Trunk, hop: Hop) -> str:
    """The name a TLS gateway's certificate must prove: the host name it is configured by (RFC 5922
    section 4: the name, never the SRV target or the address it resolved to); for a gateway given
    by address, the trunk's first ``tls_identities`` name if it has one, else the address itself."""
    if addressOf(hop.name) is None:
        return hop.name
    return trunk.tlsIdentities[0] if trunk.tlsIdentities else hop.host


# whitelist_gateways' addresses: each -> its trunk and the entry naming the DNS name it came from.
Admitted = Mapping[str, tuple[Peer, Entry]]


def withAdmitted(config: Config, admitted: Admitted) -> Config:
    """``config`` whose access policy also admits ``admitted`` (the files' own policy when empty)."""
    return replace(config, access=GatewayAccess(config.access, admitted)) if admitted else config


class GatewayAccess(AccessPolicy):
    """The whitelists, plus the addresses that trunks' gateway names resolve to (for trunks that
    say ``whitelist_gateways = true``). The files come first: a resolved address admits only a
    source that no whitelist names, so DNS can never take a source from another trunk."""

    __slots__ = ("base", "gateways")

    def __init__(self, base: AccessPolicy, gateways: Admitted) -> None:
        super().__init__({})
        self.base = base
        self.gateways = dict(gateways)

    def why(self, host: str) -> tuple[Peer, Entry] | None:
        """The whitelists' answer; else the trunk whose gateway name resolves to ``host``."""
        found = self.base.why(host)
        if found is not None or not self.gateways:
            return found
        address = addressOf(host)
        return None if address is None else self.gateways.get(address)


class GatewayWatch:
    """Pings each trunk's gateways every ``ping_interval`` (``tick`` runs on a one-second timer)."""

    log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        gateways: Gateways,
        health: GatewayHealth,
        config: Config,
        gauges: dict[str, Callable[[], int]] | None = None,
    ) -> None:
        self.clock = clock
        self.gateways = gateways
        self.health = health
        self.config = config
        # The metrics' gauges: ``gateways_down``, and ``gateway_up{trunk=..,gateway=..}`` (1 or 0)
        # for each gateway watched, kept in step as trunks are reloaded and names re-resolved.
        self.gauges = gauges if gauges is not None else {}
        self.gauges["gateways_down"] = self.down
        self._due: dict[str, float] = {}  # trunk name -> when its next pings go out
        self._addresses: dict[str, dict[Address, int]] = {}  # trunk -> its hops' addresses -> misses
        # Each pinged address -> the trunk and hop it was found for: what `transportFor` reaches it by.
        self.hops: dict[Address, tuple[Trunk, Hop]] = {}
        # whitelist_gateways: each resolved address -> its trunk and the name it came from, as
        # applied; and who applies a change (the server swaps its access policy). ``admitted``
        # changes only once that succeeded, so a failed swap is tried again at the next tick.
        self.admitted: Admitted = {}
        self.onAdmitted: Callable[[Admitted], None] | None = None
        self.setConfig(config)

    def setConfig(self, config: Config) -> None:
        """Watch the gateways of ``config``'s trunks that ask for pings (after a load or reload)."""
        self.config = config
        pinged = {trunk.name for trunk in config.trunks if trunk.pingInterval is not None}
        self._due = {name: self._due.get(name, self.clock.seconds()) for name in pinged}
        self._addresses = {name: self._addresses.get(name, {}) for name in pinged}
        self._watch()
        self._publish()

    def tick(self) -> None:
        """Resolve and ping the gateways of every trunk whose interval has come round."""
        self._admit()
        now = self.clock.seconds()
        for trunk in self.config.trunks:
            interval = trunk.pingInterval
            if interval is None or self._due.get(trunk.name, now) > now:
                continue
            self._due[trunk.name] = now + interval
            self._refresh(trunk)

    def _admit(self) -> None:
        """Resolve the gateway names of trunks with ``whitelist_gateways`` (cached until the TTL
        runs out, so mostly no query), and tell ``onAdmitted`` when their addresses change."""
        admitted: dict[str, tuple[Peer, Entry]] = {}
        answers: list[Maybe[list[Hop]]] = []
        for trunk in self.config.trunks:
            if not trunk.whitelistGateways:
                continue
            peer = Peer(TRUNK, trunk.name)
            for gateway in trunk.gateways:
                if addressOf(gateway.host) is not None:
                    continue  # an address gateway is for the whitelist files to name

                def add(hops: list[Hop], peer: Peer = peer, gateway: Gateway = gateway) -> None:
                    for hop in hops:
                        entry = Entry(IPNetwork(hop.host), Path(f"dns:{gateway.host}"))
                        admitted.setdefault(hop.host, (peer, entry))

                answer = self.gateways.resolve(trunk, gateway)
                whenReady(answer, add)
                answers.append(answer)

        def ready() -> None:
            if admitted == self.admitted:
                return
            if self.onAdmitted is not None:
                try:
                    self.onAdmitted(admitted)
                except Exception:
                    self.log.failure("gateway addresses not applied; tried again at the next tick")
                    return
            self.admitted = admitted

        whenAllReady(answers, ready)

    def _refresh(self, trunk: Trunk) -> None:
        answers = [self.gateways.resolve(trunk, gateway) for gateway in trunk.gateways]
        addresses: dict[Address, int] = {}
        found: dict[Address, tuple[Trunk, Hop]] = {}

        def add(hops: list[Hop]) -> None:
            for hop in hops:
                if hop.transport in self.gateways.reachable:
                    addresses[(hop.host, hop.port)] = trunk.pingMisses
                    found[(hop.host, hop.port)] = (trunk, hop)

        for answer in answers:
            whenReady(answer, add)

        def ready() -> None:
            if trunk.name not in self._addresses:  # reloaded away meanwhile
                return
            self._addresses[trunk.name] = addresses
            self.hops = {a: h for a, h in self.hops.items() if h[0].name != trunk.name and self._pinged(a)}
            self.hops.update(found)
            self._watch()
            self._publish()
            self.health.ping(addresses)

        whenAllReady(answers, ready)

    def _pinged(self, address: Address) -> bool:
        return any(address in addresses for addresses in self._addresses.values())

    def transportFor(self, address: Address) -> ISIPTransport | None:
        """What the pings to ``address`` go on: the transport its hop was found with."""
        found = self.hops.get(address)
        if found is None:
            return self.gateways.datagram
        return self.gateways.reach(*found)

    def _watch(self) -> None:
        wanted: dict[Address, int] = {}
        for addresses in self._addresses.values():
            for address, misses in addresses.items():
                wanted[address] = min(misses, wanted.get(address, misses))
        self.health.watch(wanted)

    def states(self) -> dict[str, dict[str, str]]:
        """Per pinged trunk, each gateway's state ("up" or "down"; a name that does not resolve
        is down), by ``host:port`` (and by its configured name when it does not resolve)."""
        health = self.health.states()
        result: dict[str, dict[str, str]] = {}
        for trunk in self.config.trunks:
            addresses = self._addresses.get(trunk.name)
            if addresses is None:
                continue
            states = {hostport(address): str(health.get(address, GatewayState.UP)) for address in addresses}
            for gateway in trunk.gateways:
                if gateway in self.gateways.unresolved:
                    states[str(gateway)] = str(GatewayState.DOWN)
            result[trunk.name] = states
        return result

    def _publish(self) -> None:
        for name in [name for name in self.gauges if name.startswith(GAUGE)]:
            del self.gauges[name]
        for trunk, states in self.states().items():
            for gateway in states:
                self.gauges[f'{GAUGE}{{trunk="{trunk}",gateway="{gateway}"}}'] = partial(
                    self._up, trunk, gateway
                )

    def _up(self, trunk: str, gateway: str) -> int:
        return int(self.states().get(trunk, {}).get(gateway) == GatewayState.UP)

    def down(self) -> int:
        """How many gateways are down now (a metric)."""
        states = self.states().values()
        return sum(state == GatewayState.DOWN for trunk in states for state in trunk.values())
