"""Header names, the header list, and the structured headers the SBC reads (RFC 3261 section 20).

Values are kept as received (``str`` decoded as Latin-1, so every octet survives) and parsed only
when asked for: a header the SBC never looks at costs one split and is written back byte for byte.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final, final

from sbc.sip.errors import SIPParseError
from sbc.sip.uri import (
    URI,
    WS,
    Params,
    cachedParser,
    formatParams,
    getParam,
    isDigits,
    parseParams,
    parseURI,
    splitOutside,
)

COMPACT_FORMS: dict[str, str] = {
    "a": "accept-contact",
    "b": "referred-by",
    "c": "content-type",
    "d": "request-disposition",
    "e": "content-encoding",
    "f": "from",
    "i": "call-id",
    "j": "reject-contact",
    "k": "supported",
    "l": "content-length",
    "m": "contact",
    "n": "identity-info",
    "o": "event",
    "r": "refer-to",
    "s": "subject",
    "t": "to",
    "u": "allow-events",
    "v": "via",
    "x": "session-expires",
    "y": "identity",
}

_SPECIAL_CASE = {
    "call-id": "Call-ID",
    "cseq": "CSeq",
    "www-authenticate": "WWW-Authenticate",
    "mime-version": "MIME-Version",
    "p-asserted-identity": "P-Asserted-Identity",
    "p-preferred-identity": "P-Preferred-Identity",
    "rack": "RAck",
    "rseq": "RSeq",
    "sip-etag": "SIP-ETag",
    "sip-if-match": "SIP-If-Match",
}

# Headers whose grammar is a comma-separated list (RFC 3261 section 7.3.1). Headers outside this
# set (Authorization, WWW-Authenticate, Date, unknown ones) are never split, since commas are part
# of their values.
LIST_HEADERS = frozenset(
    {
        "accept",
        "accept-encoding",
        "accept-language",
        "alert-info",
        "allow",
        "allow-events",
        "call-info",
        "contact",
        "content-encoding",
        "content-language",
        "error-info",
        "in-reply-to",
        "p-asserted-identity",
        "path",
        "proxy-require",
        "reason",
        "record-route",
        "require",
        "route",
        "service-route",
        "supported",
        "unsupported",
        "via",
        "warning",
    }
)

_IPV6_CHARS = frozenset("0123456789abcdefABCDEF:.")
_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")


def isToken(text: str) -> bool:
    return bool(text) and _TOKEN_CHARS.issuperset(text)


_KEY_CACHE: dict[str, str] = {}


def headerKey(name: str) -> str:
    """The lower-case long form of a header name, which is how headers are looked up."""
    key = _KEY_CACHE.get(name)
    if key is None:
        lower = name.lower()
        key = COMPACT_FORMS.get(lower, lower)
        if len(_KEY_CACHE) < 4096:
            _KEY_CACHE[name] = key
    return key


_DISPLAY_CACHE: dict[str, str] = {}


def displayName(key: str) -> str:
    """How we spell a header name when we write it ourselves."""
    name = _DISPLAY_CACHE.get(key)
    if name is None:
        name = _SPECIAL_CASE.get(key) or "-".join(part.capitalize() for part in key.split("-"))
        if len(_DISPLAY_CACHE) < 1024:
            _DISPLAY_CACHE[key] = name
    return name


def lwsSplit(text: str) -> list[str]:
    """Split on runs of SP and HTAB (never on other octets that Unicode calls white space)."""
    return [word for word in text.replace("\t", " ").split(" ") if word]


def foldValue(parts: list[str]) -> str:
    """A header value from its first line's text after the colon and its continuation lines."""
    if len(parts) == 1:
        return parts[0].strip(WS)
    return " ".join(part.strip(WS) for part in parts).strip(WS)


def parseContentLength(values: list[str]) -> int | None:
    """The body length the Content-Length values declare; None when there are none.

    The parser and the stream framer both decide here, so they can never frame a message apart.
    """
    if not values:
        return None
    text = values[0]
    for other in values[1:]:
        if other != text:
            raise SIPParseError("conflicting Content-Length values")
    if not isDigits(text) or len(text) > 10:
        raise SIPParseError("bad Content-Length")
    return int(text)


def splitList(value: str) -> list[str]:
    """Split on commas that are outside quotes and ``<>``; each element stripped."""
    if "," not in value:
        return [value.strip(WS)]
    return [item.strip(WS) for item in splitOutside(value, ",", "a header list", angles=True)]


