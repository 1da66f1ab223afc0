"""RFC 3261 section 17 transactions, client and server, with the RFC 6026 Accepted state."""

from sbc.transaction.client import ClientTransaction
from sbc.transaction.keys import newBranch, responseAddress
from sbc.transaction.layer import TransactionLayer
from sbc.transaction.lifecycle import (
    ACCEPTED,
    CALLING,
    COMPLETED,
    CONFIRMED,
    PROCEEDING,
    TERMINATED,
    TRYING,
    Timers,
    TransactionState,
)
from sbc.transaction.server import ServerTransaction

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
    "TransactionState",
    "newBranch",
    "responseAddress",
]
