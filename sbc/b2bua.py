"""The B2BUA: every call is two dialogs, an A-leg and a B-leg, joined by a `Call`.

Nothing passes through unchanged. The B-leg is built fresh (Call-ID, tags, CSeq, Via,
Contact are ours) and only the headers `sbc.calls.policy` allows are copied across, in both
directions. Responses and in-dialog requests are mapped between the legs by the call.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from netaddr import IPSet
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from sbc.access import DEVICES, TRUNK, Peer
from sbc.anchoring import (
    MediaAnchor,
    NotAcceptableError,
    UnreadableBodyError,
    putBody,
    readBody,
    refusal,
    refusalHeaders,
    sdpOf,
    unreadable,
)
from sbc.calls.calllog import logCall
from sbc.calls.cdr import CDR, CDRWriter, dispositionFor
from sbc.calls.cdr import Leg as Party
from sbc.calls.policy import copyHeaders, standardReason
from sbc.config import Config, Fork, MediaMode, Redirect, Refer, Trunk
from sbc.dialog import Leg, newCallId, newTag
from sbc.interfaces import Address, IClientTransactionUser, IMediaRelay, ISIPTransport, MediaError
from sbc.media.quota import PortOwner, PortQuota
from sbc.ops.droplog import DropLog
from sbc.registrar.authenticator import Authenticator, Outcome
from sbc.registrar.location import Binding
from sbc.registrar.registrar import Registrar
from sbc.routing import CallRequest, Decision, TrunkTarget, UserTarget
from sbc.sip.errors import SIPParseError
from sbc.sip.headers import Headers
from sbc.sip.message import Request, Response, responseTo
from sbc.sip.uri import URI, isDigits, parseURI, unescape
from sbc.tokens import randomHex
from sbc.transaction import ClientTransaction, ServerTransaction, TransactionLayer, responseAddress
from sbc.waiting import whenReady

Respond = Callable[..., None]
# A decision at once when routing had one (the usual case: no Deferred per call), else later.
Route = Callable[[CallRequest], Decision | Deferred[Decision]]
# The legs of one target: at once for a trunk's gateway, later for a location lookup.
Legs = list[tuple[Leg, Request]] | Deferred[list[tuple[Leg, Request]]]

# Call states, in order.
ROUTING, CALLING, EARLY, CONFIRMED, ENDED = "routing", "calling", "early", "confirmed", "ended"
_SDP_TYPES = frozenset({"application/sdp", "application/*", "*/*"})
RELAYED_IN_DIALOG = ("INVITE", "UPDATE", "INFO", "OPTIONS", "MESSAGE", "NOTIFY")


class Branch:
    """One attempt to reach the callee: one B-side INVITE client transaction."""

    __slots__ = (
        "answered",
        "call",
        "cancelled",
        "failoverTimer",
        "final",
        "forks",
        "label",
        "leg",
        "provisional",
        "rseq",
        "transaction",
    )

    def __init__(self, call: Call, leg: Leg, label: Party) -> None:
        self.call = call
        self.leg = leg
        self.label = label
        self.transaction: ClientTransaction | None = None
        self.provisional = False
        self.final: int | None = None
        self.cancelled = False
        self.answered = False
        self.failoverTimer: IDelayedCall | None = None
        self.rseq = 0  # the last reliable provisional we PRACKed (RFC 3262)
        # Dialogs of other forks (a proxy beyond us forked) that answered after the first, by To
        # tag: ACKed and hung up on their own copy of the leg.
        self.forks: dict[str, Leg] | None = None


@implementer(IClientTransactionUser)
class Call:
    """A bridged call: the A-leg we answer, the B-side branches we place, and what joins them."""

    # Slots, not a __dict__: a held call keeps this object for its whole life (about 1.3 KB less).
    __slots__ = (
        "a",
        "aAddress",
        "aReliable",
        "aTimer",
        "ackFromB",
        "answerTime",
        "b",
        "bBody",
        "bLabel",
        "best",
        "bestStatus",
        "branches",
        "cancelled",
        "id",
        "invite",
        "lateAck",
        "lookahead",
        "manager",
        "media",
        "offerFromA",
        "okToA",
        "peer",
        "pending",
        "queued",
        "reason",
        "redirects",
        "releasedBy",
        "request",
        "rseq",
        "sessionTimer",
        "start",
        "state",
        "status",
        "targets",
        "timers",
        "unackedRseq",
    )

    log = Logger()

    def __init__(
        self,
        manager: CallManager,
        invite: ServerTransaction,
        a: Leg,
        peer: Peer,
        request: CallRequest,
        sessionTimer: tuple[float, str] | None = None,
    ):
        self.manager = manager
        self.id = randomHex(8)
        self.invite = invite
        self.a = a
        self.b: Leg | None = None
        self.peer = peer
        self.request = request
        self.state = ROUTING
        self.branches: list[Branch] = []
        self.targets: Iterator[tuple[Party, Legs]] = iter(())
        self.lookahead: tuple[Party, Legs] | None = None
        self.best: Response | None = None
        self.bestStatus = 0
        self.timers: dict[str, IDelayedCall] = {}
        self.start = manager.clock.seconds()
        self.answerTime: float | None = None
        self.status = 0
        self.releasedBy = "sbc"
        self.reason: str | None = None  # why the SBC ended or failed the call, for the CDR and log
        self.cancelled = False
        self.bLabel: Party | None = None
        self.okToA: Response | None = None
        self.ackFromB: bytes | None = None
        self.aAddress = responseAddress(invite.request.topVia(), invite.transport, invite.source)
        self.pending: dict[ClientTransaction, Relay] = {}
        self.queued: list[tuple[Party, Leg, Request]] = []
        self.media = MediaAnchor(None, self.id, self.mediaTimeout)
        self.offerFromA = sdpOf(invite.request)
        self.bBody = b""  # the SDP offer the B side gets (ours, once anchored)
        self.lateAck: Response | None = None  # B's 2xx, ACKed once A's ACK brings the answer
        tags = _optionTags(invite.request)
        self.aReliable = "100rel" in tags  # A takes reliable provisionals (RFC 3262)
        self.rseq = 0
        self.unackedRseq: int | None = None
        self.redirects = 0
        # RFC 4028 session timer asked for by A: (interval, refresher) and whether A knows "timer".
        self.sessionTimer = sessionTimer
        self.aTimer = "timer" in tags

    # --- placing the B side ------------------------------------------------------------------

    def route(self, decision: Decision) -> None:
        if self.state == ENDED:
            return
        if decision.reject is not None:
            self.reason = f"rejected by routing ({decision.reject.reason or decision.reject.status})"
            self.finishA(decision.reject.status, decision.reject.reason)
            return
        if not decision.targets:
            self.reason = "no route"
            self.finishA(404, "No route")
            return
        self.state = CALLING
        self.media = self.manager.anchor(self, decision)
        self.targets = iter(self.manager.expand(self, decision.targets))
        self.timers["C"] = self.manager.clock.callLater(self.noAnswerTimeout(decision), self.timerC)
        if self.offerFromA is None:
            self.nextTarget()
            return
        if self.media.passthrough:  # nothing to do with the SDP: no Deferred on the way
            self.bBody = self.offerFromA
            self.nextTarget()
            return

        def anchored(body: bytes) -> None:
            self.bBody = body
            self.nextTarget()

        self.media.offer("A", self.offerFromA).addCallbacks(anchored, self.mediaRefused)

    def mediaRefused(self, failure: Failure) -> None:
        if not failure.check(MediaError, SIPParseError):
            self.logFailure("anchoring media failed", failure)
        if self.state in (ROUTING, CALLING, EARLY):
            self.reason = f"media refused ({failure.getErrorMessage() or failure.type})"
            self.cancelBranches()
            self.finishA(refusal(failure), extra=refusalHeaders(failure))

    def startSessionTimer(self) -> None:
        """RFC 4028: A refreshes (refresher=uac) or we do (uas); a session nobody refreshes ends."""
        assert self.sessionTimer is not None
        interval, refresher = self.sessionTimer
        self.cancelTimer("session")
        if refresher == "uas":
            self.timers["session"] = self.manager.clock.callLater(interval / 2, self.refreshA)
        else:
            self.timers["session"] = self.manager.clock.callLater(
                interval - min(32.0, interval / 3), self.hangup, None, reason="session expired"
            )

    def refreshA(self) -> None:
        """Our turn to refresh A's session: an UPDATE without SDP (RFC 4028 section 7.4)."""
        self.timers.pop("session", None)
        if self.state != CONFIRMED or self.sessionTimer is None:
            return
        update = self.a.request("UPDATE")
        update.headers.add("Session-Expires", f"{self.sessionTimer[0]:.0f};refresher=uas")
        update.setBody(b"")
        self.manager.transactions.sendRequest(update, self.a.transport, self.a.address, _Refresh(self))
        self.startSessionTimer()

    def mediaTimeout(self) -> None:
        """No RTP for too long (and not on hold): release both legs."""
        if self.state == CONFIRMED:
            self.hangup(None, reason="media timeout")

    def noAnswerTimeout(self, decision: Decision) -> float:
        for target in decision.targets:
            if isinstance(target, TrunkTarget):
                trunk = self.manager.trunk(target.trunk)
                if trunk is not None:
                    return trunk.noAnswerTimeout
        return self.manager.config.calls.noAnswerTimeout

    def nextTarget(self) -> None:
        """Try the next gateway or user; when none is left, give A the best answer we had."""
        if self.state not in (CALLING, EARLY) or self.cancelled:
            return
        if self.queued:  # sequential forking: the next binding of the same user
            label, leg, invite = self.queued.pop(0)
            self.place(label, leg, invite)
            return
        try:
            label, attempt = self.takeTarget()
        except StopIteration:
            if not any(b.final is None and not b.cancelled for b in self.branches):
                status = self.bestStatus or 480
                self.finishA(status, None, self.best)
            return
        except Exception:
            # Building the target's leg failed: as if placing it had (a raising generator is done,
            # so the next target, if any, comes from the routes after it).
            self.routeError(Failure())
            return

        def place(legs: list[tuple[Leg, Request]]) -> None:
            if not legs:
                self.failed(480, None)
                return
            if self.manager.config.calls.fork is Fork.SEQUENTIAL:
                self.queued.extend((label, leg, invite) for leg, invite in legs[1:])
                legs = legs[:1]
            for leg, invite in legs:
                self.place(label, leg, invite)

        whenReady(attempt, place, self.routeError)

    def takeTarget(self) -> tuple[Party, Legs]:
        if self.lookahead is not None:
            target, self.lookahead = self.lookahead, None
            return target
        return next(self.targets)

    def moreTargets(self) -> bool:
        """Whether anything is left to try after the current attempt (peeks one ahead)."""
        if self.queued or self.lookahead is not None:
            return True
        try:
            self.lookahead = next(self.targets)
        except StopIteration:
            return False
        return True

    def logFailure(self, message: str, failure: Failure) -> None:
        """A traceback this call's input led to: rate-limited per caller's host (`DropLog`)."""
        self.manager.sourceLog.failure(self.log, self.invite.source[0], message, failure)

    def routeError(self, failure: Failure) -> None:
        self.logFailure("placing a B-leg failed", failure)
        self.reason = "placing a B-leg failed"
        self.failed(500, None)

    def place(self, label: Party, leg: Leg, invite: Request) -> None:
        branch = Branch(self, leg, label)
        self.branches.append(branch)
        self.manager.legs[leg.key] = (self, leg)
        branch.transaction = self.manager.transactions.sendRequest(invite, leg.transport, leg.address, self)
        if label.kind == "trunk" and self.moreTargets():
            trunk = self.manager.trunk(label.name)
            if trunk is not None:
                branch.failoverTimer = self.manager.clock.callLater(
                    trunk.failoverTimeout, self.gatewaySilent, branch
                )

    def gatewaySilent(self, branch: Branch) -> None:
        """No provisional answer in time: give up on this gateway and try the next."""
        branch.failoverTimer = None
        if branch.provisional or branch.final is not None:
            return
        branch.final = 408
        self.abandon(branch)
        self.nextTarget()

    def branchOf(self, transaction: ClientTransaction) -> Branch | None:
        for branch in self.branches:
            if branch.transaction is transaction:
                return branch
        return None

    # --- IClientTransactionUser: responses on the B side ----------------------------------

    def responseReceived(self, response: Response, transaction: ClientTransaction) -> None:
        relay = self.pending.get(transaction)
        if relay is not None:
            relay.response(response)
            if response.status >= 200:
                del self.pending[transaction]
            return
        branch = self.branchOf(transaction)
        if branch is None:
            return
        status = response.status
        if status < 200:
            if status == 100:
                return
            branch.provisional = True
            self.stopFailover(branch)
            branch.leg.learn(response)
            self.manager.followRoutes(branch.leg, branch.label)
            rseq = _reliable(response)
            if rseq is not None:
                if rseq <= branch.rseq:
                    return  # a retransmission of a reliable provisional we already PRACKed
                branch.rseq = rseq
                self.prack(branch, rseq, response.cseq().number)
            if branch.cancelled:
                self.sendCancel(branch)
                return
            if self.state in (CALLING, EARLY):
                self.state = EARLY
                self.mediaOfB(branch)
                self.relayToA(response)
            return
        self.stopFailover(branch)
        if status < 300:
            self.branchAnswered(branch, response)
            return
        branch.final = status
        self.manager.legs.pop(branch.leg.key, None)
        if branch.cancelled or self.state not in (CALLING, EARLY):
            return
        self.failed(status, response, branch)

    def transactionTimedOut(self, transaction: ClientTransaction) -> None:
        relay = self.pending.pop(transaction, None)
        if relay is not None:
            relay.timedOut()
            return
        branch = self.branchOf(transaction)
        if branch is None or branch.final is not None:
            return
        branch.final = 408
        self.manager.legs.pop(branch.leg.key, None)
        if branch.cancelled or self.state not in (CALLING, EARLY):
            return
        self.failed(408, None, branch)

    def failed(self, status: int, response: Response | None, branch: Branch | None = None) -> None:
        """A branch ended without an answer: fail over, or remember its answer for A."""
        if 300 <= status < 400:
            self.redirected(response, branch)
            return
        if self.best is None or _better(status, self.bestStatus):
            self.best = response
            self.bestStatus = status
        if status >= 600:
            self.cancelBranches()
            self.finishA(status, None, response)
            return
        trunk = self.manager.trunk(branch.label.name) if branch and branch.label.kind == "trunk" else None
        retry = status == 408 or status == 480 or (trunk is not None and status in trunk.failoverCodes)
        if trunk is None and branch is not None and status != 408:
            retry = status >= 500 or status == 480
        if any(b.final is None and not b.cancelled for b in self.branches):
            return  # other forks are still ringing
        if self.queued and branch is not None and branch.label.kind == "user":
            self.nextTarget()  # sequential forking goes on to the next binding whatever the code
        elif retry or branch is None:
            self.nextTarget()
        else:
            self.finishA(status, None, response)

    def redirected(self, response: Response | None, branch: Branch | None) -> None:
        """A 3xx never reaches A (its Contact is B's topology): follow it by routing, or fail."""
        contacts = []
        if response is not None:
            try:
                contacts = [c.uri for c in response.contacts() if c.uri.isSIP and c.uri.user]
            except SIPParseError:
                contacts = []
        if self.manager.config.calls.redirect is not Redirect.FOLLOW or not contacts or self.redirects >= 3:
            self.failed(480, None, branch)
            return
        self.redirects += 1
        uri = contacts[0]
        request = replace(self.request, user=unescape(uri.user or ""), domain=uri.host.lower())
        decision = self.manager.routeCall(request)
        whenReady(decision, lambda decided: self.reroute(decided, branch), self.routeError)

    def reroute(self, decision: Decision, branch: Branch | None) -> None:
        if self.state not in (CALLING, EARLY):
            return
        if decision.reject is not None or not decision.targets:
            self.failed(decision.reject.status if decision.reject else 404, None, branch)
            return
        rest = [self.lookahead] if self.lookahead is not None else []
        self.lookahead = None
        self.targets = itertools.chain(self.manager.expand(self, decision.targets), rest, self.targets)
        self.nextTarget()

    def branchAnswered(self, branch: Branch, response: Response) -> None:
        leg = branch.leg
        if branch.answered:
            if response.toHeader().tag != leg.remoteTag:
                self.extraFork(branch, response)
                return
            # A retransmitted 2xx: our ACK was lost.
            if leg is not self.b:
                self.ackB(leg, response)
            elif self.ackFromB is not None:
                # The same ACK again; there is none yet while a late offer waits.
                leg.transport.send(self.ackFromB, leg.address)
            return
        leg.learn(response)
        self.manager.followRoutes(leg, branch.label)
        branch.answered = True
        if self.state not in (CALLING, EARLY) or self.b is not None or branch.cancelled:
            # The CANCEL/2xx race, a second fork, or a gateway we gave up on: take it, hang it up.
            self.ackB(leg, response)
            self.byeOrphan(leg)
            return
        self.b = leg
        self.bLabel = branch.label
        self.mediaOfB(branch)
        self.state = CONFIRMED
        self.targets, self.lookahead = iter(()), None  # nothing more to try: let the routes go
        self.answerTime = self.manager.clock.seconds()
        self.status = response.status
        self.cancelTimer("C")
        for other in self.branches:
            if other is not branch and other.final is None:
                other.cancelled = True
                if other.provisional:
                    self.sendCancel(other)
        self.timers["length"] = self.manager.clock.callLater(self.maxLength(), self.tooLong)
        body = sdpOf(response)
        # A's 2xx goes before B's ACK when the media answer is at hand: the caller waits for the
        # one, nobody for the other. A failed answer still finds B's dialog ACKed before its BYE.
        if body is None and unreadable(response):
            # B's answer (or late offer) is in a body we cannot read: A must not get a 2xx
            # without one (RFC 3264 section 5). B is ACKed and hung up, A gets 488.
            if self.offerFromA is None:
                self.lateAck = response
            else:
                self.ackFromB = self.ackB(leg, response)
            self.media.after(lambda: self.answerFailed(Failure(NotAcceptableError("unreadable body"))))
        elif body is None:
            self.media.after(lambda: self.answerA(response, None))
            self.ackFromB = self.ackB(leg, response)
        elif self.offerFromA is not None and self.media.passthrough:
            failure = None
            try:
                self.answerA(response, body)
            except Exception:
                failure = Failure()
            self.ackFromB = self.ackB(leg, response)
            if failure is not None:  # as on the Deferred path: B ACKed, then hung up; A gets an error
                self.answerFailed(failure)
        elif self.offerFromA is not None:
            answered = self.media.answer("B", body)
            answered.addCallback(lambda b: self.answerA(response, b))
            self.ackFromB = self.ackB(leg, response)
            answered.addErrback(self.answerFailed)
        else:
            # Late offer (RFC 3264 section 5): B's 2xx offers, and A's ACK will answer.
            self.lateAck = response
            self.media.offer("B", body).addCallbacks(lambda b: self.answerA(response, b), self.answerFailed)

    def extraFork(self, branch: Branch, response: Response) -> None:
        """A 2xx from another fork of the same branch (a proxy beyond us forked): RFC 3261 section
        13.2.2.4 wants it ACKed and, as we keep the first, hung up, each on its own dialog (its
        tag, target and route set), never on the answered one."""
        tag = response.toHeader().tag or ""
        forks = branch.forks if branch.forks is not None else {}
        fork = forks.get(tag)
        if fork is not None:  # its 2xx again: our ACK was lost
            self.ackB(fork, response)
            return
        fork = copy.copy(branch.leg)
        if branch.transaction is not None:
            fork.address = branch.transaction.destination  # where the INVITE went, not the first's hop
        fork.learn(response)
        self.manager.followRoutes(fork, branch.label)
        forks[tag] = fork
        branch.forks = forks
        self.ackB(fork, response)
        self.byeOrphan(fork)

    def answerA(self, response: Response, body: bytes | None) -> None:
        if self.state != CONFIRMED:
            return
        ok = self.responseForA(response, body)
        self.cancelTimer("rel1xx")
        self.unackedRseq = None
        if self.sessionTimer is not None:
            interval, refresher = self.sessionTimer
            ok.headers.add("Session-Expires", f"{interval:.0f};refresher={refresher}")
            if self.aTimer:
                ok.headers.add("Require", "timer")
            self.startSessionTimer()
        self.okToA = ok
        self.invite.respond(ok)
        if not self.invite.transport.reliable:
            self.retransmitOk(self.manager.transactionsT1())

    def answerFailed(self, failure: Failure) -> None:
        """B answered with SDP we cannot use: A gets 488, and B is hung up."""
        if not failure.check(MediaError, SIPParseError):
            self.logFailure("anchoring media failed", failure)
        if self.state != CONFIRMED or self.b is None:
            return
        if self.lateAck is not None:
            self.ackB(self.b, self.lateAck)
            self.lateAck = None
        self.state = EARLY  # so that finishA still answers A
        self.byeOrphan(self.b)
        self.finishA(refusal(failure), extra=refusalHeaders(failure))

    def maxLength(self) -> float:
        for label in (self.bLabel, _peerLabel(self.peer)):
            if label is not None and label.kind == "trunk":
                trunk = self.manager.trunk(label.name)
                if trunk is not None:
                    return trunk.maxCallLength
        return self.manager.config.calls.maxCallLength

    def ackB(self, leg: Leg, response: Response) -> bytes:
        """ACK B's 2xx; the bytes are what a held call keeps, to resend if that 2xx comes again."""
        data = leg.request("ACK", cseq=response.cseq().number).toBytes()
        leg.transport.send(data, leg.address)
        return data

    def byeOrphan(self, leg: Leg) -> None:
        bye = leg.request("BYE")
        self.manager.transactions.sendRequest(bye, leg.transport, leg.address, _Ignore())

    # --- A side ------------------------------------------------------------------------------

    def relayToA(self, response: Response) -> None:
        """An 18x for A, its SDP anchored first; kept in order behind earlier media work."""
        body = sdpOf(response)
        if body is None:
            self.media.after(lambda: self.provisionalToA(self.responseForA(response)))
            return
        if self.media.passthrough:
            self.provisionalToA(self.responseForA(response, body))
            return
        work = self.media.answer("B", body) if self.offerFromA is not None else self.media.offer("B", body)

        def send(anchored: bytes) -> None:
            if self.state in (CALLING, EARLY):
                self.provisionalToA(self.responseForA(response, anchored))

        work.addCallbacks(send, self.mediaRefused)

    def provisionalToA(self, answer: Response) -> None:
        """Send an 18x to A; reliably (RFC 3262) when A supports it and none is outstanding."""
        if not self.aReliable or self.unackedRseq is not None:
            self.invite.respond(answer)
            return
        self.rseq += 1
        self.unackedRseq = self.rseq
        answer.headers.add("Require", "100rel")
        answer.headers.add("RSeq", str(self.rseq))
        self.invite.respond(answer)
        t1 = self.manager.transactionsT1()

        def again(interval: float) -> None:
            if self.unackedRseq is None or self.state not in (CALLING, EARLY):
                return
            if interval > 32 * t1:
                self.unackedRseq = None  # never PRACKed: give up on reliability for this call
                return
            self.invite.respond(answer)
            self.timers["rel1xx"] = self.manager.clock.callLater(interval * 2, again, interval * 2)

        self.timers["rel1xx"] = self.manager.clock.callLater(t1, again, t1)

    def prackReceived(self, request: Request, transaction: ServerTransaction, leg: Leg) -> None:
        rack = (request.headers.get("rack") or "").split()
        if leg is self.a and self.unackedRseq is not None and rack[:1] == [str(self.unackedRseq)]:
            self.unackedRseq = None
            self.cancelTimer("rel1xx")
            self.manager.respond(transaction, 200)
            return
        self.manager.respond(transaction, 481)

    def prack(self, branch: Branch, rseq: int, cseq: int) -> None:
        prack = branch.leg.request("PRACK")
        prack.headers.add("RAck", f"{rseq} {cseq} INVITE")
        prack.setBody(b"")
        leg = branch.leg
        self.manager.transactions.sendRequest(prack, leg.transport, leg.address, _Ignore())

    def responseForA(self, response: Response, body: bytes | None = None) -> Response:
        """B's response, rebuilt for A: A's own Via, From, To (with our tag), Call-ID, CSeq."""
        # The standard phrase, never B's own text, which may name its hosts (policy.standardReason).
        answer = responseTo(
            self.invite.request.headers,
            response.status,
            standardReason(response.status),
            toTag=self.a.localTag,
        )
        if response.status < 300 and response.status > 100:
            # RFC 3261 section 12.1.1: A's Record-Route, every field as received, in every 18x/2xx
            # (all carry our To tag), so A's proxies stay on the path of its ACK and BYE.
            answer.headers.fields.extend(
                f for f in self.invite.request.headers.fields if f.key == "record-route"
            )
            answer.headers.add("Contact", self.a.contact)
        # Trust is B's, who sent these headers: an untrusted callee never asserts an identity to A.
        copyHeaders(
            response.headers,
            answer.headers,
            fromTrusted=self.manager.trusted(self.labelOf(response)),
            toTrusted=self.trustedA(),
            extra=self.passA(),
        )
        answer.headers.add("Server", self.manager.config.sip.serverName)
        self.carry(answer, response, body, self.labelOf(response))
        return answer

    def trustedA(self) -> bool:
        return self.manager.trusted(_peerLabel(self.peer))

    def trustedLeg(self, leg: Leg) -> bool:
        """Whether the party on ``leg`` (A, or the answered B) is a trusted trunk."""
        return self.trustedA() if leg is self.a else self.manager.trusted(self.bLabel)

    def passA(self) -> tuple[str, ...]:
        trunk = self.manager.trunk(self.peer.name) if self.peer.kind == TRUNK else None
        return trunk.passHeaders if trunk is not None else ()

    def carry(
        self, target: Request | Response, source: Request | Response, sdp: bytes | None, label: Party | None
    ) -> None:
        """Put on ``target`` what of ``source``'s body crosses between A and ``label``'s side: the
        (anchored) SDP, and ISUP only between two trunks that pass it (`CallManager.passesIsup`)."""
        putBody(target, source, sdp, isup=self.manager.passesIsup(_peerLabel(self.peer), label))

    def labelOf(self, response: Response) -> Party | None:
        """The party of the branch a B-side response came on."""
        for branch in self.branches:
            if branch.leg.callId == response.headers.get("call-id"):
                return branch.label
        return None

    def retransmitOk(self, interval: float, elapsed: float = 0.0) -> None:
        """RFC 3261 section 13.3.1.4: resend our 2xx until A's ACK, T1 doubling to T2; after 64*T1
        without one, end the call with BYE."""
        if self.okToA is None:
            return
        if elapsed >= 64 * self.manager.transactionsT1():
            self.hangup(None, reason="no ACK")
            return

        def again() -> None:
            if self.okToA is not None:
                self.a.transport.send(self.okToA.toBytes(), self.aAddress)
                self.retransmitOk(min(interval * 2, self.manager.transactionsT2()), elapsed + interval)

        self.timers["ok"] = self.manager.clock.callLater(interval, again)

    def ackReceived(self, ack: Request) -> None:
        """A's ACK for our 2xx: stop resending it; with a late offer it carries A's answer."""
        if self.okToA is not None:
            self.okToA = None
            self.cancelTimer("ok")
        late, self.lateAck = self.lateAck, None
        if late is None or self.b is None:
            return
        b = self.b
        body = sdpOf(ack)
        if body is None and unreadable(ack):
            # A's answer is in a body we cannot read: B's offer stays unanswered, so B is ACKed
            # and both are hung up (RFC 3261 section 13.2.2.4).
            self.ackFromB = self.ackB(b, late)
            self.hangup(None, reason="unreadable answer")
            return
        if body is None:
            self.ackFromB = self.ackB(b, late)
            return

        def sendAck(anchored: bytes) -> None:
            ack = b.request("ACK", cseq=late.cseq().number)
            ack.setBody(anchored, "application/sdp")
            data = ack.toBytes()
            b.transport.send(data, b.address)
            self.ackFromB = data

        def failed(_: Failure) -> None:
            self.ackFromB = self.ackB(b, late)
            self.hangup(None, reason="media refused")

        self.media.answer("A", body).addCallbacks(sendAck, failed)

    def finishA(
        self,
        status: int,
        reason: str | None = None,
        response: Response | None = None,
        extra: tuple[tuple[str, str], ...] = (),
    ) -> None:
        """Answer A's INVITE with a final failure, and end the call attempt."""
        if self.state == ENDED:
            return
        if response is not None and status == response.status:
            answer = self.responseForA(response)
        else:
            answer = responseTo(self.invite.request.headers, status, reason, toTag=self.a.localTag)
            answer.headers.add("Server", self.manager.config.sip.serverName)
            for name, value in extra:
                answer.headers.add(name, value)
            answer.setBody(b"")
        self.invite.respond(answer)
        self.status = status
        self.releasedBy = "caller" if self.cancelled else ("callee" if response is not None else "sbc")
        self.end()

    def cancel(self) -> None:
        """A CANCELled before the answer: 487 to A, CANCEL to every ringing branch."""
        if self.state not in (ROUTING, CALLING, EARLY):
            return
        self.cancelled = True
        self.cancelBranches()
        self.finishA(487)

    def cancelBranches(self) -> None:
        for branch in self.branches:
            if branch.final is None and not branch.cancelled:
                branch.cancelled = True
                if branch.provisional:
                    self.sendCancel(branch)

    def sendCancel(self, branch: Branch) -> None:
        """RFC 3261 section 9.1: same Request-URI, Call-ID, From, To, CSeq number and Via."""
        transaction = branch.transaction
        if transaction is None:
            return
        invite = transaction.request
        headers = Headers()
        for field in invite.headers.fields:
            if field.key in ("via", "from", "to", "call-id", "route", "max-forwards"):
                headers.fields.append(field)
        headers.add("CSeq", f"{invite.cseq().number} CANCEL")
        headers.add("Content-Length", "0")
        cancel = Request("CANCEL", invite.uri, headers)
        # Where the INVITE went (section 9.1), even if the leg now routes through a proxy.
        self.manager.transactions.sendRequest(
            cancel, branch.leg.transport, transaction.destination, _Ignore()
        )

    def abandon(self, branch: Branch) -> None:
        branch.cancelled = True
        self.manager.legs.pop(branch.leg.key, None)

    def timerC(self) -> None:
        """No answer in time (Timer C): cancel the branches, 408 to A."""
        self.timers.pop("C", None)
        if self.state in (CALLING, EARLY):
            self.reason = "no answer (Timer C)"
            self.cancelBranches()
            self.finishA(408, "No Answer")

    def tooLong(self) -> None:
        self.timers.pop("length", None)
        self.hangup(None, reason="maximum call length")

    def stopFailover(self, branch: Branch) -> None:
        if branch.failoverTimer is not None:
            branch.failoverTimer.cancel()
            branch.failoverTimer = None

    # --- in-dialog -----------------------------------------------------------------------

    def other(self, leg: Leg) -> Leg | None:
        return self.b if leg is self.a else self.a

    def inDialog(self, request: Request, transaction: ServerTransaction, leg: Leg) -> None:
        method = request.method
        cseq = request.cseq().number
        if method != "ACK" and cseq <= leg.remoteSeq and method != "CANCEL":
            self.manager.respond(transaction, 500, reason="CSeq out of order")
            return
        leg.remoteSeq = max(leg.remoteSeq, cseq)
        if method in ("INVITE", "UPDATE", "PRACK") and not _readable(
            request, transaction, self.manager.respond
        ):
            return
        if method == "BYE":
            self.manager.respond(transaction, 200)
            self.hangup(leg)
            return
        if method == "PRACK":
            self.prackReceived(request, transaction, leg)
            return
        other = self.other(leg)
        if other is None or self.state != CONFIRMED:
            self.manager.respond(transaction, 481 if method != "BYE" else 200)
            return
        if method == "REFER" and not self.refersRelayed(leg):
            self.manager.respond(transaction, 403, reason="REFER not allowed")
            return
        if method not in RELAYED_IN_DIALOG and method != "REFER":
            self.manager.respond(transaction, 501)
            return
        if method in ("INVITE", "UPDATE") and any(
            r.method in ("INVITE", "UPDATE") and r.target is leg for r in self.pending.values()
        ):
            self.manager.respond(transaction, 491)  # glare: we are still offering on this leg
            return
        if method in ("INVITE", "UPDATE") and leg is self.a and self.sessionTimer is not None:
            self.startSessionTimer()  # A refreshed the session (RFC 4028)
        forward = other.request(method)
        copyHeaders(
            request.headers,
            forward.headers,
            fromTrusted=self.trustedLeg(leg),
            toTrusted=self.trustedLeg(other),
        )
        forward.headers.add("User-Agent", self.manager.config.sip.serverName)
        relay = Relay(self, transaction, method, other, leg)
        # Only INVITE and UPDATE (of the methods relayed here) carry an offer (RFC 3264); any other
        # method's body (INFO, MESSAGE: SIP-I, DTMF) crosses as it came, with its own type.
        body = sdpOf(request) if method in ("INVITE", "UPDATE") else None

        def send(anchored: bytes | None) -> None:
            if self.state != CONFIRMED:
                self.manager.respond(transaction, 481)
                return
            if method in ("INVITE", "UPDATE"):
                self.carry(forward, request, anchored, self.bLabel)
            else:
                forward.setBody(request.body if anchored is None else anchored)
            client = self.manager.transactions.sendRequest(forward, other.transport, other.address, self)
            self.pending[client] = relay

        if body is None:
            self.media.after(lambda: send(None))
        else:
            self.media.offer(self.side(leg), body).addCallbacks(
                send, lambda f: self.manager.respond(transaction, refusal(f), extra=refusalHeaders(f))
            )

    def side(self, leg: Leg) -> str:
        return "A" if leg is self.a else "B"

    def mediaOfB(self, branch: Branch) -> None:
        """B's SDP comes from ``branch``: its IP may latch B's media (NAT), its party holds the ports."""
        if self.media.relay is None:
            return
        self.media.sipSources["B"] = branch.leg.address[0]
        owner = self.manager.portOwner(branch.label)
        if owner is not None:
            self.media.owners["B"] = owner

    def refersRelayed(self, leg: Leg) -> bool:
        """REFER crosses only from a trunk configured with ``refer = "relay"``."""
        label = _peerLabel(self.peer) if leg is self.a else self.bLabel
        if label is None or label.kind != "trunk":
            return False
        trunk = self.manager.trunk(label.name)
        return trunk is not None and trunk.refer is Refer.RELAY

    def hangup(self, by: Leg | None, *, reason: str = "") -> None:
        """End a confirmed call: BYE to every leg but the one that said BYE."""
        if self.state == ENDED:
            return
        self.releasedBy = "sbc" if by is None else ("caller" if by is self.a else "callee")
        if by is None and reason:
            self.reason = reason
        for leg in (self.a, self.b):
            if leg is not None and leg is not by:
                bye = leg.request("BYE")
                if reason:
                    bye.headers.add("Reason", f'SIP;cause=200;text="{reason}"')
                bye.setBody(b"")
                self.manager.transactions.sendRequest(bye, leg.transport, leg.address, _Ignore())
        self.end()

    def end(self) -> None:
        if self.state == ENDED:
            return
        self.state = ENDED
        for timer in self.timers.values():
            if timer.active():
                timer.cancel()
        self.timers.clear()
        for branch in self.branches:
            self.stopFailover(branch)
        self.okToA = None
        self.media.close()
        self.manager.ended(self)

    def cancelTimer(self, name: str) -> None:
        timer = self.timers.pop(name, None)
        if timer is not None and timer.active():
            timer.cancel()

    def cdr(self) -> CDR:
        end = self.manager.clock.seconds()
        return CDR(
            callId=self.id,
            aLeg=_peerLabel(self.peer, self.request.authenticatedUser),
            bLeg=self.bLabel or (self.branches[-1].label if self.branches else None),
            fromUri=f"sip:{self.request.fromUser}@{self.request.fromDomain}",
            toUri=f"sip:{self.request.user}@{self.request.domain}",
            start=self.start,
            answer=self.answerTime,
            end=end,
            status=self.status,
            disposition=dispositionFor(self.status, self.cancelled),
            releasedBy=self.releasedBy,
            reason=self.reason,
        )


