"""Tests for sbc.calls' header policy on real calls: every header, from trusted and untrusted
senders, in requests A->B and in responses B->A."""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger, LogPublisher

from sbc.calls.legs import LegFactory
from sbc.sip import Request, Response
from tests.calls import ALICE, TRUNK, CallTestCase, answer, invite, withTrunk

GATEWAY = ("127.0.0.2", 5080)

# header line -> (crosses from a trusted sender, crosses from an untrusted one)
TABLE = {
    "P-Asserted-Identity: <sip:+15551234@carrier.example>": (True, False),
    "P-Preferred-Identity: <sip:+15551234@carrier.example>": (True, False),
    "Privacy: none": (True, False),
    "Diversion: <sip:+15550009@carrier.example>;reason=unconditional": (True, False),
    "History-Info: <sip:+15550009@carrier.example>;index=1": (True, False),
    "Call-Info: <http://pics.example/a.png>;purpose=icon;answer-after=0": (False, False),
    "Alert-Info: <http://ring.example/bell>;info=alert-autoanswer": (False, False),
    "Subject: the meeting": (True, True),
    "Organization: Example Carrier": (True, True),
    'Warning: 399 gw.internal "detail"': (False, False),
    "X-Carrier-Route: gw7": (False, False),
}
LINES = "".join(f"{line}\r\n" for line in TABLE).encode()


def name(line: str) -> str:
    return line.partition(":")[0].lower()


class HeaderTableTests(CallTestCase):
    def trust(self, trusted: bool) -> None:
        self.server.setConfig(withTrunk(self.server.config, "demo", trusted=trusted))

    def inviteWith(self, uri: str) -> None:
        self.receive(invite(uri).replace(b"Supported:", LINES + b"Supported:"), TRUNK)

    def ringWith(self, bInvite: Request, source: tuple[str, int]) -> Response:
        self.receive(answer(bInvite, 180).replace(b"Server:", LINES + b"Server:"), source)
        (ringing,) = [r for r in self.responsesTo(TRUNK) if r.status == 180]
        return ringing

    def mismatches(self, message: Request | Response, senderTrusted: bool) -> list[str]:
        wrong = []
        for line, crosses in TABLE.items():
            expected = crosses[0] if senderTrusted else crosses[1]
            if (name(line) in message.headers) != expected:
                wrong.append(f"{name(line)}: expected {'crossing' if expected else 'dropped'}")
        return wrong

    def test_requestFromTrustedTrunk(self) -> None:
        """A->B: a trusted trunk's identity and history headers reach the callee; alerting ones do not."""
        self.trust(True)
        self.bind()
        self.inviteWith("sip:alice@127.0.0.1")
        (bInvite,) = self.requestsTo(ALICE, "INVITE")
        self.assertEqual(self.mismatches(bInvite, True), [])

    def test_requestFromUntrustedTrunk(self) -> None:
        """A->B: an untrusted trunk passes only the plain headers."""
        self.trust(False)
        self.bind()
        self.inviteWith("sip:alice@127.0.0.1")
        (bInvite,) = self.requestsTo(ALICE, "INVITE")
        self.assertEqual(self.mismatches(bInvite, False), [])

    def test_responseFromTrustedTrunk(self) -> None:
        """B->A: a trusted callee trunk's headers reach the trusted caller trunk."""
        self.trust(True)
        self.receive(invite("sip:+15559999@127.0.0.1"), TRUNK)
        (bInvite,) = self.requestsTo(GATEWAY, "INVITE")
        self.assertEqual(self.mismatches(self.ringWith(bInvite, GATEWAY), True), [])

    def test_responseFromUntrustedCallee(self) -> None:
        """B->A: an untrusted callee (a device) cannot assert an identity to a trusted trunk."""
        self.trust(True)
        self.bind()
        self.receive(invite(), TRUNK)
        (bInvite,) = self.requestsTo(ALICE, "INVITE")
        self.assertEqual(self.mismatches(self.ringWith(bInvite, ALICE), False), [])

    def test_inDialogJudgedBySender(self) -> None:
        """In a dialog too, the callee device's INFO carries no identity to the trusted trunk."""
        self.trust(True)
        bInvite = self.connect()
        info = self.bRequest(bInvite, "INFO", 1, "z9hG4bKinfo").replace(
            b"Content-Length", LINES + b"Content-Length"
        )
        self.receive(info, ALICE)
        (relayed,) = self.requestsTo(TRUNK, "INFO")
        self.assertEqual(self.mismatches(relayed, False), [])


