# Twisted's trial assertions carry no annotations.
# mypy: disable-error-code="no-untyped-call"
"""Tests for `sbc.transaction`: RFC 3261 section 17 with RFC 6026, on a `Clock`."""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from sbc.interfaces import Address, IClientTransactionUser, ISIPTransport, ITransactionUser
from sbc.sip import MAGIC_COOKIE, HeaderField, Headers, Request, Response, parseMessage
from sbc.transaction import (
    ClientTransaction,
    ServerTransaction,
    Timers,
    TransactionLayer,
    newBranch,
)
from sbc.transaction.lifecycle import SPENT
from tests.fakes import RecordingTransport, SortedClock

# Exact in binary, so that clock arithmetic lands on timer deadlines exactly.
EPSILON = 1 / 1024
SOURCE: Address = ("203.0.113.5", 40000)
DESTINATION: Address = ("198.51.100.7", 5060)
LOCAL: Address = ("192.0.2.1", 5060)


@implementer(ITransactionUser, IClientTransactionUser)
class FakeUser:
    """A TU that records every call the layer makes up to it."""

    def __init__(self) -> None:
        self.requests: list[tuple[Request, ServerTransaction | None]] = []
        self.strays: list[tuple[Response, object, Address]] = []
        self.responses: list[tuple[Response, ClientTransaction]] = []
        self.timedOut: list[ClientTransaction] = []

    def requestReceived(self, request: object, transaction: object) -> None:
        assert isinstance(request, Request)
        assert transaction is None or isinstance(transaction, ServerTransaction)
        self.requests.append((request, transaction))

    def strayResponse(self, response: object, transport: object, source: Address) -> None:
        assert isinstance(response, Response)
        self.strays.append((response, transport, source))

    def responseReceived(self, response: object, transaction: object) -> None:
        assert isinstance(response, Response)
        assert isinstance(transaction, ClientTransaction)
        self.responses.append((response, transaction))

    def transactionTimedOut(self, transaction: object) -> None:
        assert isinstance(transaction, ClientTransaction)
        self.timedOut.append(transaction)


def makeRequest(
    method: str = "INVITE",
    branch: str | None = "z9hG4bKabc",
    sentBy: str = "192.0.2.10:5070",
    viaParams: str = "",
    cseq: int = 1,
    cseqMethod: str | None = None,
    callId: str = "call-1",
    toTag: str | None = None,
    extra: str = "",
    transport: str = "UDP",
) -> Request:
    branchParam = "" if branch is None else f";branch={branch}"
    toTagParam = "" if toTag is None else f";tag={toTag}"
    text = (
        f"{method} sip:bob@example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {sentBy}{branchParam}{viaParams}\r\n"
        "Max-Forwards: 70\r\n"
        "From: Alice <sip:alice@example.com>;tag=ft\r\n"
        f"To: <sip:bob@example.com>{toTagParam}\r\n"
        f"Call-ID: {callId}\r\n"
        f"CSeq: {cseq} {cseqMethod or method}\r\n"
        f"{extra}"
        "Content-Length: 0\r\n\r\n"
    )
    message = parseMessage(text.encode("latin-1"))
    assert isinstance(message, Request)
    return message


def makeResponse(request: Request, status: int, toTag: str = "tt") -> Response:
    """A response to ``request`` as its UAS would build it, round-tripped through the codec."""
    fields = [f for f in request.headers.fields if f.key in ("via", "from", "call-id", "cseq")]
    to = request.headers.get("to") or ""
    if status > 100 and ";tag=" not in to:
        to += f";tag={toTag}"
    fields += [HeaderField("to", to), HeaderField("content-length", "0")]
    message = parseMessage(Response(status, headers=Headers(fields)).toBytes())
    assert isinstance(message, Response)
    return message


def ackFor(invite: Request, toTag: str = "tt", branch: str | None = "z9hG4bKabc") -> Request:
    """The ACK a UAC sends for a non-2xx (same branch) or, with a new branch, for a 2xx."""
    return makeRequest("ACK", branch=branch, cseq=invite.cseq().number, toTag=toTag)


class LayerTestCase(SynchronousTestCase):
    """A layer on a Clock, with a UDP and a TCP fake transport and a recording TU."""

    timers = Timers()

    def setUp(self) -> None:
        self.clock = Clock()
        self.user = FakeUser()
        self.layer = TransactionLayer(self.clock, self.user, self.timers)
        self.udp = RecordingTransport(localAddress=LOCAL)
        self.tcp = RecordingTransport("TCP", reliable=True, localAddress=LOCAL)

    def advanceTo(self, when: float) -> None:
        """Advance to ``when`` stopping at every deadline on the way, as a punctual reactor would.

        One big ``Clock.advance`` would run a timer that reschedules itself only once, since the
        new call is scheduled from the advanced time.
        """
        clock = self.clock
        while True:
            due = [call.getTime() for call in clock.getDelayedCalls() if call.getTime() <= when]
            if not due:
                break
            clock.advance(min(due) - clock.seconds())
        clock.advance(when - clock.seconds())

    def receive(self, request: Request, transport: RecordingTransport | None = None) -> ServerTransaction:
        """Deliver a request that must create a server transaction; return it."""
        before = len(self.user.requests)
        self.layer.receiveRequest(request, transport or self.udp, SOURCE)
        self.assertEqual(len(self.user.requests), before + 1)
        stx = self.user.requests[-1][1]
        assert stx is not None
        return stx

    def send(self, request: Request, transport: RecordingTransport | None = None) -> ClientTransaction:
        return self.layer.sendRequest(request, transport or self.udp, DESTINATION, self.user)

    def assertQuiet(self) -> None:
        """No transaction and no timer left."""
        self.assertEqual(self.layer.serverTransactions, {})
        self.assertEqual(self.layer.clientTransactions, {})
        self.assertEqual(list(self.clock.getDelayedCalls()), [])


class FakesTests(SynchronousTestCase):
    """The test doubles provide the interfaces they stand in for."""

    def test_transport(self) -> None:
        """RecordingTransport provides ISIPTransport."""
        self.assertTrue(verifyObject(ISIPTransport, RecordingTransport()))

    def test_user(self) -> None:
        """FakeUser provides ITransactionUser and IClientTransactionUser."""
        self.assertTrue(verifyObject(ITransactionUser, FakeUser()))
        self.assertTrue(verifyObject(IClientTransactionUser, FakeUser()))


