"""HTTP Digest authentication as SIP uses it (RFC 3261 section 22, RFC 7616, RFC 8760).

Pure functions and values: no Twisted, no I/O, no clock. Nonces, and whether one is fresh or
replayed, live in `sbc.registrar.nonce`; this module only parses, formats and computes.

Text conventions: header values are held the way the codec holds them (each character one
octet, decoded as Latin-1), so `response` hashes those octets back exactly. `ha1` takes the
username, realm and password as people type them (from a config file) and hashes their UTF-8
octets, which is what user agents hash (RFC 7616 section 4, RFC 8760 section 2.2).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass

from sbc.sip.errors import SIPParseError

# The digest algorithms we compute, keyed by their canonical spelling. RFC 8760 also defines
# SHA-512-256 for SIP, and RFC 7616 the "-sess" variants; neither is offered by the user agents
# the SBC serves today, so a credential naming them simply fails to verify.
ALGORITHMS: dict[str, Callable[[bytes], hashlib._Hash]] = {
    "MD5": hashlib.md5,
    "SHA-256": hashlib.sha256,
}
_CANONICAL = {name.upper(): name for name in ALGORITHMS}
DEFAULT_ALGORITHM = "MD5"

# Linear white space inside a header value (the codec has already unfolded continuation lines).
_WS = " \t"
_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
# qdtext and quoted-pair (RFC 3261 section 25.1) without control characters: every alternative
# is a single character class, so matching is linear and cannot backtrack.
_QUOTED = re.compile(r'"((?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[^\x00-\x08\x0a-\x1f\x7f])*)"')
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)
_NC = re.compile(r"[0-9A-Fa-f]{8}")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def canonicalAlgorithm(name: str | None) -> str:
    """The canonical spelling of an algorithm name; an absent name means MD5 (RFC 7616 3.3)."""
    if name is None:
        return DEFAULT_ALGORITHM
    return _CANONICAL.get(name.upper(), name)


def _hasher(algorithm: str) -> Callable[[bytes], hashlib._Hash]:
    hasher = ALGORITHMS.get(canonicalAlgorithm(algorithm))
    if hasher is None:
        raise SIPParseError(f"unsupported digest algorithm {algorithm!r}")
    return hasher


def _wireOctets(text: str) -> bytes:
    """The octets a codec-held string came from (Latin-1), or UTF-8 for text made by us."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


def _skipWS(text: str, i: int) -> int:
    n = len(text)
    while i < n and text[i] in _WS:
        i += 1
    return i


def parseAuthParams(value: str) -> tuple[str, dict[str, str]]:
    """Split a challenge or credentials value into its scheme and its auth-params.

    Keys come back lower-cased and quoted values unquoted. A parameter given twice is refused
    (RFC 7235 section 2.1): two readers picking different copies is how digest checks are fooled.
    """
    text = value.strip(_WS)
    scheme = _TOKEN.match(text)
    if scheme is None:
        raise SIPParseError("auth scheme missing")
    i = scheme.end()
    n = len(text)
    if i < n and text[i] not in _WS:
        raise SIPParseError("auth scheme is not a token")
    params: dict[str, str] = {}
    while True:
        i = _skipWS(text, i)
        if i >= n:
            break
        if text[i] == ",":
            # An empty list element, which the #rule allows.
            i += 1
            continue
        key = _TOKEN.match(text, i)
        if key is None:
            raise SIPParseError(f"bad auth-param name at offset {i}")
        i = _skipWS(text, key.end())
        if i >= n or text[i] != "=":
            raise SIPParseError(f"auth-param {key.group()!r} without '='")
        i = _skipWS(text, i + 1)
        if i < n and text[i] == '"':
            quoted = _QUOTED.match(text, i)
            if quoted is None:
                raise SIPParseError(f"unterminated or malformed quoted string at offset {i}")
            paramValue = _QUOTED_PAIR.sub(r"\1", quoted.group(1))
            i = quoted.end()
        else:
            token = _TOKEN.match(text, i)
            if token is None:
                raise SIPParseError(f"auth-param {key.group()!r} without a value")
            paramValue = token.group()
            i = token.end()
        name = key.group().lower()
        if name in params:
            raise SIPParseError(f"auth-param {name!r} given twice")
        params[name] = paramValue
        i = _skipWS(text, i)
        if i < n and text[i] != ",":
            raise SIPParseError(f"junk after auth-param {name!r}")
    return scheme.group(), params