class Relay:
    """An in-dialog request forwarded to the other leg, waiting for its final answer."""

    __slots__ = ("call", "method", "source", "target", "transaction")

    def __init__(
        self, call: Call, transaction: ServerTransaction, method: str, target: Leg, source: Leg
    ) -> None:
        self.call = call
        self.transaction = transaction
        self.method = method
        self.target = target
        self.source = source

    def response(self, response: Response) -> None:
        if response.status < 200 and response.status != 100 and self.method != "INVITE":
            return
        if response.status == 100:
            return
        if self.method == "INVITE" and 200 <= response.status < 300:
            self.target.refresh(response)  # a target refresh: the route set stays (12.2.1.2)
            ack = self.target.request("ACK", cseq=response.cseq().number)
            self.target.send(ack)
        answer = responseTo(
            self.transaction.request.headers, response.status, standardReason(response.status)
        )
        if 200 <= response.status < 300 and self.method in ("INVITE", "UPDATE"):
            answer.headers.add("Contact", self.source.contact)
        copyHeaders(
            response.headers,
            answer.headers,
            fromTrusted=self.call.trustedLeg(self.target),
            toTrusted=self.call.trustedLeg(self.source),
        )
        media = self.call.media
        session = self.method in ("INVITE", "UPDATE")
        body = sdpOf(response) if session else None
        if body is None and session and 200 <= response.status < 300 and unreadable(response):
            # The answer (or offer) is in a body we cannot read: the source gets 488 and keeps the
            # session it had; the target's 2xx was ACKed above, as it must be.
            media.after(lambda: self.call.manager.respond(self.transaction, 488))
            return
        if body is None:
            if session:
                self.call.carry(answer, response, None, self.call.bLabel)
            else:
                answer.setBody(response.body)
            media.after(lambda: self.transaction.respond(answer))
            return

        def send(anchored: bytes) -> None:
            self.call.carry(answer, response, anchored, self.call.bLabel)
            self.transaction.respond(answer)

        media.answer(self.call.side(self.target), body).addCallbacks(
            send, lambda f: self.call.manager.respond(self.transaction, refusal(f))
        )

    def timedOut(self) -> None:
        self.call.manager.respond(self.transaction, 408)