class BranchTests(SynchronousTestCase):
    """newBranch and Timers."""

    def test_magicCookie(self) -> None:
        """A new branch starts with the magic cookie and carries at least 64 random bits."""
        branch = newBranch()
        self.assertTrue(branch.startswith(MAGIC_COOKIE))
        self.assertGreaterEqual(len(branch) - len(MAGIC_COOKIE), 16)

    def test_unique(self) -> None:
        """Branches do not repeat."""
        self.assertEqual(len({newBranch() for _ in range(1000)}), 1000)

    def test_defaults(self) -> None:
        """The default timers are RFC 3261's T1, T2 and T4."""
        self.assertEqual(Timers(), Timers(T1=0.5, T2=4.0, T4=5.0))


class InviteServerTests(LayerTestCase):
    """The INVITE server transaction (RFC 3261 17.2.1, RFC 6026 7.1)."""

    def test_trying(self) -> None:
        """A new INVITE reaches the TU and is answered 100 Trying at once, without a To tag."""
        invite = makeRequest()
        stx = self.receive(invite)
        self.assertIs(self.user.requests[0][0], invite)
        self.assertEqual(stx.state, "Proceeding")
        self.assertIs(stx.request, invite)
        self.assertIs(stx.transport, self.udp)
        self.assertEqual(stx.source, SOURCE)
        self.assertIsNone(stx.cancelled)
        [trying] = self.udp.messages()
        assert isinstance(trying, Response)
        self.assertEqual(trying.status, 100)
        for name in ("via", "from", "call-id", "cseq"):
            self.assertEqual(trying.headers.get(name), invite.headers.get(name))
        self.assertIsNone(trying.toHeader().tag)
        self.assertEqual(trying.headers.get("content-length"), "0")
        self.assertEqual(trying.body, b"")

    def receiveActing(self, act: Callable[[Request, ServerTransaction], None]) -> None:
        """Deliver a new INVITE to a TU that does ``act`` while it has the request."""
        received = self.user.requestReceived

        def acting(request: object, transaction: object) -> None:
            received(request, transaction)
            assert isinstance(request, Request) and isinstance(transaction, ServerTransaction)
            act(request, transaction)

        self.user.requestReceived = acting  # type: ignore[method-assign]
        try:
            self.layer.receiveRequest(makeRequest(), self.udp, SOURCE)
        finally:
            self.user.requestReceived = received  # type: ignore[method-assign]

    def test_tryingAfterTheUser(self) -> None:
        """The 100 Trying leaves after what the TU sent on meanwhile, so it never delays it."""
        self.receiveActing(lambda request, stx: self.udp.send(b"onward", DESTINATION))
        self.assertEqual(self.udp.sent[0], (b"onward", DESTINATION))
        [trying] = [parseMessage(data) for data, _ in self.udp.sent[1:]]
        assert isinstance(trying, Response)
        self.assertEqual(trying.status, 100)

    def test_noTryingWhenAnswered(self) -> None:
        """A TU that answers at once, finally or provisionally, makes the 100 needless (17.2.1)."""
        for status in (486, 180):
            self.udp.sent.clear()
            self.layer.serverTransactions.clear()

            def answer(request: Request, stx: ServerTransaction, status: int = status) -> None:
                stx.respond(makeResponse(request, status))

            self.receiveActing(answer)
            self.assertEqual(self.udp.statuses(), [status])

    def test_tryingWhenTheUserFails(self) -> None:
        """A TU that breaks still leaves the caller a 100, so it stops retransmitting."""

        def fail(request: Request, stx: ServerTransaction) -> None:
            raise RuntimeError("bug")

        self.assertRaises(RuntimeError, self.receiveActing, fail)
        self.assertEqual(self.udp.statuses(), [100])

    def test_tryingCopiesTimestamp(self) -> None:
        """The 100 Trying copies a Timestamp header (RFC 3261 section 8.2.6.1)."""
        self.receive(makeRequest(extra="Timestamp: 54\r\n"))
        [trying] = self.udp.messages()
        self.assertEqual(trying.headers.get("timestamp"), "54")

    def test_retransmissionResendsProvisional(self) -> None:
        """A retransmitted INVITE gets the last provisional again and never reaches the TU."""
        invite = makeRequest()
        stx = self.receive(invite)
        stx.respond(makeResponse(invite, 180))
        self.layer.receiveRequest(makeRequest(), self.udp, SOURCE)
        self.assertEqual(self.udp.statuses(), [100, 180, 180])
        self.assertEqual(len(self.user.requests), 1)
        self.assertEqual(len(self.layer.serverTransactions), 1)

    def test_timerG(self) -> None:
        """Over UDP the final response is resent at T1, 2T1, 4T1, then every T2."""
        invite = makeRequest()
        stx = self.receive(invite)
        stx.respond(makeResponse(invite, 486))
        self.assertEqual(stx.state, "Completed")
        expected = 2
        for when in (0.5, 1.5, 3.5, 7.5, 11.5, 15.5):
            self.advanceTo(when - EPSILON)
            self.assertEqual(len(self.udp.sent), expected)
            self.advanceTo(when)
            expected += 1
            self.assertEqual(len(self.udp.sent), expected)
            self.assertEqual(self.udp.statuses()[-1], 486)

    def test_retransmittedUntilAck(self) -> None:
        """The final response is retransmitted until the ACK, then never again (timer I)."""
        invite = makeRequest()
        stx = self.receive(invite)
        stx.respond(makeResponse(invite, 486))
        self.advanceTo(2)
        self.assertEqual(self.udp.statuses(), [100, 486, 486, 486])
        self.layer.receiveRequest(ackFor(invite), self.udp, SOURCE)
        self.assertEqual(stx.state, "Confirmed")
        self.assertEqual(len(self.user.requests), 1)
        self.advanceTo(2 + 5 - EPSILON)
        self.assertEqual(len(self.udp.sent), 4)
        self.assertIn(stx.key, self.layer.serverTransactions)
        self.advanceTo(2 + 5)
        self.assertEqual(stx.state, "Terminated")
        self.assertQuiet()

    def test_retransmittedAckAbsorbed(self) -> None:
        """ACKs retransmitted in Confirmed go nowhere."""
        invite = makeRequest()
        stx = self.receive(invite)
        stx.respond(makeResponse(invite, 486))
        self.layer.receiveRequest(ackFor(invite), self.udp, SOURCE)
        self.layer.receiveRequest(ackFor(invite), self.udp, SOURCE)
        self.assertEqual(stx.state, "Confirmed")
        self.assertEqual(len(self.user.requests), 1)
        self.assertEqual(self.udp.statuses(), [100, 486])

    def test_retransmissionInCompleted(self) -> None:
        """A retransmitted INVITE in Completed gets the final response again (17.2.1)."""
        invite = makeRequest()
        stx = self.receive(invite)
        stx.respond(makeResponse(invite, 404))
        self.layer.receiveRequest(makeRequest(), self.udp, SOURCE)
        self.assertEqual(self.udp.statuses(), [100, 404, 404])
        self.assertEqual(len(self.user.requests), 1)

    def test_timerH(self) -> None:
        """Without an ACK the transaction ends at 64*T1, silently, with no timer left."""
        invite = makeRequest()
        stx = self.receive(invite)
        stx.respond(makeResponse(invite, 486))
        self.advanceTo(32 - EPSILON)
        self.assertEqual(stx.state, "Completed")
        self.advanceTo(32)
        self.assertEqual(stx.state, "Terminated")
        # 100, the 486, and retransmissions at 0.5 1.5 3.5 7.5 ... 31.5.
        self.assertEqual(self.udp.statuses(), [100] + [486] * 11)
        self.assertEqual(len(self.user.requests), 1)
        self.assertQuiet()

    def test_reliableNoTimerG(self) -> None:
        """Over TCP the final response is sent once, and timer H still ends the transaction."""
        invite = makeRequest(transport="TCP")
        stx = self.receive(invite, self.tcp)
        stx.respond(makeResponse(invite, 486))
        self.advanceTo(32 - EPSILON)
        self.assertEqual(self.tcp.statuses(), [100, 486])
        self.assertEqual(stx.state, "Completed")
        self.advanceTo(32)
        self.assertQuiet()

    def test_reliableTimerIZero(self) -> None:
        """Over TCP the ACK ends the transaction at once: timer I is zero."""
        invite = makeRequest(transport="TCP")
        stx = self.receive(invite, self.tcp)
        stx.respond(makeResponse(invite, 486))
        self.layer.receiveRequest(ackFor(invite), self.tcp, SOURCE)
        self.assertEqual(stx.state, "Terminated")
        self.assertQuiet()

    def test_accepted(self) -> None:
        """A 2xx moves to Accepted: retransmitted INVITEs are absorbed, TU 2xx go out."""
        invite = makeRequest()
        stx = self.receive(invite)
        stx.respond(makeResponse(invite, 200))
        self.assertEqual(stx.state, "Accepted")
        self.layer.receiveRequest(makeRequest(), self.udp, SOURCE)
        self.assertEqual(self.udp.statuses(), [100, 200])
        self.assertEqual(len(self.user.requests), 1)
        stx.respond(makeResponse(invite, 200))
        self.assertEqual(self.udp.statuses(), [100, 200, 200])
        stx.respond(makeResponse(invite, 486))
        self.assertEqual(self.udp.statuses(), [100, 200, 200])

    def test_timerL(self) -> None:
        """The Accepted state lasts 64*T1 and sends nothing by itself."""
        invite = makeRequest()
        stx = self.receive(invite)
        stx.respond(makeResponse(invite, 200))
        self.advanceTo(32 - EPSILON)
        self.assertEqual(stx.state, "Accepted")
        self.advanceTo(32)
        self.assertEqual(self.udp.statuses(), [100, 200])
        self.assertQuiet()

    def test_timerLReliable(self) -> None:
        """Timer L is 64*T1 on a reliable transport too."""
        invite = makeRequest(transport="TCP")
        stx = self.receive(invite, self.tcp)
        stx.respond(makeResponse(invite, 200))
        self.advanceTo(32 - EPSILON)
        self.assertEqual(stx.state, "Accepted")
        self.advanceTo(32)
        self.assertQuiet()

    def test_ackFor2xx(self) -> None:
        """The ACK for a 2xx (a new branch) reaches the TU as a request with no transaction."""
        invite = makeRequest()
        stx = self.receive(invite)
        stx.respond(makeResponse(invite, 200))
        ack = ackFor(invite, branch="z9hG4bKother")
        self.layer.receiveRequest(ack, self.udp, SOURCE)
        self.assertEqual(self.user.requests[-1], (ack, None))
        self.assertEqual(stx.state, "Accepted")

    def test_ackFor2xxSameBranch(self) -> None:
        """An ACK that reuses the INVITE's branch in Accepted also goes up without a transaction."""
        invite = makeRequest()
        stx = self.receive(invite)
        stx.respond(makeResponse(invite, 200))
        ack = ackFor(invite)
        self.layer.receiveRequest(ack, self.udp, SOURCE)
        self.assertEqual(self.user.requests[-1], (ack, None))
        self.assertEqual(stx.state, "Accepted")

    def test_strayAck(self) -> None:
        """An ACK that matches nothing reaches the TU with no transaction, and creates none."""
        ack = ackFor(makeRequest(), branch="z9hG4bKnothing")
        self.layer.receiveRequest(ack, self.udp, SOURCE)
        self.assertEqual(self.user.requests, [(ack, None)])
        self.assertQuiet()

    def test_respondAfterTerminated(self) -> None:
        """A response from the TU after the transaction ended is dropped."""
        invite = makeRequest()
        stx = self.receive(invite)
        stx.respond(makeResponse(invite, 486))
        self.advanceTo(40)
        sent = len(self.udp.sent)
        stx.respond(makeResponse(invite, 500))
        self.assertEqual(len(self.udp.sent), sent)
        self.assertQuiet()