class PrivacyTests(CallTestCase):
    def test_privacyIdStopsIdentityAtDevice(self) -> None:
        """Privacy: id keeps a trusted trunk's P-Asserted-Identity from a device (RFC 3325)."""
        self.reconfigureTrusted()
        self.bind()
        lines = b"P-Asserted-Identity: <sip:+15551234@carrier.example>\r\nPrivacy: id\r\n"
        self.receive(invite().replace(b"Supported:", lines + b"Supported:"), TRUNK)
        (bInvite,) = self.requestsTo(ALICE, "INVITE")
        self.assertNotIn("p-asserted-identity", bInvite.headers)
        self.assertEqual(bInvite.headers.get("privacy"), "id")

    def test_privacyIdStaysInsideTrustDomain(self) -> None:
        """Between trusted trunks, P-Asserted-Identity crosses even with Privacy: id."""
        self.reconfigureTrusted()
        lines = b"P-Asserted-Identity: <sip:+15551234@carrier.example>\r\nPrivacy: id\r\n"
        self.receive(invite("sip:+15559999@127.0.0.1").replace(b"Supported:", lines + b"Supported:"), TRUNK)
        (bInvite,) = self.requestsTo(GATEWAY, "INVITE")
        self.assertIn("p-asserted-identity", bInvite.headers)

    def reconfigureTrusted(self, **changes: Any) -> None:
        """Trust the demo trunk, and change it further as ``changes`` say (Trunk's field names)."""
        self.server.setConfig(withTrunk(self.server.config, "demo", trusted=True, **changes))

    def test_callInfoOptInDropsAddressURLs(self) -> None:
        """A trunk opting in to Call-Info passes it, but never an element with an address URL."""
        self.reconfigureTrusted(passHeaders=("call-info",))
        self.bind()
        line = (
            b"Call-Info: <http://10.9.9.9/a.png>;purpose=icon, <http://pics.example/b.png>;purpose=icon\r\n"
        )
        self.receive(invite().replace(b"Supported:", line + b"Supported:"), TRUNK)
        (bInvite,) = self.requestsTo(ALICE, "INVITE")
        self.assertEqual(bInvite.headers.get("call-info"), "<http://pics.example/b.png>;purpose=icon")


class ReasonPhraseTests(CallTestCase):
    def test_finalAnswerGetsStandardPhrase(self) -> None:
        """A callee's own reason phrase never reaches the caller: the standard one does."""
        self.bind()
        self.receive(invite(), TRUNK)
        (bInvite,) = self.requestsTo(ALICE, "INVITE")
        ringing = answer(bInvite, 180).replace(b"180 Ringing", b"180 ringing at 10.1.2.3")
        self.receive(ringing, ALICE)
        busy = answer(bInvite, 486).replace(b"486 Busy Here", b"486 gw 10.1.2.3 down")
        self.receive(busy, ALICE)
        phrases = [(r.status, r.reason) for r in self.responsesTo(TRUNK) if r.status > 100]
        self.assertEqual(phrases, [(180, "Ringing"), (486, "Busy Here")])

    def test_inDialogAnswerGetsStandardPhrase(self) -> None:
        """An in-dialog answer relayed to the other leg carries the standard phrase."""
        bInvite = self.connect()
        self.receive(self.aRequest("INFO", 11, "z9hG4bKinfo"), TRUNK)
        (info,) = self.requestsTo(ALICE, "INFO")
        self.receive(answer(info, 200).replace(b"200 OK", b"200 relayed by 10.1.2.3"), ALICE)
        self.assertEqual(self.responsesTo(TRUNK)[-1].reason, "OK")
        del bInvite

    def test_failoverAnswerGetsStandardPhrase(self) -> None:
        """The best of several failures reaches the caller with the standard phrase."""
        self.patch(LegFactory, "log", Logger(observer=LogPublisher()))
        self.receive(invite("sip:+15559999@127.0.0.1"), TRUNK)
        (first,) = self.requestsTo(GATEWAY, "INVITE")
        self.receive(answer(first, 503).replace(b"503 Service Unavailable", b"503 gw 10.1.2.3 down"), GATEWAY)
        (second,) = self.requestsTo(("127.0.0.3", 5080), "INVITE")
        self.receive(answer(second, 503), ("127.0.0.3", 5080))
        final = self.responsesTo(TRUNK)[-1]
        self.assertEqual((final.status, final.reason), (503, "Service Unavailable"))
