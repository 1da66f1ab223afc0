"""The ``[registrants.NAME]`` tables: the SBC registers to a peer's registrar as one SIP phone would.

For peers that cannot set up a trunk to us: calls reach us through the Contact we register
(``sip:NAME-<hex>@<our listener>``, `sbc.registrant.contact`), and go where ``route`` says.
`sbc.registrant` does the registering; this module only reads and checks what ops wrote.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sbc.config.limits import CallLimits, loadCallLimits
from sbc.config.sip import Listener, Transport, isAddress
from sbc.config.table import Table
from sbc.config.users import isValidDomain, isValidUser
from sbc.sip.errors import SIPParseError
from sbc.sip.uri import URI, parseURI

__all__ = ["MAX_EXPIRES", "MIN_EXPIRES", "ROUTE_CHAIN", "Registrant", "loadRegistrants"]

# ``route`` for calls that go through the routing chain like any other.
ROUTE_CHAIN = "chain"
# ``route = "user:NAME"``: calls ring that registered user of ours.
ROUTE_USER = "user:"
# The longest ``expires`` (a week), and the highest 423 Min-Expires we follow.
MAX_EXPIRES = 7 * 86400
# The shortest ``expires``: a minute (shorter only loads the registrar, and many refuse it with 423).
MIN_EXPIRES = 60
# A registrant's name is the user part of the Contact we register and a metric label: kept plain.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


@dataclass(frozen=True)
class Registrant:
    """One registration we keep at a peer's registrar (RFC 3261 section 10.2)."""

    name: str
    # The REGISTER's Request-URI: the registrar's domain or address (its host may be a DNS name).
    registrar: str
    # Our address of record there: the To and From of every REGISTER.
    aor: str
    authUser: str
    password: str = field(default="", repr=False)
    expires: int = 600
    # Where REGISTERs go instead of the registrar (a loose route in a Route header).
    outboundProxy: str | None = None
    transport: Transport = Transport.UDP
    # Calls through this registration ring this user of ours; None: the routing chain decides.
    routeUser: str | None = None
    # ``password_file``, watched for changes like the other files config names.
    passwordFile: Path | None = None
    # ``max_cps``, ``cps_burst`` and ``max_calls`` on calls through this registration, as a
    # trunk's (sbc.config.limits; ``accept`` is a trunk's only); none by default.
    limits: CallLimits = field(default_factory=CallLimits)

    @property
    def registrarURI(self) -> URI:
        """The registrar as a parsed URI (checked at load)."""
        return parseURI(self.registrar)

    @property
    def proxyURI(self) -> URI | None:
        """The outbound proxy as a parsed URI, or None."""
        return None if self.outboundProxy is None else parseURI(self.outboundProxy)


def loadRegistrants(top: Table, base: Path, listeners: Iterable[Listener] = ()) -> tuple[Registrant, ...]:
    """Every ``[registrants.NAME]`` table, in the order written; ``listeners`` are those of the
    config: a registrant's transport needs one (our Contact names it)."""
    table = top.table("registrants")
    ours = frozenset(listener.transport for listener in listeners)
    registrants = tuple(_registrant(table.table(name), name, base, ours) for name in list(table.data))
    table.done()
    return registrants


def _registrant(table: Table, name: str, base: Path, ours: frozenset[Transport]) -> Registrant:
    if _NAME.fullmatch(name) is None:
        raise table.error("", "registrant names are letters, digits, - and _ (64 at most)")
    transport = table.choice("transport", Registrant.transport)
    if transport not in ours:
        raise table.error(
            "transport", f'needs a [[listen]] table with transport = "{transport}": our Contact names it'
        )
    secure = transport is Transport.TLS
    registrar = _uri(table, "registrar", required=True, secure=secure)
    assert registrar is not None
    if registrar.user is not None:
        raise table.error("registrar", "a registrar URI has no user part (RFC 3261 section 10.2)")
    aorURI = _uri(table, "aor", required=True, secure=secure)
    assert aorURI is not None
    if aorURI.user is None:
        raise table.error("aor", "needs a user part, e.g. sip:sbc@peer.example")
    proxy = _uri(table, "outbound_proxy", required=False, secure=secure)
    authUser = table.get("auth_user", str, aorURI.user)
    if not authUser or any(c in authUser for c in '\r\n"\\'):
        raise table.error("auth_user", "must be a user name without quotes, backslashes or line breaks")
    password, passwordFile = _password(table, base)
    expires = table.integer("expires", Registrant.expires, minimum=MIN_EXPIRES, maximum=MAX_EXPIRES)
    routeUser = _route(table)
    if table.has("accept"):
        raise table.error("accept", "is a trunk's key: a registration's calls are routed by its route")
    limits = loadCallLimits(table)
    table.done()
    return Registrant(
        name=name,
        registrar=table.data["registrar"],
        aor=table.data["aor"],
        authUser=authUser,
        password=password,
        expires=expires,
        outboundProxy=None if proxy is None else table.data["outbound_proxy"],
        transport=transport,
        routeUser=routeUser,
        passwordFile=passwordFile,
        limits=limits,
    )


def _uri(table: Table, key: str, *, required: bool, secure: bool) -> URI | None:
    """A ``sip:`` URI (or ``sips:`` over TLS) with a host we could reach: an address or a DNS
    name, no password in it."""
    text = table.get(key, str) if required else table.get(key, str, None)
    if text is None:
        return None
    try:
        uri = parseURI(text)
    except SIPParseError as e:
        raise table.error(key, f"not a SIP URI: {text!r} ({e.reason})") from None
    if uri.scheme != "sip" and not (secure and uri.scheme == "sips"):
        raise table.error(key, f'must be a sip: URI (sips needs transport = "tls"): {text!r}')
    if uri.password is not None:
        raise table.error(key, "a password does not belong in a URI: use password or password_file")
    host = uri.host.strip("[]")
    if not isAddress(host) and not isValidDomain(host):
        raise table.error(key, f"{uri.host!r} is neither an address nor a DNS name")
    return uri


def _password(table: Table, base: Path) -> tuple[str, Path | None]:
    """``password`` or ``password_file`` (one line, readable by the SBC's account alone)."""
    password = table.get("password", str, None)
    fileName = table.get("password_file", str, None)
    if password is not None and fileName is not None:
        raise table.error("password_file", "set password or password_file, not both")
    if password is None and fileName is None:
        raise table.error("password", "missing: set password or password_file")
    if fileName is None:
        assert password is not None
        if not password:
            raise table.error("password", "must not be empty")
        return password, None
    path = base / fileName
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise table.error("password_file", f"cannot read {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise table.error("password_file", f"{path} is not UTF-8 text") from None
    if mode & 0o077:
        raise table.error(
            "password_file", f"{path} can be read by other accounts (mode {mode:04o}): chmod 600 it"
        )
    lines = text.splitlines()
    secret = lines[0].strip() if lines else ""
    if not secret:
        raise table.error("password_file", f"{path} holds no password on its first line")
    return secret, path


def _route(table: Table) -> str | None:
    """``route``: "chain" (None) or "user:NAME", NAME a user of ours (or user@domain)."""
    route = table.get("route", str, ROUTE_CHAIN)
    if route == ROUTE_CHAIN:
        return None
    if route.startswith(ROUTE_USER):
        user, at, domain = route[len(ROUTE_USER) :].partition("@")
        if isValidUser(user) and (not at or isValidDomain(domain)):
            return f"{user}@{domain.lower()}" if at else user
    raise table.error("route", f'must be "chain" or "user:NAME" (a user of ours), not {route!r}')