class NonInviteServerTests(LayerTestCase):
    """The non-INVITE server transaction (RFC 3261 17.2.2)."""

    def test_noTrying(self) -> None:
        """A new non-INVITE request reaches the TU in Trying and gets no 100 from the layer."""
        stx = self.receive(makeRequest("OPTIONS"))
        self.assertEqual(stx.state, "Trying")
        self.assertEqual(self.udp.sent, [])

    def test_absorbedInTrying(self) -> None:
        """A retransmission in Trying is absorbed: nothing sent, the TU not called."""
        self.receive(makeRequest("OPTIONS"))
        self.layer.receiveRequest(makeRequest("OPTIONS"), self.udp, SOURCE)
        self.assertEqual(self.udp.sent, [])
        self.assertEqual(len(self.user.requests), 1)

    def test_retransmissionInProceeding(self) -> None:
        """A retransmission in Proceeding gets the last provisional again."""
        request = makeRequest("MESSAGE")
        stx = self.receive(request)
        stx.respond(makeResponse(request, 100))
        self.assertEqual(stx.state, "Proceeding")
        self.layer.receiveRequest(makeRequest("MESSAGE"), self.udp, SOURCE)
        self.assertEqual(self.udp.statuses(), [100, 100])
        self.assertEqual(len(self.user.requests), 1)

    def test_retransmissionInCompleted(self) -> None:
        """A retransmission in Completed gets the final response again."""
        request = makeRequest("OPTIONS")
        stx = self.receive(request)
        stx.respond(makeResponse(request, 200))
        self.assertEqual(stx.state, "Completed")
        self.layer.receiveRequest(makeRequest("OPTIONS"), self.udp, SOURCE)
        self.assertEqual(self.udp.statuses(), [200, 200])
        self.assertEqual(len(self.user.requests), 1)

    def test_secondFinalDropped(self) -> None:
        """Once Completed, further responses from the TU are dropped."""
        request = makeRequest("OPTIONS")
        stx = self.receive(request)
        stx.respond(makeResponse(request, 200))
        stx.respond(makeResponse(request, 500))
        self.assertEqual(self.udp.statuses(), [200])

    def test_timerJ(self) -> None:
        """Over UDP the transaction stays 64*T1 after the final response."""
        request = makeRequest("OPTIONS")
        stx = self.receive(request)
        self.advanceTo(1)
        stx.respond(makeResponse(request, 200))
        self.advanceTo(33 - EPSILON)
        self.assertEqual(stx.state, "Completed")
        self.advanceTo(33)
        self.assertEqual(stx.state, "Terminated")
        self.assertQuiet()

    def test_reliableTimerJZero(self) -> None:
        """Over TCP the final response ends the transaction at once: timer J is zero."""
        request = makeRequest("OPTIONS", transport="TCP")
        stx = self.receive(request, self.tcp)
        stx.respond(makeResponse(request, 200))
        self.assertEqual(stx.state, "Terminated")
        self.assertEqual(self.tcp.statuses(), [200])
        self.assertQuiet()

    def test_newRequestAfterTimerJ(self) -> None:
        """After timer J the same branch is a new request again (the peer's branch was reused)."""
        request = makeRequest("OPTIONS")
        stx = self.receive(request)
        stx.respond(makeResponse(request, 200))
        self.advanceTo(32)
        self.receive(makeRequest("OPTIONS"))
        self.assertEqual(len(self.user.requests), 2)


