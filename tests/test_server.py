"""Tests for sbc.server: the controller's gate, parsing and the SBC's own answers."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransportWithDisconnection
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from sbc.config import Config, loadConfig
from sbc.interfaces import ITransactionUser
from sbc.server import SIPServer, stampVia
from sbc.sip import Request, Response, SIPParseError, parseMessage
from sbc.transport import SIPStreamFactory, StreamConnections
from tests.fakes import (
    DEMO_TOML,
    RecordingTransport,
    SortedClock,
    connectStream,
    demoConfig,
    options,
    writeConfig,
)
from tests.rfc4475 import CORPUS, load, messages

PEER = ("127.0.0.2", 5062)


class ServerTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, directory)
        self.clock = Clock()
        self.server = SIPServer(demoConfig(directory), self.clock)
        self.transport = RecordingTransport()

    def send(self, data: bytes, source: tuple[str, int] = PEER) -> list[Response]:
        before = len(self.transport.sent)
        if self.server.admit(source[0]):
            self.server.messageReceived(data, self.transport, source)
        return [r for r in self.transport.responses()[before:]]

    def final(self, data: bytes) -> Response:
        responses = [r for r in self.send(data) if r.status >= 200]
        self.assertEqual(len(responses), 1, responses)
        return responses[0]


class GateTests(ServerTestCase):
    def test_strangerDroppedAndCounted(self) -> None:
        """A source outside every whitelist gets nothing; only a counter moves."""
        self.assertEqual(self.send(options(), ("127.0.0.9", 5062)), [])
        self.assertEqual(self.transport.sent, [])
        self.assertEqual(self.server.metrics["gate_dropped"], 1)

    def test_trunkAdmitted(self) -> None:
        """A whitelisted trunk source is admitted."""
        self.assertTrue(self.server.admit("127.0.0.2"))
        self.assertEqual(self.server.metrics["gate_dropped"], 0)

    def test_interface(self) -> None:
        """The server is the transactions' user."""
        self.assertTrue(verifyObject(ITransactionUser, self.server))


