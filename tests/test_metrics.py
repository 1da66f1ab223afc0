"""Tests for sbc.ops.metrics: counters, labelled counters, gauges, and what the SIP server counts."""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from pathlib import Path

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sbc.access import BanKind
from sbc.ops.metrics import BindingCount, Metrics
from sbc.registrar.location import Binding
from sbc.server import SIPServer
from tests.calls import CallTestCase
from tests.fakes import RecordingTransport, demoConfig, options

PEER = ("127.0.0.2", 5062)


class MetricsTests(SynchronousTestCase):
    def test_gaugeReadWhenAsked(self) -> None:
        """A gauge gives its function's value at each read, beside the counters."""
        metrics = Metrics()
        value = [3]
        metrics.gauge("media_ports_in_use", lambda: value[0])
        metrics.counts["bad_requests"] += 1
        self.assertEqual(metrics["media_ports_in_use"], 3)
        value[0] = 7
        self.assertEqual(metrics["media_ports_in_use"], 7)
        self.assertEqual(metrics.snapshot(), {"bad_requests": 1, "media_ports_in_use": 7})
        self.assertEqual(metrics["never"], 0)

    def test_labelledCounter(self) -> None:
        """A counter family kept in its owner's dict shows each key as a label value, as it is now."""
        metrics = Metrics()
        methods: Counter[str] = Counter()
        metrics.counter("sip_requests", "method", methods)
        methods["INVITE"] += 2
        self.assertEqual(metrics.counters(), {'sip_requests{method="INVITE"}': 2})
        methods["BYE"] += 1
        self.assertEqual(metrics['sip_requests{method="BYE"}'], 1)
        self.assertEqual(metrics.snapshot()['sip_requests{method="INVITE"}'], 2)


class ServerTrafficTests(SynchronousTestCase):
    """The server counts requests by method and the responses it sends by code."""

    def setUp(self) -> None:
        directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, directory)
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.server = SIPServer(demoConfig(directory), self.clock)
        self.transport = RecordingTransport()

    def send(self, data: bytes) -> None:
        self.assertTrue(self.server.admit(PEER[0]))
        self.server.messageReceived(data, self.transport, PEER)

    def test_requestsAndResponses(self) -> None:
        """An OPTIONS and its retransmission count two requests; our 200, resent once, counts once."""
        self.send(options())
        self.send(options())
        self.assertEqual(len(self.transport.sent), 2)
        self.assertEqual(self.server.metrics['sip_requests{method="OPTIONS"}'], 2)
        self.assertEqual(self.server.metrics['sip_responses{code="200"}'], 1)

    def test_unknownMethodIsOther(self) -> None:
        """A method we do not know counts as "other" (its own name never becomes a label); our 501 counts."""
        self.send(options(method="FROBNICATE"))
        counters = self.server.metrics.counters()
        self.assertEqual(counters['sip_requests{method="other"}'], 1)
        self.assertFalse([name for name in counters if "FROBNICATE" in name])
        self.assertEqual(counters['sip_responses{code="501"}'], 1)

    def test_bans(self) -> None:
        """Bans made count by kind; the active-bans gauge counts only bans not yet ended."""
        duration = self.server.config.bans.duration
        for _ in range(self.server.config.bans.failures):
            self.server.bans.failure("192.0.2.1", "alice")
        self.server.bans.ban("192.0.2.2", duration * 2, "by hand")
        self.assertEqual(self.server.metrics['bans{reason="auth"}'], 1)
        self.assertEqual(self.server.metrics['bans{reason="other"}'], 1)
        self.assertEqual(self.server.metrics["bans_active"], 2)
        self.clock.advance(duration)
        self.assertEqual(self.server.metrics["bans_active"], 1)

    def test_registrations(self) -> None:
        """The registrations gauge counts the store's live bindings."""
        store = self.server.registrar.store
        now = self.clock.seconds()
        for contact, expires in (("sip:a@192.0.2.5", now + 60), ("sip:b@192.0.2.6", now + 600)):
            self.successResultOf(store.save(Binding("alice@sbc.test", contact, expires=expires)))
        self.assertEqual(self.server.metrics["registrations"], 2)
        self.clock.advance(61)
        self.assertEqual(self.server.metrics["registrations"], 1)


class WaitingStore:
    """A location store whose ``all`` answers only when the test says so."""

    def __init__(self) -> None:
        self.pending: list[Deferred[list[Binding]]] = []

    def all(self) -> Deferred[list[Binding]]:
        d: Deferred[list[Binding]] = Deferred()
        self.pending.append(d)
        return d


class BindingCountTests(SynchronousTestCase):
    def test_storeThatWaits(self) -> None:
        """A store that answers later shows its last answer's count until the next one comes."""
        store = WaitingStore()
        count = BindingCount(store)  # type: ignore[arg-type]
        self.assertEqual(count(), 0)
        store.pending[0].callback([Binding("a@sbc.test", "sip:a@192.0.2.5", expires=1.0)] * 3)
        self.assertEqual(count(), 3)

    def test_failureKeepsCount(self) -> None:
        """A store that fails leaves the last count, and no unhandled error behind."""
        store = WaitingStore()
        count = BindingCount(store)  # type: ignore[arg-type]
        count()
        store.pending[0].callback([Binding("a@sbc.test", "sip:a@192.0.2.5", expires=1.0)])
        count()
        store.pending[1].errback(OSError("disk gone"))
        self.assertEqual(count(), 1)


class CallMetricsTests(CallTestCase):
    def test_callCounted(self) -> None:
        """A trunk call counts one call started, its INVITE and ACK, and our 100, 180 and 200 once each."""
        self.connect()
        metrics = self.server.metrics
        self.assertEqual(metrics["calls_started"], 1)
        self.assertEqual(metrics['sip_requests{method="INVITE"}'], 1)
        self.assertEqual(metrics['sip_requests{method="ACK"}'], 1)
        self.assertEqual(
            {name: value for name, value in metrics.counters().items() if name.startswith("sip_responses")},
            {'sip_responses{code="100"}': 1, 'sip_responses{code="180"}': 1, 'sip_responses{code="200"}': 1},
        )
        self.assertEqual(metrics["calls_active"], 1)


class BanKindTests(SynchronousTestCase):
    def test_kinds(self) -> None:
        """The ban kinds the metrics label bans with are a closed set of plain names."""
        self.assertEqual([str(kind) for kind in BanKind], ["auth", "request_rate", "other"])