class CancelTests(LayerTestCase):
    """CANCEL: a transaction of its own, matched to the INVITE it cancels (RFC 3261 9.2)."""

    def test_matched(self) -> None:
        """A CANCEL with the INVITE's branch and sent-by points at the INVITE server transaction."""
        inviteTx = self.receive(makeRequest())
        cancelTx = self.receive(makeRequest("CANCEL"))
        self.assertIsNot(cancelTx, inviteTx)
        self.assertIs(cancelTx.cancelled, inviteTx)
        self.assertEqual(cancelTx.state, "Trying")
        self.assertEqual(len(self.layer.serverTransactions), 2)

    def test_unmatched(self) -> None:
        """A CANCEL that matches no INVITE still gets a transaction, with cancelled None."""
        self.receive(makeRequest())
        stx = self.receive(makeRequest("CANCEL", branch="z9hG4bKother"))
        self.assertIsNone(stx.cancelled)

    def test_otherSentBy(self) -> None:
        """The same branch from another sent-by cancels nothing."""
        self.receive(makeRequest())
        stx = self.receive(makeRequest("CANCEL", sentBy="192.0.2.99:5070"))
        self.assertIsNone(stx.cancelled)

    def test_cancelRetransmission(self) -> None:
        """A retransmitted CANCEL gets the 200 again and does not reach the TU twice."""
        self.receive(makeRequest())
        cancel = makeRequest("CANCEL")
        stx = self.receive(cancel)
        stx.respond(makeResponse(cancel, 200))
        self.layer.receiveRequest(makeRequest("CANCEL"), self.udp, SOURCE)
        self.assertEqual(self.udp.statuses(), [100, 200, 200])
        self.assertEqual(len(self.user.requests), 2)

    def test_rfc2543(self) -> None:
        """Without a magic cookie, a CANCEL matches its INVITE by Call-ID, CSeq, From tag and Via."""
        inviteTx = self.receive(makeRequest(branch=None))
        stx = self.receive(makeRequest("CANCEL", branch=None))
        self.assertIs(stx.cancelled, inviteTx)


class Rfc2543Tests(LayerTestCase):
    """Matching requests from peers without the magic cookie (RFC 3261 17.2.3)."""

    def test_retransmission(self) -> None:
        """An INVITE without a branch, retransmitted, is absorbed."""
        self.receive(makeRequest(branch=None))
        self.layer.receiveRequest(makeRequest(branch=None), self.udp, SOURCE)
        self.assertEqual(len(self.user.requests), 1)
        self.assertEqual(self.udp.statuses(), [100, 100])

    def test_oldBranch(self) -> None:
        """A branch without the magic cookie is matched the RFC 2543 way."""
        self.receive(makeRequest("OPTIONS", branch="1234"))
        self.layer.receiveRequest(makeRequest("OPTIONS", branch="1234"), self.udp, SOURCE)
        self.assertEqual(len(self.user.requests), 1)
        self.receive(makeRequest("OPTIONS", branch="1234", cseq=2))
        self.assertEqual(len(self.layer.serverTransactions), 2)

    def test_differentCallId(self) -> None:
        """Requests that differ in Call-ID are different transactions."""
        self.receive(makeRequest("OPTIONS", branch=None))
        self.receive(makeRequest("OPTIONS", branch=None, callId="call-2"))
        self.assertEqual(len(self.layer.serverTransactions), 2)

    def test_ack(self) -> None:
        """The ACK for a non-2xx matches its INVITE and confirms it."""
        invite = makeRequest(branch=None)
        stx = self.receive(invite)
        stx.respond(makeResponse(invite, 486))
        self.layer.receiveRequest(ackFor(invite, branch=None), self.udp, SOURCE)
        self.assertEqual(stx.state, "Confirmed")
        self.assertEqual(len(self.user.requests), 1)

    def test_ackFor2xx(self) -> None:
        """The ACK for a 2xx matches the Accepted INVITE and goes up with no transaction."""
        invite = makeRequest(branch=None)
        stx = self.receive(invite)
        stx.respond(makeResponse(invite, 200))
        ack = ackFor(invite, branch=None)
        self.layer.receiveRequest(ack, self.udp, SOURCE)
        self.assertEqual(self.user.requests[-1], (ack, None))