class HeaderField:
    """One header line as received (``raw``) or as we set it (``raw`` is None).

    Never changed once made: messages share fields (a response copies its request's, parsed
    messages share repeated lines), so a header is changed by replacing its field.
    """

    __slots__ = ("key", "raw", "value")

    def __init__(self, key: str, value: str, raw: str | None = None) -> None:
        self.key = key
        self.value = value
        self.raw = raw

    def toText(self) -> str:
        if self.raw is not None:
            return self.raw
        return f"{displayName(self.key)}: {self.value}"

    def __repr__(self) -> str:
        return f"HeaderField({self.key!r}, {self.value!r})"


class Headers:
    """The ordered header list of one message; names are case-insensitive, compact forms fold in."""

    __slots__ = ("fields",)

    def __init__(self, fields: list[HeaderField] | None = None) -> None:
        self.fields: list[HeaderField] = fields if fields is not None else []

    @classmethod
    def of(cls, *pairs: tuple[str, str]) -> Headers:
        return cls([HeaderField(headerKey(name), value) for name, value in pairs])

    def get(self, name: str) -> str | None:
        """The first field's whole value, or None."""
        key = _KEY_CACHE.get(name) or headerKey(name)
        for field in self.fields:
            if field.key == key:
                return field.value
        return None

    def getAll(self, name: str) -> list[str]:
        """Every value of a header, list headers split on their commas."""
        key = _KEY_CACHE.get(name) or headerKey(name)
        values: list[str] = []
        split = key in LIST_HEADERS
        for field in self.fields:
            if field.key == key:
                if split:
                    values.extend(splitList(field.value))
                else:
                    values.append(field.value)
        return values

    def count(self, name: str) -> int:
        key = headerKey(name)
        return sum(1 for field in self.fields if field.key == key)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = _KEY_CACHE.get(name) or headerKey(name)
        for field in self.fields:  # noqa: SIM110 - a plain loop: no generator per lookup
            if field.key == key:
                return True
        return False

    def __iter__(self) -> Iterator[HeaderField]:
        return iter(self.fields)

    def __len__(self) -> int:
        return len(self.fields)

    def add(self, name: str, value: str, *, first: bool = False) -> None:
        """Append a field (or put it before every other field of its name, as a new Via goes)."""
        field = HeaderField(headerKey(name), value)
        if not first:
            self.fields.append(field)
            return
        for index, existing in enumerate(self.fields):
            if existing.key == field.key:
                self.fields.insert(index, field)
                return
        self.fields.append(field)

    def set(self, name: str, value: str) -> None:
        """Replace every field of this name by one, in the place of the first."""
        key = headerKey(name)
        fields = self.fields
        for index, field in enumerate(fields):
            if field.key == key:
                fields[index] = HeaderField(key, value)
                rest = fields[index + 1 :]
                if any(f.key == key for f in rest):  # rare: a repeated single header
                    fields[index + 1 :] = [f for f in rest if f.key != key]
                return
        fields.append(HeaderField(key, value))

    def remove(self, name: str) -> None:
        key = headerKey(name)
        self.fields = [field for field in self.fields if field.key != key]

    def copy(self) -> Headers:
        return Headers([HeaderField(f.key, f.value, f.raw) for f in self.fields])

    def toText(self) -> str:
        # Inlined HeaderField.toText: this runs for every header of every message we send.
        lines: list[str] = []
        append = lines.append
        for field in self.fields:
            raw = field.raw
            if raw is None:
                key = field.key
                raw = (_DISPLAY_CACHE.get(key) or displayName(key)) + ": " + field.value
            append(raw)
        append("")
        return "\r\n".join(lines)


# --- structured headers -------------------------------------------------------------------------


