"""Tests for sbc.registrar.registrar against malformed numbers and credentials: 400, never 500."""

from __future__ import annotations

from tests.registrar import RegistrarTestCase, register

SUPERSCRIPT = "\xb2"


class BadInputTests(RegistrarTestCase):
    def test_expiresNotAsciiDigits(self) -> None:
        """An Expires of non-ASCII digits gets 400, not 500 with a traceback."""
        response = self.authorized(register(expires=f"6{SUPERSCRIPT}").decode().encode("latin-1"))
        assert response is not None
        self.assertEqual(response.status, 400)
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_regIdNotAsciiDigits(self) -> None:
        """A reg-id of non-ASCII digits is ignored: the REGISTER succeeds."""
        contact = f"<sip:alice@10.0.0.5:5070>;reg-id={SUPERSCRIPT}"
        data = register(contact=contact).decode().encode("latin-1")
        response = self.authorized(data)
        assert response is not None
        self.assertEqual(response.status, 200)
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_duplicatedAuthParam(self) -> None:
        """An Authorization with a parameter given twice gets 400."""
        line = (
            'Authorization: Digest username="alice", username="alice", realm="x", nonce="n", '
            'uri="u", response="r"\r\n'
        )
        response = self.send(register(extra=line))
        assert response is not None
        self.assertEqual(response.status, 400)
        self.assertEqual(self.flushLoggedErrors(), [])
