"""Tests for sbc.calls: answers sbc cannot read, bodies of methods that carry no offer, and a 2xx
from a second fork of one branch.

RFC 3264 wants an answer for every offer: when B's answer comes in a body sbc cannot read, A must
not get a 2xx without one. RFC 3261 section 13.2.2.4 wants every 2xx ACKed, and an unwanted
dialog (another fork's) hung up on its own terms.
"""

from __future__ import annotations

from sbc.sip import Request
from tests.calls import ALICE, MIXED, TRUNK, RelayedCallTestCase, answer, invite, sipI, typed

ALTERNATIVE = 'multipart/alternative;boundary="caller-boundary-77"'


def gzipped(message: bytes) -> bytes:
    """A message with SDP, marked as gzip-encoded (sbc reads no content encoding)."""
    return message.replace(
        b"Content-Type: application/sdp\r\n",
        b"Content-Type: application/sdp\r\nContent-Encoding: gzip\r\n",
        1,
    )


class AnswerTestCase(RelayedCallTestCase):
    def withBody(self, request: bytes, body: bytes, contentType: str) -> bytes:
        head = request.replace(b"Content-Length: 0\r\n\r\n", b"")
        head += f"Content-Type: {contentType}\r\n".encode()
        return head + b"Content-Length: %d\r\n\r\n" % len(body) + body

    def established(self) -> Request:
        """Trunk calls alice with SDP, alice answers with SDP, the trunk ACKs; the B-side INVITE."""
        return self.call()


class UnreadableAnswerTests(AnswerTestCase):
    def assertAnswerFailed(self, kind: bytes) -> None:
        self.bind()
        self.receive(invite(body=self.aSDP), TRUNK)
        (bInvite,) = self.requestsTo(ALICE, "INVITE")
        self.receive(self.okFor(bInvite, kind), ALICE)
        self.assertEqual(self.statuses(TRUNK)[-1], 488)
        self.assertNotIn(200, self.statuses(TRUNK))
        self.assertEqual(len(self.requestsTo(ALICE, "ACK")), 1)
        self.assertEqual(len(self.requestsTo(ALICE, "BYE")), 1)
        self.assertEqual(self.relay.activeSessions(), 0)

    def okFor(self, bInvite: Request, kind: bytes) -> bytes:
        ok = answer(bInvite, 200, body=self.bSDP, contact="<sip:alice@10.1.1.1>")
        if kind == b"alternative":
            return typed(
                answer(bInvite, 200, body=sipI(self.bSDP, isup=False), contact="<sip:alice@10.1.1.1>"),
                ALTERNATIVE,
            )
        if kind == b"part":
            body = sipI(self.bSDP).replace(b"application/isup;version=itu-t92+;base=itu-t92+", b"text/plain")
            return typed(answer(bInvite, 200, body=body, contact="<sip:alice@10.1.1.1>"), MIXED)
        return gzipped(ok)

    def test_multipartAlternative(self) -> None:
        """B's 2xx with SDP in a multipart/alternative: B is ACKed and hung up, A gets 488, no 200."""
        self.assertAnswerFailed(b"alternative")

    def test_partOfAnotherType(self) -> None:
        """B's 2xx in a multipart with a part sbc does not read: B is ACKed and hung up, A gets 488."""
        self.assertAnswerFailed(b"part")

    def test_contentEncoding(self) -> None:
        """B's gzip-encoded SDP answer: B is ACKed and hung up, A gets 488."""
        self.assertAnswerFailed(b"gzip")

    def test_reinviteAnswerUnreadable(self) -> None:
        """A re-INVITE's 2xx with an unreadable answer: B is ACKed, A gets 488, the call goes on."""
        self.established()
        moved = self.aSDP.replace(b"6000", b"6100")
        self.receive(self.withBody(self.aRequest("INVITE", 11, "z9hG4bKre"), moved, "application/sdp"), TRUNK)
        re = self.requestsTo(ALICE, "INVITE")[-1]
        self.receive(gzipped(answer(re, 200, body=self.bSDP, contact="<sip:alice@10.1.1.1>")), ALICE)
        final = self.responsesTo(TRUNK)[-1]
        self.assertEqual((final.status, final.cseq().number), (488, 11))
        self.assertEqual(len(self.requestsTo(ALICE, "ACK")), 2)
        self.assertEqual(self.requestsTo(ALICE, "BYE"), [])
        self.assertEqual(self.relay.activeSessions(), 1)

    def test_lateOfferAckUnreadable(self) -> None:
        """A's ACK carries the late-offer answer in a body sbc cannot read: B is ACKed, both get BYE."""
        self.bind()
        self.receive(invite(body=b""), TRUNK)
        (bInvite,) = self.requestsTo(ALICE, "INVITE")
        self.receive(answer(bInvite, 200, body=self.bSDP, contact="<sip:alice@10.1.1.1>"), ALICE)
        self.assertEqual(self.statuses(TRUNK)[-1], 200)
        ack = self.withBody(self.aRequest("ACK", 10, "z9hG4bKack"), self.aSDP, "application/sdp")
        self.receive(gzipped(ack), TRUNK)
        (toB,) = self.requestsTo(ALICE, "ACK")
        self.assertEqual(toB.body, b"")
        self.assertEqual(len(self.requestsTo(ALICE, "BYE")), 1)
        self.assertEqual(len(self.requestsTo(TRUNK, "BYE")), 1)


