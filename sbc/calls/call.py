"""A bridged call as a state machine: routing, calling, early, confirmed, ended.

`Call` owns the call's state, its timer (Timer C until the answer, then the length limit),
hangup and the end, whose record (`CallRecord`) goes on through ``onEnded``. Its collaborators
each own their part and report back by return value or by the narrow events `Call` implements:
`CallerSide` (A's responses and timers), `Branch` (one callee leg, `BranchEvents`), `Forker`
(which callee next, by `Verdict`), `Bridge` (B's answers through `CallMedia` to A,
`BridgeEvents`) and `DialogRelay` (in-dialog requests).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from sbc.access import TRUNK
from sbc.calls.admission import Admitted
from sbc.calls.branch import Branch, sendBye
from sbc.calls.bridge import Bridge
from sbc.calls.caller import CallerSide
from sbc.calls.cdr import CDR, CallRecord
from sbc.calls.context import CallContext, Extra
from sbc.calls.forking import Forker, Verdict, noAnswerTimeout, targetTrunks
from sbc.calls.legs import Attempt, LegInputs
from sbc.calls.media import mediaFor, statusFor
from sbc.calls.parties import Side, Sides
from sbc.calls.relay import DialogRelay
from sbc.config import Fork
from sbc.dialog import Leg
from sbc.interfaces import MediaError
from sbc.media.bodies import sdpOf
from sbc.routing import Decision
from sbc.sip.errors import SIPParseError
from sbc.sip.message import Request, Response
from sbc.tokens import randomHex
from sbc.transaction import ServerTransaction
from sbc.waiting import whenReady

__all__ = ["Call", "CallState"]

OnEnded = Callable[["Call"], object]


class CallState(Enum):
    """Where a call stands, in order."""

    ROUTING = "routing"
    CALLING = "calling"
    EARLY = "early"
    CONFIRMED = "confirmed"
    ENDED = "ended"


ROUTING, CALLING, EARLY, CONFIRMED, ENDED = CallState
_RINGING = (CALLING, EARLY)
_UNANSWERED = (ROUTING, CALLING, EARLY)


class Call:
    """A bridged call: the A-leg we answer, the B-side branches we place, and what joins them."""

    # Slots, not a __dict__: a held call keeps this object for its whole life.
    __slots__ = (
        "a",
        "b",
        "bridge",
        "caller",
        "cancelled",
        "context",
        "forker",
        "id",
        "invite",
        "onEnded",
        "record",
        "relay",
        "request",
        "sides",
        "state",
        "timer",
    )

    log = Logger()

    def __init__(
        self, context: CallContext, invite: ServerTransaction, a: Leg, admitted: Admitted, onEnded: OnEnded
    ) -> None:
        peer, request = admitted.peer, admitted.request
        self.context = context
        self.id = randomHex(8)
        self.invite = invite
        self.a = a
        self.request = request
        self.onEnded = onEnded
        self.state = ROUTING
        self.record = CallRecord(context.clock.seconds(), peer, request)
        self.cancelled = False
        self.sides = Sides(context.config.trunk(peer.name) if peer.kind == TRUNK else None)
        self.caller = CallerSide(context, invite, a, self.sides, admitted.sessionTimer, self.gone)
        self.relay = DialogRelay(context, a, self.caller, self.sides, self.hangup)
        self.b: Branch | None = None  # the branch that answered
        self.bridge: Bridge | None = None  # B's answers to A, once there is media to pass them through
        self.forker: Forker | None = None
        self.timer: IDelayedCall | None = None  # Timer C until the answer, then the length limit

    def start(self, decision: Decision) -> None:
        """Routing decided: reject, or anchor A's offer and try the first target."""
        if self.state is ENDED:
            return
        reject = decision.reject
        if reject is not None:
            self.record.reason = f"rejected by routing ({reject.reason or reject.status})"
            self.fail(reject.status, reject.reason)
            return
        self.state = CALLING
        context, config, targets = self.context, self.context.config, decision.targets
        offer = sdpOf(self.invite.request)  # A's SDP offer, if its INVITE has one
        trunks = targetTrunks(targets, config)  # each looked up once, here
        media = mediaFor(
            context, self.id, self.mediaTimeout, [self.sides.a, *trunks], self.invite, self.record.aLeg
        )
        self.bridge = Bridge(self.caller, media, offer is not None, config.media, self)
        self.timer = context.clock.callLater(noAnswerTimeout(trunks, config), self.timeUp)
        inputs = LegInputs(self.invite.request, self.request.fromUser, self.sides, offer)
        sequential, policy = config.calls.fork is Fork.SEQUENTIAL, config.calls.redirect
        self.forker = Forker(context.legs, inputs, targets, sequential, self.request, policy, context.decide)
        if offer is None:
            self.tryNext()
        else:
            media.offer(Side.A, offer, self.anchored, self.mediaRefused)

    def anchored(self, body: bytes) -> None:
        """A's offer is anchored: B-legs carry ours."""
        if self.forker is not None:
            self.forker.inputs.body = body
            self.tryNext()

    def routingFailed(self, failure: Failure) -> None:
        """Routing raised: 500 to A."""
        self.failedBy("routing failed", failure)
        self.fail(500)

    def tryNext(self) -> None:
        """Try the next gateway or user; when none is left, give A the best answer we had."""
        if self.state not in _RINGING or self.cancelled or (forker := self.forker) is None:
            return
        try:
            attempt = forker.next()
        except Exception:
            # Building its leg failed: as if placing it had (the next target comes after it).
            self.placingFailed(Failure())
            return
        if attempt is not None:
            whenReady(attempt.legs, lambda legs: self.placeAll(attempt, legs), self.placingFailed)
        elif not forker.ringing():
            self.fail(forker.bestStatus or 480, None, forker.best)

    def placeAll(self, attempt: Attempt, legs: list[tuple[Leg, Request]]) -> None:
        """Place the legs of an attempt (or the first, forking sequentially), unless the call
        ended or was cancelled while they were looked up."""
        if self.state not in _RINGING or self.cancelled:
            return
        if (forker := self.forker) is None or not legs:
            self.failed(None, 480, None)
            return
        if attempt.trunk is not None and not self.context.limits.outbound(attempt.trunk, self.id):
            self.failed(None, 503, None)  # the trunk is at its max_calls: a failover step
            return
        for leg, invite in forker.now(attempt, legs):
            branch = Branch(self.context, leg, attempt.party, attempt.trunk, self)
            forker.branches.append(branch)
            self.context.index.addLeg(self, leg)
            branch.send(invite)
            if attempt.trunk is not None and forker.more():
                branch.failover(attempt.trunk.failoverTimeout)

    def placingFailed(self, failure: Failure) -> None:
        """Building or placing a B-leg failed: as a 500 from that target."""
        self.failedBy("placing a B-leg failed", failure)
        self.failed(None, 500, None)

    def provisional(self, branch: Branch, response: Response) -> None:
        """An 18x: A gets it (through the bridge)."""
        if self.state in _RINGING and self.bridge is not None:
            self.state = EARLY
            self.bridge.provisional(branch, response)

    def answered(self, branch: Branch, response: Response) -> bool:
        """B's first 2xx on ``branch``: the call is confirmed (False if another answered first)."""
        bridge, forker = self.bridge, self.forker
        if self.state not in _RINGING or self.b is not None or bridge is None or forker is None:
            return False
        self.b = branch
        self.sides.b = branch.trunk
        self.state = CONFIRMED
        clock = self.context.clock
        self.record.answered(clock.seconds(), response.status)
        _cancel(self.timer)
        self.timer = clock.callLater(
            self.sides.maxCallLength(self.context.config.calls.maxCallLength), self.timeUp
        )
        forker.answered(branch)
        self.context.limits.keepOutbound(self.id, branch.trunk.name if branch.trunk is not None else None)
        self.relay.connect(branch.leg, bridge.media)
        bridge.answered(branch, response)
        return True

    def failed(self, branch: Branch | None, status: int, response: Response | None) -> None:
        """A branch (or an attempt that placed none) ended without an answer: act on the verdict."""
        if self.state not in _RINGING or (forker := self.forker) is None:
            return
        self.context.limits.releaseOutbound(self.id, forker.trunkLeft(branch))  # failover: uncounted
        verdict = forker.failed(branch, status, response)
        if verdict is Verdict.NEXT:
            self.tryNext()
        elif verdict is Verdict.FINAL:
            self.fail(status, None, response)
        elif verdict is Verdict.GLOBAL:
            forker.cancelAll()
            self.fail(status, None, response)
        elif verdict is Verdict.REDIRECT:
            # A 3xx never reaches A (its Contact is B's topology): follow it by routing, or fail.
            decided = forker.redirect(response)
            if decided is None:
                self.failed(branch, 480, None)
            else:
                whenReady(decided, lambda decision: self.reroute(decision, branch), self.placingFailed)

    def reroute(self, decision: Decision, branch: Branch | None) -> None:
        """Where a followed redirect goes: its targets first."""
        if self.state in _RINGING and self.forker is not None:
            status = self.forker.reroute(decision)
            if status:
                self.failed(branch, status, None)
            else:
                self.tryNext()

    def silent(self, branch: Branch) -> None:
        """A gateway gave no provisional in time: its trunk stops counting the leg; try the next."""
        if self.forker is not None:
            self.context.limits.releaseOutbound(self.id, self.forker.trunkLeft(branch))
        self.tryNext()

    def mediaRefused(self, failure: Failure) -> None:
        """A's offer (or B's early SDP) cannot be anchored: A gets the status for why."""
        status, extra = _refusal(self, failure)
        if self.state in _UNANSWERED:
            self.record.reason = f"media refused ({failure.getErrorMessage() or failure.type})"
            self.abort(status, extra=extra)

    def answerFailed(self, failure: Failure) -> None:
        """B's answer cannot reach A (its SDP is unusable): B is hung up, A gets the status for why."""
        status, extra = _refusal(self, failure)
        if self.state is CONFIRMED and self.b is not None:
            self.state = EARLY  # so that fail still answers A
            self.relay.disconnect()
            self.b.bye()
            self.fail(status, extra=extra)

    def gone(self, reason: str) -> None:
        """A is gone (no ACK, its session expired or failed to refresh, a late answer): hang up."""
        self.hangup(None, reason=reason)

    def fail(
        self, status: int, why: str | None = None, response: Response | None = None, extra: Extra = ()
    ) -> None:
        """Answer A's INVITE with a final failure, and end: B's ``response`` if it has ``status``,
        else ours (``why`` its reason phrase, ``extra`` its headers)."""
        if self.state is ENDED:
            return
        if response is not None and status == response.status:
            trunk = self.forker.trunkOf(response) if self.forker is not None else None
            self.caller.relayFailure(response, trunk)
        else:
            self.caller.fail(status, why, extra)
        self.record.status = status
        self.record.releasedBy = "caller" if self.cancelled else ("callee" if response is not None else "sbc")
        self.end()

    def cancel(self) -> None:
        """A CANCELled before the answer: 487 to A, CANCEL to every ringing branch."""
        if self.state in _UNANSWERED:
            self.cancelled = True
            self.abort(487)

    def abort(self, status: int, why: str | None = None, extra: Extra = ()) -> None:
        """End a call not yet answered: its ringing branches are CANCELled, and A gets ``status``."""
        if self.forker is not None:
            self.forker.cancelAll()
        self.fail(status, why, extra=extra)

    def timeUp(self) -> None:
        """Timer C (no answer in time: branches cancelled, 408 to A), or the maximum call length."""
        self.timer = None
        if self.state is CONFIRMED:
            self.hangup(None, reason="maximum call length")
        elif self.state in _RINGING:
            self.record.reason = "no answer (Timer C)"
            self.abort(408, "No Answer")

    def mediaTimeout(self) -> None:
        """No RTP for too long (and not on hold): release both legs."""
        if self.state is CONFIRMED:
            self.hangup(None, reason="media timeout")

    def hangup(self, by: Leg | None, *, reason: str = "") -> None:
        """End a confirmed call: BYE to every leg but the one that said BYE. A's BYE on an early
        dialog (RFC 3261 section 15.1.1) ends the call as a CANCEL does: its INVITE gets 487."""
        if self.state is ENDED:
            return
        if by is self.a and self.state in _UNANSWERED:
            self.cancel()
            return
        self.record.releasedBy = "sbc" if by is None else ("caller" if by is self.a else "callee")
        if by is None and reason:
            self.record.reason = reason
        if by is not self.a:
            sendBye(self.context, self.a, reason)
        if self.b is not None and by is not self.b.leg:
            self.b.bye(reason)
        self.end()

    def end(self) -> None:
        """The call is over: timers stop, media is released, and ``onEnded`` hears of it once."""
        if self.state is ENDED:
            return
        self.state = ENDED
        self.timer = _cancel(self.timer)
        self.caller.close()
        self.relay.disconnect()
        if self.forker is not None:
            self.forker.stop()
        if self.bridge is not None:
            self.bridge.close()
        self.onEnded(self)

    def inDialog(self, request: Request, transaction: ServerTransaction, leg: Leg) -> None:
        """A request in one of this call's dialogs."""
        self.relay.receive(request, transaction, leg)

    def ackReceived(self, ack: Request) -> None:
        """A's ACK for our 2xx."""
        if self.bridge is not None:
            self.bridge.ackReceived(ack)

    def legs(self) -> list[Leg]:
        """Every dialog this call has had: A's and each branch's."""
        return [self.a, *self.forker.dialogs()] if self.forker is not None else [self.a]

    def failedBy(self, why: str, failure: Failure) -> None:
        """Log a traceback this call's input led to (rate-limited per host); ``why`` goes in the CDR."""
        self.record.reason = why
        self.context.sourceLog.failure(self.log, self.invite.source[0], why, failure)

    def cdr(self) -> CDR:
        """The call's detail record, as it stands now."""
        branches = self.forker.branches if self.forker is not None else ()
        bLeg = self.b.party if self.b is not None else (branches[-1].party if branches else None)
        return self.record.cdr(self.id, bLeg, self.context.clock.seconds(), self.cancelled)


def _refusal(call: Call, failure: Failure) -> tuple[int, Extra]:
    """The status for a media failure; one that is no media error (a bug, say) is logged too."""
    if not failure.check(MediaError, SIPParseError):
        call.context.sourceLog.failure(call.log, call.invite.source[0], "anchoring media failed", failure)
    return statusFor(failure)


def _cancel(timer: IDelayedCall | None) -> IDelayedCall | None:
    """Stop a timer if it runs; None, to forget it."""
    if timer is not None and timer.active():
        timer.cancel()
    return None
