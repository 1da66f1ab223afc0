"""Tests for sbc.registrant.service: every registrant started, stopped within a bound (each
unregistered), followed across reloads, and shown by statuses() and the metrics gauges."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import replace

from sbc.registrant.service import STOP_BOUND, RegistrantService
from sbc.registrant.status import RegistrantState
from sbc.sip import Request
from tests.registrant import PEER_B, TIMER_F, RegistrantTestCase

PEER_C = replace(PEER_B, name="peer-c", registrar="sip:127.0.0.7", aor="sip:sbc@peer-c.example")


class RegistrantServiceTests(RegistrantTestCase):
    """The service over all registrations."""

    def setUp(self) -> None:
        super().setUp()
        self.gauges: dict[str, Callable[[], int]] = {}
        self.service = RegistrantService(
            (PEER_B, PEER_C),
            self.clock,
            self.layer,
            self.locator.locate,
            lambda hop: self.udp,
            chance=random.Random(3),
            gauges=self.gauges,
        )

    def to(self, host: str) -> list[Request]:
        """The REGISTERs sent to ``host``."""
        return [r for r in self.requests() if str(r.uri).startswith(f"sip:{host}")]

    def registerAll(self) -> None:
        """Start, and let every registrar accept."""
        self.service.startService()
        for request in self.requests():
            self.reply(200, ("Expires", "600"), request=request)

    def test_startRegistersEach(self) -> None:
        """Starting sends one REGISTER per registrant; statuses() lists them in config order."""
        self.service.startService()
        self.assertEqual(len(self.to("127.0.0.5")), 1)
        self.assertEqual(len(self.to("127.0.0.7")), 1)
        statuses = self.service.statuses()
        self.assertEqual([s.name for s in statuses], ["peer-b", "peer-c"])
        self.assertEqual({s.state for s in statuses}, {RegistrantState.REGISTERING})

    def test_nothingBeforeStart(self) -> None:
        """A reload before the start only remembers; nothing is sent."""
        self.service.update((PEER_B,))
        self.assertEqual(self.udp.sent, [])
        self.assertEqual(self.service.statuses(), ())

    def test_gauges(self) -> None:
        """registrant_up and registrant_state gauges follow each registration."""
        self.service.startService()
        up = 'registrant_up{registrant="peer-b"}'
        registered = 'registrant_state{registrant="peer-b",state="registered"}'
        registering = 'registrant_state{registrant="peer-b",state="registering"}'
        self.assertEqual(
            (self.gauges[up](), self.gauges[registering](), self.gauges[registered]()), (0, 1, 0)
        )
        self.reply(200, request=self.to("127.0.0.5")[0])
        self.assertEqual(
            (self.gauges[up](), self.gauges[registering](), self.gauges[registered]()), (1, 0, 1)
        )
        self.assertEqual(len([name for name in self.gauges if "peer-c" in name]), 3 + len(RegistrantState))

    def test_codeAndNextAttemptGauges(self) -> None:
        """registrant_last_code and registrant_next_attempt_seconds show each registration's last
        answer and the seconds until its next REGISTER (-1: none planned); gone with it."""
        self.service.startService()
        code = 'registrant_last_code{registrant="peer-b"}'
        nextAttempt = 'registrant_next_attempt_seconds{registrant="peer-b"}'
        self.assertEqual((self.gauges[code](), self.gauges[nextAttempt]()), (0, -1))
        self.reply(503, request=self.to("127.0.0.5")[0])
        client = self.service.clients["peer-b"]
        assert client.nextAttempt is not None
        wait = client.nextAttempt - self.clock.seconds()
        self.clock.advance(1)
        self.assertEqual((self.gauges[code](), self.gauges[nextAttempt]()), (503, math.ceil(wait - 1)))
        self.service.update((PEER_C,))
        self.assertNotIn(code, self.gauges)
        self.assertNotIn(nextAttempt, self.gauges)

    def test_stopUnregistersAndWaits(self) -> None:
        """Stopping unregisters each bound registration; the Deferred fires once all have answered."""
        self.registerAll()
        done = self.service.stopService()
        unregisters = [r for r in self.requests() if r.headers.get("expires") == "0"]
        self.assertEqual(len(unregisters), 2)
        self.reply(200, request=unregisters[0])
        self.assertNoResult(done)
        self.reply(200, request=unregisters[1])
        self.successResultOf(done)
        self.assertEqual({s.state for s in self.service.statuses()}, {RegistrantState.STOPPED})

    def test_stopBounded(self) -> None:
        """Without answers the stop Deferred fires after the bound, long before Timer F."""
        self.registerAll()
        done = self.service.stopService()
        self.clock.advance(STOP_BOUND - 0.01)
        self.assertNoResult(done)
        self.clock.advance(0.01)
        self.successResultOf(done)
        self.assertLess(STOP_BOUND, TIMER_F)

    def test_stopTwice(self) -> None:
        """A second stop (twistd's, after ours) fires at once and sends nothing more."""
        self.registerAll()
        self.service.stopService()
        sent = len(self.requests())
        self.successResultOf(self.service.stopService())
        self.assertEqual(len(self.requests()), sent)

    def test_reloadAdds(self) -> None:
        """A new registrant registers at the reload."""
        self.service.registrants = (PEER_B,)
        self.registerAll()
        self.service.update((PEER_B, PEER_C))
        self.assertEqual(len(self.to("127.0.0.7")), 1)
        self.assertIn('registrant_up{registrant="peer-c"}', self.gauges)

    def test_reloadRemoves(self) -> None:
        """A removed registrant unregisters, leaves statuses and gauges, and the stop waits for it."""
        self.registerAll()
        self.service.update((PEER_B,))
        (unregister,) = [r for r in self.to("127.0.0.7") if r.headers.get("expires") == "0"]
        self.assertEqual([s.name for s in self.service.statuses()], ["peer-b"])
        self.assertFalse([name for name in self.gauges if "peer-c" in name])
        done = self.service.stopService()
        self.reply(200, request=self.last())  # peer-b's unregister
        self.assertNoResult(done)
        self.reply(200, request=unregister)
        self.successResultOf(done)

    def test_reloadUnchangedKeepsState(self) -> None:
        """An unchanged registrant keeps its state and sends nothing."""
        self.registerAll()
        sent = len(self.requests())
        self.service.update((PEER_B, PEER_C))
        self.assertEqual(len(self.requests()), sent)
        self.assertEqual(self.service.statuses()[0].state, RegistrantState.REGISTERED)

    def test_reloadRouteOnly(self) -> None:
        """A changed route only follows: the binding is the same, nothing is sent."""
        self.registerAll()
        sent = len(self.requests())
        self.service.update((replace(PEER_B, routeUser="alice"), PEER_C))
        self.assertEqual(len(self.requests()), sent)
        self.assertEqual(self.service.clients["peer-b"].registrant.routeUser, "alice")

    def test_reloadMovedTwice(self) -> None:
        """Moved twice before the first old binding's removal is answered: the newest client
        still waits for that answer (never registers beside a pending Expires: 0)."""
        self.registerAll()
        self.service.update((replace(PEER_B, registrar="sip:127.0.0.9"), PEER_C))
        old = self.to("127.0.0.5")[-1]
        self.service.update((replace(PEER_B, registrar="sip:127.0.0.10"), PEER_C))
        self.assertEqual((self.to("127.0.0.9"), self.to("127.0.0.10")), ([], []))
        self.reply(200, request=old)
        self.assertEqual(self.to("127.0.0.9"), [])
        (new,) = self.to("127.0.0.10")
        self.assertEqual(new.headers.get("expires"), "600")

    def test_reloadChangedSettings(self) -> None:
        """Changed settings of the same binding register again at once, in the same Call-ID."""
        self.registerAll()
        first = self.to("127.0.0.5")[0]
        self.service.update((replace(PEER_B, expires=1200, password="new"), PEER_C))
        again = self.to("127.0.0.5")[-1]
        self.assertEqual(again.headers.get("expires"), "1200")
        self.assertEqual(again.callId, first.callId)
        self.assertGreater(again.cseq().number, first.cseq().number)

    def test_reloadMovedBinding(self) -> None:
        """A changed registrar unregisters the old binding there and, once that is answered,
        registers at the new one (never both at once: the old Expires: 0 could undo the new)."""
        self.registerAll()
        first = self.to("127.0.0.5")[0]
        self.service.update((replace(PEER_B, registrar="sip:127.0.0.9"), PEER_C))
        old = self.to("127.0.0.5")[-1]
        self.assertEqual((old.headers.get("expires"), old.callId), ("0", first.callId))
        self.assertEqual(self.to("127.0.0.9"), [])
        self.reply(200, request=old)
        (new,) = self.to("127.0.0.9")
        self.assertEqual(new.headers.get("expires"), "600")
        self.assertNotEqual(new.callId, first.callId)
        self.assertEqual(self.service.statuses()[0].registrar, "sip:127.0.0.9")
