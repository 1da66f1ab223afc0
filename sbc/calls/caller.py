"""The caller's side of a call: every response A gets, rebuilt from B's; A's reliable provisionals
(RFC 3262); our 2xx, resent until A's ACK (RFC 3261 section 13.3.1.4); and A's session timer
(RFC 4028). It tells the call only that A is gone (``onGone``)."""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall
from zope.interface import implementer

from sbc.calls.admission import Refresher, optionTags
from sbc.calls.context import CallContext, Extra
from sbc.calls.parties import Sides
from sbc.calls.policy import copyHeaders, standardReason
from sbc.config import Trunk
from sbc.dialog import Leg
from sbc.interfaces import IClientTransactionUser
from sbc.media.bodies import putBody
from sbc.sip.message import Request, Response, responseTo
from sbc.transaction import ClientTransaction, ServerTransaction, responseAddress

__all__ = ["CallerSide"]


@implementer(IClientTransactionUser)
class CallerSide:
    """A's INVITE and dialog as the UAS, and the timers that keep them (it is the transaction user
    of its own session refreshes)."""

    __slots__ = (
        "a",
        "address",
        "closed",
        "context",
        "invite",
        "knowsTimer",
        "ok",
        "okTimer",
        "onGone",
        "provisionalTimer",
        "reliable",
        "rseq",
        "sessionTimeout",
        "sessionTimer",
        "sides",
        "unackedRseq",
    )

    def __init__(
        self,
        context: CallContext,
        invite: ServerTransaction,
        a: Leg,
        sides: Sides,
        sessionTimer: tuple[float, Refresher] | None,
        onGone: Callable[[str], object],
    ) -> None:
        self.context = context
        self.invite = invite
        self.a = a
        self.sides = sides
        self.onGone = onGone
        self.address = responseAddress(invite.request.topVia(), invite.transport, invite.source)
        tags = optionTags(invite.request)
        self.reliable = "100rel" in tags  # A takes reliable provisionals (RFC 3262)
        self.rseq = 0
        self.unackedRseq: int | None = None
        self.ok: Response | None = None  # our 2xx, until A's ACK
        # RFC 4028 session timer asked for by A: (interval, refresher) and whether A knows "timer".
        self.sessionTimer = sessionTimer
        self.knowsTimer = "timer" in tags
        self.provisionalTimer: IDelayedCall | None = None
        self.okTimer: IDelayedCall | None = None
        self.sessionTimeout: IDelayedCall | None = None
        self.closed = False  # the call is over: nothing more reaches A, no timer starts

    def responseFor(self, response: Response, body: bytes | None, trunk: Trunk | None) -> Response:
        """B's response (from ``trunk``'s side, None for a user), rebuilt for A: A's own Via,
        From, To (with our tag), Call-ID, CSeq; the headers policy passes; the (anchored) body."""
        request = self.invite.request
        # The standard phrase, never B's own text, which may name its hosts (policy.standardReason).
        answer = responseTo(
            request.headers, response.status, standardReason(response.status), toTag=self.a.localTag
        )
        if 100 < response.status < 300:
            # RFC 3261 section 12.1.1: A's Record-Route, every field as received, in every 18x/2xx
            # (all carry our To tag), so A's proxies stay on the path of its ACK and BYE.
            answer.headers.fields.extend(f for f in request.headers.fields if f.key == "record-route")
            answer.headers.add("Contact", self.a.contact)
        sides = self.sides
        # Trust is B's, who sent these headers: an untrusted callee never asserts an identity to A.
        copyHeaders(
            response.headers,
            answer.headers,
            fromTrusted=Sides.trusted(trunk),
            toTrusted=Sides.trusted(sides.a),
            extra=sides.passA,
        )
        answer.headers.add("Server", self.context.serverName)
        putBody(answer, response, body, isup=sides.isup(trunk))
        return answer

    def provisional(self, answer: Response) -> None:
        """Send an 18x to A; reliably (RFC 3262) when A supports it and none is outstanding."""
        if self.closed:
            return
        if not self.reliable or self.unackedRseq is not None:
            self.invite.respond(answer)
            return
        self.rseq += 1
        self.unackedRseq = self.rseq
        answer.headers.add("Require", "100rel")
        answer.headers.add("RSeq", str(self.rseq))
        self.invite.respond(answer)
        t1 = self.context.transactions.timers.T1
        self.provisionalTimer = self.context.clock.callLater(t1, self._again, answer, t1)

    def _again(self, answer: Response, interval: float) -> None:
        self.provisionalTimer = None
        if self.unackedRseq is None:
            return
        if interval > 32 * self.context.transactions.timers.T1:
            self.unackedRseq = None  # never PRACKed: give up on reliability for this call
            return
        self.invite.respond(answer)
        self.provisionalTimer = self.context.clock.callLater(interval * 2, self._again, answer, interval * 2)

    def stopProvisionals(self) -> None:
        """A final answer is coming: no more resending of a reliable provisional."""
        self.unackedRseq = None
        self.provisionalTimer = _cancel(self.provisionalTimer)

    def prack(self, request: Request) -> int:
        """A's PRACK: 200 if it acknowledges our outstanding reliable provisional, else 481."""
        rack = (request.headers.get("rack") or "").split()
        if self.unackedRseq is not None and rack[:1] == [str(self.unackedRseq)]:
            self.stopProvisionals()
            return 200
        return 481

    def answer(self, ok: Response) -> None:
        """Our 2xx to A (with A's session timer, if it asked), resent until A's ACK over UDP."""
        if self.closed:
            return
        self.stopProvisionals()
        if self.sessionTimer is not None:
            interval, refresher = self.sessionTimer
            ok.headers.add("Session-Expires", f"{interval:.0f};refresher={refresher}")
            if self.knowsTimer:
                ok.headers.add("Require", "timer")
            self.refreshed()
        self.ok = ok
        self.invite.respond(ok)
        if not self.invite.transport.reliable:
            self._resendOk(self.context.transactions.timers.T1, 0.0)

    def fail(self, status: int, reason: str | None, extra: Extra) -> None:
        """A final failure of our own making to A's INVITE."""
        self.stopProvisionals()
        answer = responseTo(self.invite.request.headers, status, reason, toTag=self.a.localTag)
        answer.headers.add("Server", self.context.serverName)
        for name, value in extra:
            answer.headers.add(name, value)
        answer.setBody(b"")
        self.invite.respond(answer)

    def relayFailure(self, response: Response, trunk: Trunk | None) -> None:
        """B's final failure, rebuilt for A."""
        self.stopProvisionals()
        self.invite.respond(self.responseFor(response, None, trunk))

    def _resendOk(self, interval: float, elapsed: float) -> None:
        """RFC 3261 section 13.3.1.4: resend our 2xx until A's ACK, T1 doubling to T2; after 64*T1
        without one, A is gone."""
        if self.ok is None:
            return
        timers = self.context.transactions.timers
        if elapsed >= 64 * timers.T1:
            self.okTimer = None
            self.onGone("no ACK")
            return
        self.okTimer = self.context.clock.callLater(interval, self._okAgain, interval, elapsed)

    def _okAgain(self, interval: float, elapsed: float) -> None:
        if self.ok is not None:
            self.a.transport.send(self.ok.toBytes(), self.address)
            self._resendOk(min(interval * 2, self.context.transactions.timers.T2), elapsed + interval)

    def acked(self) -> bool:
        """A's ACK for our 2xx: stop resending it. False if no 2xx of ours waited for it."""
        if self.ok is None:
            return False
        self.ok = None
        self.okTimer = _cancel(self.okTimer)
        return True

    def refreshed(self) -> None:
        """RFC 4028: the session starts or was refreshed. A refreshes (refresher=uac) or we do
        (uas); a session nobody refreshes ends."""
        if self.sessionTimer is None or self.closed:
            return
        interval, refresher = self.sessionTimer
        _cancel(self.sessionTimeout)
        clock = self.context.clock
        if refresher is Refresher.UAS:
            self.sessionTimeout = clock.callLater(interval / 2, self._refresh)
        else:
            self.sessionTimeout = clock.callLater(
                interval - min(32.0, interval / 3), self.onGone, "session expired"
            )

    def _refresh(self) -> None:
        """Our turn to refresh A's session: an UPDATE without SDP (RFC 4028 section 7.4)."""
        self.sessionTimeout = None
        if self.sessionTimer is None:
            return
        a = self.a
        update = a.request("UPDATE")
        update.headers.add("Session-Expires", f"{self.sessionTimer[0]:.0f};refresher={Refresher.UAS}")
        update.setBody(b"")
        self.context.transactions.sendRequest(update, a.transport, a.address, self)
        self.refreshed()

    def responseReceived(self, response: Response, transaction: ClientTransaction) -> None:
        """Our session refresh was answered: 408 or 481 means the session is gone (RFC 4028 section 10)."""
        if response.status in (408, 481):
            self.onGone("session refresh failed")

    def transactionTimedOut(self, transaction: ClientTransaction) -> None:
        """Our session refresh got no answer: the session is gone."""
        self.onGone("session refresh failed")

    def close(self) -> None:
        """The call is over: every timer stops, and none starts again."""
        self.closed = True
        self.ok = None
        self.unackedRseq = None
        self.provisionalTimer = _cancel(self.provisionalTimer)
        self.okTimer = _cancel(self.okTimer)
        self.sessionTimeout = _cancel(self.sessionTimeout)


def _cancel(timer: IDelayedCall | None) -> IDelayedCall | None:
    if timer is not None and timer.active():
        timer.cancel()
    return None
