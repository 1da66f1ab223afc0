"""Builds a call's legs from explicit inputs: A's dialog from its INVITE, and fresh B-legs (ours
from Call-ID to Contact) towards a trunk's gateways or a user's registered contacts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from sbc.access import TRUNK
from sbc.addresses import bracket
from sbc.calls.parties import Party, PartyKind, Sides
from sbc.calls.policy import copyHeaders
from sbc.config import Config, Transport, Trunk
from sbc.dialog import Leg, newCallId, newTag
from sbc.droplog import DropLog
from sbc.interfaces import Address, ISIPTransport
from sbc.locate import Hop
from sbc.media.bodies import putBody
from sbc.registrar.location import Binding
from sbc.routing import Target, TrunkTarget, UserTarget
from sbc.routing.gateways import Gateways
from sbc.sip.message import Request
from sbc.sip.uri import URI, parseURI
from sbc.transaction import ServerTransaction
from sbc.transaction.lifecycle import SPENT
from sbc.waiting import whenReady

__all__ = ["Attempt", "LegFactory", "LegInputs", "Legs"]

# The legs of one attempt: at once for a trunk's gateway, later for a location lookup.
Legs = list[tuple[Leg, Request]] | Deferred[list[tuple[Leg, Request]]]


class LegInputs:
    """What one call's B-legs are built from: A's INVITE, the caller's user, the two ends' trunks,
    and the SDP offer the B side gets (ours, once anchored)."""

    __slots__ = ("body", "fromUser", "original", "sides")

    def __init__(self, original: Request, fromUser: str, sides: Sides, body: bytes | None) -> None:
        self.original = original
        self.fromUser = fromUser
        self.sides = sides
        self.body = body

    def release(self) -> None:
        """No more legs will be built: let A's parsed INVITE go (a held call keeps only what it needs)."""
        self.original = SPENT
        self.body = None


class Attempt:
    """One target to try: its CDR party, its trunk (None for a user), and the legs to place.
    ``stepwise`` legs (a trunk's gateways, once DNS answered) are tried one at a time."""

    __slots__ = ("legs", "party", "stepwise", "trunk")

    def __init__(self, party: Party, trunk: Trunk | None, legs: Legs, stepwise: bool = False) -> None:
        self.party = party
        self.trunk = trunk
        self.legs = legs
        self.stepwise = stepwise


