"""RFC 3261 section 17 transactions, client and server, with the RFC 6026 Accepted state.

The layer sits between the transports and the transaction user (the SBC's core). It absorbs
retransmissions, retransmits over UDP, and forgets each transaction when its last timer fires.
Every timer runs on the injected ``IReactorTime``, so tests drive time with a ``Clock``.

A zero-length timer (D, I, J, K on a reliable transport) is no timer at all: the transaction
terminates at once instead of leaving a ``callLater(0, ...)`` behind.

Per-message work is kept small: keys are tuples of strings, each message's bytes are made once
and kept for retransmission, and nothing is logged per message.
"""

from __future__ import annotations

from dataclasses import dataclass

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from sbc.interfaces import Address, IClientTransactionUser, ISIPTransport, ITransactionUser
from sbc.sip import MAGIC_COOKIE, URI, HeaderField, Headers, Request, Response, Via, splitList
from sbc.tokens import randomHex

__all__ = [
    "ACCEPTED",
    "CALLING",
    "COMPLETED",
    "CONFIRMED",
    "PROCEEDING",
    "TERMINATED",
    "TRYING",
    "ClientTransaction",
    "ServerTransaction",
    "Timers",
    "TransactionLayer",
    "newBranch",
]

# States, spelled as in RFC 3261 figures 5 to 8 and RFC 6026.
CALLING = "Calling"
TRYING = "Trying"
PROCEEDING = "Proceeding"
COMPLETED = "Completed"
CONFIRMED = "Confirmed"
ACCEPTED = "Accepted"
TERMINATED = "Terminated"

# A server key is (branch, sent-by, method) for RFC 3261 peers, and
# ("", Call-ID, CSeq number, From tag, sent-by, branch or "", method) for RFC 2543 peers. A client key is
# (branch, method). The method of an ACK's key is INVITE, so the ACK finds its INVITE.
Key = tuple[str, ...]

# What a 100 Trying copies from the request (RFC 3261 section 8.2.6.1).
_TRYING_KEYS = frozenset({"via", "from", "to", "call-id", "cseq", "timestamp"})
_CONTENT_LENGTH_0 = HeaderField("content-length", "0")
_MAX_FORWARDS_70 = HeaderField("max-forwards", "70")


@dataclass(frozen=True)
class Timers:
    """RFC 3261 timer bases in seconds (section 17.1.1.1 and table 4); config may override them."""

    T1: float = 0.5
    T2: float = 4.0
    T4: float = 5.0


# What a transaction holds as its request once its final response is through: the lingering
# states (timers J, K, L, M: up to 32 s) need only the key, and a parsed message kept that long
# is dozens of objects for the garbage collector to walk again and again.
SPENT = Request("SPENT", URI("sip", host="invalid"))


def newBranch() -> str:
    """A fresh Via branch: the magic cookie and 96 random bits, so it is unique in space and time."""
    return MAGIC_COOKIE + randomHex(12)


def _serverKey(request: Request, via: Via, method: str) -> Key:
    """The section 17.2.3 matching key, with ``method`` standing for the request's own."""
    branch = via.branch
    if branch is not None and branch.startswith(MAGIC_COOKIE):
        return (branch, via.sentBy, method)
    # RFC 2543 peer: no usable branch, so identify the request by what it carries.
    return (
        "",
        request.callId,
        str(request.cseq().number),
        request.fromHeader().tag or "",
        via.sentBy,
        branch or "",
        method,
    )


def responseAddress(via: Via, transport: ISIPTransport, source: Address) -> Address:
    """Where responses go (RFC 3261 section 18.2.2, RFC 3581 section 4)."""
    if transport.reliable or via.rport is not None:
        return source
    # The received parameter, when the server stamped one, is the source host itself; a
    # received parameter the peer wrote itself is not to be trusted.
    return (source[0], via.port or 5060)


def _trying(request: Request) -> bytes:
    """A 100 Trying for ``request``: no To tag, no body (RFC 3261 section 8.2.6.1)."""
    fields = [field for field in request.headers.fields if field.key in _TRYING_KEYS]
    fields.append(_CONTENT_LENGTH_0)
    return Response(100, "Trying", Headers(fields)).toBytes()


