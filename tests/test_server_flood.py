"""Tests for sbc.server's flood and scanner defence: device sources past their rate are banned,
known scanners get no answer at all, and trunk sources are exempt from both."""

from __future__ import annotations

import dataclasses

from twisted.internet.address import IPv4Address
from twisted.logger import capturedLogs

from sbc.config import loadConfig
from sbc.registrar.location import Binding
from sbc.server import SIPServer
from sbc.transport import SIPStreamFactory, StreamConnections
from tests.fakes import connectStream, options
from tests.registrar import DEVICE, REGISTRAR_TOML, RegistrarTestCase, register

TRUNK_SOURCE = ("127.0.0.2", 5062)
FLOOD_TOML = REGISTRAR_TOML.replace(
    "[bans]\n",
    '[bans]\nrequest_rate = 10\nrequest_burst = 5\nrequest_ban_duration = 30\nscanners = ["EvilDialer"]\n',
)


class FloodTestCase(RegistrarTestCase):
    toml = FLOOD_TOML

    def deviceOptions(self, n: int, extra: str = "") -> bytes:
        """An OPTIONS from the device (a fresh branch each), with extra header lines."""
        return options(
            branch=f"z9hG4bKf{n}", via=f"SIP/2.0/UDP 127.0.0.4:5070;branch=z9hG4bKf{n};rport", extra=extra
        )


class RequestRateTests(FloodTestCase):
    def test_deviceFloodBanned(self) -> None:
        """A device's request past its burst is dropped and bans the source for the configured time."""
        answers = [self.send(self.deviceOptions(n)) for n in range(6)]
        self.assertEqual([a.status if a else None for a in answers], [200] * 5 + [None])
        self.assertEqual(self.server.metrics["rate_banned"], 1)
        self.assertEqual(len(self.server.transactions.serverTransactions), 5)  # none for the sixth
        self.assertFalse(self.server.admit(DEVICE[0]))
        self.assertEqual(self.server.metrics["banned_dropped"], 1)
        self.assertTrue(self.server.admit("127.0.0.5"))  # a neighbour is not touched
        self.clock.advance(30)
        self.assertTrue(self.server.admit(DEVICE[0]))

    def test_registeredDevicesWidenTheBudget(self) -> None:
        """A source holding three registrations gets three bursts before the ban (the store's
        count reaches the screen)."""
        for n in range(3):
            contact = f"sip:phone{n}@127.0.0.4:5070"
            saved = Binding(aor=f"phone{n}@example.com", contact=contact, expires=3600, source=DEVICE)
            self.successResultOf(self.server.registrar.store.save(saved))
        answers = [self.send(self.deviceOptions(n)) for n in range(16)]
        self.assertEqual([a.status if a else None for a in answers], [200] * 15 + [None])
        self.assertEqual(self.server.metrics["rate_banned"], 1)

    def test_responsesNotCounted(self) -> None:
        """A device's responses (sent at our pace) do not count against its request rate."""
        response = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx\r\n" + (
            b"From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>;tag=2\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n"
            b"Content-Length: 0\r\n\r\n"
        )
        for _ in range(20):
            self.assertTrue(self.server.admit(DEVICE[0]))
            self.server.messageReceived(response, self.udp, DEVICE)
        self.assertEqual(self.server.metrics["rate_banned"], 0)
        self.assertIsNotNone(self.send(self.deviceOptions(1)))

    def test_garbageCounted(self) -> None:
        """Unparsable messages from a device count too: a flood of them bans it."""
        for _ in range(6):
            if self.server.admit(DEVICE[0]):
                self.server.messageReceived(b"NOT SIP AT ALL\r\n\r\n", self.udp, DEVICE)
        self.assertEqual(self.server.metrics["rate_banned"], 1)
        self.assertFalse(self.server.admit(DEVICE[0]))

    def test_floodedRegistersUnanswered(self) -> None:
        """REGISTERs past the rate get no answer: the first five get their 401."""
        answers = [self.send(register(branch=f"z9hG4bKr{i}", callId=f"r{i}")) for i in range(8)]
        self.assertEqual([a.status if a else None for a in answers], [401] * 5 + [None] * 3)

    def test_trunkNeverRateLimited(self) -> None:
        """A trunk source is never counted nor banned, however fast it sends."""
        for n in range(100):
            self.assertIsNotNone(self.send(options(branch=f"z9hG4bKt{n}"), TRUNK_SOURCE))
        self.assertEqual(self.server.bans.active, {})
        self.assertEqual(self.server.metrics["rate_banned"], 0)

    def test_floodClosesStreams(self) -> None:
        """A flood ban closes the source's open TCP connection, as an authentication ban does."""
        connections = StreamConnections()
        self.server = SIPServer(self.server.config, self.clock, closeConnections=connections.closeWhere)
        factory = SIPStreamFactory(self.server, "TCP", self.clock, 300.0, 65536, connections=connections)
        stream = connectStream(factory, IPv4Address("TCP", *DEVICE))
        other = connectStream(factory, IPv4Address("TCP", "127.0.0.5", 5070))
        for n in range(6):
            self.send(self.deviceOptions(n))  # over UDP
        self.assertFalse(stream.connected)
        self.assertTrue(other.connected)

    def test_reloadChangesRate(self) -> None:
        """A reload with a new rate applies it to the next message."""
        config = self.server.config
        bans = dataclasses.replace(config.bans, requestBurst=2)
        self.server.setConfig(dataclasses.replace(config, bans=bans))
        answers = [self.send(self.deviceOptions(n)) for n in range(3)]
        self.assertEqual([a is not None for a in answers], [True, True, False])


