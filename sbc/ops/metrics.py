"""Counters the SBC keeps instead of logging per packet, exported for Prometheus by `sbc.ops.api`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IReactorTime

if TYPE_CHECKING:
    from sbc.access import Bans
    from sbc.interfaces import ILocationStore
    from sbc.registrar.location import Binding
    from sbc.transaction import TransactionLayer


class Metrics:
    """Named monotonic counters, labelled counters kept by their owners, and gauges read when asked for.

    A counter is cheap enough for the per-packet path: one dict update. A gauge (say the relay
    ports in use) is a function of state someone else owns, so it costs nothing until read. A
    labelled counter is a dict its owner updates (requests by method, say) and names a family
    whose label values are that dict's keys, each a bounded set.

    Trunk limits (`sbc.calls.limits`) count each refused INVITE by reason: ``trunk_refused_cps``
    and ``trunk_refused_calls`` (503), ``trunk_refused_number`` (404), and a leg towards a trunk
    at its ``max_calls``, skipped as a failover step: ``trunk_refused_outbound``. A registration's
    own limits count as ``registrant_refused_cps`` and ``registrant_refused_calls``; its state is
    in the gauges `sbc.registrant.service` names (``registrant_up``, ``registrant_last_code``...).
    """

    __slots__ = ("counts", "gauges", "labelled")

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.gauges: dict[str, Callable[[], int]] = {}
        # family name -> (label name, {label value: count})
        self.labelled: dict[str, tuple[str, Mapping[Any, int]]] = {}

    def gauge(self, name: str, read: Callable[[], int]) -> None:
        """Name a value that ``read`` gives each time it is asked for."""
        self.gauges[name] = read

    def counter(self, name: str, label: str, values: Mapping[Any, int]) -> None:
        """Name a family of counters that its owner keeps in ``values``, by ``label``."""
        self.labelled[name] = (label, values)

    def __getitem__(self, name: str) -> int:
        read = self.gauges.get(name)
        return read() if read is not None else self.counters().get(name, 0)

    def counters(self) -> dict[str, int]:
        """Every counter now, a labelled one as ``name{label="value"}``."""
        values = dict(self.counts)
        for name, (label, counts) in self.labelled.items():
            values.update((f'{name}{{{label}="{key}"}}', count) for key, count in counts.items())
        return values

    def snapshot(self) -> dict[str, int]:
        """Every counter and gauge now, for a status page or an exporter."""
        values = self.counters()
        values.update((name, read()) for name, read in self.gauges.items())
        return values


def serverMetrics(
    metrics: Metrics, clock: IReactorTime, transactions: TransactionLayer, bans: Bans, store: ILocationStore
) -> None:
    """Name what the SIP server's parts count and hold, as the HTTP API's ``/metrics`` shows it.

    - ``sip_requests{method}``: requests received, retransmissions included; an unknown method
      counts as ``other``. ``sip_responses{code}``: responses we sent, each once.
    - ``bans{reason}``: bans made since start (``auth``, ``request_rate``); ``bans_active``: now.
    - ``registrations``: the location store's live bindings.

    Calls per second is ``rate(sbc_calls_started_total[1m])`` in Prometheus: a counter (bumped by
    `sbc.calls.manager`) rather than a gauge of the last second, which a scrape every 15 s would
    see one second in fifteen of, missing the bursts between; the counter loses nothing and the
    window is the reader's choice.
    """
    metrics.counter("sip_requests", "method", transactions.requestsReceived)
    metrics.counter("sip_responses", "code", transactions.responsesSent)
    metrics.counter("bans", "reason", bans.banKinds)
    metrics.gauge("bans_active", lambda: _activeBans(bans.active, clock.seconds()))
    metrics.gauge("registrations", BindingCount(store))


def _activeBans(active: Mapping[str, float], now: float) -> int:
    return sum(1 for until in active.values() if until > now)


class BindingCount:
    """The location store's live bindings, counted when the gauge is read.

    The store answers through a Deferred (`ILocationStore.all`): the embedded one at once, so the
    count is current; a store that must wait shows the count of its last answer until it answers.
    """

    def __init__(self, store: ILocationStore) -> None:
        self.store = store
        self.last = 0

    def __call__(self) -> int:
        """The count, as of the store's latest answer."""
        self.store.all().addCallbacks(self._counted, lambda _: None)  # a failure keeps the last count
        return self.last

    def _counted(self, bindings: list[Binding]) -> None:
        self.last = len(bindings)
