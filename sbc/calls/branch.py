"""One attempt to reach the callee: a B-side INVITE client transaction and the dialog it makes.

A `Branch` is its own transaction user: it PRACKs reliable provisionals (RFC 3262), CANCELs
(RFC 3261 section 9.1), ACKs 2xx (its own and those of forks beyond it), and gives up on a
silent gateway after the trunk's failover time. It tells its call what happened through
`BranchEvents`, and knows nothing else of the call.
"""

from __future__ import annotations

import copy
from typing import Protocol

from twisted.internet.interfaces import IDelayedCall
from zope.interface import implementer

from sbc.calls.context import IGNORE, CallContext
from sbc.calls.parties import Party
from sbc.config import Trunk
from sbc.dialog import Leg
from sbc.interfaces import IClientTransactionUser
from sbc.sip.headers import Headers
from sbc.sip.message import Request, Response
from sbc.sip.uri import isDigits
from sbc.transaction import ClientTransaction

__all__ = ["Branch", "BranchEvents", "sendBye"]


class BranchEvents(Protocol):
    """What a branch tells its call."""

    def provisional(self, branch: Branch, response: Response) -> None:
        """An 18x (not a retransmitted reliable one) on a branch that was not cancelled."""

    def answered(self, branch: Branch, response: Response) -> bool:
        """The branch's first 2xx; False if the call does not take it (then it is hung up)."""

    def failed(self, branch: Branch, status: int, response: Response | None) -> None:
        """A final failure (or 408 for a timeout) on a branch that was not cancelled."""

    def silent(self, branch: Branch) -> None:
        """No provisional within the trunk's failover time: the branch was abandoned."""


