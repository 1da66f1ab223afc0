"""The transaction layer: every transaction of one SBC, matched by key, on one injected clock, for one TU.

It absorbs retransmissions, retransmits over UDP, and forgets each transaction when its last timer
fires. A zero-length timer (D, I, J, K on a reliable transport) is no timer at all: the
transaction terminates at once instead of leaving a ``callLater(0, ...)`` behind. Per-message work
is kept small: keys are tuples of strings, each message's bytes are made once and kept for
retransmission, and nothing is logged per message.
"""

from __future__ import annotations

from collections import Counter

from twisted.internet.interfaces import IReactorTime

from sbc.interfaces import Address, IClientTransactionUser, ISIPTransport, ITransactionUser
from sbc.sip import KNOWN_METHODS, Request, Response
from sbc.transaction.client import ClientTransaction
from sbc.transaction.keys import Key, responseAddress, serverKey
from sbc.transaction.lifecycle import DEFAULT_TIMERS, PROCEEDING, Timers
from sbc.transaction.server import ServerTransaction, _trying

# Methods counted under their own name; any other counts as "other", so that requests with
# invented methods cannot grow the metrics' label set.
_METHOD_LABELS = {method: method for method in KNOWN_METHODS}


class TransactionLayer:
    """Every transaction of one SBC, matched by key, on one clock, for one TU."""

    def __init__(self, clock: IReactorTime, user: ITransactionUser, timers: Timers = DEFAULT_TIMERS) -> None:
        self.clock = clock
        self.user = user
        self.timers = timers
        self._64T1 = 64 * timers.T1
        self._timerD = max(32.0, 64 * timers.T1)
        self.serverTransactions: dict[Key, ServerTransaction] = {}
        self.clientTransactions: dict[Key, ClientTransaction] = {}
        # For the metrics (sbc.ops.metrics), one dict update each: requests received by method,
        # retransmissions included (the load we carry); responses we send by code, each once
        # (our retransmissions of it are not counted again).
        self.requestsReceived: Counter[str] = Counter()
        self.responsesSent: Counter[int] = Counter()

    def receiveRequest(self, request: Request, transport: ISIPTransport, source: Address) -> None:
        """A request from the transport, already checked by the server (`sbc.sip.validateRequest`)."""
        method = request.method
        self.requestsReceived[_METHOD_LABELS.get(method, "other")] += 1
        via = request.topVia()
        if method == "ACK":
            stx = self.serverTransactions.get(serverKey(request, via, "INVITE"))
            if stx is None:
                self.user.requestReceived(request, None)
            else:
                stx._ackReceived(request)
            return
        key = serverKey(request, via, method)
        stx = self.serverTransactions.get(key)
        if stx is not None:
            stx._retransmission()
            return
        stx = ServerTransaction(
            self, key, request, transport, source, responseAddress(via, transport, source)
        )
        self.serverTransactions[key] = stx
        if method != "INVITE":
            if method == "CANCEL":
                stx.cancelled = self.serverTransactions.get(serverKey(request, via, "INVITE"))
            self.user.requestReceived(request, stx)
            return
        try:
            self.user.requestReceived(request, stx)
        finally:
            # The 100 Trying goes after the TU's work, so that it does not hold up what the TU
            # sent on (an SBC's INVITE to the callee); none when the TU has answered already
            # (RFC 3261 section 17.2.1). No retransmission can come in between.
            if stx.state == PROCEEDING and stx._lastData is None:
                data = _trying(request)
                stx._lastData = data
                transport.send(data, stx._address)
                self.responsesSent[100] += 1

    def receiveResponse(self, response: Response, transport: ISIPTransport, source: Address) -> None:
        """A response from the transport, already checked by the server (`sbc.sip.validateResponse`)."""
        branch = response.topVia().branch
        ctx = None
        if branch is not None:
            ctx = self.clientTransactions.get((branch, response.cseq().method))
        if ctx is None:
            self.user.strayResponse(response, transport, source)
        else:
            ctx._responseReceived(response)

    def sendRequest(
        self,
        request: Request,
        transport: ISIPTransport,
        destination: Address,
        owner: IClientTransactionUser,
    ) -> ClientTransaction:
        """Send ``request`` (its top Via, with a fresh branch, already ours) in a new transaction.

        ACK is refused: the ACK for a non-2xx is the transaction's own, and the ACK for a 2xx
        belongs to the dialog, which sends it straight through the transport.
        """
        method = request.method
        if method == "ACK":
            raise ValueError("ACK is never sent in a client transaction")
        branch = request.topVia().branch
        if not branch:
            raise ValueError("the request's top Via has no branch")
        key = (branch, method)
        if key in self.clientTransactions:
            raise ValueError(f"a client transaction already has branch {branch} for {method}")
        data = request.toBytes()
        transport.send(data, destination)
        ctx = ClientTransaction(self, key, request, transport, destination, owner, data)
        self.clientTransactions[key] = ctx
        ctx._start()
        return ctx

    def transportFailed(self, transport: ISIPTransport) -> None:
        """A connection we opened failed before it carried anything: its transactions end now, so
        a call fails over without waiting for Timer B (rare, so a scan of the table is fine)."""
        for ctx in [ctx for ctx in self.clientTransactions.values() if ctx.transport is transport]:
            ctx._transportFailed()

    def stop(self) -> None:
        """Cancel every timer and forget every transaction, for service shutdown."""
        for stx in list(self.serverTransactions.values()):
            stx._terminate()
        for ctx in list(self.clientTransactions.values()):
            ctx._terminate()
        self.serverTransactions.clear()
        self.clientTransactions.clear()
