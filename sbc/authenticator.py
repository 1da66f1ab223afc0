"""Digest authentication of devices (RFC 3261 section 22, RFC 7616, RFC 8760).

Shared by REGISTER (401, Authorization) and by requests devices send to place calls (407,
Proxy-Authorization). Trunks are never challenged: they are trusted by their whitelist.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass

from sbc.access import Bans
from sbc.config import Config
from sbc.nonce import NonceManager, NonceState
from sbc.sip.digest import Credentials, formatChallenge, parseCredentials, verify
from sbc.sip.message import Request

_DUMMY_HA1 = {"MD5": hashlib.md5(b"nobody").hexdigest(), "SHA-256": hashlib.sha256(b"nobody").hexdigest()}


class Outcome(enum.Enum):
    OK = "ok"
    CHALLENGE = "challenge"  # no (usable) credentials yet: send a fresh challenge
    STALE = "stale"  # right digest, old nonce: challenge with stale=true
    FORBIDDEN = "forbidden"  # credentials for another user or realm: 403


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    aor: str = ""


def isLoopback(host: str) -> bool:
    return host == "::1" or host.startswith("127.")


class Authenticator:
    """Checks digest credentials against the users file, counting failures towards bans."""

    def __init__(self, config: Config, nonces: NonceManager, bans: Bans) -> None:
        self.config = config
        self.nonces = nonces
        self.bans = bans

    def check(self, request: Request, user: str, domain: str, host: str, *, proxy: bool = False) -> Verdict:
        """Authenticate ``request`` as ``user@domain`` sent from ``host``."""
        credentials = self._credentials(request, domain, "proxy-authorization" if proxy else "authorization")
        if credentials is None:
            return Verdict(Outcome.CHALLENGE)
        if credentials.username != user or credentials.realm.lower() != domain:
            return Verdict(Outcome.FORBIDDEN)
        config = self.config
        settings = config.registrar
        algorithm = (credentials.algorithm or "MD5").upper()
        account = settings.users.lookup(user, domain)
        usable = account is not None and (not account.demo or (config.loopbackOnly and isLoopback(host)))
        ha1 = account.ha1 if usable and account is not None else _DUMMY_HA1
        # The digest is checked before the nonce is spent, so forged requests cannot burn or
        # crowd out genuine nonces, and stale=true goes only with a right digest (RFC 7616).
        if (
            algorithm not in settings.algorithms
            or not verify(credentials, ha1.get(algorithm, _DUMMY_HA1["MD5"]), request.method)
            or not usable
        ):
            self.bans.failure(host)
            return Verdict(Outcome.CHALLENGE)
        state = self.nonces.check(credentials.nonce, credentials.nc)
        if state is NonceState.STALE:
            return Verdict(Outcome.STALE)
        if state is not NonceState.VALID:
            self.bans.failure(host)
            return Verdict(Outcome.CHALLENGE)
        self.bans.success(host)
        return Verdict(Outcome.OK, f"{user}@{domain}")

    def challenges(self, realm: str, *, stale: bool, proxy: bool = False) -> tuple[tuple[str, str], ...]:
        """One challenge header per configured algorithm, in the configured order."""
        name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        nonce = self.nonces.issue()
        return tuple(
            (name, formatChallenge(realm, nonce, algorithm, stale=stale))
            for algorithm in self.config.registrar.algorithms
        )

    @staticmethod
    def _credentials(request: Request, domain: str, header: str) -> Credentials | None:
        for value in request.headers.getAll(header):
            credentials = parseCredentials(value)
            if credentials.realm.lower() == domain:
                return credentials
        return None
