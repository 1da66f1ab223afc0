"""Requests inside a call's dialogs: each one answered here (BYE, PRACK, refusals) or relayed to
the other leg as a request of that leg's own dialog (re-INVITE, UPDATE, INFO, REFER ...), its SDP
through the call's media, and the answer relayed back the same way."""

from __future__ import annotations

from collections.abc import Callable

from twisted.python.failure import Failure
from zope.interface import implementer

from sbc.calls.admission import readable
from sbc.calls.caller import CallerSide
from sbc.calls.context import CallContext
from sbc.calls.media import CallMedia, statusFor
from sbc.calls.parties import Side, Sides
from sbc.calls.policy import copyHeaders, standardReason
from sbc.config import Refer
from sbc.dialog import Leg
from sbc.interfaces import IClientTransactionUser
from sbc.media.bodies import putBody, sdpOf, unreadable
from sbc.sip.message import Request, Response, responseTo
from sbc.transaction import ClientTransaction, ServerTransaction

__all__ = ["RELAYED_IN_DIALOG", "DialogRelay", "RelayedRequest"]

RELAYED_IN_DIALOG = ("INVITE", "UPDATE", "INFO", "OPTIONS", "MESSAGE", "NOTIFY")
_SESSION = ("INVITE", "UPDATE")  # the methods relayed here that carry an offer (RFC 3264)


class DialogRelay:
    """The two dialogs of one call, joined: A's from the start, B's once the call is answered
    (`connect`). It tells the call only that a leg said BYE (``onBye``)."""

    __slots__ = ("a", "b", "caller", "context", "media", "onBye", "sides", "toA", "toB")

    def __init__(
        self, context: CallContext, a: Leg, caller: CallerSide, sides: Sides, onBye: Callable[[Leg], object]
    ) -> None:
        self.context = context
        self.a = a
        self.b: Leg | None = None
        self.caller = caller
        self.sides = sides
        self.onBye = onBye
        self.media: CallMedia | None = None
        # Offers (INVITE, UPDATE) we relayed towards each leg and that await their answer: a new
        # offer from that leg meanwhile is glare (491, RFC 3261 section 14.2).
        self.toA = 0
        self.toB = 0

    def connect(self, b: Leg, media: CallMedia) -> None:
        """The call is answered on ``b``: requests now cross."""
        self.b = b
        self.media = media

    def disconnect(self) -> None:
        """The call is over (or its answer failed): nothing crosses any more."""
        self.b = None

    def trusted(self, leg: Leg) -> bool:
        """Whether the party on ``leg`` (A, or the answered B) is a trusted trunk."""
        return Sides.trusted(self.sides.a if leg is self.a else self.sides.b)

    def side(self, leg: Leg) -> Side:
        """Which end ``leg`` is."""
        return Side.A if leg is self.a else Side.B

    def carry(self, target: Request | Response, source: Request | Response, sdp: bytes | None) -> None:
        """Put on ``target`` what of ``source``'s body crosses: the (anchored) SDP, and ISUP only
        between two trunks that pass it."""
        putBody(target, source, sdp, isup=self.sides.isup(self.sides.b))

    def receive(self, request: Request, transaction: ServerTransaction, leg: Leg) -> None:
        """A request in ``leg``'s dialog."""
        respond = self.context.respond
        method = request.method
        cseq = request.cseq().number
        if cseq <= leg.remoteSeq:
            respond(transaction, 500, reason="CSeq out of order")
            return
        leg.remoteSeq = cseq
        if method in ("INVITE", "UPDATE", "PRACK") and not readable(request, transaction, respond):
            return
        if method == "BYE":
            respond(transaction, 200)
            self.onBye(leg)
            return
        if method == "PRACK":
            respond(transaction, self.caller.prack(request) if leg is self.a else 481)
            return
        b = self.b
        media = self.media
        if b is None or media is None:
            respond(transaction, 481)
            return
        other = b if leg is self.a else self.a
        if method == "REFER" and not self._refersRelayed(leg):
            respond(transaction, 403, reason="REFER not allowed")
            return
        if method not in RELAYED_IN_DIALOG and method != "REFER":
            respond(transaction, 501)
            return
        session = method in _SESSION
        if session and (self.toA if leg is self.a else self.toB):
            respond(transaction, 491)  # glare: we are still offering on this leg
            return
        if session and leg is self.a:
            self.caller.refreshed()  # A refreshed the session (RFC 4028)
        forward = other.request(method)
        copyHeaders(
            request.headers, forward.headers, fromTrusted=self.trusted(leg), toTrusted=self.trusted(other)
        )
        forward.headers.add("User-Agent", self.context.serverName)
        relayed = RelayedRequest(self, transaction, request, forward, other, leg)
        # Only INVITE and UPDATE (of the methods relayed here) carry an offer; any other method's
        # body (INFO, MESSAGE: SIP-I, DTMF) crosses as it came, with its own type.
        body = sdpOf(request) if session else None
        if body is None:
            media.after(relayed.sendPlain)
        else:
            media.offer(self.side(leg), body, relayed.send, relayed.refused)

    def _refersRelayed(self, leg: Leg) -> bool:
        """REFER crosses only from a trunk configured with ``refer = "relay"``."""
        trunk = self.sides.a if leg is self.a else self.sides.b
        return trunk is not None and trunk.refer is Refer.RELAY

    def offering(self, target: Leg, change: int) -> None:
        """Count an offer relayed towards ``target`` (+1) or answered (-1)."""
        if target is self.a:
            self.toA += change
        else:
            self.toB += change