class LegFactory:
    """Makes legs. ``datagram`` is the UDP transport trunk gateways are reached on (the first UDP
    listener); ``lookup`` and ``flowOf`` find a user's bindings and the flow each is reached on."""

    log = Logger()

    def __init__(
        self,
        config: Config,
        lookup: Callable[[str], Deferred[list[Binding]]],
        flowOf: Callable[[Binding], tuple[ISIPTransport, Address] | None],
        sourceLog: DropLog,
        gateways: Gateways,
    ) -> None:
        self.config = config
        self.lookup = lookup
        self.flowOf = flowOf
        self.sourceLog = sourceLog
        # A trunk's gateways as hops (ordered, resolved, the down ones left out) and how each is reached.
        self.gateways = gateways

    @property
    def datagram(self) -> ISIPTransport | None:
        """Our UDP socket, which trunk gateways without a stream transport are reached on."""
        return self.gateways.datagram

    @datagram.setter
    def datagram(self, transport: ISIPTransport | None) -> None:
        self.gateways.datagram = transport

    def aLeg(self, request: Request, transaction: ServerTransaction) -> Leg:
        """The caller's dialog, as the UAS of its INVITE (RFC 3261 section 12.1.1)."""
        fromAddr = request.fromHeader()
        contacts = request.contacts()
        return Leg(
            callId=request.callId,
            localTag=newTag(),
            localUri=str(request.toHeader().uri),
            remoteUri=str(fromAddr.uri),
            remoteTag=fromAddr.tag,
            remoteTarget=contacts[0].uri if contacts else fromAddr.uri,
            transport=transaction.transport,
            address=transaction.source,
            remoteSeq=request.cseq().number,
            routeSet=tuple(request.headers.getAll("record-route")),
        )

    def attempts(self, targets: tuple[Target, ...], inputs: LegInputs) -> Iterator[Attempt]:
        """Each target as an `Attempt`, lazily: a gateway's leg is only built when it is tried."""
        for target in targets:
            if isinstance(target, TrunkTarget):
                trunk = self.config.trunk(target.trunk)
                if trunk is None:
                    continue
                yield from self.trunkAttempts(trunk, target.number, inputs)
            elif isinstance(target, UserTarget):
                yield self.userAttempt(target.aor, inputs)

    def trunkAttempts(self, trunk: Trunk, number: str, inputs: LegInputs) -> Iterator[Attempt]:
        """One attempt per usable hop of ``trunk``'s gateways; while DNS is asked, one stepwise
        attempt whose legs (a hop each) come when it answers."""
        party = Party(PartyKind.TRUNK, trunk.name)
        hops = self.gateways.hops(trunk)
        if isinstance(hops, list):
            for hop in hops:
                yield Attempt(party, trunk, [self.trunkLeg(trunk, number, hop, inputs)])
            return

        def found(hops: list[Hop]) -> list[tuple[Leg, Request]]:
            return [self.trunkLeg(trunk, number, hop, inputs) for hop in hops]

        yield Attempt(party, trunk, whenReady(hops, found), stepwise=True)

    def userAttempt(self, aor: str, inputs: LegInputs) -> Attempt:
        """A user's contacts, once the location store has them."""

        def found(bindings: list[Binding]) -> list[tuple[Leg, Request]]:
            return self.userLegs(bindings, inputs, aor)

        return Attempt(Party(PartyKind.USER, aor), None, whenReady(self.lookup(aor), found))

    def userLegs(self, bindings: list[Binding], inputs: LegInputs, aor: str) -> list[tuple[Leg, Request]]:
        """A B-leg to each binding of ``aor`` that has a flow to reach it on."""
        legs = []
        for binding in bindings:
            flow = self.flowOf(binding)
            if flow is None:
                continue
            transport, address = flow
            target = replace(parseURI(binding.contact), headers=None)
            legs.append(self.bLeg(transport, address, target, f"sip:{aor}", None, inputs))
        return legs

    def trunkLeg(self, trunk: Trunk, number: str, hop: Hop, inputs: LegInputs) -> tuple[Leg, Request]:
        """A B-leg to one gateway of ``trunk``: over our UDP socket, or a TCP/TLS connection to it."""
        transport = self.gateways.reach(trunk, hop)
        if transport is None:
            raise RuntimeError(f"no {hop.transport} transport to reach trunk gateways on")
        host = bracket(hop.host)
        user = userPart(number)
        params = () if hop.transport is Transport.UDP else (("transport", str(hop.transport)),)
        target = URI("sip", user=user, host=host, port=hop.port, params=params)
        return self.bLeg(transport, (hop.host, hop.port), target, f"sip:{user}@{host}", trunk, inputs)

    def bLeg(
        self,
        transport: ISIPTransport,
        address: Address,
        target: URI,
        toUri: str,
        trunk: Trunk | None,
        inputs: LegInputs,
    ) -> tuple[Leg, Request]:
        """A fresh B-leg and its INVITE: our Call-ID, tag, CSeq, Via and Contact; A's identity only
        by name; the headers policy passes; the anchored SDP (and ISUP between trunks that pass it)."""
        original = inputs.original
        leg = Leg(
            callId=newCallId(),
            localTag=newTag(),
            localUri=f"sip:{userPart(inputs.fromUser) or 'anonymous'}@{bracket(transport.localAddress[0])}",
            remoteUri=toUri,
            remoteTarget=target,
            transport=transport,
            address=address,
        )
        invite = leg.request("INVITE")
        display = original.fromHeader().display
        if display:
            invite.headers.set("From", f"{display} <{leg.localUri}>;tag={leg.localTag}")
        maxForwards = original.headers.get("max-forwards")
        if maxForwards is not None:
            invite.headers.set("Max-Forwards", str(max(0, min(int(maxForwards), 70) - 1)))
        sides = inputs.sides
        copyHeaders(
            original.headers,
            invite.headers,
            fromTrusted=Sides.trusted(sides.a),
            toTrusted=Sides.trusted(trunk),
            extra=sides.passA,
        )
        invite.headers.add("Supported", "100rel")
        invite.headers.add("User-Agent", self.config.sip.serverName)
        putBody(invite, original, inputs.body or None, isup=sides.isup(trunk))
        return leg, invite

    def followRouteSet(self, leg: Leg, trunk: Trunk | None) -> None:
        """Requests in a trunk's dialog go to its first route (RFC 3261 section 12.2.1.1) when that
        is an address of the same trunk's whitelist, so that its answers are admitted. A device keeps
        its flow (its NAT binding), and a stream its connection."""
        if trunk is None or leg.transport.reliable:
            return
        hop = leg.nextHop()
        if hop == leg.address or (hop is None and not leg.routeSet):
            return
        if hop is None:
            why = "names no address"
        else:
            peer = self.config.access.classify(hop[0])
            if peer is not None and peer.kind == TRUNK and peer.name == trunk.name:
                leg.address = hop
                return
            why = f"is outside trunk {trunk.name}"
        self.sourceLog.info(
            self.log,
            leg.address[0],
            "route {route} {why}: in-dialog requests go to {address}",
            route=leg.routeSet[0],
            why=why,
            address=leg.address,
        )


_USER_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()&=+$,;?/")


def userPart(text: str) -> str:
    """A user part safe to write into a URI we build: escape what the grammar forbids."""
    if _USER_CHARS.issuperset(text):
        return text
    return "".join(ch if ch in _USER_CHARS else f"%{ord(ch):02X}" for ch in text)