class ResponseRoutingTests(LayerTestCase):
    """Where server transactions send responses (RFC 3261 18.2.2, RFC 3581)."""

    def addressFor(self, request: Request, transport: RecordingTransport | None = None) -> Address:
        transport = transport or self.udp
        stx = self.receive(request, transport)
        stx.respond(makeResponse(request, 200))
        return transport.sent[-1][1]

    def test_viaPort(self) -> None:
        """Without rport over UDP: the source IP, at the Via port."""
        self.assertEqual(self.addressFor(makeRequest("OPTIONS")), ("203.0.113.5", 5070))

    def test_defaultPort(self) -> None:
        """Without rport or a Via port over UDP: the source IP, at 5060."""
        request = makeRequest("OPTIONS", sentBy="192.0.2.10")
        self.assertEqual(self.addressFor(request), ("203.0.113.5", 5060))

    def test_rportFlag(self) -> None:
        """With an rport flag over UDP: the source address, port included."""
        request = makeRequest("OPTIONS", viaParams=";rport")
        self.assertEqual(self.addressFor(request), SOURCE)

    def test_rportStamped(self) -> None:
        """With rport and received stamped by the server: the source address."""
        request = makeRequest("OPTIONS", viaParams=";rport=40000;received=203.0.113.5")
        self.assertEqual(self.addressFor(request), SOURCE)

    def test_receivedFromPeer(self) -> None:
        """A received parameter that disagrees with the source does not redirect responses."""
        request = makeRequest("OPTIONS", viaParams=";received=198.51.100.66")
        self.assertEqual(self.addressFor(request), ("203.0.113.5", 5070))

    def test_trying(self) -> None:
        """The 100 Trying goes where every other response goes."""
        self.receive(makeRequest(viaParams=";rport"))
        self.assertEqual(self.udp.sent[0][1], SOURCE)

    def test_reliable(self) -> None:
        """Over TCP: back on the same connection, to the source."""
        request = makeRequest("OPTIONS", transport="TCP", viaParams="")
        self.assertEqual(self.addressFor(request, self.tcp), SOURCE)
        self.assertEqual(self.udp.sent, [])

    def test_retransmissionsFollow(self) -> None:
        """Retransmitted final responses go to the same address."""
        invite = makeRequest()
        stx = self.receive(invite)
        stx.respond(makeResponse(invite, 486))
        self.advanceTo(2)
        self.assertEqual({address for _, address in self.udp.sent}, {("203.0.113.5", 5070)})


