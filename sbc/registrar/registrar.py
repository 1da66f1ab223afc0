"""REGISTER (RFC 3261 section 10) with digest authentication (RFC 7616, RFC 8760).

Devices come from the device networks and always authenticate; trunks never register. Bindings
record where each REGISTER really came from (RFC 3581), so requests to a device go through its
NAT, and over TCP/TLS through its own connection (the flow, in the spirit of RFC 5626).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from email.utils import formatdate
from typing import Any, NamedTuple

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from sbc.access import DEVICES
from sbc.config import Config
from sbc.droplog import DropLog
from sbc.interfaces import Address, ILocationStore, ISIPTransport
from sbc.registrar.authenticator import Authenticator, Outcome
from sbc.registrar.location import Binding
from sbc.sip.errors import SIPParseError
from sbc.sip.message import Request
from sbc.sip.structured import NameAddr, parseNameAddr
from sbc.sip.uri import isDigits
from sbc.transaction import ServerTransaction

MAX_CONTACTS = 16
# How often the flows of expired bindings are forgotten, in seconds (checked as REGISTERs arrive).
PRUNE_INTERVAL = 60.0

Respond = Callable[..., None]


class Flow(NamedTuple):
    """The transport a binding was registered through, until the binding expires."""

    transport: ISIPTransport
    expires: float


class RegisterError(Exception):
    """Ends REGISTER processing with a response (status, reason, extra headers)."""

    def __init__(self, status: int, reason: str | None = None, extra: tuple[tuple[str, str], ...] = ()):
        super().__init__(status, reason)
        self.status = status
        self.reason = reason
        self.extra = extra


class Registrar:
    """Authenticates REGISTERs from devices, keeps their bindings, and knows the flow to reach each."""

    log = Logger()

    def __init__(
        self,
        config: Config,
        clock: IReactorTime,
        store: ILocationStore,
        authenticator: Authenticator,
        respond: Respond,
        sourceLog: DropLog | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.store = store
        self.authenticator = authenticator
        self.respond = respond
        # Lines a REGISTER can cause: at most one per source and minute.
        self.sourceLog = sourceLog if sourceLog is not None else DropLog(clock)
        # The transport each binding (aor, contact) was registered through, with its expiry:
        # requests to a device reuse its flow (a TCP/TLS connection, or the UDP socket it used).
        self.flows: dict[tuple[str, str], Flow] = {}
        # The same, indexed by stream connection: closing one costs only its own bindings.
        self.flowBindings: dict[ISIPTransport, set[tuple[str, str]]] = {}
        self._nextPrune = clock.seconds() + PRUNE_INTERVAL
        self.fallbackDatagram: ISIPTransport | None = None

    # --- REGISTER ----------------------------------------------------------------------------

    def setConfig(self, config: Config) -> None:
        """Use a reloaded configuration from the next REGISTER on."""
        self.config = config

    def register(self, request: Request, transaction: ServerTransaction) -> Deferred[None]:
        """Answer a REGISTER (RFC 3261 section 10.3); every failure still gets a response."""
        d = self._register(request, transaction)

        def refused(failure: Failure) -> None:
            error = failure.value
            if isinstance(error, RegisterError):
                self.respond(transaction, error.status, reason=error.reason, extra=error.extra)
            elif isinstance(error, SIPParseError):
                self.respond(transaction, error.status, reason=f"Bad Request ({error.reason})")
            else:
                self.sourceLog.failure(self.log, transaction.source[0], "REGISTER failed", failure)
                self.respond(transaction, 500)

        d.addErrback(refused)
        return d

    @inlineCallbacks
    def _register(self, request: Request, transaction: ServerTransaction) -> Generator[Any, Any, None]:
        config = self.config
        settings = config.registrar
        peer = config.access.classify(transaction.source[0])
        if peer is None or peer.kind != DEVICES:
            raise RegisterError(403, "Trunks do not register")
        to = request.toHeader()
        if not to.uri.isSIP:
            raise RegisterError(400, "Bad Request (To is not a SIP URI)")
        user, domain = to.uri.user, to.uri.host.lower()
        if not user or not settings.servesDomain(domain):
            raise RegisterError(403, "Not a domain of ours")
        verdict = self.authenticator.check(request, user, domain, transaction.source[0])
        if verdict.outcome is Outcome.FORBIDDEN:
            raise RegisterError(403, "Credentials do not match the To user")
        if verdict.outcome is not Outcome.OK:
            self.respond(transaction, 401, extra=self.authenticator.challenges(domain, verdict))
            return
        yield self._bind(request, transaction, verdict.aor)

    @inlineCallbacks
    def _bind(self, request: Request, transaction: ServerTransaction, aor: str) -> Generator[Any, Any, None]:
        settings = self.config.registrar
        now = self.clock.seconds()
        callId = request.callId
        cseq = request.cseq().number
        values = request.headers.getAll("contact")
        headerExpires = _expires(request.headers.get("expires"))
        existing: list[Binding] = yield self.store.lookup(aor)
        byContact = {b.contact: b for b in existing}

        if "*" in values:
            if len(values) != 1 or headerExpires != 0:
                raise RegisterError(400, "Bad Request (Contact: * needs Expires: 0 and no other contact)")
            for binding in existing:
                _checkOrder(binding, callId, cseq)
            yield self.store.removeAll(aor)
            self._forgetFlows(aor, [b.contact for b in existing])
            self._ok(transaction, [], now)
            return

        changes: list[tuple[NameAddr, int]] = []
        for value in values:
            contact = _parseContact(value)
            expires = _expires(contact.param("expires"))
            if expires is None:
                expires = headerExpires if headerExpires is not None else settings.defaultExpires
            if 0 < expires < settings.minExpires:
                raise RegisterError(423, extra=(("Min-Expires", str(settings.minExpires)),))
            changes.append((contact, min(expires, settings.maxExpires)))
        for contact, _ in changes:
            old = byContact.get(str(contact.uri))
            if old is not None:
                _checkOrder(old, callId, cseq)
        live = set(byContact)
        live.update(str(c.uri) for c, e in changes if e > 0)
        live.difference_update(str(c.uri) for c, e in changes if e == 0)
        if len(live) > MAX_CONTACTS:
            raise RegisterError(403, "Too many contacts")

        transport = transaction.transport
        source = transaction.source
        userAgent = request.headers.get("user-agent") or ""
        for contact, expires in changes:
            uri = str(contact.uri)
            if expires == 0:
                yield self.store.remove(aor, uri)
                self._forgetFlows(aor, [uri])
                continue
            binding = Binding(
                aor=aor,
                contact=uri,
                expires=now + expires,
                q=_q(contact.param("q")),
                callId=callId,
                cseq=cseq,
                transport=transport.name,
                source=source,
                instance=contact.param("+sip.instance"),
                regId=_regId(contact.param("reg-id")),
                userAgent=userAgent,
            )
            yield self.store.save(binding)
            self._rememberFlow(transport, aor, uri, binding.expires)
        current: list[Binding] = yield self.store.lookup(aor)
        self._ok(transaction, current, now)

    def _ok(self, transaction: ServerTransaction, bindings: list[Binding], now: float) -> None:
        extra = [("Contact", _contactValue(b, now)) for b in bindings]
        extra.append(("Date", formatdate(self.clock.seconds(), usegmt=True)))
        self.respond(transaction, 200, extra=tuple(extra))

    # --- flows -------------------------------------------------------------------------------

    def _rememberFlow(self, transport: ISIPTransport, aor: str, contact: str, expires: float) -> None:
        """The binding now points at ``transport``; an older flow of it no longer owns it."""
        key = (aor, contact)
        old = self.flows.get(key)
        if old is not None and old.transport is not transport:
            self._unindex(old.transport, key)
        self.flows[key] = Flow(transport, expires)
        if transport.reliable:
            self.flowBindings.setdefault(transport, set()).add(key)
        now = self.clock.seconds()
        if now >= self._nextPrune:
            self._prune(now)

    def _forgetFlows(self, aor: str, contacts: list[str]) -> None:
        for contact in contacts:
            key = (aor, contact)
            flow = self.flows.pop(key, None)
            if flow is not None:
                self._unindex(flow.transport, key)

    def _unindex(self, transport: ISIPTransport, key: tuple[str, str]) -> None:
        keys = self.flowBindings.get(transport)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self.flowBindings[transport]

    def _prune(self, now: float) -> None:
        """Forget the flows of bindings that expired (a device that went away without a word)."""
        self._nextPrune = now + PRUNE_INTERVAL
        for key in [k for k, r in self.flows.items() if r.expires <= now]:
            self._unindex(self.flows.pop(key).transport, key)

    def connectionClosed(self, transport: ISIPTransport) -> None:
        """A TCP/TLS connection died: the bindings that still point at it go with it.

        A binding re-registered over another connection since points there, and stays.
        """
        keys = self.flowBindings.pop(transport, ())
        for key in keys:
            self.flows.pop(key, None)
            d = self.store.remove(*key)
            d.addErrback(lambda f: self.log.failure("dropping a binding failed", f))

    def flowOf(self, binding: Binding) -> tuple[ISIPTransport, Address] | None:
        """Where a request to this binding goes: its flow, or the address it registered from."""
        entry = self.flows.get((binding.aor, binding.contact))
        transport = None if entry is None else entry.transport
        if binding.transport == "UDP":
            if transport is None or transport.reliable:
                transport = self.fallbackDatagram
            return None if transport is None else (transport, binding.source)
        if transport is None or transport.name != binding.transport:
            return None
        return (transport, binding.source)


def _parseContact(value: str) -> NameAddr:
    contact = parseNameAddr(value)
    if not contact.uri.isSIP:
        raise RegisterError(400, "Bad Request (Contact is not a SIP URI)")
    return contact


def _expires(value: str | None) -> int | None:
    if value is None:
        return None
    value = value.strip()
    if not isDigits(value):
        raise RegisterError(400, "Bad Request (Expires is not a number)")
    return min(int(value), 2**32 - 1)


def _q(value: str | None) -> float:
    if value is None:
        return 1.0
    try:
        q = float(value)
    except ValueError:
        raise RegisterError(400, "Bad Request (bad q value)") from None
    if not 0.0 <= q <= 1.0:
        raise RegisterError(400, "Bad Request (q out of range)")
    return q


def _regId(value: str | None) -> int | None:
    return int(value) if value is not None and isDigits(value) else None


def _checkOrder(binding: Binding, callId: str, cseq: int) -> None:
    """RFC 3261 section 10.3 step 7: an older REGISTER on the same Call-ID must not win."""
    if binding.callId == callId and cseq <= binding.cseq:
        raise RegisterError(500, "Out-of-order REGISTER (CSeq not above the binding's)")


def _contactValue(binding: Binding, now: float) -> str:
    value = f"<{binding.contact}>;expires={binding.remaining(now)}"
    if binding.q != 1.0:
        value += f";q={binding.q:g}"
    return value