@implementer(IClientTransactionUser)
class _Ignore:
    """The owner of requests whose answers change nothing (BYE, CANCEL)."""

    def responseReceived(self, response: Response, transaction: ClientTransaction) -> None:
        pass

    def transactionTimedOut(self, transaction: ClientTransaction) -> None:
        pass


class CallManager:
    """Creates calls from new INVITEs and finds the call of every in-dialog message."""

    log = Logger()

    def __init__(
        self,
        config: Config,
        clock: IReactorTime,
        transactions: TransactionLayer,
        registrar: Registrar,
        authenticator: Authenticator,
        route: Route,
        respond: Respond,
        cdrs: CDRWriter | None = None,
        relay: IMediaRelay | None = None,
        sourceLog: DropLog | None = None,
    ) -> None:
        self.relay = relay
        # Lines a call's messages can cause: at most one per source (A's host) and minute.
        self.sourceLog = sourceLog if sourceLog is not None else DropLog(clock)
        self.config = config
        self.clock = clock
        self.transactions = transactions
        self.registrar = registrar
        self.authenticator = authenticator
        self.routeCall = route
        self.respond = respond
        self.cdrs = cdrs
        self.calls: dict[ServerTransaction, Call] = {}
        self.legs: dict[tuple[str, str], tuple[Call, Leg]] = {}
        self.datagram: ISIPTransport | None = None
        self.ports = PortQuota()  # relay ports held per trunk and account; its total is a metric
        # [media] forbidden_targets as one IPSet, built once per configuration.
        self._forbidden: tuple[Config, IPSet] | None = None

    def anchor(self, call: Call, decision: Decision) -> MediaAnchor:
        """The call's media policy: relay unless a trunk on it says bypass; trunks' codec lists."""
        trunks = [self.trunk(call.peer.name)] if call.peer.kind == TRUNK else []
        trunks += [self.trunk(t.trunk) for t in decision.targets if isinstance(t, TrunkTarget)]
        bypass = any(t is not None and t.media is MediaMode.BYPASS for t in trunks)
        codecs: frozenset[str] | None = None
        for trunk in trunks:
            if trunk is not None and trunk.codecs is not None:
                allowed = frozenset(trunk.codecs)
                codecs = allowed if codecs is None else codecs & allowed
        anchor = MediaAnchor(
            None if bypass else self.relay,
            call.id,
            call.mediaTimeout,
            codecs,
            self.ports,
            forbidden=self.forbiddenTargets(),
            maxStreams=self.config.media.maxStreams,
        )
        if bypass:
            return anchor  # no relay: nobody latches media or holds ports for this call
        anchor.sipSources["A"] = call.invite.source[0]
        owner = self.portOwner(_peerLabel(call.peer, call.request.authenticatedUser))
        if owner is not None:
            anchor.owners["A"] = owner
        return anchor

    def forbiddenTargets(self) -> IPSet:
        """Where no SDP may send media (``[media] forbidden_targets``), for every engine."""
        config = self.config
        if self._forbidden is None or self._forbidden[0] is not config:
            self._forbidden = (config, config.media.forbiddenNetworks(config.listeners))
        return self._forbidden[1]

    def portOwner(self, label: Party | None) -> PortOwner | None:
        """Whom relay ports are charged to: a trunk or a registered account, each with its limit."""
        if label is None:
            return None
        media = self.config.media
        if label.kind == "trunk":
            return PortOwner(f"trunk:{label.name}", media.maxPortsPerTrunk)
        return PortOwner(f"account:{label.name}", media.maxPortsPerAccount)

    def transactionsT1(self) -> float:
        return self.transactions.timers.T1

    def transactionsT2(self) -> float:
        return self.transactions.timers.T2

    def trunk(self, name: str) -> Trunk | None:
        return self.config.trunk(name)

    def trusted(self, label: Party | None) -> bool:
        """Whether a party is inside our trust domain (RFC 3325): a trunk with ``trusted = true``."""
        trunk = self.trunk(label.name) if label is not None and label.kind == "trunk" else None
        return trunk is not None and trunk.trusted

    # --- new calls ---------------------------------------------------------------------------

    def invite(self, request: Request, transaction: ServerTransaction) -> None:
        source = transaction.source
        peer = self.config.access.classify(source[0])
        if peer is None:
            self.respond(transaction, 403)
            return
        if not _readable(request, transaction, self.respond):
            return
        accept = request.headers.getAll("accept")
        if accept and not any(a.split(";")[0].strip().lower() in _SDP_TYPES for a in accept if a):
            # RFC 4475 section 3.3.15: we can only answer with SDP.
            self.respond(
                transaction, 406, extra=(("Accept", "application/sdp"), ("Warning", '399 sbc "SDP only"'))
            )
            return
        try:
            timer = _sessionExpires(request)
        except SIPParseError as e:
            self.respond(transaction, 400, reason=f"Bad Request ({e.reason})")
            return
        if timer is not None and timer[0] < MIN_SE:
            self.respond(transaction, 422, extra=(("Min-SE", str(MIN_SE)),))
            return
        fromAddr = request.fromHeader()
        authenticated: str | None = None
        if peer.kind == DEVICES:
            user, domain = fromAddr.uri.user or "", fromAddr.uri.host.lower()
            if not self.config.registrar.servesDomain(domain):
                self.respond(transaction, 403, reason="Not a domain of ours")
                return
            try:
                verdict = self.authenticator.check(request, user, domain, source[0], proxy=True)
            except SIPParseError as e:  # unreadable Proxy-Authorization: the sender's error
                self.respond(transaction, 400, reason=f"Bad Request ({e.reason})")
                return
            if verdict.outcome is Outcome.FORBIDDEN:
                self.respond(transaction, 403)
                return
            if verdict.outcome is not Outcome.OK:
                self.respond(
                    transaction, 407, extra=self.authenticator.challenges(domain, verdict, proxy=True)
                )
                return
            authenticated = verdict.aor
        uri = request.uri
        callRequest = CallRequest(
            source=peer,
            fromUser=unescape(fromAddr.uri.user or ""),
            fromDomain=fromAddr.uri.host.lower(),
            user=unescape(uri.user or ""),
            domain=uri.host.lower(),
            authenticatedUser=authenticated,
            headers={
                k: v
                for k in ("p-asserted-identity", "diversion")
                if (v := request.headers.get(k)) is not None
            },
        )
        a = Leg(
            callId=request.callId,
            localTag=newTag(),
            localUri=str(request.toHeader().uri),
            remoteUri=str(fromAddr.uri),
            remoteTag=fromAddr.tag,
            remoteTarget=_contactURI(request),
            transport=transaction.transport,
            address=source,
            remoteSeq=request.cseq().number,
            routeSet=tuple(request.headers.getAll("record-route")),
        )
        call = Call(self, transaction, a, peer, callRequest, timer)
        self.calls[transaction] = call
        self.legs[a.key] = (call, a)
        self.followRoutes(a, _peerLabel(peer))
        whenReady(self.routeCall(callRequest), call.route, lambda failure: self._routeFailed(failure, call))

    def followRoutes(self, leg: Leg, label: Party) -> None:
        """Requests in a trunk's dialog go to its first route (RFC 3261 section 12.2.1.1) when that
        is an address of the same trunk's whitelist, so that its answers are admitted. A device keeps
        its flow (its NAT binding), and a stream its connection."""
        if label.kind != "trunk" or leg.transport.reliable:
            return
        hop = leg.nextHop()
        if hop == leg.address or (hop is None and not leg.routeSet):
            return
        if hop is None:
            why = "names no address"
        else:
            peer = self.config.access.classify(hop[0])
            if peer is not None and peer.kind == TRUNK and peer.name == label.name:
                leg.address = hop
                return
            why = f"is outside trunk {label.name}"
        self.sourceLog.info(
            self.log,
            leg.address[0],
            "route {route} {why}: in-dialog requests go to {address}",
            route=leg.routeSet[0],
            why=why,
            address=leg.address,
        )

    def _routeFailed(self, failure: Failure, call: Call) -> None:
        call.logFailure("routing failed", failure)
        call.reason = "routing failed"
        call.finishA(500)

    def expand(self, call: Call, targets: tuple[Any, ...]) -> Iterator[tuple[Party, Legs]]:
        """Each target as (CDR label, legs to place), lazily: a gateway is only built when tried."""
        for target in targets:
            if isinstance(target, TrunkTarget):
                trunk = self.trunk(target.trunk)
                if trunk is None:
                    continue
                for gateway in trunk.gateways:
                    yield Party("trunk", trunk.name), [self.trunkLeg(call, trunk, target.number, gateway)]
            elif isinstance(target, UserTarget):
                label = Party("user", target.aor)
                yield (
                    label,
                    self.registrar.store.lookup(target.aor).addCallback(self.userLegs, call, target.aor),
                )

    def userLegs(self, bindings: list[Binding], call: Call, aor: str) -> list[tuple[Leg, Request]]:
        legs = []
        for binding in bindings:
            route = self.registrar.route(binding)
            if route is None:
                continue
            transport, address = route
            target = replace(parseURI(binding.contact), headers=None)
            legs.append(self.bLeg(call, transport, address, target, f"sip:{aor}"))
        return legs

    def trunkLeg(
        self, call: Call, trunk: Trunk, number: str, gateway: tuple[str, int]
    ) -> tuple[Leg, Request]:
        transport = self.datagram or self.registrar.fallbackDatagram
        if transport is None:
            raise RuntimeError("no UDP listener to reach trunk gateways")
        host = f"[{gateway[0]}]" if ":" in gateway[0] else gateway[0]
        user = _userPart(number)
        target = URI("sip", user=user, host=host, port=gateway[1])
        return self.bLeg(call, transport, gateway, target, f"sip:{user}@{host}", Party("trunk", trunk.name))

    def bLeg(
        self,
        call: Call,
        transport: ISIPTransport,
        address: Address,
        target: URI,
        toUri: str,
        label: Party | None = None,
    ) -> tuple[Leg, Request]:
        """A fresh B-leg: our Call-ID, tag, CSeq, Via and Contact; A's identity only by name."""
        local = transport.localAddress
        localHost = f"[{local[0]}]" if ":" in local[0] else local[0]
        original = call.invite.request
        leg = Leg(
            callId=newCallId(),
            localTag=newTag(),
            localUri=f"sip:{_userPart(call.request.fromUser) or 'anonymous'}@{localHost}",
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
        trunk = self.trunk(call.peer.name) if call.peer.kind == TRUNK else None
        copyHeaders(
            original.headers,
            invite.headers,
            fromTrusted=trunk is not None and trunk.trusted,
            toTrusted=self.trusted(label),
            extra=trunk.passHeaders if trunk is not None else (),
        )
        invite.headers.add("Supported", "100rel")
        invite.headers.add("User-Agent", self.config.sip.serverName)
        call.carry(invite, original, call.bBody or None, label)
        return leg, invite

    def passesIsup(self, *labels: Party | None) -> bool:
        """ISUP parts cross only when every party is a trunk with ``pass_isup``.

        Both ends must opt in: the trunk ISUP comes from is trusted to send it (as ``trusted`` is
        for P-Asserted-Identity), and the trunk it goes to wants it. A device never speaks ISUP,
        and ISUP's numbers and circuit details are the operator's, so it never reaches one.
        """
        for label in labels:
            trunk = self.trunk(label.name) if label is not None and label.kind == "trunk" else None
            if trunk is None or not trunk.passIsup:
                return False
        return True

    # --- messages for existing calls ---------------------------------------------------------

    def inDialog(self, request: Request, transaction: ServerTransaction) -> None:
        found = self.legs.get((request.callId, request.toHeader().tag or ""))
        if found is None:
            self.respond(transaction, 481)
            return
        call, leg = found
        call.inDialog(request, transaction, leg)

    def ack(self, request: Request) -> None:
        found = self.legs.get((request.callId, request.toHeader().tag or ""))
        if found is not None and found[1] is found[0].a:
            found[0].ackReceived(request)

    def tagFor(self, invite: ServerTransaction) -> str | None:
        """Our To tag towards the caller of this INVITE, if it is a call of ours."""
        call = self.calls.get(invite)
        return None if call is None else call.a.localTag

    def cancelled(self, invite: ServerTransaction) -> bool:
        call = self.calls.get(invite)
        if call is None:
            return False
        call.cancel()
        return True

    def strayResponse(self, response: Response) -> None:
        """A 2xx retransmitted by a B side after its transaction ended: our ACK got lost."""
        if not 200 <= response.status < 300:
            return
        try:
            key = (response.callId, response.fromHeader().tag or "")
            cseq = response.cseq()
        except SIPParseError:
            return
        found = self.legs.get(key)
        if found is not None and cseq.method == "INVITE":
            found[1].send(found[1].request("ACK", cseq=cseq.number))

    def ended(self, call: Call) -> None:
        self.calls.pop(call.invite, None)
        for leg in (call.a, call.b, *(b.leg for b in call.branches)):
            if leg is not None:
                self.legs.pop(leg.key, None)
        if self.cdrs is None and not self.config.log.calls:
            return
        cdr = call.cdr()
        if self.cdrs is not None:
            self.cdrs.write(cdr)
        if self.config.log.calls:
            logCall(cdr)

    def active(self) -> list[Call]:
        return [call for call in self.calls.values() if call.state != ENDED]

    def drain(self, clock: IReactorTime, grace: float) -> Deferred[None]:
        """Fire when every call has ended by itself, or after ``grace`` seconds."""
        done: Deferred[None] = Deferred()
        deadline = clock.seconds() + grace

        def check() -> None:
            if not self.active() or clock.seconds() >= deadline:
                done.callback(None)
            else:
                clock.callLater(0.5, check)

        check()
        return done

    def releaseAll(self) -> None:
        """Shutdown: every call ends now, with BYE or a final answer, and gets its CDR."""
        for call in list(self.calls.values()):
            if call.state == CONFIRMED:
                call.hangup(None, reason="SBC shutting down")
            else:
                call.cancelBranches()
                call.finishA(503, "Service Unavailable")


def _better(status: int, best: int) -> bool:
    """RFC 3261 section 16.7: 6xx beats all; otherwise the lowest class, 408 and 5xx last."""
    if best == 0:
        return True

    def rank(code: int) -> tuple[int, int]:
        if code >= 600:
            return (0, code)
        if code == 408 or code >= 500:
            return (3, code)
        return (1 if code < 400 else 2, code)

    return rank(status) < rank(best)


def _peerLabel(peer: Peer, user: str | None = None) -> Party:
    if peer.kind == TRUNK:
        return Party("trunk", peer.name)
    return Party("user", user or peer.name)


_USER_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()&=+$,;?/")


def _userPart(text: str) -> str:
    """A user part safe to write into a URI we build: escape what the grammar forbids."""
    if _USER_CHARS.issuperset(text):
        return text
    return "".join(ch if ch in _USER_CHARS else f"%{ord(ch):02X}" for ch in text)


def _optionTags(request: Request) -> set[str]:
    return {
        t.strip().lower() for h in ("supported", "require") for t in request.headers.getAll(h) if t.strip()
    }


def _reliable(response: Response) -> int | None:
    """The RSeq of a reliable provisional response (RFC 3262), or None."""
    if "100rel" not in {t.strip().lower() for t in response.headers.getAll("require")}:
        return None
    rseq = (response.headers.get("rseq") or "").strip()
    return int(rseq) if isDigits(rseq) and 0 < int(rseq) < 2**32 else None


MIN_SE = 90


def _sessionExpires(request: Request) -> tuple[float, str] | None:
    """RFC 4028: the interval and refresher A asked for, or None (raises for a bad value)."""
    value = request.headers.get("session-expires")
    if value is None:
        return None
    delta, _, params = value.partition(";")
    delta = delta.strip()
    if not isDigits(delta):
        raise SIPParseError("bad Session-Expires")
    refresher = "uac"
    for param in params.split(";"):
        name, _, arg = param.partition("=")
        if name.strip().lower() == "refresher" and arg.strip().lower() in ("uac", "uas"):
            refresher = arg.strip().lower()
    return (float(delta), refresher)


@implementer(IClientTransactionUser)
class _Refresh:
    """Our session refresh to A: a failure means the session is gone (RFC 4028 section 10)."""

    def __init__(self, call: Call) -> None:
        self.call = call

    def responseReceived(self, response: Response, transaction: ClientTransaction) -> None:
        if response.status in (408, 481):
            self.call.hangup(None, reason="session refresh failed")

    def transactionTimedOut(self, transaction: ClientTransaction) -> None:
        self.call.hangup(None, reason="session refresh failed")


def _readable(request: Request, transaction: ServerTransaction, respond: Respond) -> bool:
    """RFC 3261 section 8.2.3: a body we cannot read is refused (415 with Accept, or 400)."""
    try:
        readBody(request)
    except UnreadableBodyError as e:
        reason = f"Bad Request ({e.reason})" if e.status == 400 else None
        respond(transaction, e.status, reason=reason, extra=e.extra)
        return False
    return True


def _contactURI(request: Request) -> URI:
    contacts = request.contacts()
    return contacts[0].uri if contacts else request.fromHeader().uri