class AnswerTests(ServerTestCase):
    def test_options(self) -> None:
        """OPTIONS gets 200 with Allow, Accept and Supported, a To tag, and Content-Length 0."""
        response = self.final(options())
        self.assertEqual(response.status, 200)
        for name in ("Allow", "Accept", "Supported"):
            self.assertIn(name, response.headers)
        self.assertIn("OPTIONS", response.headers.getAll("allow"))
        self.assertIsNotNone(response.toHeader().tag)
        self.assertEqual(response.headers.get("content-length"), "0")
        self.assertEqual(response.callId, "call-1@127.0.0.2")

    def test_rportAndReceived(self) -> None:
        """The response's top Via carries received and the source port in rport (RFC 3581)."""
        response = self.final(options(via="SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKx;rport"))
        via = response.topVia()
        self.assertEqual(via.received, "127.0.0.2")
        self.assertEqual(via.rport, "5062")
        self.assertEqual(self.transport.sent[-1][1], PEER)

    def test_noRportGoesToViaPort(self) -> None:
        """Without rport, a UDP response goes to the source IP and the Via port (section 18.2.2)."""
        self.send(options(via="SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKy"))
        self.assertEqual(self.transport.sent[-1][1], ("127.0.0.2", 5070))
        self.assertEqual(self.transport.responses()[-1].topVia().received, "127.0.0.2")

    def test_maxForwardsZero(self) -> None:
        """Max-Forwards 0 gets 483."""
        self.assertEqual(self.final(options(maxForwards="0")).status, 483)

    def test_unknownMethod(self) -> None:
        """An unknown method gets 501 with Allow."""
        response = self.final(options(method="FROB"))
        self.assertEqual(response.status, 501)
        self.assertIn("Allow", response.headers)

    def test_knownMethodNotHere(self) -> None:
        """A known method the SBC does not serve here gets 405 with Allow."""
        response = self.final(options(method="SUBSCRIBE"))
        self.assertEqual(response.status, 405)
        self.assertIn("OPTIONS", response.headers.getAll("allow"))

    def test_unknownScheme(self) -> None:
        """A Request-URI scheme we cannot serve gets 416."""
        self.assertEqual(self.final(options(uri="http://example.com/")).status, 416)

    def test_require(self) -> None:
        """An unsupported Require gets 420 listing it in Unsupported."""
        response = self.final(options(extra="Require: foo, bar\r\n"))
        self.assertEqual(response.status, 420)
        self.assertEqual(response.headers.getAll("unsupported"), ["foo", "bar"])

    def test_malformedAnswered(self) -> None:
        """A malformed but answerable request gets 400 with the reason."""
        response = self.final(options(cseqMethod="INVITE"))
        self.assertEqual(response.status, 400)
        self.assertIn("CSeq", response.reason)

    def test_unanswerableDropped(self) -> None:
        """A request whose Via is broken cannot be answered: it is dropped and counted."""
        self.assertEqual(self.send(options(via="garbage")), [])
        self.assertEqual(self.server.metrics["dropped_unanswerable"], 1)

    def test_dropLogRateLimited(self) -> None:
        """Drops are logged at most once per interval, the rest only counted."""
        for _ in range(5):
            self.send(b"\x00garbage")
        self.assertEqual(self.server.metrics["dropped_unanswerable"], 5)
        self.assertEqual(self.server.dropLog.suppressed, 4)

    def test_retransmissionAbsorbed(self) -> None:
        """A retransmitted OPTIONS gets the same response again, not a second processing."""
        first = self.send(options())
        second = self.send(options())
        self.assertEqual([r.toBytes() for r in first], [r.toBytes() for r in second])

    def test_cancelWithoutInvite(self) -> None:
        """A CANCEL that matches no INVITE gets 481."""
        self.assertEqual(self.final(options(method="CANCEL")).status, 481)

    def test_ackAbsorbed(self) -> None:
        """An ACK that matches nothing gets no response."""
        self.assertEqual(self.send(options(method="ACK")), [])

    def test_bareMagicCookie(self) -> None:
        """A branch that is only the magic cookie gets 400 (RFC 4475 section 3.2.1)."""
        self.assertEqual(self.final(options(branch="z9hG4bK")).status, 400)

    def test_handlerBugAnswers500(self) -> None:
        """A handler that raises still answers (500), so no transaction is left hanging."""

        def broken(request: object, transaction: object) -> None:
            raise RuntimeError("bug")

        self.server.methods["OPTIONS"] = broken
        self.assertEqual(self.final(options()).status, 500)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(self.server.metrics["internal_errors"], 1)

    def test_deeperParseErrorDropped(self) -> None:
        """A message that breaks a deeper layer is dropped and counted; the server goes on."""

        def broken(*args: object) -> None:
            raise SIPParseError("bad Contact deep down")

        self.patch(self.server.transactions, "receiveRequest", broken)
        self.assertEqual(self.send(options()), [])
        self.assertEqual(self.server.metrics["dropped_unanswerable"], 1)

    def test_deeperBugLogged(self) -> None:
        """A bug below the controller is logged and counted, never raised into the transport."""

        def broken(*args: object) -> None:
            raise RuntimeError("bug")

        self.patch(self.server.transactions, "receiveRequest", broken)
        self.send(options())
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(self.server.metrics["internal_errors"], 1)

    def test_responseNeverAnswered(self) -> None:
        """A response that matches nothing is dropped without a reply."""
        self.send(
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKq\r\nCall-ID: a\r\n"
            b"CSeq: 1 OPTIONS\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nContent-Length: 0\r\n\r\n"
        )
        self.assertEqual(self.transport.sent, [])
        self.assertEqual(self.server.metrics["stray_responses"], 1)


class BoundsTests(SynchronousTestCase):
    def test_tenThousandOptions(self) -> None:
        """After 10,000 OPTIONS and their timers, no transaction and no timer remains."""
        directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, directory)
        clock = SortedClock()
        server = SIPServer(demoConfig(directory), clock)
        transport = RecordingTransport()
        for i in range(10_000):
            server.messageReceived(options(branch=f"z9hG4bK{i}"), transport, PEER)
            clock.advance(0.001)
        self.assertEqual(len(transport.sent), 10_000)
        self.assertGreater(len(server.transactions.serverTransactions), 0)
        clock.advance(64 * 0.5)
        self.assertEqual(server.transactions.serverTransactions, {})
        self.assertEqual(clock.getDelayedCalls(), [])


