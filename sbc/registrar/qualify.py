"""Qualify registered devices with OPTIONS; one that stops answering loses its binding.

A binding over TCP/TLS whose connection is gone is dropped at once; over UDP the OPTIONS goes
to the address the device registered from, through its NAT (RFC 3261 section 11).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import replace
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.logger import Logger
from zope.interface import implementer

from sbc.interfaces import IClientTransactionUser, ISIPTransport
from sbc.options import optionsRequest
from sbc.registrar.location import Binding
from sbc.registrar.registrar import Registrar
from sbc.sip.message import Response
from sbc.sip.uri import parseURI
from sbc.transaction import ClientTransaction, TransactionLayer


@implementer(IClientTransactionUser)
class Qualifier:
    """Pings registered devices with OPTIONS and drops the bindings of those that stop answering."""

    log = Logger()

    def __init__(self, registrar: Registrar, transactions: TransactionLayer, serverName: str) -> None:
        self.registrar = registrar
        self.transactions = transactions
        self.serverName = serverName
        self.pending: dict[ClientTransaction, Binding] = {}
        self.removed = 0

    @inlineCallbacks
    def qualifyAll(self) -> Generator[Any, Any, None]:
        """Ping every live binding once; called on a timer."""
        bindings: list[Binding] = yield self.registrar.store.all()
        for binding in bindings:
            flow = self.registrar.flowOf(binding)
            if flow is None:
                yield self._drop(binding, "its connection is gone")
                continue
            transport, address = flow
            self._ping(binding, transport, address)

    def _ping(self, binding: Binding, transport: ISIPTransport, address: tuple[str, int]) -> None:
        uri = replace(parseURI(binding.contact), headers=None)
        request = optionsRequest(uri, f"sip:{binding.aor}", transport, self.serverName)
        transaction = self.transactions.sendRequest(request, transport, address, self)
        self.pending[transaction] = binding

    def responseReceived(self, response: Response, transaction: ClientTransaction) -> None:
        """Any final answer, even an error, shows the device is there: its binding stays."""
        if response.status >= 200:
            self.pending.pop(transaction, None)  # any final answer means the device is there

    def transactionTimedOut(self, transaction: ClientTransaction) -> None:
        """No answer within Timer F (RFC 3261 section 17.1.2.2): drop the device's binding."""
        binding = self.pending.pop(transaction, None)
        if binding is not None:
            self._drop(binding, "it does not answer OPTIONS")

    def _drop(self, binding: Binding, why: str) -> Deferred[None]:
        self.removed += 1
        self.log.info(
            "dropping the binding {contact} of {aor}: {why}",
            contact=binding.contact,
            aor=binding.aor,
            why=why,
        )
        return self.registrar.store.remove(binding.aor, binding.contact)
