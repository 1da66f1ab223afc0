"""Answering a registrar's (or its proxy's) digest challenges, as a client (RFC 3261 section 22.2).

A challenge is answered once: the credentials ride on the next REGISTER, and on the refreshes
after it with the nonce count raised (section 22.1 lets a client reuse them), until the server
challenges again. A second challenge of the same kind within one attempt means the credentials
were refused (a wrong password), unless it says ``stale=true`` with a new nonce (the old nonce
had only expired) — never a loop. Algorithms are those `sbc.sip.digest` computes (RFC 7616 and
RFC 8760: MD5, SHA-256), the first the server offers that we support.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sbc.sip.digest import ALGORITHMS, Challenge, formatCredentials, makeCredentials, parseChallenge
from sbc.sip.errors import SIPParseError
from sbc.sip.message import Response
from sbc.tokens import randomHex

__all__ = ["AuthRefusedError", "DigestClient"]

# A challenge's status -> (the header it comes in, the header our answer goes in).
_HEADERS = {
    401: ("www-authenticate", "authorization"),
    407: ("proxy-authenticate", "proxy-authorization"),
}


class AuthRefusedError(Exception):
    """The challenge cannot be answered, or our answer to it was refused: a permanent failure."""


@dataclass
class _Answer:
    """One challenge we answer, and how often its nonce has been used."""

    challenge: Challenge
    nc: int = 0
    # Received in the current attempt: a second challenge of its kind then means a refusal.
    fresh: bool = True


def _cnonce() -> str:
    return randomHex(8)


class DigestClient:
    """The credentials one registration sends: who, the secret, and the challenges it answers."""

    def __init__(self, username: str, password: str, cnonce: Callable[[], str] = _cnonce) -> None:
        self.username = username
        self._password = password
        self._cnonce = cnonce
        self._answers: dict[str, _Answer] = {}
        # The nonce of each credentials header in the request last built.
        self._sent: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"<DigestClient {self.username!r}>"  # the password never shows

    def newAttempt(self) -> None:
        """A new attempt starts: the challenges kept so far are answered from memory now."""
        for answer in self._answers.values():
            answer.fresh = False

    def challenged(self, response: Response) -> None:
        """Take the challenge of a 401 or 407, or raise `AuthRefusedError` when we must not answer it."""
        challengeHeader, header = _HEADERS[response.status]
        challenge = _choose(response.headers.getAll(challengeHeader))
        sent = self._sent.get(header)
        previous = self._answers.get(header)
        if sent is not None:
            if challenge.nonce == sent:
                raise AuthRefusedError("our credentials were refused (challenged again with the same nonce)")
            if not challenge.stale and previous is not None and previous.fresh:
                raise AuthRefusedError("our credentials were refused (challenged again)")
        self._answers[header] = _Answer(challenge)

    def headers(self, method: str, uri: str) -> list[tuple[str, str]]:
        """The credentials headers for the next request, each nonce's count raised by one."""
        self._sent = {}
        fields: list[tuple[str, str]] = []
        for header, answer in self._answers.items():
            challenge = answer.challenge
            answer.nc += 1
            qop = "auth" if "auth" in challenge.qop else None
            credentials = makeCredentials(
                username=self.username,
                password=self._password,
                realm=challenge.realm,
                nonce=challenge.nonce,
                method=method,
                uri=uri,
                algorithm=challenge.algorithm,
                qop=qop,
                nc=f"{answer.nc:08x}" if qop else None,
                cnonce=self._cnonce() if qop else None,
                opaque=challenge.opaque,
            )
            fields.append((header, formatCredentials(credentials)))
            self._sent[header] = challenge.nonce
        return fields


def _choose(values: list[str]) -> Challenge:
    """The first Digest challenge with an algorithm we compute and a qop we speak (or none)."""
    for value in values:
        try:
            challenge = parseChallenge(value)
        except SIPParseError:
            continue
        if challenge.algorithm in ALGORITHMS and (not challenge.qop or "auth" in challenge.qop):
            return challenge
    raise AuthRefusedError("no Digest challenge we can answer (algorithm or qop not supported)")