class InviteClientTests(LayerTestCase):
    """The INVITE client transaction (RFC 3261 17.1.1, RFC 6026 7.2)."""

    def test_sent(self) -> None:
        """sendRequest sends the request to the destination and starts in Calling."""
        invite = makeRequest()
        ctx = self.send(invite)
        self.assertEqual(ctx.state, "Calling")
        self.assertIs(ctx.request, invite)
        self.assertIs(ctx.transport, self.udp)
        self.assertEqual(ctx.destination, DESTINATION)
        self.assertIs(ctx.owner, self.user)
        self.assertEqual(self.udp.sent, [(invite.toBytes(), DESTINATION)])
        self.assertIs(self.layer.clientTransactions[ctx.key], ctx)

    def test_timerA(self) -> None:
        """Over UDP the INVITE is resent at T1, 2T1, 4T1, ... without a cap."""
        self.send(makeRequest())
        expected = 1
        for when in (0.5, 1.5, 3.5, 7.5, 15.5, 31.5):
            self.advanceTo(when - EPSILON)
            self.assertEqual(len(self.udp.sent), expected)
            self.advanceTo(when)
            expected += 1
            self.assertEqual(len(self.udp.sent), expected)
        self.assertEqual({data for data, _ in self.udp.sent}, {makeRequest().toBytes()})

    def test_timerB(self) -> None:
        """With no response, at 64*T1 the owner hears of the timeout and the transaction ends."""
        ctx = self.send(makeRequest())
        self.advanceTo(32 - EPSILON)
        self.assertEqual(self.user.timedOut, [])
        self.advanceTo(32)
        self.assertEqual(self.user.timedOut, [ctx])
        self.assertEqual(ctx.state, "Terminated")
        self.assertEqual(len(self.udp.sent), 7)
        self.assertQuiet()

    def test_reliable(self) -> None:
        """Over TCP there is no timer A, and timer B still fires."""
        ctx = self.send(makeRequest(transport="TCP"), self.tcp)
        self.advanceTo(32 - EPSILON)
        self.assertEqual(len(self.tcp.sent), 1)
        self.advanceTo(32)
        self.assertEqual(self.user.timedOut, [ctx])
        self.assertQuiet()

    def test_proceeding(self) -> None:
        """A provisional goes to the owner and stops timers A and B; timer C is the TU's."""
        invite = makeRequest()
        ctx = self.send(invite)
        ringing = makeResponse(invite, 180)
        self.layer.receiveResponse(ringing, self.udp, DESTINATION)
        self.assertEqual(ctx.state, "Proceeding")
        self.assertEqual(self.user.responses, [(ringing, ctx)])
        self.assertEqual(list(self.clock.getDelayedCalls()), [])
        self.advanceTo(100)
        self.assertEqual(len(self.udp.sent), 1)
        self.assertEqual(self.user.timedOut, [])
        self.layer.receiveResponse(makeResponse(invite, 183), self.udp, DESTINATION)
        self.assertEqual(len(self.user.responses), 2)

    def test_ack(self) -> None:
        """A non-2xx final is ACKed as section 17.1.1.3 says, and reaches the owner."""
        invite = makeRequest(
            extra=(
                "Via: SIP/2.0/UDP 192.0.2.200;branch=z9hG4bKbelow\r\n"
                "Route: <sip:p1.example.com;lr>\r\n"
                "Route: <sip:p2.example.com;lr>\r\n"
                'Authorization: Digest username="a"\r\n'
            ),
            cseq=7,
        )
        ctx = self.send(invite)
        busy = makeResponse(invite, 486, toTag="callee")
        self.layer.receiveResponse(busy, self.udp, DESTINATION)
        self.assertEqual(ctx.state, "Completed")
        self.assertEqual(self.user.responses, [(busy, ctx)])
        data, address = self.udp.sent[-1]
        self.assertEqual(address, DESTINATION)
        ack = parseMessage(data)
        assert isinstance(ack, Request)
        self.assertEqual(ack.method, "ACK")
        self.assertEqual(ack.uri, invite.uri)
        self.assertEqual(ack.headers.getAll("via"), [invite.headers.getAll("via")[0]])
        self.assertEqual(ack.topVia().branch, "z9hG4bKabc")
        self.assertEqual(ack.headers.get("from"), invite.headers.get("from"))
        self.assertEqual(ack.callId, invite.callId)
        self.assertEqual(ack.toHeader().tag, "callee")
        self.assertEqual(str(ack.cseq()), "7 ACK")
        self.assertEqual(ack.headers.getAll("route"), invite.headers.getAll("route"))
        self.assertEqual(ack.headers.get("max-forwards"), "70")
        self.assertEqual(ack.headers.get("content-length"), "0")
        self.assertNotIn("authorization", ack.headers)

    def test_finalRetransmission(self) -> None:
        """A retransmitted non-2xx final resends the ACK only; the owner hears it once."""
        invite = makeRequest()
        self.send(invite)
        self.layer.receiveResponse(makeResponse(invite, 486), self.udp, DESTINATION)
        self.layer.receiveResponse(makeResponse(invite, 486), self.udp, DESTINATION)
        self.assertEqual(len(self.user.responses), 1)
        messages = self.udp.messages()
        self.assertEqual([m.method for m in messages if isinstance(m, Request)], ["INVITE", "ACK", "ACK"])
        self.assertEqual(self.udp.sent[1], self.udp.sent[2])

    def test_timerD(self) -> None:
        """Over UDP the Completed state lasts 32 seconds, and A no longer fires."""
        invite = makeRequest()
        ctx = self.send(invite)
        self.layer.receiveResponse(makeResponse(invite, 503), self.udp, DESTINATION)
        self.advanceTo(32 - EPSILON)
        self.assertEqual(ctx.state, "Completed")
        self.assertEqual(len(self.udp.sent), 2)
        self.advanceTo(32)
        self.assertEqual(ctx.state, "Terminated")
        self.assertEqual(self.user.timedOut, [])
        self.assertQuiet()

    def test_reliableTimerDZero(self) -> None:
        """Over TCP the ACK is sent and the transaction ends at once: timer D is zero."""
        invite = makeRequest(transport="TCP")
        ctx = self.send(invite, self.tcp)
        self.layer.receiveResponse(makeResponse(invite, 486), self.tcp, DESTINATION)
        self.assertEqual(ctx.state, "Terminated")
        self.assertEqual(len(self.tcp.sent), 2)
        self.assertEqual(len(self.user.responses), 1)
        self.assertQuiet()

    def test_accepted(self) -> None:
        """A 2xx goes to the owner; in Accepted further 2xx (forks too) go to the owner as well."""
        invite = makeRequest()
        ctx = self.send(invite)
        ok = makeResponse(invite, 200, toTag="a")
        self.layer.receiveResponse(ok, self.udp, DESTINATION)
        self.assertEqual(ctx.state, "Accepted")
        forked = makeResponse(invite, 200, toTag="b")
        self.layer.receiveResponse(forked, self.udp, DESTINATION)
        self.assertEqual(self.user.responses, [(ok, ctx), (forked, ctx)])
        self.assertEqual(len(self.udp.sent), 1)
        self.layer.receiveResponse(makeResponse(invite, 486), self.udp, DESTINATION)
        self.assertEqual(len(self.user.responses), 2)
        self.assertEqual(self.user.strays, [])

    def test_acceptedForgetsTheRequestBytes(self) -> None:
        """In Accepted the INVITE is never resent, so its bytes are not kept for timer M."""
        invite = makeRequest()
        ctx = self.send(invite)
        self.layer.receiveResponse(makeResponse(invite, 200, toTag="a"), self.udp, DESTINATION)
        self.assertEqual(ctx._data, b"")

    def test_timerM(self) -> None:
        """Accepted lasts 64*T1; a 2xx after that is a stray response."""
        invite = makeRequest()
        ctx = self.send(invite)
        self.layer.receiveResponse(makeResponse(invite, 200), self.udp, DESTINATION)
        self.advanceTo(32 - EPSILON)
        self.assertEqual(ctx.state, "Accepted")
        self.advanceTo(32)
        self.assertEqual(ctx.state, "Terminated")
        self.assertQuiet()
        late = makeResponse(invite, 200)
        self.layer.receiveResponse(late, self.udp, DESTINATION)
        self.assertEqual(self.user.strays, [(late, self.udp, DESTINATION)])

    def test_timerMReliable(self) -> None:
        """Timer M is 64*T1 on a reliable transport too."""
        invite = makeRequest(transport="TCP")
        ctx = self.send(invite, self.tcp)
        self.layer.receiveResponse(makeResponse(invite, 200), self.tcp, DESTINATION)
        self.advanceTo(32 - EPSILON)
        self.assertEqual(ctx.state, "Accepted")
        self.advanceTo(32)
        self.assertQuiet()


class TimerConfigTests(LayerTestCase):
    """Timers scale with a configured T1, T2 and T4."""

    timers = Timers(T1=1.0, T2=8.0, T4=2.0)

    def test_timerD(self) -> None:
        """Timer D is 64*T1 when that is over 32 seconds."""
        invite = makeRequest()
        self.send(invite)
        self.layer.receiveResponse(makeResponse(invite, 486), self.udp, DESTINATION)
        self.advanceTo(64 - EPSILON)
        self.assertEqual(len(self.layer.clientTransactions), 1)
        self.advanceTo(64)
        self.assertQuiet()

    def test_timerE(self) -> None:
        """Timer E doubles from T1 up to the configured T2."""
        self.send(makeRequest("OPTIONS"))
        for when in (1, 3, 7, 15, 23):
            self.advanceTo(when)
        self.assertEqual(len(self.udp.sent), 6)
        self.advanceTo(31 - EPSILON)
        self.assertEqual(len(self.udp.sent), 6)

    def test_timerK(self) -> None:
        """Timer K is T4."""
        request = makeRequest("OPTIONS")
        self.send(request)
        self.layer.receiveResponse(makeResponse(request, 200), self.udp, DESTINATION)
        self.advanceTo(2 - EPSILON)
        self.assertEqual(len(self.layer.clientTransactions), 1)
        self.advanceTo(2)
        self.assertQuiet()


