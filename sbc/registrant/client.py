"""One registration at a peer's registrar, as a phone keeps it (RFC 3261 section 10.2).

An attempt finds the registrar (RFC 3263, through the outbound proxy if one is set), sends a
REGISTER and ends in one of three ways: registered (a refresh is planned at a fraction of the
granted time), a transient failure (no answer, 408, 5xx, DNS or transport trouble: tried again
after an exponential backoff), or a refusal (403, 404, a wrong password, other 4xx: tried again
after about an hour, and flagged). A Retry-After lengthens that wait, never shortens it. Challenges
(401, 407) and 423 Min-Expires are answered within the attempt, a bounded number of times. Every
attempt ends: Timer F ends its transaction, and a guard timer ends the attempt itself (a DNS
lookup that never answers included: `sbc.registrant.attempt`). Stopping sends a REGISTER with
Expires: 0 for our Contact, after the answer to a REGISTER still in flight.
"""

from __future__ import annotations

import contextlib
import random

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from sbc.config.registrants import Registrant
from sbc.interfaces import IClientTransactionUser
from sbc.printable import printable
from sbc.registrant.attempt import GUARD_SLACK, MAX_ROUNDS, Attempts, Locate, TransportFor
from sbc.registrant.auth import AuthRefusedError, DigestClient
from sbc.registrant.keepalive import Keepalive
from sbc.registrant.messages import grantedExpiry, minExpires, retryAfter
from sbc.registrant.status import RegistrantState, RegistrantStatus
from sbc.registrant.timing import backoff, refreshDelay, stopDelay, withRetryAfter
from sbc.sip.message import Response
from sbc.transaction import ClientTransaction, TransactionLayer

__all__ = ["GUARD_SLACK", "MAX_ROUNDS", "Locate", "RegistrationClient", "TransportFor"]

# A peer's reason phrase is kept this long at most (it goes to the API and the log).
REASON_LIMIT = 120

IDLE = RegistrantState.IDLE
REGISTERING = RegistrantState.REGISTERING
REGISTERED = RegistrantState.REGISTERED
RETRYING = RegistrantState.RETRYING
FAILED = RegistrantState.FAILED
UNREGISTERING = RegistrantState.UNREGISTERING
STOPPED = RegistrantState.STOPPED


