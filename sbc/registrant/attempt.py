"""One registration's attempts: finding the registrar, sending REGISTERs, and their timers.

An attempt finds the registrar (RFC 3263, through the outbound proxy if one is set) and sends a
REGISTER; challenges (401, 407) and 423 Min-Expires are answered within it, a bounded number of
times. Every attempt ends: Timer F ends its transaction, and a guard timer ends the attempt itself
(a DNS lookup that never answers included). All REGISTERs of one registration share one Call-ID,
with the CSeq rising (RFC 3261 section 10.2.4). How an attempt ends (registered, a transient
failure, a refusal) is `sbc.registrant.client.RegistrationClient`'s: the hooks `_transient` and
`_unanswered` below.
"""

from __future__ import annotations

import random
import secrets
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import cast

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from sbc.addresses import unbracket
from sbc.config.registrants import Registrant
from sbc.config.sip import Transport
from sbc.dialog import newCallId, newTag
from sbc.interfaces import Address, IClientTransactionUser, ISIPTransport
from sbc.locate import Hop, LocateError
from sbc.registrant.auth import DigestClient
from sbc.registrant.contact import contactUser
from sbc.registrant.messages import contactFor, registerRequest
from sbc.registrant.status import RegistrantState
from sbc.sip.message import Response
from sbc.sip.uri import URI
from sbc.transaction import ClientTransaction, TransactionLayer
from sbc.waiting import whenReady

__all__ = ["GUARD_SLACK", "MAX_ROUNDS", "Attempts", "Locate", "TransportFor"]

# RFC 3263 lookups: sbc.locate.ServerLocator.locate fits.
Locate = Callable[[str, int | None, Transport | None], list[Hop] | Deferred[list[Hop]]]
# The transport to reach a hop on (the UDP socket, or a TCP or TLS connection), or None when
# there is none (yet).
TransportFor = Callable[[Hop], ISIPTransport | None]

# Seconds an attempt may take beyond Timer F (64*T1) before the guard ends it.
GUARD_SLACK = 10.0
# REGISTERs sent at once within one attempt (challenges answered, Min-Expires taken) at most.
MAX_ROUNDS = 5


