"""The one place where an answer now and an answer later meet.

Routers, location stores and media engines answer at once when they can (every built-in router
does, and the built-in relay), and with a Deferred when they must ask something over the network
(a Redis store, rtpengine). Making a Deferred for every answer costs measurable time per call, and
reading a Deferred's private state to skip it is worse. So callers join the two cases here, and
nowhere else: `whenReady` runs the next step at once for a plain value, or when the Deferred fires.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeAlias, TypeVar, cast

from twisted.internet.defer import Deferred, gatherResults
from twisted.python.failure import Failure

__all__ = ["Maybe", "whenAllReady", "whenReady"]

T = TypeVar("T")
R = TypeVar("R")

# A value now, or a Deferred of it later.
Maybe: TypeAlias = "T | Deferred[T]"


def whenReady(
    value: T | Deferred[T],
    then: Callable[[T], R | Deferred[R]],
    failed: Callable[[Failure], R] | None = None,
) -> R | Deferred[R]:
    """``then(value)``: at once for a plain value, or as a Deferred when ``value`` is one.

    ``failed``, if given, gets the Failure of a failed Deferred or of ``then`` raising, either way,
    and its result stands in for ``then``'s; without it, the error propagates (raised now, or as the
    Deferred's failure).
    """
    if isinstance(value, Deferred):
        d = cast("Deferred[R]", value.addCallback(then))
        if failed is not None:
            d.addErrback(failed)
        return d
    if failed is None:
        return then(value)
    try:
        return then(value)
    except Exception:
        return failed(Failure())


def whenAllReady(values: Iterable[object], then: Callable[[], object]) -> None:
    """Run ``then()`` once every value is ready: at once when none is a Deferred, else when all
    have fired (failed ones included: their failures are consumed here)."""
    pending = [value for value in values if isinstance(value, Deferred)]
    if not pending:
        then()
        return
    gatherResults(pending, consumeErrors=True).addBoth(lambda _: then())
