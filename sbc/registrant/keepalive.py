"""Keeping a registration's TCP or TLS connection open between refreshes (RFC 5626 section 4.4.1).

The registrar sends our calls back on the connection we registered over, but a refresh comes only
every few hundred seconds, while our idle timeout ([sip] idle_timeout) and the peer's close a
silent connection sooner. A double-CRLF keepalive every 80-100% of the stream's interval
(`sbc.transport.outbound.OutboundStream.keepaliveInterval`: 120 s, or half our idle timeout if
that is shorter) keeps it open; UDP needs none (the registrar's calls need no connection).
"""

from __future__ import annotations

import random

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from sbc.interfaces import ISIPTransport

__all__ = ["Keepalive"]

# A keepalive goes at this fraction of the interval, drawn uniformly (RFC 5626 section 4.4.1).
JITTER = (0.8, 1.0)


class Keepalive:
    """The keepalives of one registration's connection: one timer, on an injected clock."""

    def __init__(self, clock: IReactorTime, chance: random.Random) -> None:
        self.clock = clock
        self.chance = chance
        self._transport: ISIPTransport | None = None
        self._timer: IDelayedCall | None = None

    def keep(self, transport: ISIPTransport | None) -> None:
        """Keep ``transport`` open from now on (a stream that has ``keepalive``); others need nothing."""
        self._transport = transport
        if self._timer is None or not self._timer.active():
            self._plan()

    def stop(self) -> None:
        """No more keepalives."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = self._transport = None

    def _plan(self) -> None:
        interval = getattr(self._transport, "keepaliveInterval", None)
        if isinstance(interval, float | int):
            self._timer = self.clock.callLater(interval * self.chance.uniform(*JITTER), self._fire)

    def _fire(self) -> None:
        self._timer = None
        keepalive = getattr(self._transport, "keepalive", None)
        if keepalive is not None:
            keepalive()
            self._plan()