def _ackFor(request: Request, response: Response) -> bytes:
    """The ACK for a non-2xx final response to ``request`` (RFC 3261 section 17.1.1.3)."""
    fields: list[HeaderField] = []
    fromField: HeaderField | None = None
    callIdField: HeaderField | None = None
    for field in request.headers.fields:
        key = field.key
        if key == "via":
            if not fields:
                value = field.value
                fields.append(HeaderField("via", splitList(value)[0]) if "," in value else field)
        elif key == "route":
            fields.append(field)
        elif key == "from" and fromField is None:
            fromField = field
        elif key == "call-id" and callIdField is None:
            callIdField = field
    fields.append(_MAX_FORWARDS_70)
    if fromField is not None:
        fields.append(fromField)
    toValue = response.headers.get("to")
    if toValue is not None:
        fields.append(HeaderField("to", toValue))
    if callIdField is not None:
        fields.append(callIdField)
    fields.append(HeaderField("cseq", f"{request.cseq().number} ACK"))
    fields.append(_CONTENT_LENGTH_0)
    return Request("ACK", request.uri, Headers(fields)).toBytes()


class ServerTransaction:
    """One request received and its responses (RFC 3261 section 17.2, RFC 6026 section 7.1)."""

    __slots__ = (
        "_address",
        "_interval",
        "_invite",
        "_lastData",
        "_layer",
        "_retransmit",
        "_timeout",
        "cancelled",
        "key",
        "request",
        "source",
        "state",
        "transport",
    )

    def __init__(
        self,
        layer: TransactionLayer,
        key: Key,
        request: Request,
        transport: ISIPTransport,
        source: Address,
        address: Address,
    ) -> None:
        self._layer = layer
        self.key = key
        self.request = request
        self.transport = transport
        self.source = source
        self._address = address
        self._invite = request.method == "INVITE"
        self.state = PROCEEDING if self._invite else TRYING
        self.cancelled: ServerTransaction | None = None
        self._lastData: bytes | None = None
        self._retransmit: IDelayedCall | None = None
        self._timeout: IDelayedCall | None = None
        self._interval = 0.0

    def __repr__(self) -> str:
        return f"<ServerTransaction {self.key[-1]} {self.state}>"

    def respond(self, response: Response) -> None:
        """Send a response from the TU; one the current state has no use for is dropped."""
        state = self.state
        status = response.status
        if self._invite:
            if state == PROCEEDING:
                data = response.toBytes()
                self.transport.send(data, self._address)
                if status < 200:
                    self._lastData = data
                elif status < 300:
                    self._accepted()
                else:
                    self._lastData = data
                    self._completed()
            elif state == ACCEPTED and 200 <= status < 300:
                # The TU retransmits its own 2xx (RFC 3261 section 13.3.1.4).
                self.transport.send(response.toBytes(), self._address)
        elif state in (TRYING, PROCEEDING):
            data = response.toBytes()
            self.transport.send(data, self._address)
            self._lastData = data
            if status < 200:
                self.state = PROCEEDING
            else:
                self.state = COMPLETED
                self.request = SPENT
                if self.transport.reliable:
                    self._terminate()
                else:
                    self._timeout = self._layer.clock.callLater(self._layer._64T1, self._timerJ)

    def _retransmission(self) -> None:
        """The request again: answer with the last response, if any, and never bother the TU.

        Nothing is resent in Accepted (the TU retransmits its 2xx itself) or in Confirmed.
        """
        state = self.state
        if self._lastData is not None and state in (PROCEEDING, COMPLETED):
            self.transport.send(self._lastData, self._address)

    def _accepted(self) -> None:
        """RFC 6026: stay around for timer L so INVITE retransmissions stay absorbed."""
        self.state = ACCEPTED
        self.request = SPENT
        self._lastData = None
        self._timeout = self._layer.clock.callLater(self._layer._64T1, self._timerL)

    def _completed(self) -> None:
        self.state = COMPLETED
        self.request = SPENT
        layer = self._layer
        if not self.transport.reliable:
            self._interval = layer.timers.T1
            self._retransmit = layer.clock.callLater(self._interval, self._timerG)
        self._timeout = layer.clock.callLater(layer._64T1, self._timerH)

    def _ackReceived(self, ack: Request) -> None:
        state = self.state
        if state == COMPLETED:
            self.state = CONFIRMED
            self._cancelTimers()
            if self.transport.reliable:
                self._terminate()
            else:
                self._timeout = self._layer.clock.callLater(self._layer.timers.T4, self._timerI)
        elif state == ACCEPTED:
            # An ACK for our 2xx that reuses the INVITE's branch: it belongs to the dialog.
            self._layer.user.requestReceived(ack, None)

    def _timerG(self) -> None:
        """Retransmit the final response until the ACK comes."""
        self._retransmit = None
        if self._lastData is not None:
            self.transport.send(self._lastData, self._address)
        self._interval = min(self._interval * 2, self._layer.timers.T2)
        self._retransmit = self._layer.clock.callLater(self._interval, self._timerG)

    def _timerH(self) -> None:
        """No ACK ever came; nobody is told, since the TU has nothing left to do."""
        self._timeout = None
        self._terminate()

    def _timerI(self) -> None:
        self._timeout = None
        self._terminate()

    def _timerJ(self) -> None:
        self._timeout = None
        self._terminate()

    def _timerL(self) -> None:
        self._timeout = None
        self._terminate()

    def _cancelTimers(self) -> None:
        if self._retransmit is not None:
            self._retransmit.cancel()
            self._retransmit = None
        if self._timeout is not None:
            self._timeout.cancel()
            self._timeout = None

    def _terminate(self) -> None:
        self.state = TERMINATED
        self._cancelTimers()
        self._lastData = None
        table = self._layer.serverTransactions
        if table.get(self.key) is self:
            del table[self.key]


