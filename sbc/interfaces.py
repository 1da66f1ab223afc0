"""The seams of the SBC: where a second implementation plugs in, or a layer talks to the next.

Like ``twisted.internet.interfaces``, this module only declares. Each interface documents the
attributes its providers must have.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from zope.interface import Attribute, Interface

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

    from sbc.registrar.location import Binding
    from sbc.routing import CallRequest, Decision
    from sbc.sip.message import Request, Response
    from sbc.sip.sdp import SessionDescription
    from sbc.transaction import ClientTransaction, ServerTransaction

# An address as Twisted gives it for UDP and TCP: (host, port). IPv6 hosts have no brackets.
Address = tuple[str, int]


class ISIPTransport(Interface):
    """One UDP socket or one stream connection, as the layers above see it."""

    name = Attribute("'UDP', 'TCP' or 'TLS', as written in a Via header.")
    reliable = Attribute("True for streams: no retransmission timers, and timers D, I, J, K are zero.")
    localAddress = Attribute("The (host, port) we are bound to, for our own Via and Contact.")

    def send(data: bytes, address: Address) -> None:
        """Send one whole message. Streams ignore ``address``: they have one peer."""


class ITransactionUser(Interface):
    """The layer above the transactions (RFC 3261 section 17): the SBC's core."""

    def requestReceived(request: Request, transaction: ServerTransaction | None) -> None:
        """A new request.

        ``transaction`` is the new `sbc.transaction.ServerTransaction`, or None for an ACK that
        matched no transaction (the ACK for a 2xx, which belongs to the dialog). For a CANCEL,
        ``transaction.cancelled`` is the INVITE server transaction it matches, or None (section 9.2).
        """

    def strayResponse(response: Response, transport: ISIPTransport, source: Address) -> None:
        """A response that matches no client transaction, such as a retransmitted 2xx to INVITE."""


class IClientTransactionUser(Interface):
    """Whoever sent a request through a client transaction and wants to hear how it went."""

    def responseReceived(response: Response, transaction: ClientTransaction) -> None:
        """A provisional or final response for ``transaction``."""

    def transactionTimedOut(transaction: ClientTransaction) -> None:
        """Timer B or F fired, or the request could not be sent (a connection that failed): no
        final response. The TU acts as if it got a 408."""


class ILocationStore(Interface):
    """Where registrations live (RFC 3261 section 10): memory with SQLite beneath, later Redis.

    Every method returns a Deferred, so that a store on the network (Redis, for several SBC
    nodes) fits behind the same interface as the embedded one, which answers at once.
    Bindings are `sbc.registrar.location.Binding` values; ``aor`` is the canonical ``user@domain``.
    """

    def lookup(aor: str) -> Deferred[list[Binding]]:
        """Every binding of ``aor`` that has not expired, best q first."""

    def save(binding: Binding) -> Deferred[None]:
        """Add a binding, or replace the one with the same AOR and contact URI."""

    def remove(aor: str, contact: str) -> Deferred[None]:
        """Drop one binding; no error if it is already gone."""

    def removeAll(aor: str) -> Deferred[None]:
        """Drop every binding of ``aor`` (``Contact: *``)."""

    def expire() -> Deferred[int]:
        """Drop every binding whose expiry has passed; returns how many went."""

    def all() -> Deferred[list[Binding]]:
        """Every live binding of every AOR (for qualifying, status pages and tests)."""


class IRouter(Interface):
    """One link of the routing chain (like ``twisted.names``' resolver chain)."""

    name = Attribute("A short name for logs and `sbc-ctl explain`.")

    def route(call: CallRequest) -> Decision | Deferred[Decision | None] | None:
        """Decide where ``call`` goes, or None to let the next router decide: at once when the
        router can (every built-in one does), or as a Deferred when it must wait. Errors are raised
        (or fail the Deferred); the chain then rejects the call with 500."""


class MediaError(Exception):
    """Why an `IMediaRelay` could not anchor an SDP. Providers fail only with its subclasses (an
    engine's own errors subclass them), so the call layer answers the same whatever engine runs."""


class NotAcceptableError(MediaError):
    """An SDP that cannot be used (no codec left, a forbidden address, too many streams): 488."""


class MediaCapacityError(MediaError):
    """No capacity: no relay port pair left, or the party holds all it may. 503 with Retry-After."""


class MediaUnavailableError(MediaError):
    """The media engine cannot be reached (no reply, stopped, a reply that makes no sense). 503
    with Retry-After: another SBC node, or a later try, may do better."""


class IMediaRelay(Interface):
    """Anchors a call's media: the built-in relay, or rtpengine for scale.

    Modelled on rtpengine's ng protocol: an SDP from one side of a call goes in, and the SDP to
    send to the other side comes out, naming the SBC's address and the relay ports that face
    that other side. ``side`` is "A" (the caller's leg) or "B" (the callee's).

    ``sipSource`` is the IP address that side's signalling comes from (A's INVITE source, B's
    leg address), or None if unknown. A relay that latches may take media from any port of that
    IP, besides the address the SDP names: a party behind NAT sends from where its SIP comes from,
    not from the private address in its SDP. Media from elsewhere is never latched.
    Failures are `MediaError`s: `NotAcceptableError` for an SDP that cannot be used,
    `MediaCapacityError` when ports run out, `MediaUnavailableError` when the engine is unreachable.

    ``offer``, ``answer`` and ``delete`` answer at once when the engine can (the built-in relay:
    the SDP itself, errors raised), or with a Deferred when it must ask over the network
    (rtpengine: errors fail the Deferred). Callers join the two with `sbc.waiting.whenReady`.
    """

    def offer(
        callId: str, side: str, sdp: bytes, onTimeout: Callable[[], object], sipSource: str | None = None
    ) -> bytes | Deferred[bytes]:
        """Anchor an SDP offer from ``side``; ``onTimeout`` runs if media stops (not on hold)."""

    def answer(callId: str, side: str, sdp: bytes, sipSource: str | None = None) -> bytes | Deferred[bytes]:
        """Anchor the SDP answer from ``side`` to the last offer."""

    def delete(callId: str) -> Deferred[None] | None:
        """The call is over: release its ports. Unknown calls are not an error."""

    def activeSessions() -> int:
        """How many calls hold media resources now (metrics, and tests that count)."""

    def close() -> None:
        """Service shutdown: release every resource (sockets, timers)."""


class IParsedMediaRelay(IMediaRelay):
    """A relay in this process (the built-in one), which also takes an SDP parsed and gives it back
    parsed, at once: a call's SDP is then parsed and written once on its way through the SBC, not
    once by the call, again by the relay and again for our ``o=`` line. Same rules and errors as
    ``offer`` and ``answer``."""

    def offerParsed(
        callId: str,
        side: str,
        sdp: SessionDescription,
        onTimeout: Callable[[], object],
        sipSource: str | None = None,
    ) -> SessionDescription:
        """``offer``, on a parsed SDP."""

    def answerParsed(
        callId: str, side: str, sdp: SessionDescription, sipSource: str | None = None
    ) -> SessionDescription:
        """``answer``, on a parsed SDP."""