# What the SBC answers to each RFC 4475 message from a trunk over UDP. None means no answer at
# all (responses). REGISTERs from a trunk get 403: trunks do not register (the registrar's own
# handling of the REGISTER messages is in test_registrar). INVITEs are routed: the demo test
# config has no route for their example.com users (404); invut's body type gets 415 and
# sdp01's Accept, which excludes SDP, 406; wsinv and mpart01 carry a To tag, so they are in-dialog
# requests for a dialog we do not have (481).
EXPECTED = {
    "wsinv.dat": 481,
    "intmeth.dat": 501,
    "esc01.dat": 404,
    "escnull.dat": 403,
    "esc02.dat": 501,
    "lwsdisp.dat": 200,
    "longreq.dat": 404,
    "dblreq.dat": 403,
    "semiuri.dat": 200,
    "transports.dat": 200,
    "mpart01.dat": 481,
    "unreason.dat": None,
    "noreason.dat": None,
    "badinv01.dat": 400,
    "clerr.dat": 400,
    "ncl.dat": 400,
    "scalar02.dat": 400,
    "scalarlg.dat": None,
    "quotbal.dat": 400,
    "ltgtruri.dat": 400,
    "lwsruri.dat": 400,
    "lwsstart.dat": 400,
    "trws.dat": 400,
    "escruri.dat": 400,
    "baddate.dat": 404,
    "regbadct.dat": 400,
    "badaspec.dat": 200,
    "baddn.dat": 400,
    "badvers.dat": 505,
    "mismatch01.dat": 400,
    "mismatch02.dat": 501,
    "bigcode.dat": None,
    "badbranch.dat": 400,
    "insuf.dat": 400,
    "unkscm.dat": 416,
    "novelsc.dat": 416,
    "unksm2.dat": 403,
    "bext01.dat": 420,
    "invut.dat": 415,
    "regaut01.dat": 403,
    "multi01.dat": 400,
    "mcl01.dat": 400,
    "bcast.dat": None,
    "zeromf.dat": 483,
    "cparam01.dat": 403,
    "cparam02.dat": 403,
    "regescrt.dat": 403,
    "sdp01.dat": 406,
    "inv2543.dat": 404,
}


class TortureTests(ServerTestCase):
    def test_all(self) -> None:
        """Each RFC 4475 message gets the answer the RFC expects, and exactly one (or none)."""
        self.assertTrue(CORPUS.is_dir(), f"RFC 4475 corpus missing at {CORPUS}")
        files = [p.name for p in messages()]
        self.assertEqual(sorted(EXPECTED), files)
        for name in files:
            responses = self.send(load(name))
            finals = [r.status for r in responses if r.status >= 200]
            expected = EXPECTED[name]
            self.assertEqual(finals, [] if expected is None else [expected], name)

    def test_badRequestsCarryReason(self) -> None:
        """Every 400 says what was wrong in its reason phrase."""
        for name, status in EXPECTED.items():
            if status == 400:
                (response,) = [r for r in self.send(load(name)) if r.status >= 200]
                self.assertTrue(response.reason.startswith("Bad Request ("), name)


LIMITS_TOML = (
    DEMO_TOML
    + """
[devices]
whitelist = "whitelist/devices.txt"
"""
).replace("t1 = 0.5", "t1 = 0.5\nmax_connections_per_source = 3\nmax_connections_per_trunk_source = 7")


class ConnectionGateTests(SynchronousTestCase):
    """The server's side of open streams: limits by source, and closing what a reload refuses."""

    def setUp(self) -> None:
        self.directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.directory)
        (self.directory / "whitelist").mkdir()
        (self.directory / "whitelist" / "devices.txt").write_text("127.0.0.4/30\n")
        self.clock = Clock()
        self.connections = StreamConnections()
        self.server = SIPServer(
            self.config("127.0.0.2/32\n127.0.0.3/32\n"),
            self.clock,
            closeConnections=self.connections.closeWhere,
        )
        self.factory = SIPStreamFactory(
            self.server, "TCP", self.clock, 30.0, 65536, connections=self.connections
        )

    def config(self, whitelist: str) -> Config:
        return loadConfig(writeConfig(self.directory, LIMITS_TOML, whitelist))

    def connect(self, host: str) -> StringTransportWithDisconnection:
        return connectStream(self.factory, IPv4Address("TCP", host, 40000))

    def test_connectionLimit(self) -> None:
        """Trunk sources get [sip] max_connections_per_trunk_source, devices max_connections_per_source."""
        self.assertEqual(self.server.connectionLimit("127.0.0.2"), 7)
        self.assertEqual(self.server.connectionLimit("127.0.0.4"), 3)
        for _ in range(3):
            self.connect("127.0.0.4")
        self.assertIsNone(self.factory.buildProtocol(IPv4Address("TCP", "127.0.0.4", 1)))

    def test_reloadClosesRemoved(self) -> None:
        """A reload that takes a source out of every whitelist closes its open connections at once."""
        removed = self.connect("127.0.0.3")
        kept = self.connect("127.0.0.2")
        self.server.setConfig(self.config("127.0.0.2/32\n"))
        self.assertFalse(removed.connected)
        self.assertTrue(kept.connected)
        self.assertEqual(len(self.connections), 1)

    def test_refusedCountsNothing(self) -> None:
        """refused answers as the gate does, without moving the gate's counters."""
        self.assertTrue(self.server.refused("127.0.0.9"))
        self.assertFalse(self.server.refused("127.0.0.2"))
        self.assertEqual(self.server.metrics["gate_dropped"], 0)


