"""The client transaction (RFC 3261 section 17.1): retransmits our request, ACKs a failure, times out."""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.interfaces import IDelayedCall

from sbc.interfaces import Address, IClientTransactionUser, ISIPTransport
from sbc.sip import HeaderField, Headers, Request, Response, splitList
from sbc.transaction.keys import Key
from sbc.transaction.lifecycle import ACCEPTED, CALLING, COMPLETED, PROCEEDING, SPENT, TERMINATED, TRYING

if TYPE_CHECKING:
    from sbc.transaction.layer import TransactionLayer

_CONTENT_LENGTH_0 = HeaderField("content-length", "0")
_MAX_FORWARDS_70 = HeaderField("max-forwards", "70")


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
        "transportFailed",
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
        self.transportFailed = False  # ended because the request could not be sent (not Timer B/F)

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

    def _transportFailed(self) -> None:
        """Our request never left (a connection that could not be opened): as if Timer B or F had
        fired, at once (RFC 3261 section 8.1.3.1 treats it as a 503, 17.1.4 as a timeout)."""
        if self.state in (CALLING, TRYING):
            self.transportFailed = True
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
