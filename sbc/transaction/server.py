"""The server transaction (RFC 3261 section 17.2): absorbs retransmissions, resends our last response."""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.interfaces import IDelayedCall

from sbc.interfaces import Address, ISIPTransport
from sbc.sip import HeaderField, Headers, Request, Response
from sbc.transaction.keys import Key
from sbc.transaction.lifecycle import ACCEPTED, COMPLETED, CONFIRMED, PROCEEDING, SPENT, TERMINATED, TRYING

if TYPE_CHECKING:
    from sbc.transaction.layer import TransactionLayer

# What a 100 Trying copies from the request (RFC 3261 section 8.2.6.1).
_TRYING_KEYS = frozenset({"via", "from", "to", "call-id", "cseq", "timestamp"})
_CONTENT_LENGTH_0 = HeaderField("content-length", "0")


def _trying(request: Request) -> bytes:
    """A 100 Trying for ``request``: no To tag, no body (RFC 3261 section 8.2.6.1)."""
    fields = [field for field in request.headers.fields if field.key in _TRYING_KEYS]
    fields.append(_CONTENT_LENGTH_0)
    return Response(100, "Trying", Headers(fields)).toBytes()


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
                self._layer.responsesSent[status] += 1
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
            self._layer.responsesSent[status] += 1
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