@implementer(IClientTransactionUser)
class RelayedRequest:
    """An in-dialog request relayed to the other leg: sends it, and answers the source's server
    transaction with the other leg's final answer (and INVITE's 18x)."""

    __slots__ = ("answered", "forward", "method", "relay", "request", "source", "target", "transaction")

    def __init__(
        self,
        relay: DialogRelay,
        transaction: ServerTransaction,
        request: Request,
        forward: Request,
        target: Leg,
        source: Leg,
    ) -> None:
        self.relay = relay
        self.transaction = transaction
        self.request = request
        self.forward = forward
        self.method = request.method
        self.target = target
        self.source = source
        self.answered = False  # a final answer came: a retransmitted 2xx changes nothing

    def sendPlain(self) -> None:
        """Send a request without SDP: the body crosses as it came (INFO, MESSAGE ...)."""
        self.send(None)

    def send(self, anchored: bytes | None) -> None:
        """Send the request on, with the anchored SDP, once media is done with it."""
        relay = self.relay
        if relay.b is None:
            relay.context.respond(self.transaction, 481)
            return
        forward, target = self.forward, self.target
        if self.method in _SESSION:
            relay.carry(forward, self.request, anchored)
            relay.offering(target, 1)
        else:
            forward.setBody(self.request.body if anchored is None else anchored)
        relay.context.transactions.sendRequest(forward, target.transport, target.address, self)

    def refused(self, failure: Failure) -> None:
        """Media refused the offer: the source gets the status for why."""
        status, extra = statusFor(failure)
        self.relay.context.respond(self.transaction, status, extra=extra)

    def responseReceived(self, response: Response, transaction: ClientTransaction) -> None:
        """The other leg answered."""
        status = response.status
        if status == 100 or (status < 200 and self.method != "INVITE") or self.answered:
            return
        relay = self.relay
        session = self.method in _SESSION
        if status >= 200:
            self.answered = True
            if session:
                relay.offering(self.target, -1)
        if self.method == "INVITE" and 200 <= status < 300:
            self.target.refresh(response)  # a target refresh: the route set stays (12.2.1.2)
            self.target.send(self.target.request("ACK", cseq=response.cseq().number))
        answer = responseTo(self.transaction.request.headers, status, standardReason(status))
        if 200 <= status < 300 and session:
            answer.headers.add("Contact", self.source.contact)
        copyHeaders(
            response.headers,
            answer.headers,
            fromTrusted=relay.trusted(self.target),
            toTrusted=relay.trusted(self.source),
        )
        media = relay.media
        assert media is not None
        body = sdpOf(response) if session else None
        if body is None and session and 200 <= status < 300 and unreadable(response):
            # The answer (or offer) is in a body we cannot read: the source gets 488 and keeps the
            # session it had; the target's 2xx was ACKed above, as it must be.
            media.after(lambda: relay.context.respond(self.transaction, 488))
            return
        if body is None:
            if session:
                relay.carry(answer, response, None)
            else:
                answer.setBody(response.body)
            media.after(lambda: self.transaction.respond(answer))
            return

        def send(anchored: bytes) -> None:
            relay.carry(answer, response, anchored)
            self.transaction.respond(answer)

        media.answer(relay.side(self.target), body, send, self.refused)

    def transactionTimedOut(self, transaction: ClientTransaction) -> None:
        """The other leg never answered: 408 to the source."""
        if self.answered:
            return
        self.answered = True
        if self.method in _SESSION:
            self.relay.offering(self.target, -1)
        self.relay.context.respond(self.transaction, 408)
