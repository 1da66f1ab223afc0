"""Qualify registered devices with OPTIONS; one that stops answering loses its binding.

A binding over TCP/TLS whose connection is gone is dropped at once; over UDP the OPTIONS goes
to the address the device registered from, through its NAT (RFC 3261 section 11).
"""

from __future__ import annotations

import secrets
from collections.abc import Generator
from dataclasses import replace
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.logger import Logger
from zope.interface import implementer

from sbc.interfaces import IClientTransactionUser, ISIPTransport
from sbc.registrar.location import Binding
from sbc.registrar.registrar import Registrar
from sbc.sip.headers import Headers
from sbc.sip.message import Request, Response
from sbc.sip.uri import parseURI
from sbc.transaction import ClientTransaction, TransactionLayer, newBranch


def _hostport(address: tuple[str, int]) -> str:
    host = f"[{address[0]}]" if ":" in address[0] else address[0]
    return f"{host}:{address[1]}"


@implementer(IClientTransactionUser)
class Qualifier:
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
            route = self.registrar.route(binding)
            if route is None:
                yield self._drop(binding, "its connection is gone")
                continue
            transport, address = route
            self._ping(binding, transport, address)

    def _ping(self, binding: Binding, transport: ISIPTransport, address: tuple[str, int]) -> None:
        local = _hostport(transport.localAddress)
        uri = replace(parseURI(binding.contact), headers=None)
        request = Request(
            "OPTIONS",
            uri,
            Headers.of(
                ("Via", f"SIP/2.0/{transport.name} {local};branch={newBranch()};rport"),
                ("Max-Forwards", "70"),
                ("From", f"<sip:{self.serverName}@{local}>;tag={secrets.token_hex(6)}"),
                ("To", f"<sip:{binding.aor}>"),
                ("Call-ID", secrets.token_hex(12)),
                ("CSeq", "1 OPTIONS"),
                ("User-Agent", self.serverName),
                ("Content-Length", "0"),
            ),
        )
        transaction = self.transactions.sendRequest(request, transport, address, self)
        self.pending[transaction] = binding

    def responseReceived(self, response: Response, transaction: ClientTransaction) -> None:
        if response.status >= 200:
            self.pending.pop(transaction, None)  # any final answer means the device is there

    def transactionTimedOut(self, transaction: ClientTransaction) -> None:
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
