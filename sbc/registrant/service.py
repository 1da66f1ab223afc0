"""Every registration of ``[registrants]``: started after the listeners, kept across reloads,
and unregistered on shutdown within a short bound, so that twistd waits a little but never hangs.

A reload leaves an unchanged registration alone, registers a changed one again (removing the old
binding first when the registrar, AOR, proxy or transport changed), starts a new one and
unregisters a removed one. The states are what ``GET /registrants`` and the metrics show:
``registrant_up{registrant=NAME}`` (1 while our Contact is bound),
``registrant_state{registrant=NAME,state=S}`` (1 for the state it is in),
``registrant_last_code{registrant=NAME}`` (the last final answer's code; 408 for none at all, 0
before the first) and ``registrant_next_attempt_seconds{registrant=NAME}`` (seconds until the
next REGISTER, rounded up; -1 when none is planned). Labels are config names only (bounded).
"""

from __future__ import annotations

import math
import random
import secrets
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.interfaces import IReactorTime

from sbc.config import Config
from sbc.config.registrants import Registrant
from sbc.config.sip import Transport
from sbc.registrant.client import Locate, RegistrationClient, TransportFor
from sbc.registrant.status import RegistrantState, RegistrantStatus
from sbc.transaction import TransactionLayer

__all__ = ["RegistrantService", "bindingKey"]

# Seconds shutdown waits for the registrars to answer our unregisters.
STOP_BOUND = 2.0
GAUGE_UP = "registrant_up"
GAUGE_STATE = "registrant_state"
GAUGE_CODE = "registrant_last_code"
GAUGE_NEXT = "registrant_next_attempt_seconds"
_GAUGES = tuple(gauge + "{" for gauge in (GAUGE_UP, GAUGE_STATE, GAUGE_CODE, GAUGE_NEXT))


def bindingKey(registrant: Registrant) -> tuple[str, str, str | None, Transport]:
    """What names the binding a registration holds: a change here means a new registration."""
    r = registrant
    return (r.registrar, r.aor, r.outboundProxy, r.transport)