class BanReloadTests(SynchronousTestCase):
    """Bans made before a reload that changes [bans] ipv6_prefix."""

    def setUp(self) -> None:
        self.directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.directory)
        self.clock = Clock()
        self.server = SIPServer(self.config(64), self.clock)

    def config(self, prefix: int) -> Config:
        toml = DEMO_TOML.replace("[sip]", f"[bans]\nfailures = 2\nipv6_prefix = {prefix}\n\n[sip]")
        return loadConfig(writeConfig(self.directory, toml, "2001:db8::/32\n"))

    def test_prefixReloadKeepsBan(self) -> None:
        """A source banned under /64 stays refused after a reload to ipv6_prefix = 56."""
        self.server.bans.failure("2001:db8:1:2::5", "alice")
        self.assertTrue(self.server.bans.failure("2001:db8:1:2::5", "alice"))
        self.server.setConfig(self.config(56))
        self.assertTrue(self.server.refused("2001:db8:1:2::5"))
        self.assertFalse(self.server.admit("2001:db8:1:2::5"))
        self.assertFalse(self.server.refused("2001:db8:1:3::5"))


class LateParseErrorTests(ServerTestCase):
    def test_handlerParseErrorAnswers400(self) -> None:
        """A header a handler parses only late (credentials) and finds broken gets 400, not 500."""

        def strict(*args: object) -> None:
            raise SIPParseError("auth-param 'nonce' given twice")

        self.server.methods["OPTIONS"] = strict
        response = self.final(options())
        self.assertEqual(response.status, 400)
        self.assertIn("given twice", response.reason)
        self.assertEqual(self.server.metrics["internal_errors"], 0)
        self.assertEqual(self.flushLoggedErrors(), [])


class StampViaTests(SynchronousTestCase):
    """stampVia records the real source in the top Via through the codec's public API only."""

    def test_combinedViaKeepsTheRestInOrder(self) -> None:
        """In a combined Via field only the first value is stamped; the others follow it in order."""
        request = parseMessage(
            b"OPTIONS sip:sbc.test SIP/2.0\r\n"
            b"Max-Forwards: 70\r\n"
            b"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa;rport, SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKb\r\n"
            b"From: <sip:a@sbc.test>;tag=1\r\nTo: <sip:sbc.test>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\n"
            b"Content-Length: 0\r\n\r\n"
        )
        assert isinstance(request, Request)
        stamped = stampVia(request, ("127.0.0.2", 40000))
        self.assertIs(request.topVia(), stamped)
        vias = request.vias()
        self.assertEqual([via.branch for via in vias], ["z9hG4bKa", "z9hG4bKb"])
        self.assertEqual((vias[0].received, vias[0].rport), ("127.0.0.2", "40000"))
        self.assertIsNone(vias[1].received)

    def test_sourceMatchingViaUntouched(self) -> None:
        """A Via that already names the source host without rport is left as it is."""
        request = parseMessage(
            b"OPTIONS sip:sbc.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bKa\r\n"
            b"From: <sip:a@sbc.test>;tag=1\r\nTo: <sip:sbc.test>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\n"
            b"Content-Length: 0\r\n\r\n"
        )
        assert isinstance(request, Request)
        before = request.toBytes()
        stampVia(request, ("127.0.0.2", 5060))
        self.assertEqual(request.toBytes(), before)