class ScannerTests(FloodTestCase):
    def test_scannerUserAgentDropped(self) -> None:
        """A known scanner's request from a device gets no answer, makes no transaction and logs nothing."""
        with capturedLogs() as events:
            answer = self.send(self.deviceOptions(1, "User-Agent: friendly-scanner\r\n"))
        self.assertIsNone(answer)
        self.assertEqual(self.udp.sent, [])
        self.assertEqual(self.server.transactions.serverTransactions, {})
        self.assertEqual(self.server.metrics["scanners_dropped"], 1)
        self.assertEqual(events, [])

    def test_scannerServerHeaderDropped(self) -> None:
        """A scanner that names itself in Server instead of User-Agent is dropped too."""
        self.assertIsNone(self.send(self.deviceOptions(1, "Server: sipcli/v1.8\r\n")))
        self.assertEqual(self.server.metrics["scanners_dropped"], 1)

    def test_configuredScannerDropped(self) -> None:
        """[bans] scanners adds names to the built-in list, matched case-insensitively."""
        self.assertIsNone(self.send(self.deviceOptions(1, "User-Agent: evildialer 2.0\r\n")))
        self.assertEqual(self.server.metrics["scanners_dropped"], 1)

    def test_brokenScannerRequestUnanswered(self) -> None:
        """A malformed scanner request gets no 400: it is dropped silently as well."""
        data = self.deviceOptions(1, "User-Agent: sipvicious\r\nCSeq: x\r\n")
        self.assertIsNone(self.send(data))
        self.assertEqual(self.udp.sent, [])
        self.assertEqual(self.server.metrics["bad_requests"], 0)

    def test_otherUserAgentAnswered(self) -> None:
        """A device whose User-Agent names no scanner is answered as before."""
        answer = self.send(self.deviceOptions(1, "User-Agent: Yealink SIP-T46S\r\n"))
        assert answer is not None
        self.assertEqual(answer.status, 200)
        self.assertEqual(self.server.metrics["scanners_dropped"], 0)

    def test_trunkScannerAnswered(self) -> None:
        """A trunk source is exempt: its request is answered whatever tool it names."""
        answer = self.send(options(extra="User-Agent: friendly-scanner\r\n"), TRUNK_SOURCE)
        assert answer is not None
        self.assertEqual(answer.status, 200)
        self.assertEqual(self.server.metrics["scanners_dropped"], 0)

    def test_reloadChangesScanners(self) -> None:
        """A reload's scanner list applies to the next request."""
        config = loadConfig(self.directory / "sbc.toml")
        bans = dataclasses.replace(config.bans, scanners=("Zoiper",))
        self.server.setConfig(dataclasses.replace(config, bans=bans))
        self.assertIsNone(self.send(self.deviceOptions(1, "User-Agent: Zoiper rv2\r\n")))
        self.assertIsNotNone(self.send(self.deviceOptions(2, "User-Agent: EvilDialer\r\n")))
