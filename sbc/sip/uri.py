"""SIP, SIPS and tel URIs (RFC 3261 section 19.1, RFC 3966), kept in their escaped form."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar

from sbc.sip.errors import SIPParseError

Params = tuple[tuple[str, str | None], ...]

_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._")
_IPV6_CHARS = frozenset("0123456789abcdefABCDEF:.")
_FORBIDDEN = frozenset(' \t\r\n<>"')
_HEX = frozenset("0123456789abcdefABCDEF")
_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.")
_ALPHA = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
# Linear white space inside a line: RFC 3261 knows only SP and HTAB (str.strip() would also eat
# NBSP, NEL and other octets that Latin-1 decoding turns into Unicode white space).
WS = " \t"


def isDigits(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also accepts octets such as ``\\xb2``, which ``int`` refuses."""
    return text.isascii() and text.isdigit()


def unescape(text: str) -> str:
    """Decode ``%HH`` escapes exactly once (RFC 4475 3.1.1.3: never twice)."""
    if "%" not in text:
        return text
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "%" and i + 2 < n and text[i + 1] in _HEX and text[i + 2] in _HEX:
            out.append(chr(int(text[i + 1 : i + 3], 16)))
            i += 3
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _checkEscapes(text: str, what: str) -> None:
    i = text.find("%")
    while i != -1:
        if i + 2 >= len(text) or text[i + 1] not in _HEX or text[i + 2] not in _HEX:
            raise SIPParseError(f"bad escape in {what}")
        i = text.find("%", i + 3)


def splitOutside(text: str, separator: str, what: str, *, angles: bool = False) -> list[str]:
    """Split on ``separator`` where it stands outside quoted strings (and ``<>`` with ``angles``)."""
    items: list[str] = []
    start = 0
    inQuote = False
    inAngle = False
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if inQuote:
            if ch == "\\":
                i += 1
            elif ch == '"':
                inQuote = False
        elif ch == '"':
            inQuote = True
        elif angles and ch == "<":
            inAngle = True
        elif angles and ch == ">":
            inAngle = False
        elif ch == separator and not inAngle:
            items.append(text[start:i])
            start = i + 1
        i += 1
    if inQuote:
        raise SIPParseError(f"unterminated quoted string in {what}")
    items.append(text[start:])
    return items


def _splitParams(text: str, what: str) -> list[str]:
    """Split on ``;`` outside quoted strings (a header parameter may be a quoted-string)."""
    if '"' not in text:
        return text.split(";")
    return splitOutside(text, ";", what)


def parseParams(text: str, what: str) -> Params:
    """Parse ``;name[=value]`` parameters (the leading ``;`` already removed)."""
    params: list[tuple[str, str | None]] = []
    for item in _splitParams(text, what):
        name, eq, value = item.partition("=")
        name = name.strip(WS)
        if not name:
            raise SIPParseError(f"empty parameter in {what}")
        params.append((name, value.strip(WS) if eq else None))
    return tuple(params)


def formatParams(params: Params) -> str:
    """``;name=value`` text for ``params`` in order, flags bare: what parsing them reads back."""
    text = ""
    for name, value in params:
        text += ";" + name if value is None else ";" + name + "=" + value
    return text


def getParam(params: Params, name: str) -> str | None:
    """Return a parameter's value; ``""`` for a flag such as ``lr``; ``None`` when absent."""
    lname = name.lower()
    for key, value in params:
        if key.lower() == lname:
            return "" if value is None else value
    return None


def _splitHostPort(text: str, what: str) -> tuple[str, int | None]:
    if text.startswith("["):
        end = text.find("]")
        if end == -1:
            raise SIPParseError(f"unterminated IPv6 reference in {what}")
        host = text[: end + 1]
        if not host[1:-1] or not _IPV6_CHARS.issuperset(host[1:-1]):
            raise SIPParseError(f"bad IPv6 address in {what}")
        rest = text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise SIPParseError(f"bad host in {what}")
        portText = rest[1:] if rest else None
    else:
        host, colon, portPart = text.partition(":")
        portText = portPart if colon else None
        if not host or not _HOST_CHARS.issuperset(host):
            raise SIPParseError(f"bad host in {what}")
    port: int | None = None
    if portText is not None:
        if not isDigits(portText) or len(portText) > 5 or int(portText) > 65535:
            raise SIPParseError(f"bad port in {what}")
        port = int(portText)
    return host, port


