"""Tests for sbc.calls against malformed input: the sender gets a 4xx (or the field is ignored),
never a 500, and nothing is logged as an internal error."""

from __future__ import annotations

from tests.calls import ALICE, DOMAIN, TRUNK, CallTestCase, answer, invite

# U+00B2 SUPERSCRIPT TWO: str.isdigit() says yes, int() says no.
SUPERSCRIPT = "\xb2"


class BadInputTests(CallTestCase):
    def device(self, extra: bytes) -> None:
        data = invite("sip:+15559999@127.0.0.1", source=ALICE, callId="dev-1", fromTag="dtag")
        data = data.replace(b"sip:+15551234@127.0.0.4", f"sip:alice@{DOMAIN}".encode())
        self.receive(data.replace(b"Supported:", extra + b"Supported:"), ALICE)

    def final(self, address: tuple[str, int]) -> int:
        (status,) = [r.status for r in self.responsesTo(address) if r.status >= 200]
        return status

    def test_duplicatedAuthParam(self) -> None:
        """A Proxy-Authorization with a parameter given twice gets 400, not 500 and a traceback."""
        credentials = (
            f'Proxy-Authorization: Digest username="alice", username="alice", realm="{DOMAIN}", '
            f'nonce="n", uri="sip:+15559999@127.0.0.1", response="{"0" * 32}"\r\n'
        )
        self.device(credentials.encode())
        self.assertEqual(self.final(ALICE), 400)
        self.assertEqual(self.flushLoggedErrors(), [])
        self.assertEqual(self.server.metrics["internal_errors"], 0)

    def test_sessionExpiresNotAsciiDigits(self) -> None:
        """A Session-Expires of non-ASCII digits gets 400."""
        self.bind()
        self.receive(
            invite().replace(
                b"Supported:", f"Session-Expires: 1{SUPERSCRIPT}00\r\nSupported:".encode("latin-1")
            ),
            TRUNK,
        )
        self.assertEqual(self.final(TRUNK), 400)
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_rseqNotAsciiDigits(self) -> None:
        """A reliable 18x whose RSeq is not ASCII digits is relayed as an unreliable one, not PRACKed."""
        self.bind()
        self.receive(invite(), TRUNK)
        (bInvite,) = self.requestsTo(ALICE, "INVITE")
        ringing = answer(bInvite, 180).replace(
            b"Server:", f"Require: 100rel\r\nRSeq: {SUPERSCRIPT}\r\nServer:".encode("latin-1")
        )
        self.receive(ringing, ALICE)
        self.assertIn(180, [r.status for r in self.responsesTo(TRUNK)])
        self.assertEqual(self.requestsTo(ALICE, "PRACK"), [])
        self.assertEqual(self.flushLoggedErrors(), [])