class ClientTransaction:
    """One request we sent and its responses (RFC 3261 section 17.1, RFC 6026 section 7.2)."""

    __slots__ = (
        "_ackData",
        "_data",
        "_interval",
        "_invite",
        "_layer",
        "_retransmit",
        "_timeout",
        "destination",
        "key",
        "owner",
        "request",
        "state",
        "transport",
    )

    def __init__(
        self,
        layer: TransactionLayer,
        key: Key,
        request: Request,
        transport: ISIPTransport,
        destination: Address,
        owner: IClientTransactionUser,
        data: bytes,
    ) -> None:
        self._layer = layer
        self.key = key
        self.request = request
        self.transport = transport
        self.destination = destination
        self.owner = owner
        self._data = data
        self._invite = request.method == "INVITE"
        self.state = CALLING if self._invite else TRYING
        self._ackData: bytes | None = None
        self._retransmit: IDelayedCall | None = None
        self._timeout: IDelayedCall | None = None
        self._interval = 0.0

    def __repr__(self) -> str:
        return f"<ClientTransaction {self.key[-1]} {self.state}>"

    def _start(self) -> None:
        layer = self._layer
        clock = layer.clock
        if self._invite:
            if not self.transport.reliable:
                self._interval = layer.timers.T1
                self._retransmit = clock.callLater(self._interval, self._timerA)
            self._timeout = clock.callLater(layer._64T1, self._timerB)
        else:
            if not self.transport.reliable:
                self._interval = layer.timers.T1
                self._retransmit = clock.callLater(self._interval, self._timerE)
            self._timeout = clock.callLater(layer._64T1, self._timerF)

    def _responseReceived(self, response: Response) -> None:
        if self._invite:
            self._inviteResponse(response)
        else:
            self._nonInviteResponse(response)

    def _inviteResponse(self, response: Response) -> None:
        state = self.state
        status = response.status
        if state in (CALLING, PROCEEDING):
            if status < 200:
                if state == CALLING:
                    # Timer C in the TU covers a call that rings for ever.
                    self.state = PROCEEDING
                    self._cancelTimers()
            elif status < 300:
                self.state = ACCEPTED
                self._cancelTimers()
                self._data = b""  # never resent now, and a held call would keep it for timer M
                self.request = SPENT
                self._timeout = self._layer.clock.callLater(self._layer._64T1, self._timerM)
            else:
                self.state = COMPLETED
                self._cancelTimers()
                self._ackData = _ackFor(self.request, response)
                self.request = SPENT
                self.transport.send(self._ackData, self.destination)
                if self.transport.reliable:
                    self._terminate()
                else:
                    self._timeout = self._layer.clock.callLater(self._layer._timerD, self._timerD)
            self.owner.responseReceived(response, self)
        elif state == ACCEPTED:
            if 200 <= status < 300:
                # Another 2xx: a retransmission or a forked leg; the TU ACKs it (RFC 6026).
                self.owner.responseReceived(response, self)
        elif state == COMPLETED and status >= 300 and self._ackData is not None:
            self.transport.send(self._ackData, self.destination)

    def _nonInviteResponse(self, response: Response) -> None:
        state = self.state
        if state not in (TRYING, PROCEEDING):
            return
        if response.status < 200:
            self.state = PROCEEDING
        else:
            self.state = COMPLETED
            self._cancelTimers()
            self._data = b""
            self.request = SPENT
            if self.transport.reliable:
                self._terminate()
            else:
                self._timeout = self._layer.clock.callLater(self._layer.timers.T4, self._timerK)
        self.owner.responseReceived(response, self)

    def _timerA(self) -> None:
        """Retransmit the INVITE, doubling the interval each time (section 17.1.1.2)."""
        self._retransmit = None
        self.transport.send(self._data, self.destination)
        self._interval *= 2
        self._retransmit = self._layer.clock.callLater(self._interval, self._timerA)

    def _timerB(self) -> None:
        self._timeout = None
        self._terminate()
        self.owner.transactionTimedOut(self)

    def _timerD(self) -> None:
        self._timeout = None
        self._terminate()

    def _timerE(self) -> None:
        """Retransmit the request: doubling up to T2 while Trying, every T2 once Proceeding."""
        self._retransmit = None
        self.transport.send(self._data, self.destination)
        t2 = self._layer.timers.T2
        self._interval = min(self._interval * 2, t2) if self.state == TRYING else t2
        self._retransmit = self._layer.clock.callLater(self._interval, self._timerE)

    def _timerF(self) -> None:
        self._timeout = None
        self._terminate()
        self.owner.transactionTimedOut(self)

    def _timerK(self) -> None:
        self._timeout = None
        self._terminate()

    def _timerM(self) -> None:
        self._timeout = None
        self._terminate()

    def _cancelTimers(self) -> None:
        if self._retransmit is not None:
            self._retransmit.cancel()
            self._retransmit = None
        if self._timeout is not None:
            self._timeout.cancel()
            self._timeout = None

    def _terminate(self) -> None:
        self.state = TERMINATED
        self._cancelTimers()
        self._data = b""
        self._ackData = None
        table = self._layer.clientTransactions
        if table.get(self.key) is self:
            del table[self.key]


