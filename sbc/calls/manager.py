"""The calls of one SBC node: each new INVITE admitted becomes a `Call`, each message of an existing
dialog reaches its call, and at shutdown calls drain or are released."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.names.common import ResolverBase

from sbc.access import REGISTRANT, TRUNK
from sbc.calls.admission import Admitted, admit
from sbc.calls.call import CONFIRMED, ENDED, Call
from sbc.calls.calllog import logCall
from sbc.calls.cdr import CDRWriter
from sbc.calls.context import CallContext, Decide, Respond
from sbc.calls.dialogs import DialogIndex
from sbc.calls.legs import LegFactory
from sbc.calls.limits import TrunkCounters, registrantKey
from sbc.config import Config, Trunk
from sbc.droplog import DropLog
from sbc.interfaces import Address, IMediaRelay, ISIPTransport
from sbc.locate import ServerLocator
from sbc.media.quota import PortQuota
from sbc.media.targets import Networks
from sbc.registrar.authenticator import Authenticator
from sbc.registrar.location import Binding
from sbc.routing.gateways import Gateways
from sbc.sip.errors import SIPParseError
from sbc.sip.message import Request, Response
from sbc.transaction import ServerTransaction, TransactionLayer
from sbc.waiting import whenReady

__all__ = ["CallManager"]


class CallManager:
    """Creates calls from new INVITEs and finds the call of every in-dialog message.

    ``config``, ``relay`` and ``decide`` may be swapped at any time (a reload, a test): calls made
    from then on see the new ones; calls under way keep the context they started with.
    """

    log = Logger()

    def __init__(
        self,
        config: Config,
        clock: IReactorTime,
        transactions: TransactionLayer,
        authenticator: Authenticator,
        decide: Decide,
        respond: Respond,
        *,
        lookup: Callable[[str], Deferred[list[Binding]]],
        flowOf: Callable[[Binding], tuple[ISIPTransport, Address] | None],
        cdrs: CDRWriter | None = None,
        relay: IMediaRelay | None = None,
        sourceLog: DropLog | None = None,
        counts: Counter[str] | None = None,
        gateways: Gateways | None = None,
    ) -> None:
        # Lines a call's messages can cause: at most one per source (A's host) and minute.
        self.sourceLog = sourceLog if sourceLog is not None else DropLog(clock)
        # Without one given (tests): no DNS and no pings, so only address gateways, all up.
        if gateways is None:
            gateways = Gateways(ServerLocator(ResolverBase(), clock), self.sourceLog)
        self.clock = clock
        self.transactions = transactions
        self.authenticator = authenticator
        self.respond = respond
        self.cdrs = cdrs
        self.index = DialogIndex()
        self.ports = PortQuota()  # relay ports held per trunk and account; its total is a metric
        # Trunks' calls per second and concurrent calls, by trunk name: kept across reloads.
        # ``counts`` (the server's metrics counters) gets each refusal by reason.
        self.limits = TrunkCounters(clock, counts)
        self.legs = LegFactory(config, lookup, flowOf, self.sourceLog, gateways)
        self._config = config
        self._relay = relay
        self._decide = decide
        self.context = self._newContext()

    def _newContext(self) -> CallContext:
        config = self._config
        return CallContext(
            config=config,
            clock=self.clock,
            transactions=self.transactions,
            decide=self._decide,
            respond=self.respond,
            relay=self._relay,
            quota=self.ports,
            forbidden=Networks(config.media.forbiddenNetworks(config.listeners)),
            legs=self.legs,
            index=self.index,
            sourceLog=self.sourceLog,
            limits=self.limits,
        )

    @property
    def config(self) -> Config:
        """The configuration new calls get."""
        return self._config

    @config.setter
    def config(self, config: Config) -> None:
        self._config = config
        self.legs.config = config
        self.context = self._newContext()

    @property
    def relay(self) -> IMediaRelay | None:
        """The media engine new calls anchor their SDP through (None: SDP passes as it is)."""
        return self._relay

    @relay.setter
    def relay(self, relay: IMediaRelay | None) -> None:
        self._relay = relay
        self.context = self._newContext()

    @property
    def decide(self) -> Decide:
        """Routing: where a new call goes."""
        return self._decide

    @decide.setter
    def decide(self, decide: Decide) -> None:
        self._decide = decide
        self.context = self._newContext()

    # --- new calls ---------------------------------------------------------------------------

    def invite(self, request: Request, transaction: ServerTransaction) -> None:
        """A new INVITE: admitted, it becomes a call, and routing decides where it goes."""
        admitted = admit(request, transaction, self._config, self.authenticator, self.respond)
        if admitted is None:
            return
        peer = admitted.peer
        trunk = self._config.trunk(peer.name) if peer.kind == TRUNK else None
        counted = trunk.name if trunk is not None else None
        refusal = None
        if trunk is not None:
            refusal = self.limits.admit(trunk, self._number(trunk, admitted))
        elif peer.kind == REGISTRANT:
            # A registration's own max_cps and max_calls, counted apart from any trunk's.
            registrant = next((r for r in self._config.registrants if r.name == peer.name), None)
            if registrant is not None:
                counted = registrantKey(peer.name)
                refusal = self.limits.admitUnder(counted, registrant.limits, metric="registrant")
        if refusal is not None:
            self.respond(transaction, refusal.status, reason=refusal.reason, extra=refusal.extra)
            return
        context = self.context
        a = self.legs.aLeg(request, transaction)
        call = Call(context, transaction, a, admitted, self.ended)
        self.limits.counts["calls_started"] += 1  # one per CDR line; Prometheus rates it to calls/s
        if counted is not None:
            self.limits.hold(call.id, counted)
        self.index.addCall(transaction, call)
        self.index.addLeg(call, a)
        self.legs.followRouteSet(a, call.sides.a)
        whenReady(context.decide(admitted.request), call.start, call.routingFailed)

    def _number(self, trunk: Trunk, admitted: Admitted) -> str | None:
        """The number a trunk's INVITE is for, as the number plan makes it (only worked out when
        the trunk has an ``accept`` list to check it against)."""
        if trunk.limits.accept is None:
            return None
        return self._config.routing.rules.plan.normalise(admitted.request.user)

    # --- messages for existing calls ---------------------------------------------------------

    def inDialog(self, request: Request, transaction: ServerTransaction) -> None:
        """A request with a To tag: its call's, or 481."""
        found = self.index.find(request.callId, request.toHeader().tag or "")
        if found is None:
            self.respond(transaction, 481)
            return
        call, leg = found
        call.inDialog(request, transaction, leg)

    def ack(self, request: Request) -> None:
        """An ACK for a 2xx: A's, for its call."""
        found = self.index.find(request.callId, request.toHeader().tag or "")
        if found is not None and found[1] is found[0].a:
            found[0].ackReceived(request)

    def tagFor(self, invite: ServerTransaction) -> str | None:
        """Our To tag towards the caller of this INVITE, if it is a call of ours."""
        call = self.index.callOf(invite)
        return None if call is None else call.a.localTag

    def cancelled(self, invite: ServerTransaction) -> bool:
        """A CANCEL for this INVITE: its call is cancelled (False if there is none)."""
        call = self.index.callOf(invite)
        if call is None:
            return False
        call.cancel()
        return True

    def strayResponse(self, response: Response) -> None:
        """A 2xx retransmitted by a B side after its transaction ended: our ACK got lost."""
        if not 200 <= response.status < 300:
            return
        try:
            callId, tag = response.callId, response.fromHeader().tag or ""
            cseq = response.cseq()
        except SIPParseError:
            return
        found = self.index.find(callId, tag)
        if found is not None and cseq.method == "INVITE":
            leg = found[1]
            leg.send(leg.request("ACK", cseq=cseq.number))

    def ended(self, call: Call) -> None:
        """A call has ended: it leaves the index, and its CDR and log line are written."""
        self.index.forget(call.invite, call.legs())
        self.limits.release(call.id)
        config = self._config
        if self.cdrs is None and not config.log.calls:
            return
        cdr = call.cdr()
        if self.cdrs is not None:
            self.cdrs.write(cdr)
        if config.log.calls:
            logCall(cdr)

    # --- shutdown ----------------------------------------------------------------------------

    def liveTrunks(self) -> Iterator[str]:
        """The trunks that calls in progress have on either side, ringing branches included (a
        reload that removes one keeps its sources admitted until these calls end)."""
        for call in self.index.calls():
            for trunk in (call.sides.a, call.sides.b):
                if trunk is not None:
                    yield trunk.name
            if call.forker is not None:
                for branch in call.forker.branches:
                    if branch.trunk is not None:
                        yield branch.trunk.name

    def active(self) -> list[Call]:
        """Calls not yet ended."""
        return [call for call in self.index.calls() if call.state is not ENDED]

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
        for call in self.index.calls():
            if call.state is CONFIRMED:
                call.hangup(None, reason="SBC shutting down")
            else:
                call.abort(503, "Service Unavailable")