class Attempts(ABC):
    """The sending half of a registration: attempts, their REGISTERs, hops and timers (the
    subclass is the `IClientTransactionUser` its transactions answer)."""

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
        self.registrant = registrant
        self.clock = clock
        self.transactions = transactions
        self.locate = locate
        self.transportFor = transportFor
        self.chance = chance
        self.userAgent = userAgent
        # Our Contact's user: derived from the SBC's secret (None: a random one, for tests).
        self.contactUser = contactUser(
            secret if secret is not None else secrets.token_bytes(32), registrant.name
        )
        self.callId = newCallId()
        self.fromTag = newTag()
        self.cseq = 0
        self.state = RegistrantState.IDLE
        self.nextAttempt: float | None = None
        self.destination: Address | None = None
        # What we ask for: the config's expires, raised by a 423's Min-Expires.
        self.expires = registrant.expires
        self.digest = DigestClient(registrant.authUser, registrant.password)
        self._timer: IDelayedCall | None = None
        self._guard: IDelayedCall | None = None
        self._transaction: ClientTransaction | None = None
        self._hop: Hop | None = None
        self._hopIndex = 0  # moves on after an unanswered attempt, to the next hop DNS gave
        self._contact: URI | None = None
        self._asking = 0  # the expires of the REGISTER in flight
        self._attempt = 0  # numbers attempts, so that a late DNS answer of an old one is ignored
        self._rounds = 0

    # --- one attempt ---------------------------------------------------------------------------

    def _open(self, state: RegistrantState) -> int:
        """Start an attempt in ``state``, its guard running; its number."""
        self._endAttempt()
        self._rounds = 0
        self.state = state
        self._guard = self.clock.callLater(self._guardTime(), self._guardFired, self._attempt)
        return self._attempt

    def _begin(self) -> None:
        attempt = self._open(RegistrantState.REGISTERING)
        self.digest.newAttempt()
        target = self.registrant.proxyURI or self.registrant.registrarURI
        try:
            hops = self.locate(unbracket(target.host), target.port, self.registrant.transport)
        except LocateError as e:
            self._transient(None, f"registrar not found: {e}")
            return
        whenReady(hops, lambda found: self._located(found, attempt), lambda f: self._notLocated(f, attempt))

    def _located(self, hops: list[Hop], attempt: int) -> None:
        if attempt != self._attempt:
            return
        if not hops:
            self._transient(None, "the registrar's name gave no address")
            return
        hop = self._hop = hops[self._hopIndex % len(hops)]
        self.destination = (hop.host, hop.port)
        transport = self.transportFor(hop)
        if transport is None:
            self._transient(None, f"no {self.registrant.transport} listener to send from")
            return
        self._send(transport, hop, self.expires)

    def _notLocated(self, failure: Failure, attempt: int) -> None:
        if attempt == self._attempt:
            self._transient(None, f"registrar not found: {failure.getErrorMessage()}")

    def _send(self, transport: ISIPTransport, hop: Hop, expires: int) -> None:
        self.cseq += 1
        self._asking = expires
        self._contact = contactFor(self.registrant, transport, self.contactUser)
        request = registerRequest(
            self.registrant, transport, callId=self.callId, fromTag=self.fromTag, cseq=self.cseq,
            expires=expires, contact=self._contact, userAgent=self.userAgent,
            credentials=self.digest.headers("REGISTER", str(self.registrant.registrarURI)),
        )  # fmt: skip
        self._transaction = self.transactions.sendRequest(
            request, transport, (hop.host, hop.port), cast(IClientTransactionUser, self)
        )

    def _resend(self) -> bool:
        """Send the same REGISTER again at once (after a challenge or a 423), if rounds are left:
        False when none are. Without a transport to send on, the attempt ends here as a transient
        failure (True: nothing more to do)."""
        self._rounds += 1
        if self._rounds > MAX_ROUNDS:
            return False
        hop = self._hop
        transport = None if hop is None else self.transportFor(hop)
        if hop is None or transport is None:
            self._unanswered(f"no {self.registrant.transport} transport to send the REGISTER again on")
            return True
        self._send(transport, hop, self._asking)
        return True

    # --- how an attempt ends: the subclass's -------------------------------------------------

    @abstractmethod
    def _transient(self, response: Response | None, why: str | None) -> None:
        """The attempt failed for now (no address, no transport, a 408 or 5xx): try again later."""

    @abstractmethod
    def _unanswered(self, why: str) -> None:
        """The attempt's REGISTER got no answer (Timer F, the guard, no transport to resend on)."""

    # --- timeouts ------------------------------------------------------------------------------

    def transactionTimedOut(self, transaction: ClientTransaction) -> None:
        """Timer F: no answer at all. A transient failure (RFC 3261 section 8.1.3.1: as a 408)."""
        if transaction is self._transaction:
            self._transaction = None
            self._unanswered("no answer")

    def _guardFired(self, attempt: int) -> None:
        if attempt != self._attempt:
            return
        self._guard = None
        self._transaction = None
        self._unanswered(f"no answer within {self._guardTime():g} s")

    # --- timers --------------------------------------------------------------------------------

    def _schedule(self, delay: float) -> None:
        self.nextAttempt = self.clock.seconds() + delay
        self._timer = self.clock.callLater(delay, self._begin)

    def _guardTime(self) -> float:
        return 64 * self.transactions.timers.T1 + GUARD_SLACK

    def _endAttempt(self) -> None:
        """Cancel the planned attempt and the guard; what the attempt still awaits (an answer to
        its REGISTER, its DNS lookup) is ignored when it comes."""
        self._attempt += 1
        self.nextAttempt = None
        for call in (self._timer, self._guard):
            if call is not None and call.active():
                call.cancel()
        self._timer = self._guard = None
        self._transaction = None
