"""What every call of one configuration shares: clock, transactions, settings, media engine, legs.

`CallManager` builds one `CallContext` per configuration (and per media engine or decider it is
given), so a call holds one reference instead of reaching through the manager, and a reload swaps
the context for new calls while calls under way keep theirs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from netaddr import IPSet
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from sbc.config import Config
from sbc.droplog import DropLog
from sbc.interfaces import IClientTransactionUser, IMediaRelay
from sbc.media.quota import PortQuota
from sbc.media.targets import Networks
from sbc.routing import CallRequest, Decision
from sbc.sip.message import Response
from sbc.transaction import ClientTransaction, TransactionLayer

if TYPE_CHECKING:
    from sbc.calls.dialogs import DialogIndex
    from sbc.calls.legs import LegFactory
    from sbc.calls.limits import TrunkCounters

__all__ = ["IGNORE", "CallContext", "Decide", "Extra", "Respond"]

# Extra header fields of a response we make: (name, value) pairs.
Extra = tuple[tuple[str, str], ...]
# Answers a server transaction: (transaction, status, *, reason=, extra=, toTag=).
Respond = Callable[..., None]
# A decision at once when routing has one (the usual case: no Deferred per call), else later.
Decide = Callable[[CallRequest], "Decision | Deferred[Decision]"]


@dataclass(frozen=True, slots=True)
class CallContext:
    """The per-configuration things a call and its collaborators need, shared by all its calls."""

    config: Config
    clock: IReactorTime
    transactions: TransactionLayer
    decide: Decide
    respond: Respond
    relay: IMediaRelay | None
    quota: PortQuota
    forbidden: IPSet | Networks  # Networks in service: asked several times per SDP
    legs: LegFactory
    index: DialogIndex
    sourceLog: DropLog
    limits: TrunkCounters  # per-trunk concurrent calls (a leg towards a trunk at its limit is skipped)

    @property
    def serverName(self) -> str:
        """Our Server / User-Agent header value."""
        return self.config.sip.serverName


@implementer(IClientTransactionUser)
class _Ignore:
    """The owner of requests whose answers change nothing (BYE, CANCEL, PRACK)."""

    __slots__ = ()

    def responseReceived(self, response: Response, transaction: ClientTransaction) -> None:
        """Nothing to do."""

    def transactionTimedOut(self, transaction: ClientTransaction) -> None:
        """Nothing to do."""


IGNORE = _Ignore()