@implementer(IClientTransactionUser)
class Branch:
    """One B-side INVITE: its leg, CDR party and trunk (None for a user), and where it stands."""

    __slots__ = (
        "ackData",
        "answered",
        "cancelled",
        "context",
        "events",
        "failoverTimer",
        "final",
        "forks",
        "leg",
        "ok",
        "party",
        "provisional",
        "rseq",
        "transaction",
        "trunk",
    )

    def __init__(
        self, context: CallContext, leg: Leg, party: Party, trunk: Trunk | None, events: BranchEvents
    ) -> None:
        self.context = context
        self.leg = leg
        self.party = party
        self.trunk = trunk
        self.events = events
        self.transaction: ClientTransaction | None = None
        self.provisional = False
        self.final: int | None = None
        self.cancelled = False
        self.answered = False
        self.failoverTimer: IDelayedCall | None = None
        self.rseq = 0  # the last reliable provisional we PRACKed (RFC 3262)
        self.ok: Response | None = None  # the 2xx this branch was answered with
        # The ACK of our 2xx, kept to resend if that 2xx comes again (none while a late offer waits).
        self.ackData: bytes | None = None
        # Dialogs of other forks (a proxy beyond us forked) that answered after the first, by To
        # tag: ACKed and hung up on their own copy of the leg.
        self.forks: dict[str, Leg] | None = None

    @property
    def ringing(self) -> bool:
        """Still waiting for a final answer, and not cancelled."""
        return self.final is None and not self.cancelled

    def send(self, invite: Request) -> None:
        """Send the INVITE."""
        leg = self.leg
        self.transaction = self.context.transactions.sendRequest(invite, leg.transport, leg.address, self)

    def failover(self, seconds: float) -> None:
        """Without a provisional within ``seconds``, give up on this branch (another target waits)."""
        self.failoverTimer = self.context.clock.callLater(seconds, self._silent)

    # --- IClientTransactionUser --------------------------------------------------------------

    def responseReceived(self, response: Response, transaction: ClientTransaction) -> None:
        """A response to our INVITE."""
        status = response.status
        if status < 200:
            if status != 100:
                self._provisional(response)
            return
        self.stopFailover()
        if status < 300:
            self._answer(response)
            return
        self.final = status
        self.context.index.dropLeg(self.leg)
        if not self.cancelled:
            self.events.failed(self, status, response)

    def transactionTimedOut(self, transaction: ClientTransaction) -> None:
        """Timer B: as if the callee had said 408; a connection that could not be opened: 503
        (RFC 3261 section 8.1.3.1), which failover_codes may name."""
        if self.final is not None:
            return
        status = 503 if transaction.transportFailed else 408
        self.final = status
        self.context.index.dropLeg(self.leg)
        if not self.cancelled:
            self.events.failed(self, status, None)

    def _provisional(self, response: Response) -> None:
        self.provisional = True
        self.stopFailover()
        leg = self.leg
        leg.learn(response)
        self.context.legs.followRouteSet(leg, self.trunk)
        rseq = _reliable(response)
        if rseq is not None:
            if rseq <= self.rseq:
                return  # a retransmission of a reliable provisional we already PRACKed
            self.rseq = rseq
            self.prack(rseq, response.cseq().number)
        if self.cancelled:
            self.cancel()
            return
        self.events.provisional(self, response)

    def _answer(self, response: Response) -> None:
        leg = self.leg
        if self.answered:
            if response.toHeader().tag != leg.remoteTag:
                self._extraFork(response)
            elif self.ackData is not None:  # a retransmitted 2xx: our ACK was lost
                leg.transport.send(self.ackData, leg.address)
            return
        leg.learn(response)
        self.context.legs.followRouteSet(leg, self.trunk)
        self.answered = True
        self.ok = response
        if self.cancelled or not self.events.answered(self, response):
            # The CANCEL/2xx race, a second fork, or a gateway we gave up on: take it, hang it up.
            self.ack(response)
            self.bye()

    def _extraFork(self, response: Response) -> None:
        """A 2xx from another fork of the same branch (a proxy beyond us forked): RFC 3261 section
        13.2.2.4 wants it ACKed and, as we keep the first, hung up, each on its own dialog (its
        tag, target and route set), never on the answered one."""
        tag = response.toHeader().tag or ""
        forks = self.forks if self.forks is not None else {}
        fork = forks.get(tag)
        if fork is not None:  # its 2xx again: our ACK was lost
            _ack(fork, response)
            return
        fork = copy.copy(self.leg)
        if self.transaction is not None:
            fork.address = self.transaction.destination  # where the INVITE went, not the first's hop
        fork.learn(response)
        self.context.legs.followRouteSet(fork, self.trunk)
        forks[tag] = fork
        self.forks = forks
        _ack(fork, response)
        sendBye(self.context, fork)

    # --- requests of ours on this dialog --------------------------------------------------

    def ack(self, response: Response, body: bytes | None = None) -> None:
        """ACK the 2xx (with the SDP answer to a late offer, if any); kept to resend."""
        self.ackData = _ack(self.leg, response, body)

    def bye(self, reason: str = "") -> None:
        """Hang up this branch's dialog (saying why, if the SBC ends the call)."""
        sendBye(self.context, self.leg, reason)

    def prack(self, rseq: int, cseq: int) -> None:
        """PRACK a reliable provisional (RFC 3262 section 7.2)."""
        leg = self.leg
        prack = leg.request("PRACK")
        prack.headers.add("RAck", f"{rseq} {cseq} INVITE")
        prack.setBody(b"")
        self.context.transactions.sendRequest(prack, leg.transport, leg.address, IGNORE)

    def cancel(self) -> None:
        """Give up on this branch: CANCEL it once it has answered provisionally (RFC 3261 section
        9.1: same Request-URI, Call-ID, From, To, CSeq number and Via; to where the INVITE went)."""
        self.cancelled = True
        transaction = self.transaction
        if not self.provisional or transaction is None:
            return
        invite = transaction.request
        headers = Headers()
        for field in invite.headers.fields:
            if field.key in ("via", "from", "to", "call-id", "route", "max-forwards"):
                headers.fields.append(field)
        headers.add("CSeq", f"{invite.cseq().number} CANCEL")
        headers.add("Content-Length", "0")
        cancel = Request("CANCEL", invite.uri, headers)
        self.context.transactions.sendRequest(cancel, self.leg.transport, transaction.destination, IGNORE)

    def stopFailover(self) -> None:
        """No more failover for this branch."""
        if self.failoverTimer is not None:
            self.failoverTimer.cancel()
            self.failoverTimer = None

    def _silent(self) -> None:
        self.failoverTimer = None
        if self.provisional or self.final is not None:
            return
        self.final = 408
        self.cancelled = True
        self.context.index.dropLeg(self.leg)
        self.events.silent(self)


def _ack(leg: Leg, response: Response, body: bytes | None = None) -> bytes:
    ack = leg.request("ACK", cseq=response.cseq().number)
    if body is not None:
        ack.setBody(body, "application/sdp")
    data = ack.toBytes()
    leg.transport.send(data, leg.address)
    return data


def sendBye(context: CallContext, leg: Leg, reason: str = "") -> None:
    """A BYE on ``leg``'s dialog, with a Reason (RFC 3326) when the SBC ends the call."""
    request = leg.request("BYE")
    if reason:
        request.headers.add("Reason", f'SIP;cause=200;text="{reason}"')
    context.transactions.sendRequest(request, leg.transport, leg.address, IGNORE)


def _reliable(response: Response) -> int | None:
    """The RSeq of a reliable provisional response (RFC 3262), or None."""
    if "100rel" not in {t.strip().lower() for t in response.headers.getAll("require")}:
        return None
    rseq = (response.headers.get("rseq") or "").strip()
    return int(rseq) if isDigits(rseq) and 0 < int(rseq) < 2**32 else None