@final
class Via:
    """One Via value (RFC 3261 section 20.42, RFC 3581 rport).

    ``version`` is the sent-protocol version; anything but ``2.0`` is kept so that a request with
    another version can still be answered with 505 (RFC 4475 section 3.1.2.16).

    A value object like the frozen dataclasses elsewhere, written out by hand: every message makes
    several, and a frozen dataclass's generated ``__init__`` (``object.__setattr__`` per field,
    interpreted even when compiled) cost ten times a plain one. ``Final`` keeps it read-only
    for the type checker.
    """

    __slots__ = ("host", "params", "port", "transport", "version")

    def __init__(
        self, transport: str, host: str, port: int | None = None, params: Params = (), version: str = "2.0"
    ) -> None:
        self.transport: Final = transport
        self.host: Final = host
        self.port: Final = port
        self.params: Final = params
        self.version: Final = version

    def _fields(self) -> tuple[str, str, int | None, Params, str]:
        return (self.transport, self.host, self.port, self.params, self.version)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Via):
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return (
            f"Via(transport={self.transport!r}, host={self.host!r}, port={self.port!r}, "
            f"params={self.params!r}, version={self.version!r})"
        )

    @property
    def branch(self) -> str | None:
        return getParam(self.params, "branch")

    @property
    def received(self) -> str | None:
        return getParam(self.params, "received")

    @property
    def rport(self) -> str | None:
        """``""`` when the flag is present without a value; None when absent."""
        return getParam(self.params, "rport")

    @property
    def sentBy(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def withParam(self, name: str, value: str | None) -> Via:
        lname = name.lower()
        params = tuple(p for p in self.params if p[0].lower() != lname)
        return Via(self.transport, self.host, self.port, (*params, (name, value)), self.version)

    def __str__(self) -> str:
        return f"SIP/{self.version}/{self.transport} {self.sentBy}{formatParams(self.params)}"


def parseVia(value: str) -> Via:
    """Parse one Via value, tolerating the LWS that RFC 3261 allows around ``/`` and ``;``."""
    if value.startswith("SIP/2.0/"):
        via = _parsePlainVia(value)
        if via is not None:
            return via
    return _parseVia(value)


def _parsePlainVia(value: str) -> Via | None:
    """The Via nearly every peer writes (``SIP/2.0/UDP host:port;a=b;c``, no LWS inside, no
    IPv6), in a few string operations; None sends anything else to the full parser.
    """
    transport, space, rest = value[8:].partition(" ")
    if not space or not transport.isalpha() or not transport.isascii():
        return None
    sentBy, semi, paramText = rest.partition(";")
    host, colon, portText = sentBy.partition(":")
    if not host or not _TOKEN_CHARS.issuperset(host):
        return None
    port: int | None = None
    if colon:
        if not isDigits(portText) or len(portText) > 5:
            return None
        port = int(portText)
        if port > 65535:
            return None
    if not semi:
        return Via(transport.upper(), host, port)
    if " " in paramText or "\t" in paramText or '"' in paramText:
        return None
    params: list[tuple[str, str | None]] = []
    for item in paramText.split(";"):
        name, eq, pvalue = item.partition("=")
        if not name or not _TOKEN_CHARS.issuperset(name) or (eq and not pvalue):
            return None
        params.append((name, pvalue if eq else None))
    return Via(transport.upper(), host, port, tuple(params))


def _parseVia(value: str) -> Via:
    head, semi, paramText = value.partition(";")
    parts = head.split("/", 2)
    if len(parts) != 3:
        raise SIPParseError("bad Via sent-protocol")
    name, version, rest = (p.strip(WS) for p in parts)
    if name.upper() != "SIP" or not isToken(version):
        raise SIPParseError("bad Via sent-protocol")
    pieces = lwsSplit(rest)
    if len(pieces) < 2 or not isToken(pieces[0]):
        raise SIPParseError("bad Via sent-by")
    transport = pieces[0].upper()
    sentBy = "".join(pieces[1:])
    if sentBy.startswith("["):
        end = sentBy.find("]")
        if end <= 1 or not _IPV6_CHARS.issuperset(sentBy[1:end]):
            raise SIPParseError("bad Via IPv6 host")
        host, portText = sentBy[: end + 1], sentBy[end + 1 :]
        if portText and not portText.startswith(":"):
            raise SIPParseError("bad Via sent-by")
        hasPort = bool(portText)
        portText = portText[1:]
    else:
        host, colon, portText = sentBy.partition(":")
        hasPort = bool(colon)
        if not host or not isToken(host):
            raise SIPParseError("bad Via host")
    port: int | None = None
    if hasPort:
        if not isDigits(portText) or len(portText) > 5 or int(portText) > 65535:
            raise SIPParseError("bad Via port")
        port = int(portText)
    params = parseParams(paramText, "Via") if semi else ()
    for pname, pvalue in params:
        if not isToken(pname) or (pvalue is not None and not pvalue):
            raise SIPParseError("bad Via parameter")
    return Via(transport, host, port, params, version)


@final
class CSeq:
    """A CSeq value; a hand-written value object, as `Via` is (and for the same reason)."""

    __slots__ = ("method", "number")

    def __init__(self, number: int, method: str) -> None:
        self.number: Final = number
        self.method: Final = method

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CSeq):
            return NotImplemented
        return self.number == other.number and self.method == other.method

    def __hash__(self) -> int:
        return hash((self.number, self.method))

    def __repr__(self) -> str:
        return f"CSeq(number={self.number!r}, method={self.method!r})"

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