class NoOfferBodyTests(AnswerTestCase):
    def test_infoMultipartCrossesRaw(self) -> None:
        """An INFO with a SIP-I multipart is no offer: it crosses as it came, under its own type."""
        self.established()
        body = sipI(self.aSDP)
        self.receive(self.withBody(self.aRequest("INFO", 11, "z9hG4bKinfo"), body, MIXED), TRUNK)
        (info,) = self.requestsTo(ALICE, "INFO")
        self.assertEqual((info.headers.get("content-type"), info.body), (MIXED, body))

    def test_infoAnswerMultipartCrossesRaw(self) -> None:
        """The 200 to an INFO with a multipart body is no answer: it crosses as it came."""
        self.established()
        self.receive(self.aRequest("INFO", 11, "z9hG4bKinfo"), TRUNK)
        (info,) = self.requestsTo(ALICE, "INFO")
        body = sipI(self.bSDP)
        self.receive(typed(answer(info, 200, body=body), MIXED), ALICE)
        ok = self.responsesTo(TRUNK)[-1]
        self.assertEqual((ok.status, ok.headers.get("content-type"), ok.body), (200, MIXED, body))


class ForkedAnswerTests(AnswerTestCase):
    def test_secondForkHungUpOnItsOwnDialog(self) -> None:
        """A 2xx from another fork of the branch is ACKed and hung up with its own tag; the first stays."""
        bInvite = self.established()
        other = answer(bInvite, 200, tag="fork2", body=self.bSDP, contact="<sip:alice@10.1.1.9>")
        self.receive(other, ALICE)
        self.receive(other, ALICE)  # its retransmission: ACKed again, no second BYE
        acks = self.requestsTo(ALICE, "ACK")
        self.assertEqual([a.toHeader().tag for a in acks], ["btag", "fork2", "fork2"])
        self.assertEqual(str(acks[1].uri), "sip:alice@10.1.1.9")
        (bye,) = self.requestsTo(ALICE, "BYE")
        self.assertEqual((bye.toHeader().tag, str(bye.uri)), ("fork2", "sip:alice@10.1.1.9"))
        self.receive(self.aRequest("BYE", 11, "z9hG4bKbye"), TRUNK)
        bye = self.requestsTo(ALICE, "BYE")[-1]
        self.assertEqual((bye.toHeader().tag, str(bye.uri)), ("btag", "sip:alice@10.1.1.1"))