def quote(text: str) -> str:
    """A quoted-string holding ``text``, escaping ``\\`` and ``"``.

    Control characters (CR and LF above all) are refused: they would split the header.
    """
    if _CONTROL.search(text):
        raise ValueError("control character in a quoted-string")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _token(text: str, what: str) -> str:
    if _TOKEN.fullmatch(text) is None:
        raise ValueError(f"{what} {text!r} is not a token")
    return text


@dataclass(frozen=True)
class Credentials:
    """The digest parameters of one Authorization or Proxy-Authorization header value."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = DEFAULT_ALGORITHM
    qop: str | None = None
    nc: str | None = None
    cnonce: str | None = None
    opaque: str | None = None


def parseCredentials(value: str) -> Credentials:
    """Parse an Authorization or Proxy-Authorization value carrying Digest credentials.

    nc and cnonce are refused without qop: the response would then not cover them, and a
    replayed request could pass a fresh nc to get past the nonce-count check.
    """
    scheme, params = parseAuthParams(value)
    if scheme.lower() != "digest":
        raise SIPParseError(f"not Digest credentials: {scheme!r}")
    missing = [k for k in ("username", "realm", "nonce", "uri", "response") if k not in params]
    if missing:
        raise SIPParseError(f"digest credentials without {', '.join(missing)}")
    qop = params.get("qop")
    nc = params.get("nc")
    cnonce = params.get("cnonce")
    if qop is not None:
        if nc is None or cnonce is None:
            raise SIPParseError("digest qop without nc and cnonce")
    elif nc is not None or cnonce is not None:
        raise SIPParseError("digest nc or cnonce without qop")
    if nc is not None and _NC.fullmatch(nc) is None:
        raise SIPParseError("digest nc is not 8 hex digits")
    return Credentials(
        username=params["username"],
        realm=params["realm"],
        nonce=params["nonce"],
        uri=params["uri"],
        response=params["response"],
        algorithm=canonicalAlgorithm(params.get("algorithm")),
        qop=qop,
        nc=nc,
        cnonce=cnonce,
        opaque=params.get("opaque"),
    )


def formatCredentials(credentials: Credentials) -> str:
    """An Authorization value for ``credentials``.

    algorithm, qop and nc are written unquoted, as RFC 7616 section 3.4 requires.
    """
    c = credentials
    parts = [
        f"username={quote(c.username)}",
        f"realm={quote(c.realm)}",
        f"nonce={quote(c.nonce)}",
        f"uri={quote(c.uri)}",
        f"response={quote(c.response)}",
        f"algorithm={_token(c.algorithm, 'algorithm')}",
    ]
    if c.qop is not None:
        if c.nc is None or c.cnonce is None:
            raise ValueError("qop needs nc and cnonce")
        if _NC.fullmatch(c.nc) is None:
            raise ValueError("nc must be 8 hex digits")
        parts.append(f"qop={_token(c.qop, 'qop')}")
        parts.append(f"nc={c.nc}")
        parts.append(f"cnonce={quote(c.cnonce)}")
    if c.opaque is not None:
        parts.append(f"opaque={quote(c.opaque)}")
    return "Digest " + ", ".join(parts)


@dataclass(frozen=True)
class Challenge:
    """The digest parameters of one WWW-Authenticate or Proxy-Authenticate value."""

    realm: str
    nonce: str
    algorithm: str = DEFAULT_ALGORITHM
    qop: tuple[str, ...] = ()
    stale: bool = False
    opaque: str | None = None


def parseChallenge(value: str) -> Challenge:
    """Parse a Digest challenge, as a client (our registrant) receives it."""
    scheme, params = parseAuthParams(value)
    if scheme.lower() != "digest":
        raise SIPParseError(f"not a Digest challenge: {scheme!r}")
    if "realm" not in params or "nonce" not in params:
        raise SIPParseError("digest challenge without realm or nonce")
    qop = params.get("qop")
    options = tuple(o.strip(_WS) for o in qop.split(",") if o.strip(_WS)) if qop is not None else ()
    return Challenge(
        realm=params["realm"],
        nonce=params["nonce"],
        algorithm=canonicalAlgorithm(params.get("algorithm")),
        qop=options,
        stale=params.get("stale", "").lower() == "true",
        opaque=params.get("opaque"),
    )


def formatChallenge(
    realm: str,
    nonce: str,
    algorithm: str = DEFAULT_ALGORITHM,
    *,
    qop: str | None = "auth",
    stale: bool = False,
    opaque: str | None = None,
) -> str:
    """A WWW-Authenticate or Proxy-Authenticate value offering one algorithm.

    A server that offers several algorithms sends one header per algorithm, most preferred
    first (RFC 7616 section 3.7, RFC 8760 section 2.4).
    """
    parts = [
        f"realm={quote(realm)}",
        f"nonce={quote(nonce)}",
        f"algorithm={_token(canonicalAlgorithm(algorithm), 'algorithm')}",
    ]
    if qop is not None:
        parts.append(f"qop={quote(qop)}")
    if stale:
        parts.append("stale=true")
    if opaque is not None:
        parts.append(f"opaque={quote(opaque)}")
    return "Digest " + ", ".join(parts)


def ha1(algorithm: str, username: str, realm: str, password: str) -> str:
    """H(username:realm:password) in lower-case hex: what a users file may store instead of passwords."""
    hasher = _hasher(algorithm)
    return hasher(f"{username}:{realm}:{password}".encode()).hexdigest()


def response(
    algorithm: str,
    ha1Hex: str,
    nonce: str,
    method: str,
    uri: str,
    qop: str | None,
    nc: str | None,
    cnonce: str | None,
) -> str:
    """The request-digest of RFC 7616 section 3.4.1 (qop "auth"), or RFC 2069's without qop.

    qop "auth-int" would need the body hashed, which no SIP user agent we serve does.
    """
    hasher = _hasher(algorithm)

    def h(text: str) -> str:
        return hasher(_wireOctets(text)).hexdigest()

    ha2 = h(f"{method}:{uri}")
    if qop is None:
        return h(f"{ha1Hex}:{nonce}:{ha2}")
    if qop.lower() != "auth":
        raise SIPParseError(f"unsupported digest qop {qop!r}")
    if nc is None or cnonce is None:
        raise SIPParseError("digest qop without nc and cnonce")
    return h(f"{ha1Hex}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


def makeCredentials(
    *,
    username: str,
    password: str,
    realm: str,
    nonce: str,
    method: str,
    uri: str,
    algorithm: str = DEFAULT_ALGORITHM,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
    opaque: str | None = None,
) -> Credentials:
    """Answer a challenge as a client would: the credentials to send, response computed."""
    algorithm = canonicalAlgorithm(algorithm)
    digest = response(
        algorithm, ha1(algorithm, username, realm, password), nonce, method, uri, qop, nc, cnonce
    )
    return Credentials(
        username=username,
        realm=realm,
        nonce=nonce,
        uri=uri,
        response=digest,
        algorithm=algorithm,
        qop=qop,
        nc=nc,
        cnonce=cnonce,
        opaque=opaque,
    )


def verify(credentials: Credentials, ha1Hex: str, method: str) -> bool:
    """Whether ``credentials`` prove knowledge of the secret behind ``ha1Hex`` for this request.

    ``ha1Hex`` must have been computed with ``credentials.algorithm``. An algorithm or qop we do
    not support verifies as False rather than raising. Checking the realm, that ``uri`` matches
    the Request-URI, and the nonce's freshness (`sbc.registrar.nonce`) is the caller's job.
    """
    c = credentials
    try:
        expected = response(c.algorithm, ha1Hex.lower(), c.nonce, method, c.uri, c.qop, c.nc, c.cnonce)
    except SIPParseError:
        return False
    # compare_digest refuses non-ASCII str, and a hostile response may hold any octet.
    given = c.response.lower().encode("utf-8", "surrogatepass")
    return hmac.compare_digest(expected.encode("ascii"), given)