def _parseCSeq(value: str) -> CSeq:
    """Parse a CSeq value: a 32-bit sequence number and a method."""
    parts = lwsSplit(value)
    if len(parts) != 2 or not isDigits(parts[0]) or not isToken(parts[1]):
        raise SIPParseError("bad CSeq")
    number = int(parts[0])
    if number > 0xFFFFFFFF:
        raise SIPParseError("CSeq number out of range")
    return CSeq(number, parts[1])


@final
class NameAddr:
    """From, To, Contact, Route and the like: an optional display name, a URI, header parameters.

    A hand-written value object, as `Via` is (and for the same reason).
    """

    __slots__ = ("display", "params", "uri")

    def __init__(self, uri: URI, display: str | None = None, params: Params = ()) -> None:
        self.uri: Final = uri
        self.display: Final = display
        self.params: Final = params

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NameAddr):
            return NotImplemented
        return self.uri == other.uri and self.display == other.display and self.params == other.params

    def __hash__(self) -> int:
        return hash((self.uri, self.display, self.params))

    def __repr__(self) -> str:
        return f"NameAddr(uri={self.uri!r}, display={self.display!r}, params={self.params!r})"

    @property
    def tag(self) -> str | None:
        return getParam(self.params, "tag")

    def param(self, name: str) -> str | None:
        return getParam(self.params, name)

    def withParam(self, name: str, value: str | None) -> NameAddr:
        lname = name.lower()
        params = tuple(p for p in self.params if p[0].lower() != lname)
        return NameAddr(self.uri, self.display, (*params, (name, value)))

    def __str__(self) -> str:
        display = f"{self.display} " if self.display else ""
        return f"{display}<{self.uri}>{formatParams(self.params)}"


def _quotedEnd(text: str, start: int) -> int:
    """Index just past the quoted string that opens at ``start``."""
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == '"':
            return i + 1
        i += 1
    raise SIPParseError("unterminated quoted string")


def _parseNameAddr(value: str) -> NameAddr:
    """Parse name-addr or addr-spec with header parameters (RFC 3261 section 20.10)."""
    text = value.strip(WS)
    display: str | None = None
    if text.startswith('"'):
        end = _quotedEnd(text, 0)
        display = text[:end]
        text = text[end:].lstrip(WS)
        if not text.startswith("<"):
            raise SIPParseError("display name without <URI>")
    lt = text.find("<")
    if lt != -1:
        if display is None and lt > 0:
            words = lwsSplit(text[:lt])
            if not all(isToken(word) for word in words):
                raise SIPParseError("unquoted display name with reserved characters")
            display = " ".join(words)
        gt = text.find(">", lt)
        if gt == -1:
            raise SIPParseError("unterminated <URI>")
        uri = parseURI(text[lt + 1 : gt].strip(WS))
        rest = text[gt + 1 :].strip(WS)
    else:
        uriText, semi, paramText = text.partition(";")
        uriText = uriText.strip(WS)
        if "?" in uriText or "," in uriText:
            raise SIPParseError("addr-spec with reserved characters must be in <>")
        uri = parseURI(uriText)
        rest = ";" + paramText if semi else ""
    params: Params = ()
    if rest:
        if not rest.startswith(";"):
            raise SIPParseError("junk after URI")
        params = parseParams(rest[1:], "header parameters")
        for pname, _ in params:
            if not isToken(pname):
                raise SIPParseError("bad header parameter")
    return NameAddr(uri, display, params)


parseNameAddr, _NAME_ADDR_CACHE = cachedParser(_parseNameAddr)  # noqa: N816 - the public parser
parseCSeq, _CSEQ_CACHE = cachedParser(_parseCSeq)  # noqa: N816 - the public parser