class ShortT1Tests(LayerTestCase):
    """Timer D never drops under 32 seconds over UDP."""

    timers = Timers(T1=0.25)

    def test_timerDFloor(self) -> None:
        """With 64*T1 = 16 seconds, timer D is still 32."""
        invite = makeRequest()
        self.send(invite)
        self.layer.receiveResponse(makeResponse(invite, 486), self.udp, DESTINATION)
        self.advanceTo(32 - EPSILON)
        self.assertEqual(len(self.layer.clientTransactions), 1)
        self.advanceTo(32)
        self.assertQuiet()


class NonInviteClientTests(LayerTestCase):
    """The non-INVITE client transaction (RFC 3261 17.1.2)."""

    def test_timerE(self) -> None:
        """Over UDP the request is resent at T1, 2T1, 4T1, then every T2."""
        self.send(makeRequest("OPTIONS"))
        expected = 1
        for when in (0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5):
            self.advanceTo(when - EPSILON)
            self.assertEqual(len(self.udp.sent), expected)
            self.advanceTo(when)
            expected += 1
            self.assertEqual(len(self.udp.sent), expected)

    def test_timerEProceeding(self) -> None:
        """After a provisional, timer E keeps firing, every T2."""
        request = makeRequest("OPTIONS")
        ctx = self.send(request)
        self.advanceTo(0.25)
        trying = makeResponse(request, 100)
        self.layer.receiveResponse(trying, self.udp, DESTINATION)
        self.assertEqual(ctx.state, "Proceeding")
        self.assertEqual(self.user.responses, [(trying, ctx)])
        self.advanceTo(0.5)
        self.assertEqual(len(self.udp.sent), 2)
        self.advanceTo(4.5 - EPSILON)
        self.assertEqual(len(self.udp.sent), 2)
        self.advanceTo(4.5)
        self.assertEqual(len(self.udp.sent), 3)
        self.advanceTo(8.5)
        self.assertEqual(len(self.udp.sent), 4)

    def test_timerF(self) -> None:
        """With no final response, at 64*T1 the owner hears of the timeout and the transaction ends."""
        ctx = self.send(makeRequest("OPTIONS"))
        self.advanceTo(32 - EPSILON)
        self.assertEqual(self.user.timedOut, [])
        self.advanceTo(32)
        self.assertEqual(self.user.timedOut, [ctx])
        # Sent at 0, then at 0.5 1.5 3.5 7.5 11.5 ... 31.5.
        self.assertEqual(len(self.udp.sent), 11)
        self.assertQuiet()

    def test_timerFProceeding(self) -> None:
        """Timer F runs on through Proceeding."""
        request = makeRequest("OPTIONS")
        ctx = self.send(request)
        self.layer.receiveResponse(makeResponse(request, 100), self.udp, DESTINATION)
        self.advanceTo(32)
        self.assertEqual(self.user.timedOut, [ctx])
        self.assertQuiet()

    def test_timerK(self) -> None:
        """A final goes to the owner once; retransmissions are absorbed for T4."""
        request = makeRequest("OPTIONS")
        ctx = self.send(request)
        ok = makeResponse(request, 200)
        self.layer.receiveResponse(ok, self.udp, DESTINATION)
        self.assertEqual(ctx.state, "Completed")
        self.layer.receiveResponse(makeResponse(request, 200), self.udp, DESTINATION)
        self.assertEqual(self.user.responses, [(ok, ctx)])
        self.advanceTo(5 - EPSILON)
        self.assertEqual(ctx.state, "Completed")
        self.assertEqual(len(self.udp.sent), 1)
        self.advanceTo(5)
        self.assertEqual(ctx.state, "Terminated")
        self.assertQuiet()

    def test_reliable(self) -> None:
        """Over TCP there is no timer E, and the final ends the transaction at once (K is zero)."""
        request = makeRequest("OPTIONS", transport="TCP")
        ctx = self.send(request, self.tcp)
        self.advanceTo(10)
        self.assertEqual(len(self.tcp.sent), 1)
        self.layer.receiveResponse(makeResponse(request, 200), self.tcp, DESTINATION)
        self.assertEqual(ctx.state, "Terminated")
        self.assertEqual(len(self.user.responses), 1)
        self.assertQuiet()

    def test_reliableTimerF(self) -> None:
        """Over TCP timer F still fires."""
        ctx = self.send(makeRequest("OPTIONS", transport="TCP"), self.tcp)
        self.advanceTo(32)
        self.assertEqual(self.user.timedOut, [ctx])
        self.assertQuiet()


class TransportFailedTests(LayerTestCase):
    """A connection we opened that failed before carrying anything (sbc.transport.outbound)."""

    def test_waitingTransactionsEndAtOnce(self) -> None:
        """Every transaction on the failed transport that heard nothing ends now as timed out;
        others, and ones already answered, are untouched."""
        invite = self.send(makeRequest(transport="TCP"), self.tcp)
        options = self.send(makeRequest("OPTIONS", transport="TCP", branch="z9hG4bKother"), self.tcp)
        other = self.send(makeRequest(branch="z9hG4bKudp"))
        self.layer.receiveResponse(makeResponse(options.request, 100), self.tcp, DESTINATION)
        self.layer.transportFailed(self.tcp)
        self.assertEqual(self.user.timedOut, [invite])
        self.assertEqual(invite.state, "Terminated")
        self.assertEqual(options.state, "Proceeding")
        self.assertEqual(other.state, "Calling")