@dataclass(frozen=True, slots=True)
class URI:
    """A URI in its escaped form; ``str(uri)`` gives it back.

    For ``sip``/``sips`` every field is filled in. For ``tel`` the number is ``user``. Any other
    scheme keeps everything after the colon in ``opaque``.
    """

    scheme: str
    user: str | None = None
    password: str | None = None
    host: str = ""
    port: int | None = None
    params: Params = ()
    headers: str | None = None
    opaque: str | None = None

    @property
    def isSIP(self) -> bool:
        """Whether this is a sip or sips URI, the kind with user, host, port and parameters."""
        return self.scheme in ("sip", "sips")

    def param(self, name: str) -> str | None:
        """A URI parameter's value (``lr``, ``transport``): ``""`` for a flag, None when absent."""
        return getParam(self.params, name)

    def withParams(self, params: Params) -> URI:
        """A copy with ``params`` in place of its own."""
        return replace(self, params=params)

    @property
    def hostport(self) -> str:
        """``host[:port]``, with the port only when the URI names one."""
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        if self.opaque is not None:
            return f"{self.scheme}:{self.opaque}"
        if self.scheme == "tel":
            return f"tel:{self.user}{formatParams(self.params)}"
        userinfo = ""
        if self.user is not None:
            userinfo = self.user if self.password is None else f"{self.user}:{self.password}"
            userinfo += "@"
        headers = "" if self.headers is None else f"?{self.headers}"
        return f"{self.scheme}:{userinfo}{self.hostport}{formatParams(self.params)}{headers}"


PARSE_CACHE_SIZE = 4096
CACHED_TEXT_LIMIT = 256  # longer texts are parsed every time: the caches' memory stays small

_T = TypeVar("_T")


def cachedParser(parse: Callable[[str], _T]) -> tuple[Callable[[str], _T], dict[str, _T]]:
    """``parse`` with its results kept by text, and the cache itself.

    A call repeats the same few URIs, From, To and Contact values in every message of both legs;
    the parsed values are immutable, so one parse serves them all. A failure is never kept. The
    cache is bounded: emptied when full, and long texts are not kept, so hostile variety cannot
    grow it.
    """
    cache: dict[str, _T] = {}

    def cached(text: str) -> _T:
        value = cache.get(text)
        if value is None:
            value = parse(text)
            if len(text) <= CACHED_TEXT_LIMIT:
                if len(cache) >= PARSE_CACHE_SIZE:
                    cache.clear()
                cache[text] = value
        return value

    cached.__doc__ = parse.__doc__
    return cached, cache


def _parseURI(text: str) -> URI:
    """Parse a URI; raise `SIPParseError` for anything outside the grammar we accept."""
    scheme, colon, rest = text.partition(":")
    if not colon or not scheme or scheme[0] not in _ALPHA:
        raise SIPParseError("URI without a scheme")
    if not _SCHEME_CHARS.issuperset(scheme):
        raise SIPParseError("bad URI scheme")
    if not rest or not _FORBIDDEN.isdisjoint(rest):
        raise SIPParseError("bad characters in URI")
    scheme = scheme.lower()
    if scheme == "tel":
        number, semi, paramText = rest.partition(";")
        if not number:
            raise SIPParseError("empty tel number")
        return URI("tel", user=number, params=parseParams(paramText, "tel URI") if semi else ())
    if scheme not in ("sip", "sips"):
        return URI(scheme, opaque=rest)
    # The first "@" ends the userinfo: it may hold "?", ";" and ":", but "@" appears unescaped
    # nowhere else in a SIP URI.
    user: str | None = None
    password: str | None = None
    at = rest.find("@")
    if at != -1:
        userinfo, rest = rest[:at], rest[at + 1 :]
        user, pcolon, pw = userinfo.partition(":")
        if not user:
            raise SIPParseError("empty user in URI")
        _checkEscapes(user, "URI user")
        if pcolon:
            password = pw
    rest, question, headers = rest.partition("?")
    hostport, semi, paramText = rest.partition(";")
    host, port = _splitHostPort(hostport, "URI")
    params = parseParams(paramText, "URI") if semi else ()
    return URI(
        scheme,
        user=user,
        password=password,
        host=host,
        port=port,
        params=params,
        headers=headers if question else None,
    )


parseURI, _URI_CACHE = cachedParser(_parseURI)  # noqa: N816 - the public parser
