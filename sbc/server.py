"""The controller: access gate, then parsing, then transactions, then the SBC's own answers.

Every transport hands its messages here (`messageReceived`). Nothing in this module knows about
sockets: it talks to `ISIPTransport` providers and keeps time on an injected clock.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime, IResolver
from twisted.logger import Logger
from twisted.names.common import ResolverBase
from zope.interface import implementer

from sbc.access import TRUNK, Bans, OnBan, Peer
from sbc.addresses import unbracket
from sbc.answers import SUPPORTED_OPTIONS, Answers, reasonFor
from sbc.calls.cdr import CDRWriter
from sbc.calls.context import Decide
from sbc.calls.manager import CallManager
from sbc.config import Config
from sbc.droplog import DropLog
from sbc.flood import DeviceScreen
from sbc.interfaces import Address, ILocationStore, IMediaRelay, ISIPTransport, ITransactionUser
from sbc.locate import ServerLocator
from sbc.ops.metrics import Metrics, serverMetrics
from sbc.ops.reload import RetiredTrunks
from sbc.registrar.authenticator import Authenticator
from sbc.registrar.location import MemoryLocationStore
from sbc.registrar.nonce import NonceManager
from sbc.registrar.registrar import Registrar
from sbc.routing import CallRequest, Decision, RoutingChain, buildChain
from sbc.routing.gateways import Admitted, Gateways, GatewayWatch, withAdmitted
from sbc.routing.health import GatewayHealth
from sbc.routing.registrars import RegistrarWatch
from sbc.scheduler import TimerQueue
from sbc.sip.errors import SIPParseError
from sbc.sip.headers import HeaderField, splitList
from sbc.sip.message import (
    KNOWN_METHODS,
    MAGIC_COOKIE,
    MessageParseError,
    Request,
    Response,
    parseMessage,
)
from sbc.sip.structured import Via
from sbc.sip.validate import validateRequest, validateResponse
from sbc.transaction import PROCEEDING, TRYING, ServerTransaction, Timers, TransactionLayer
from sbc.transport.tls import refuseUnprovenTLS

# Methods this SBC answers itself at this stage; the registrar and the B2BUA add theirs.


Handler = Callable[[Request, ServerTransaction], object]


def stampVia(request: Request, source: Address) -> Via:
    """Record where the request really came from in its top Via (section 18.2.1, RFC 3581)."""
    via = request.topVia()
    host = unbracket(via.host)
    if via.rport is not None:
        stamped = via.withParam("received", source[0]).withParam("rport", str(source[1]))
    elif host != source[0]:
        stamped = via.withParam("received", source[0])
    else:
        return via
    # The stamped value goes on top as a field of its own (setTopVia keeps it parsed); the rest of
    # the old field stays where it was. Only the order of Vias matters (RFC 3261 section 7.3.1).
    fields = request.headers.fields
    for index, field in enumerate(fields):
        if field.key == "via":
            rest = splitList(field.value)[1:]
            if rest:
                fields[index] = HeaderField("via", ", ".join(rest))
            else:
                del fields[index]
            break
    request.setTopVia(stamped)
    return stamped


@implementer(ITransactionUser)
class SIPServer:
    """One SBC node's SIP brain, fed by every listener."""

    log = Logger()

    def __init__(
        self,
        config: Config,
        clock: IReactorTime,
        *,
        store: ILocationStore | None = None,
        bans: Bans | None = None,
        secret: bytes | None = None,
        route: Decide | None = None,
        cdrs: CDRWriter | None = None,
        relay: IMediaRelay | None = None,
        closeConnections: OnBan | None = None,
        chain: RoutingChain | None = None,
        resolver: IResolver | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        # The transport layer's StreamConnections.closeWhere: a reload that refuses a source
        # closes what it holds open (bans do the same through their own onBan).
        self.closeConnections = closeConnections
        self.metrics = Metrics()
        self.dropLog = DropLog(clock)
        # Our own answers (refusals, OPTIONS, 481); the method table below is what Allow lists.
        self.methods: dict[str, Handler] = {}
        self.answers = Answers(self.methods, self.metrics.counts, self.dropLog, config.sip.serverName)
        self.respond = self.answers.respond
        sip = config.sip
        # Transactions and calls start and cancel timers by the dozen per call: they share one
        # queue, which asks the clock for one timer at a time.
        self.timerQueue = TimerQueue(clock)
        self.transactions = TransactionLayer(self.timerQueue, self, Timers(T1=sip.t1, T2=sip.t2, T4=sip.t4))
        self.bans = bans if bans is not None else Bans(clock, config.bans, onBan=closeConnections)
        # Device sources past their request rate are banned (trunks never); scanners are dropped.
        self.screen = DeviceScreen(clock, config.access, config.bans, self.bans, self.metrics.counts)
        # The routing chain, its hook loaded: `tap` builds it first, so a bad hook is a UsageError.
        self.chain = chain if chain is not None else buildChain(config)
        nonces = NonceManager(clock, secret or secrets.token_bytes(32), config.registrar.nonceLifetime)
        self.authenticator = Authenticator(config, nonces, self.bans)
        self.registrar = Registrar(
            config,
            clock,
            store if store is not None else MemoryLocationStore(clock),
            self.authenticator,
            self.respond,
            sourceLog=self.dropLog,
        )
        # A source's request budget grows with the devices it registered (a store that counts them).
        self.screen.limit.registered = getattr(self.registrar.store, "sources", {})
        # Trunk gateways: found by DNS (RFC 3263; no resolver: addresses only), pinged with
        # OPTIONS where a trunk has a ping_interval (`tap` runs the watch's tick), down ones skipped.
        self.health = GatewayHealth(clock, self.transactions, self._gatewayTransport, sip.serverName)
        self.gateways = Gateways(ServerLocator(resolver or ResolverBase(), clock), self.dropLog, self.health)
        self.gatewayWatch = GatewayWatch(clock, self.gateways, self.health, config, self.metrics.gauges)
        self.gatewayWatch.onAdmitted = self._gatewaysResolved
        self.registrars = RegistrarWatch(clock, self.gateways.locator, self.dropLog, secret=secret)
        self.registrars.onChanged = lambda: self._gatewaysResolved(self.gatewayWatch.admitted)
        # The config as loaded; `config` adds what trunks' gateway names resolve to (whitelist_gateways).
        self.loaded = config
        self.calls = CallManager(
            config,
            self.timerQueue,
            self.transactions,
            self.authenticator,
            route if route is not None else self._route,
            self.respond,
            lookup=self.registrar.store.lookup,
            flowOf=self.registrar.flowOf,
            cdrs=cdrs,
            relay=relay,
            sourceLog=self.dropLog,
            counts=self.metrics.counts,  # trunk limit refusals, by reason
            gateways=self.gateways,
        )
        # Trunks a reload removed while their calls went on: their sources pass the gate meanwhile.
        self.retired = RetiredTrunks(clock, self.calls.liveTrunks)
        # Relay ports that calls hold now (four per relayed stream), whatever the media engine.
        self.metrics.gauge("media_ports_in_use", lambda: self.calls.ports.total)
        # Read only when asked for (the HTTP API's /metrics): calls and transactions in progress.
        self.metrics.gauge("calls_active", lambda: len(self.calls.active()))
        self.metrics.gauge("transactions_server", lambda: len(self.transactions.serverTransactions))
        self.metrics.gauge("transactions_client", lambda: len(self.transactions.clientTransactions))
        serverMetrics(self.metrics, clock, self.transactions, self.bans, self.registrar.store)
        self.methods["OPTIONS"] = self.answers.options
        self.methods["CANCEL"] = self._cancel
        self.methods["REGISTER"] = self.registrar.register
        self.methods["INVITE"] = self.calls.invite
        # Methods that only make sense inside a dialog; they reach the call that owns it.
        for method in ("BYE", "UPDATE", "INFO", "PRACK", "REFER", "MESSAGE", "NOTIFY"):
            self.methods[method] = self.answers.outOfDialog
        self._use(config)  # with the registrants' registrars admitted

    def setConfig(self, config: Config) -> None:
        """Swap in a new configuration: one assignment, so no request sees a mix.

        The routing chain is built first: a hook file that fails to load raises `ConfigError`
        before anything is assigned, and the running configuration stays.
        """
        chain = buildChain(config)
        if config is not self.loaded:
            self.gateways.locator.forget()  # a reload may point a gateway's name elsewhere
        self.loaded = config
        config = withAdmitted(config, self.gatewayWatch.admitted)
        self.retired.update(self.config, config)
        self.chain = chain
        self.gatewayWatch.setConfig(config)
        self._use(config)

    def _use(self, config: Config) -> None:
        """Hand ``config`` to every part that reads it, and close the connections it refuses."""
        self.config = config = self.registrars.admit(config)
        self.answers.serverName = config.sip.serverName
        self.bans.settings = config.bans
        self.screen.update(config.access, config.bans)
        self.authenticator.config = config
        self.registrar.setConfig(config)
        self.calls.config = config
        if self.closeConnections is not None:
            self.closeConnections(self.refused)

    def _gatewaysResolved(self, admitted: Admitted) -> None:
        """Gateway names resolve elsewhere now: only the access policy changes (no hook re-read)."""
        self._use(withAdmitted(self.loaded, admitted))

    def _gatewayTransport(self, address: Address) -> ISIPTransport | None:
        """Pings go as calls do: UDP, or the TCP/TLS connection of the gateway's transport."""
        return self.gatewayWatch.transportFor(address)

    # --- transports call these ---------------------------------------------------------------

    def admit(self, host: str) -> bool:
        """The gate: strangers and banned sources are dropped here, before any parsing."""
        if self.config.access.classify(host) is None and (
            self.retired.access is None or self._retired(host) is None
        ):
            self.metrics.counts["gate_dropped"] += 1
            return False
        if self.bans.active and self.bans.banned(host):
            self.metrics.counts["banned_dropped"] += 1
            return False
        return True

    def refused(self, host: str) -> bool:
        """The gate's answer without its counting: outside every whitelist, or banned."""
        if self.config.access.classify(host) is None and self._retired(host) is None:
            return True
        return bool(self.bans.active and self.bans.banned(host))

    def _retired(self, host: str) -> Peer | None:
        """The removed trunk ``host`` belongs to while calls of that trunk go on, else None."""
        return self.retired.classify(host, self.config)

    def connectionLimit(self, host: str) -> int:
        """Open TCP/TLS connections ``host`` may hold: a trunk's sources get more than devices."""
        sip = self.config.sip
        peer = self.config.access.classify(host)
        if peer is not None and peer.kind == TRUNK:
            return sip.maxConnectionsPerTrunkSource
        return sip.maxConnectionsPerSource

    def messageReceived(self, data: bytes, transport: ISIPTransport, source: Address) -> None:
        """Parse and check one admitted message, answer a broken request here, and pass the rest on."""
        tls = self.config.tlsTrunks or self.retired.tls  # TLS-only trunks, or removed ones' calls
        if tls and refuseUnprovenTLS(self.config, transport, source[0], self.retired.trunkOf):
            self.metrics.counts["tls_refused"] += 1
            return
        try:
            message = parseMessage(data, self.config.sip.limits)
        except MessageParseError as e:
            if not self.screen.drops(e.headers, source[0]):
                self.answers.refuse(e, e.headers if e.method != "ACK" else None, transport, source)
            return
        except SIPParseError as e:
            if data.strip(b"\r\n\t ") and not self.screen.drops(None, source[0]):
                self.answers.refuse(e, None, transport, source)
            return
        if isinstance(message, Response):
            try:
                validateResponse(message)
            except SIPParseError as e:
                self.answers.refuse(e, None, transport, source)
                return
            self._guarded(self.transactions.receiveResponse, message, transport, source)
            return
        if self.screen.drops(message.headers, source[0]):  # flood and scanner defence (sbc.flood)
            return
        try:
            validateRequest(message)
            branch = stampVia(message, source).branch
        except SIPParseError as e:
            self.answers.refuse(e, message.headers if message.method != "ACK" else None, transport, source)
            return
        if branch == MAGIC_COOKIE:
            # RFC 4475 section 3.2.1: a bare magic cookie cannot key a transaction.
            self.answers.refuse(SIPParseError("bare magic-cookie branch"), message.headers, transport, source)
            return
        self._guarded(self.transactions.receiveRequest, message, transport, source)

    def _guarded(
        self,
        layer: Callable[[Any, ISIPTransport, Address], None],
        message: Request | Response,
        transport: ISIPTransport,
        source: Address,
    ) -> None:
        """Hostile bytes that pass parsing may still break a deeper layer: drop, count, go on."""
        try:
            layer(message, transport, source)
        except SIPParseError as e:
            self.metrics.counts["dropped_unanswerable"] += 1
            self.dropLog.drop(e.reason, source)
        except Exception:
            self.metrics.counts["internal_errors"] += 1
            self.dropLog.failure(
                self.log, source[0], "processing a message from {host} failed", host=source[0]
            )

    def streamError(self, transport: ISIPTransport, source: Address, reason: str) -> None:
        """Count a broken TCP/TLS stream and log it, rate-limited, under its source."""
        self.metrics.counts["stream_errors"] += 1
        self.dropLog.drop(reason, source)

    def transportStarted(self, transport: ISIPTransport) -> None:
        """A UDP socket is up: requests to devices registered before a restart can leave by it."""
        if self.registrar.fallbackDatagram is None:
            self.registrar.fallbackDatagram = transport
        if self.calls.legs.datagram is None:
            self.calls.legs.datagram = transport

    def connectionClosed(self, transport: ISIPTransport) -> None:
        """A flow that dies takes the bindings registered through it along."""
        self.registrar.connectionClosed(transport)

    # --- ITransactionUser --------------------------------------------------------------------

    def requestReceived(self, request: Request, transaction: ServerTransaction | None) -> None:
        """Screen a request as a UAS does (RFC 3261 section 8.2) and hand it to its method or dialog."""
        if transaction is None:
            self.calls.ack(request)  # an ACK for a 2xx belongs to its dialog
            return
        method = request.method
        if method not in KNOWN_METHODS:
            self.respond(transaction, 501)
            return
        maxForwards = request.headers.get("max-forwards")
        if maxForwards is not None and int(maxForwards) == 0 and method != "CANCEL":
            self.respond(transaction, 483)
            return
        if request.uri.scheme not in ("sip", "sips", "tel"):
            self.respond(transaction, 416)
            return
        if method != "CANCEL":
            unsupported = [t for t in request.headers.getAll("require") if t and t not in SUPPORTED_OPTIONS]
            if unsupported:
                self.respond(transaction, 420, extra=(("Unsupported", ", ".join(unsupported)),))
                return
        if method not in ("CANCEL", "REGISTER") and request.toHeader().tag is not None:
            handler: Handler | None = self.calls.inDialog
        else:
            handler = self.methods.get(method)
        if handler is None:
            self.respond(transaction, 405)
            return
        try:
            handler(request, transaction)
        except SIPParseError as e:
            # A header a handler read only now (credentials, say) is malformed: the sender's error.
            self.metrics.counts["bad_requests"] += 1
            if transaction.state in (TRYING, PROCEEDING):
                self.respond(transaction, e.status, reason=reasonFor(e))
        except Exception:
            # A bug must not leave a server transaction unanswered for ever.
            self.dropLog.failure(self.log, transaction.source[0], "handling {method} failed", method=method)
            self.metrics.counts["internal_errors"] += 1
            if transaction.state in (TRYING, PROCEEDING):
                self.respond(transaction, 500)

    def strayResponse(self, response: Response, transport: ISIPTransport, source: Address) -> None:
        """Count a response no client transaction wants; a retransmitted 2xx to INVITE is ACKed again."""
        self.metrics.counts["stray_responses"] += 1
        self.calls.strayResponse(response)

    # --- the SBC's own answers ---------------------------------------------------------------

    def _cancel(self, request: Request, transaction: ServerTransaction) -> None:
        invite = transaction.cancelled
        if invite is None:
            self.respond(transaction, 481)
            return
        # RFC 3261 section 9.2: the 200 carries the To tag of the INVITE's own responses.
        self.respond(transaction, 200, toTag=self.calls.tagFor(invite))
        self.calls.cancelled(invite)

    def _route(self, call: CallRequest) -> Decision | Deferred[Decision]:
        return self.chain.decide(call)  # the chain of the moment: a reload swaps it