class ClientMatchingTests(LayerTestCase):
    """Responses find their client transaction by branch and CSeq method (RFC 3261 17.1.3)."""

    def test_branchAndMethod(self) -> None:
        """A CANCEL shares the INVITE's branch, and each response finds its own transaction."""
        invite = makeRequest()
        cancel = makeRequest("CANCEL")
        inviteTx = self.send(invite)
        cancelTx = self.send(cancel)
        cancelled = makeResponse(cancel, 200)
        terminated = makeResponse(invite, 487)
        self.layer.receiveResponse(cancelled, self.udp, DESTINATION)
        self.layer.receiveResponse(terminated, self.udp, DESTINATION)
        self.assertEqual(self.user.responses, [(cancelled, cancelTx), (terminated, inviteTx)])

    def test_stray(self) -> None:
        """A response whose branch matches nothing goes to the TU as a stray."""
        response = makeResponse(makeRequest(branch="z9hG4bKunknown"), 200)
        self.layer.receiveResponse(response, self.udp, DESTINATION)
        self.assertEqual(self.user.strays, [(response, self.udp, DESTINATION)])

    def test_otherMethodStray(self) -> None:
        """A response with our branch but another CSeq method is a stray."""
        self.send(makeRequest())
        response = makeResponse(makeRequest("BYE"), 200)
        self.layer.receiveResponse(response, self.udp, DESTINATION)
        self.assertEqual(len(self.user.strays), 1)
        self.assertEqual(self.user.responses, [])

    def test_noBranchStray(self) -> None:
        """A response without a branch is a stray."""
        response = makeResponse(makeRequest(branch=None), 200)
        self.layer.receiveResponse(response, self.udp, DESTINATION)
        self.assertEqual(len(self.user.strays), 1)

    def test_refusesAck(self) -> None:
        """An ACK is never sent in a client transaction."""
        self.assertRaises(ValueError, self.send, makeRequest("ACK"))
        self.assertEqual(self.udp.sent, [])

    def test_refusesDuplicate(self) -> None:
        """A second request with the same branch and method is refused."""
        self.send(makeRequest("OPTIONS"))
        self.assertRaises(ValueError, self.send, makeRequest("OPTIONS"))
        self.assertEqual(len(self.udp.sent), 1)

    def test_refusesNoBranch(self) -> None:
        """A request without a branch is refused."""
        self.assertRaises(ValueError, self.send, makeRequest(branch=None))


class StopTests(LayerTestCase):
    """TransactionLayer.stop, for service shutdown."""

    def test_stop(self) -> None:
        """stop cancels every timer and forgets every transaction."""
        invite = makeRequest()
        stx = self.receive(invite)
        stx.respond(makeResponse(invite, 486))
        self.receive(makeRequest("OPTIONS"))
        ctx = self.send(makeRequest(branch="z9hG4bKout"))
        self.send(makeRequest("OPTIONS", branch="z9hG4bKout2"))
        self.assertNotEqual(list(self.clock.getDelayedCalls()), [])
        self.layer.stop()
        self.assertQuiet()
        self.assertEqual(stx.state, "Terminated")
        self.assertEqual(ctx.state, "Terminated")
        sent = len(self.udp.sent)
        self.advanceTo(100)
        self.assertEqual(len(self.udp.sent), sent)
        self.assertEqual(self.user.timedOut, [])


class CountingTests(LayerTestCase):
    """Nothing is left behind after many transactions."""

    count = 10_000
    # A new transaction every 1/4096 s: the whole run fits inside timer K, and deadlines differ.
    step = 1 / 4096

    def setUp(self) -> None:
        super().setUp()
        self.clock = SortedClock()
        self.layer = TransactionLayer(self.clock, self.user, self.timers)

    def test_server(self) -> None:
        """After 10,000 OPTIONS answered 200 over UDP and all timers, nothing is left."""
        respond = makeResponse(makeRequest("OPTIONS"), 200).toBytes()
        template = makeRequest("OPTIONS", branch="z9hG4bKBRANCH").toBytes()
        for i in range(self.count):
            branch = f"z9hG4bK{i}".encode()
            request = parseMessage(template.replace(b"z9hG4bKBRANCH", branch))
            response = parseMessage(respond.replace(b"z9hG4bKabc", branch))
            assert isinstance(request, Request)
            assert isinstance(response, Response)
            self.layer.receiveRequest(request, self.udp, SOURCE)
            stx = self.user.requests[-1][1]
            assert stx is not None
            stx.respond(response)
            self.clock.advance(self.step)
        self.assertEqual(len(self.layer.serverTransactions), self.count)
        self.assertEqual(len(self.udp.sent), self.count)
        self.clock.advance(64 * Timers().T1 + 1)
        self.assertQuiet()

    def test_client(self) -> None:
        """After 10,000 client OPTIONS answered 200 over UDP and all timers, nothing is left."""
        template = makeRequest("OPTIONS", branch="z9hG4bKBRANCH").toBytes()
        respond = makeResponse(makeRequest("OPTIONS", branch="z9hG4bKBRANCH"), 200).toBytes()
        for i in range(self.count):
            branch = f"z9hG4bK{i}".encode()
            request = parseMessage(template.replace(b"z9hG4bKBRANCH", branch))
            response = parseMessage(respond.replace(b"z9hG4bKBRANCH", branch))
            assert isinstance(request, Request)
            assert isinstance(response, Response)
            self.send(request)
            self.layer.receiveResponse(response, self.udp, DESTINATION)
            self.clock.advance(self.step)
        self.assertEqual(len(self.user.responses), self.count)
        self.assertEqual(len(self.layer.clientTransactions), self.count)
        self.clock.advance(64 * Timers().T1 + 1)
        self.assertQuiet()
        self.assertEqual(len(self.udp.sent), self.count)


class SpentRequestTests(LayerTestCase):
    """Once the final response is through, a lingering transaction lets its request go."""

    def test_serverInviteAccepted(self) -> None:
        """A 2xx sent: timer L keeps the transaction, not the parsed INVITE."""
        invite = makeRequest()
        stx = self.receive(invite)
        stx.respond(makeResponse(invite, 200, toTag="a"))
        self.assertIs(stx.request, SPENT)
        self.assertIn("INVITE", repr(stx))

    def test_serverInviteCompleted(self) -> None:
        """A failure sent: the response is kept for retransmission, the request is not."""
        invite = makeRequest()
        stx = self.receive(invite)
        stx.respond(makeResponse(invite, 486, toTag="a"))
        self.assertEqual(stx.state, "Completed")
        self.assertIs(stx.request, SPENT)

    def test_serverNonInviteCompleted(self) -> None:
        """A final answer to a BYE: timer J keeps the transaction only."""
        bye = makeRequest(method="BYE")
        stx = self.receive(bye)
        stx.respond(makeResponse(bye, 200))
        self.assertIs(stx.request, SPENT)

    def test_clientInvite(self) -> None:
        """Our INVITE answered (2xx or failure, after its ACK is built): the request goes."""
        for status in (200, 486):
            invite = makeRequest(branch=f"z9hG4bK{status}")
            ctx = self.send(invite)
            self.layer.receiveResponse(makeResponse(invite, status, toTag="a"), self.udp, DESTINATION)
            self.assertIs(ctx.request, SPENT)

    def test_clientNonInvite(self) -> None:
        """Our BYE answered: timer K keeps the transaction only."""
        bye = makeRequest(method="BYE")
        ctx = self.send(bye)
        self.layer.receiveResponse(makeResponse(bye, 200), self.udp, DESTINATION)
        self.assertIs(ctx.request, SPENT)
        self.assertIn("BYE", repr(ctx))
