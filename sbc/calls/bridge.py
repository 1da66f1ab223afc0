"""B's answers on their way to A: each 18x and the 2xx with its SDP through the call's media, then
rebuilt for A by `CallerSide`; B's ACK, and with a late offer (RFC 3264 section 5) A's answer in it.

The order is the caller's: A's 2xx goes before B's ACK when the media answer is at hand (the caller
waits for the one, nobody for the other), and a failed answer still finds B's dialog ACKed before
its BYE. The `Bridge` tells the call only what went wrong, through narrow callbacks.
"""

from __future__ import annotations

from typing import Protocol

from twisted.python.failure import Failure

from sbc.calls.branch import Branch
from sbc.calls.caller import CallerSide
from sbc.calls.media import CallMedia
from sbc.calls.parties import Side
from sbc.config import MediaSettings, Trunk
from sbc.interfaces import NotAcceptableError
from sbc.media.bodies import sdpOf, unreadable
from sbc.sip.message import Request, Response

__all__ = ["Bridge", "BridgeEvents"]


class BridgeEvents(Protocol):
    """What a bridge tells its call."""

    def mediaRefused(self, failure: Failure) -> None:
        """An 18x's SDP could not be anchored."""

    def answerFailed(self, failure: Failure) -> None:
        """B's 2xx could not reach A (B is ACKed already)."""

    def gone(self, reason: str) -> None:
        """A's answer to a late offer cannot be used: hang up."""


class Bridge:
    """Joins B's responses to A's: ``offered`` says whether A's INVITE had an offer; ``b`` is the
    branch that answered, once one has."""

    __slots__ = ("aAnswered", "b", "caller", "events", "live", "media", "offered", "settings")

    def __init__(
        self,
        caller: CallerSide,
        media: CallMedia,
        offered: bool,
        settings: MediaSettings,
        events: BridgeEvents,
    ) -> None:
        self.caller = caller
        self.media = media
        self.offered = offered
        self.settings = settings
        self.events = events
        self.b: Branch | None = None
        self.live = True  # until the call ends
        self.aAnswered = False  # our 2xx went to A

    def provisional(self, branch: Branch, response: Response) -> None:
        """An 18x for A, its SDP anchored first, in order behind earlier media work."""
        media = self.media
        media.facing(Side.B, branch.leg.address[0], branch.party, self.settings)
        body = sdpOf(response)
        if body is None:
            media.after(self.ringing, response, branch.trunk)
            return

        def send(anchored: bytes) -> None:
            if self.live and self.b is None:  # not answered meanwhile
                self.ringing(response, branch.trunk, anchored)

        (media.answer if self.offered else media.offer)(Side.B, body, send, self.events.mediaRefused)

    def ringing(self, response: Response, trunk: Trunk | None, body: bytes | None = None) -> None:
        """B's 18x, rebuilt for A (unless the call ended while it waited behind media work)."""
        if self.live:
            self.caller.provisional(self.caller.responseFor(response, body, trunk))

    def answered(self, branch: Branch, response: Response) -> None:
        """B's 2xx on ``branch``: its SDP through media, then our 2xx to A; B's ACK."""
        self.b = branch
        media = self.media
        media.facing(Side.B, branch.leg.address[0], branch.party, self.settings)
        body = sdpOf(response)
        if body is None and unreadable(response):
            # B's answer (or late offer) is in a body we cannot read: A must not get a 2xx
            # without one (RFC 3264 section 5). B is ACKed and hung up, A gets 488.
            if self.offered:
                branch.ack(response)
            media.after(self.failed, Failure(NotAcceptableError("unreadable body")))
        elif body is None:
            media.after(self.answerA, None)
            branch.ack(response)
            self._settled(branch)
        elif self.offered:
            media.answer(Side.B, body, self.answerA, self.failed)
            if branch.ackData is None:  # not ACKed by a failed answer already
                branch.ack(response)
            self._settled(branch)
        else:  # a late offer: B's 2xx offers, and A's ACK will answer
            media.offer(Side.B, body, self.answerA, self.failed)

    def answerA(self, body: bytes | None) -> None:
        """Our 2xx to A, with the (anchored) SDP of B's answer."""
        b = self.b
        if self.live and b is not None and b.ok is not None:
            self.caller.answer(self.caller.responseFor(b.ok, body, b.trunk))
            self.aAnswered = True
            self._settled(b)

    def _settled(self, b: Branch) -> None:
        """B's 2xx has done its work once A has ours and B its ACK: its parsed copy goes, so that a
        held call keeps only what it needs (a retransmitted 2xx gets the ACK's bytes again)."""
        if self.aAnswered and b.ackData is not None:
            b.ok = None

    def failed(self, failure: Failure) -> None:
        """B's answer cannot reach A (SDP we cannot use, or A's answer could not be built): B's
        2xx is ACKed if it was not yet, and the call hears why."""
        b = self.b
        if self.live and b is not None and b.ok is not None and b.ackData is None:
            b.ack(b.ok)
        self.events.answerFailed(failure)

    def ackReceived(self, ack: Request) -> None:
        """A's ACK for our 2xx: stop resending it; with a late offer it carries A's answer."""
        if not self.caller.acked():
            return
        b = self.b
        if b is None or b.ok is None or b.ackData is not None:
            return
        body = sdpOf(ack)
        if body is None:
            b.ack(b.ok)
            self._settled(b)
            if unreadable(ack):
                # A's answer is in a body we cannot read: B's offer stays unanswered, so B is
                # ACKed and both are hung up (RFC 3261 section 13.2.2.4).
                self.events.gone("unreadable answer")
            return
        self.media.answer(Side.A, body, self.lateAnswered, self.lateRefused)

    def lateAnswered(self, body: bytes) -> None:
        """A's answer to B's late offer, anchored: it goes in B's ACK."""
        if self.b is not None and self.b.ok is not None:
            self.b.ack(self.b.ok, body)
            self._settled(self.b)

    def lateRefused(self, failure: Failure) -> None:
        """A's answer to B's late offer cannot be used: B is ACKed, both are hung up."""
        if self.b is not None and self.b.ok is not None:
            self.b.ack(self.b.ok)
        self.events.gone("media refused")

    def close(self) -> None:
        """The call is over: nothing more reaches A, and the media is released."""
        self.live = False
        self.media.close()
