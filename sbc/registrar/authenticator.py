"""Digest authentication of devices (RFC 3261 section 22, RFC 7616, RFC 8760).

Shared by REGISTER (401, Authorization) and by requests devices send to place calls (407,
Proxy-Authorization). Trunks are never challenged: they are trusted by their whitelist.

Which algorithms a challenge offers: the account's (users file ``algorithms=``), else those of
the device network holding the source (``[registrar.networks]``), else ``[registrar] algorithms``.
The account is known only from credentials, so a first request is challenged as its network says;
the account's choice is disclosed only to a device that proved the password, so an unknown user and
a known one still get the same challenge.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass

from sbc.access import Bans, isLoopback
from sbc.config import Config
from sbc.registrar.nonce import NonceManager, NonceState
from sbc.sip.digest import Credentials, formatChallenge, parseCredentials, verify
from sbc.sip.message import Request

_DUMMY_HA1 = {"MD5": hashlib.md5(b"nobody").hexdigest(), "SHA-256": hashlib.sha256(b"nobody").hexdigest()}


class Outcome(enum.Enum):
    """What a request's credentials earn it: through, a (stale) challenge, or a 403."""

    OK = "ok"
    CHALLENGE = "challenge"  # no (usable) credentials yet: send a fresh challenge
    STALE = "stale"  # right digest, old nonce: challenge with stale=true
    FORBIDDEN = "forbidden"  # credentials for another user or realm: 403


@dataclass(frozen=True)
class Verdict:
    """The outcome of a credentials check, with the AOR it proved or the algorithms to challenge with."""

    outcome: Outcome
    aor: str = ""
    # For CHALLENGE and STALE: the algorithms to offer, one challenge header each, in order.
    algorithms: tuple[str, ...] = ()


class Authenticator:
    """Checks digest credentials against the users file, counting failures towards bans."""

    def __init__(self, config: Config, nonces: NonceManager, bans: Bans) -> None:
        self.config = config
        self.nonces = nonces
        self.bans = bans

    def check(self, request: Request, user: str, domain: str, host: str, *, proxy: bool = False) -> Verdict:
        """Authenticate ``request`` as ``user@domain`` sent from ``host``."""
        config = self.config
        settings = config.registrar
        offered = settings.algorithmsFor(host)
        credentials = self._credentials(request, domain, "proxy-authorization" if proxy else "authorization")
        if credentials is None:
            return Verdict(Outcome.CHALLENGE, algorithms=offered)
        if credentials.username != user or credentials.realm.lower() != domain:
            return Verdict(Outcome.FORBIDDEN)
        algorithm = (credentials.algorithm or "MD5").upper()
        account = settings.users.lookup(user, domain)
        usable = account is not None and (not account.demo or (config.loopbackOnly and isLoopback(host)))
        ha1 = account.ha1 if usable and account is not None else _DUMMY_HA1
        # The digest is checked before the nonce is spent, so forged requests cannot burn or
        # crowd out genuine nonces, and stale=true goes only with a right digest (RFC 7616).
        if not verify(credentials, ha1.get(algorithm, _DUMMY_HA1["MD5"]), request.method) or not usable:
            self.bans.failure(host, user)
            return Verdict(Outcome.CHALLENGE, algorithms=offered)
        allowed = settings.algorithmsFor(host, account)
        if algorithm not in allowed:
            # The right password under an algorithm this account does not take: ask again with its own.
            return Verdict(Outcome.CHALLENGE, algorithms=allowed)
        state = self.nonces.check(credentials.nonce, credentials.nc)
        if state is NonceState.STALE:
            return Verdict(Outcome.STALE, algorithms=allowed)
        if state is not NonceState.VALID:
            self.bans.failure(host, user)
            return Verdict(Outcome.CHALLENGE, algorithms=allowed)
        self.bans.success(host, user)
        return Verdict(Outcome.OK, f"{user}@{domain}")

    def challenges(self, realm: str, verdict: Verdict, *, proxy: bool = False) -> tuple[tuple[str, str], ...]:
        """One challenge header per algorithm the verdict chose, in that order (RFC 8760)."""
        name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        nonce = self.nonces.issue()
        stale = verdict.outcome is Outcome.STALE
        return tuple(
            (name, formatChallenge(realm, nonce, algorithm, stale=stale)) for algorithm in verdict.algorithms
        )

    @staticmethod
    def _credentials(request: Request, domain: str, header: str) -> Credentials | None:
        for value in request.headers.getAll(header):
            credentials = parseCredentials(value)
            if credentials.realm.lower() == domain:
                return credentials
        return None