class RegistrantService(Service):
    """Runs one `RegistrationClient` per configured registrant."""

    name = "registrants"

    def __init__(
        self,
        registrants: tuple[Registrant, ...],
        clock: IReactorTime,
        transactions: TransactionLayer,
        locate: Locate,
        transportFor: TransportFor,
        *,
        chance: random.Random | None = None,
        userAgent: str = "sbc",
        gauges: dict[str, Callable[[], int]] | None = None,
        stopBound: float = STOP_BOUND,
        secret: bytes | None = None,
    ) -> None:
        self.registrants = registrants
        self.clock = clock
        self.transactions = transactions
        self.locate = locate
        self.transportFor = transportFor
        self.chance = chance or random.Random()
        self.userAgent = userAgent
        self.gauges = gauges if gauges is not None else {}
        self.stopBound = stopBound
        # The SBC's state secret: our Contact users derive from it (`sbc.registrant.contact`).
        self.secret = secret if secret is not None else secrets.token_bytes(32)
        self.clients: dict[str, RegistrationClient] = {}
        # Unregisters of removed or moved registrations still under way.
        self._leaving: list[Deferred[None]] = []
        # By name: a moved registration's wait for the old binding's removal (its successor starts then).
        self._moving: dict[str, Deferred[Any]] = {}

    def startService(self) -> None:
        """Register every configured registrant (the listeners are bound by now)."""
        super().startService()
        for registrant in self.registrants:
            self._add(registrant).start()
        self._publish()

    def stopService(self) -> Deferred[None]:
        """Unregister everything; fires when the answers are in, or after ``stopBound`` seconds."""
        if not self.running:
            return succeed(None)
        super().stopService()
        waits = [client.stop() for client in self.clients.values()]
        return _within(self.clock, self.stopBound, [*waits, *self._leaving])

    def setConfig(self, config: Config) -> None:
        """A reload: follow the new ``[registrants]`` and server name."""
        self.userAgent = config.sip.serverName
        for client in self.clients.values():
            client.userAgent = self.userAgent
        self.update(config.registrants)

    def update(self, registrants: tuple[Registrant, ...]) -> None:
        """Keep exactly these registrations; unchanged ones keep their state."""
        self.registrants = registrants
        if not self.running:
            return
        wanted = {registrant.name: registrant for registrant in registrants}
        for name in [name for name in self.clients if name not in wanted]:
            self._retire(self.clients.pop(name))
        for registrant in registrants:
            client = self.clients.get(registrant.name)
            if client is None:
                self._add(registrant).start()
            elif client.registrant == registrant:
                continue
            elif bindingKey(client.registrant) == bindingKey(registrant):
                client.update(registrant)
            else:
                # The new client registers only once the old one's unregister is over (and any
                # earlier move's of this name): both bind the same Contact, and a late Expires: 0
                # would remove the new binding.
                waits: list[Deferred[Any]] = [self._retire(client)]
                earlier = self._moving.get(registrant.name)
                if earlier is not None:
                    waits.append(earlier)
                moved: Deferred[Any] = gatherResults(waits, consumeErrors=True)
                self._moving[registrant.name] = moved
                moved.addBoth(partial(self._startIfCurrent, self._add(registrant), moved))
        self.clients = {name: self.clients[name] for name in wanted}
        self._publish()

    def statuses(self) -> tuple[RegistrantStatus, ...]:
        """Each registration now, in config order."""
        return tuple(client.status() for client in self.clients.values())

    def _add(self, registrant: Registrant) -> RegistrationClient:
        client = RegistrationClient(
            registrant,
            self.clock,
            self.transactions,
            self.locate,
            self.transportFor,
            self.chance,
            self.userAgent,
            self.secret,
        )
        self.clients[registrant.name] = client
        return client

    def _retire(self, client: RegistrationClient) -> Deferred[None]:
        """Stop ``client`` (shutdown waits for it too); fires when its unregister is over."""
        done = client.stop()
        self._leaving.append(done)
        done.addBoth(lambda _: self._leaving.remove(done))
        return done

    def _startIfCurrent(self, client: RegistrationClient, moved: Deferred[Any], _: object = None) -> None:
        name = client.registrant.name
        if self._moving.get(name) is moved:
            del self._moving[name]
        if self.running and self.clients.get(name) is client:
            client.start()

    def _publish(self) -> None:
        for name in [name for name in self.gauges if name.startswith(_GAUGES)]:
            del self.gauges[name]
        for name in self.clients:
            self.gauges[f'{GAUGE_UP}{{registrant="{name}"}}'] = partial(self._up, name)
            self.gauges[f'{GAUGE_CODE}{{registrant="{name}"}}'] = partial(self._lastCode, name)
            self.gauges[f'{GAUGE_NEXT}{{registrant="{name}"}}'] = partial(self._nextAttempt, name)
            for state in RegistrantState:
                key = f'{GAUGE_STATE}{{registrant="{name}",state="{state}"}}'
                self.gauges[key] = partial(self._inState, name, state)

    def _up(self, name: str) -> int:
        client = self.clients.get(name)
        return int(client is not None and client.status().isUp(self.clock.seconds()))

    def _lastCode(self, name: str) -> int:
        client = self.clients.get(name)
        return 0 if client is None or client.lastCode is None else client.lastCode

    def _nextAttempt(self, name: str) -> int:
        client = self.clients.get(name)
        if client is None or client.nextAttempt is None:
            return -1
        return max(0, math.ceil(client.nextAttempt - self.clock.seconds()))

    def _inState(self, name: str, state: RegistrantState) -> int:
        client = self.clients.get(name)
        return int(client is not None and client.state is state)


def _within(clock: IReactorTime, bound: float, waits: Iterable[Deferred[None]]) -> Deferred[None]:
    """A Deferred that fires once every one of ``waits`` has, or after ``bound`` seconds."""
    result: Deferred[None] = Deferred()
    finished = False

    def finish(_: object = None) -> None:
        nonlocal finished
        if finished:
            return
        finished = True
        if timer.active():
            timer.cancel()
        result.callback(None)

    timer = clock.callLater(bound, finish)
    gatherResults(list(waits), consumeErrors=True).addBoth(finish)
    return result