@implementer(IClientTransactionUser)
class RegistrationClient(Attempts):
    """The state machine of one `Registrant`: attempts (`Attempts`), how each ends (refreshes,
    backoffs), and the unregister."""

    log = Logger()

    def __init__(
        self,
        registrant: Registrant,
        clock: IReactorTime,
        transactions: TransactionLayer,
        locate: Locate,
        transportFor: TransportFor,
        chance: random.Random,
        userAgent: str = "sbc",
        secret: bytes | None = None,
    ) -> None:
        super().__init__(registrant, clock, transactions, locate, transportFor, chance, userAgent, secret)
        self.lastCode: int | None = None
        self.lastReason: str | None = None
        self.registeredUntil: float | None = None
        self.failures = 0
        self._stopWaiters: list[Deferred[None]] = []
        # stop() came while a REGISTER was in flight: its answer (or its end) comes first.
        self._stopping = False
        self.keepalive = Keepalive(clock, chance)  # over TCP or TLS, between refreshes

    def __repr__(self) -> str:
        return f"<RegistrationClient {self.registrant.name} {self.state}>"

    # --- what the service calls ----------------------------------------------------------------

    def start(self) -> None:
        """Register now (once: a started registration keeps itself going)."""
        if self.state is IDLE:
            self._begin()

    def update(self, registrant: Registrant) -> None:
        """The same binding (registrar, AOR, proxy, transport) with other settings: a changed
        route only follows; anything else registers again at once, with the new settings."""
        old, self.registrant = self.registrant, registrant
        if self.state in (UNREGISTERING, STOPPED) or _sameBut(old, registrant, "routeUser"):
            return
        self.expires = registrant.expires
        self.digest = DigestClient(registrant.authUser, registrant.password)
        self.failures = 0
        if self.state is not IDLE:
            self._begin()

    def stop(self) -> Deferred[None]:
        """Stop for good: when our Contact may be bound, REGISTER it away (Expires: 0); the
        Deferred fires when the registrar has answered, or the attempt ended without an answer.

        A REGISTER in flight is waited for first (its answer, or its end): otherwise its
        retransmissions could reach the registrar after our Expires: 0 and bind the Contact again.
        """
        if self.state is STOPPED:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._stopWaiters.append(waiter)
        if self.state is UNREGISTERING or self._stopping:
            return waiter
        if self.state is REGISTERING and self._transaction is not None:
            self._stopping = True
            return waiter
        self._unregister((self.registeredUntil or 0) > self.clock.seconds())
        return waiter

    def _unregister(self, bound: bool) -> None:
        """REGISTER our Contact away if it may be ``bound`` and the registrar is reachable; else stop now."""
        self._stopping = False
        hop = self._hop
        transport = None if hop is None else self.transportFor(hop)
        if not bound or hop is None or transport is None:
            self._endAttempt()
            self._stopped(None, None)
            return
        self._open(UNREGISTERING)
        self._send(transport, hop, 0)

    def status(self) -> RegistrantStatus:
        """This registration now, for the API and the metrics."""
        r = self.registrant
        return RegistrantStatus(
            r.name, r.registrar, r.aor, self.state, self.lastCode, self.lastReason,
            self.nextAttempt, self.registeredUntil, self.destination, self.failures,
        )  # fmt: skip

    # --- IClientTransactionUser ----------------------------------------------------------------

    def responseReceived(self, response: Response, transaction: ClientTransaction) -> None:
        """A final answer to our REGISTER ends or continues the attempt; provisional ones wait."""
        if transaction is not self._transaction or response.status < 200:
            return
        self._transaction = None
        status = response.status
        if self._stopping:  # stop() waited for this answer: now the unregister
            self._stopAfter(response)
            return
        if status in (401, 407):
            try:
                self.digest.challenged(response)
            except AuthRefusedError as e:
                self._answered(response, str(e))
                return
            if not self._resend():
                self._answered(response, "challenged again and again")
            return
        if status == 423 and self.state is REGISTERING:
            minimum = minExpires(response)
            if minimum is not None and minimum > self.expires:
                self.expires = minimum
                self._asking = minimum
                if self._resend():
                    return
            self._answered(response, "423 without a Min-Expires above ours")
            return
        self._answered(response, None)

    def _unanswered(self, why: str) -> None:
        self._hopIndex += 1  # the next attempt tries the registrar's next address, if it has one
        if self._stopping:  # the REGISTER stop() waited for got no answer: it may have arrived
            self._unregister(True)
        elif self.state is UNREGISTERING:
            self._stopped(408, why)
        else:
            self._transient(None, why)

    def _stopAfter(self, response: Response) -> None:
        """The REGISTER in flight when stop() came has its answer: unregister if it (or an earlier
        one) may have bound our Contact, answering its challenge if it brought one."""
        status = response.status
        if status in (401, 407):
            with contextlib.suppress(AuthRefusedError):  # refused: the unregister is then unanswered
                self.digest.challenged(response)
        self._unregister(200 <= status < 300 or (self.registeredUntil or 0) > self.clock.seconds())

    # --- how an attempt ends -------------------------------------------------------------------

    def _answered(self, response: Response, why: str | None) -> None:
        status = response.status
        if self.state is UNREGISTERING:
            self._stopped(status, why or response.reason)
            if 200 <= status < 300:
                self.registeredUntil = None
        elif 200 <= status < 300:
            self._registered(response)
        elif why is None and (status == 408 or 500 <= status < 600):
            if status == 503:
                self._hopIndex += 1  # RFC 3263 section 4.3: the next address, as after a timeout
            self._transient(response, None)
        else:
            self._refused(response, why)

    def _registered(self, response: Response) -> None:
        assert self._contact is not None
        granted = grantedExpiry(response, self._contact, self._asking)
        if granted <= 0:
            self._transient(response, "the registrar kept our Contact for 0 seconds")
            return
        now = self.clock.seconds()
        wasUp = self.lastCode is not None and 200 <= self.lastCode < 300  # a refresh: not logged
        self._endAttempt()
        self.state = REGISTERED
        self.failures = 0
        self._last(response.status, response.reason)
        self.registeredUntil = now + granted
        self._schedule(refreshDelay(granted, self.chance))
        self.keepalive.keep(None if self._hop is None else self.transportFor(self._hop))
        if not wasUp:
            r = self.registrant
            self.log.info(
                "registrant {name}: registered at {registrar} as {aor} for {granted} s",
                name=r.name, registrar=r.registrar, aor=r.aor, granted=granted,
            )  # fmt: skip

    def _transient(self, response: Response | None, why: str | None) -> None:
        self._fail(RETRYING, response, why, backoff(self.failures + 1, self.chance))

    def _refused(self, response: Response, why: str | None) -> None:
        self._fail(FAILED, response, why, stopDelay(self.chance))

    def _fail(self, state: RegistrantState, response: Response | None, why: str | None, delay: float) -> None:
        self._endAttempt()
        self.failures += 1
        code = 408 if response is None else response.status
        changed = code != self.lastCode  # the same failure again is not logged again
        self.state = state
        self._last(code, why or (response.reason if response else ""))
        delay = withRetryAfter(delay, None if response is None else retryAfter(response))
        self._schedule(delay)
        if changed or self.failures == 1:
            self.log.warn(
                "registrant {name}: {kind} at {registrar}: {code} {reason}; next try in {delay} s",
                name=self.registrant.name, kind="refused" if state is FAILED else "failed",
                registrar=self.registrant.registrar, code=self.lastCode, reason=self.lastReason,
                delay=round(delay),
            )  # fmt: skip

    def _stopped(self, code: int | None, why: str | None) -> None:
        """Stopped: no binding of ours is counted on any more (``code``: the unregister's answer)."""
        self._endAttempt()
        self.state = STOPPED
        self.registeredUntil = None
        self.keepalive.stop()
        if code is not None and why is not None:
            self._last(code, why)
        waiters, self._stopWaiters = self._stopWaiters, []
        for waiter in waiters:
            waiter.callback(None)

    def _last(self, code: int, reason: str) -> None:
        self.lastCode = code
        # A peer's phrase goes to the log, the API and a terminal: no control characters.
        self.lastReason = printable(reason[:REASON_LIMIT])


def _sameBut(a: Registrant, b: Registrant, field: str) -> bool:
    """Whether ``a`` and ``b`` differ in ``field`` alone (or not at all)."""
    return all(getattr(a, name) == getattr(b, name) for name in a.__dataclass_fields__ if name != field)