class TransactionLayer:
    """Every transaction of one SBC, matched by key, on one clock, for one TU."""

    def __init__(self, clock: IReactorTime, user: ITransactionUser, timers: Timers = Timers()) -> None:
        self.clock = clock
        self.user = user
        self.timers = timers
        self._64T1 = 64 * timers.T1
        self._timerD = max(32.0, 64 * timers.T1)
        self.serverTransactions: dict[Key, ServerTransaction] = {}
        self.clientTransactions: dict[Key, ClientTransaction] = {}

    def receiveRequest(self, request: Request, transport: ISIPTransport, source: Address) -> None:
        """A request from the transport, already checked by the server (`sbc.sip.validateRequest`)."""
        method = request.method
        via = request.topVia()
        if method == "ACK":
            stx = self.serverTransactions.get(_serverKey(request, via, "INVITE"))
            if stx is None:
                self.user.requestReceived(request, None)
            else:
                stx._ackReceived(request)
            return
        key = _serverKey(request, via, method)
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
                stx.cancelled = self.serverTransactions.get(_serverKey(request, via, "INVITE"))
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

    def stop(self) -> None:
        """Cancel every timer and forget every transaction, for service shutdown."""
        for stx in list(self.serverTransactions.values()):
            stx._terminate()
        for ctx in list(self.clientTransactions.values()):
            ctx._terminate()
        self.serverTransactions.clear()
        self.clientTransactions.clear()
