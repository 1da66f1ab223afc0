"""What a transaction is over its life: the states of RFC 3261 figures 5 to 8 and RFC 6026, and the timers."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sbc.sip import URI, Request


class TransactionState(StrEnum):
    """States, spelled as in RFC 3261 figures 5 to 8 and RFC 6026."""

    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


# Module names for the hot path: one global lookup instead of a class attribute each time.
CALLING = TransactionState.CALLING
TRYING = TransactionState.TRYING
PROCEEDING = TransactionState.PROCEEDING
COMPLETED = TransactionState.COMPLETED
CONFIRMED = TransactionState.CONFIRMED
ACCEPTED = TransactionState.ACCEPTED
TERMINATED = TransactionState.TERMINATED


@dataclass(frozen=True)
class Timers:
    """RFC 3261 timer bases in seconds (section 17.1.1.1 and table 4); config may override them."""

    T1: float = 0.5
    T2: float = 4.0
    T4: float = 5.0


DEFAULT_TIMERS = Timers()


# What a transaction holds as its request once its final response is through: the lingering
# states (timers J, K, L, M: up to 32 s) need only the key, and a parsed message kept that long
# is dozens of objects for the garbage collector to walk again and again.
SPENT = Request("SPENT", URI("sip", host="invalid"))
