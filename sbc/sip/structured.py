"""The structured headers every layer reads, parsed once per distinct text: Via, CSeq, name-addr."""

from __future__ import annotations

from typing import Final, final

from sbc.sip.errors import SIPParseError
from sbc.sip.headers import TOKEN_CHARS, isToken, lwsSplit
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
)

_IPV6_CHARS = frozenset("0123456789abcdefABCDEF:.")

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
        """The branch that keys the transaction (RFC 3261 section 17.2.3), or None."""
        return getParam(self.params, "branch")

    @property
    def received(self) -> str | None:
        """The source address a server recorded (RFC 3261 section 18.2.1), or None."""
        return getParam(self.params, "received")

    @property
    def rport(self) -> str | None:
        """``""`` when the flag is present without a value; None when absent."""
        return getParam(self.params, "rport")

    @property
    def sentBy(self) -> str:
        """The sent-by, ``host[:port]`` as written (RFC 3261 section 18.2.2)."""
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def withParam(self, name: str, value: str | None) -> Via:
        """A copy with ``name`` set to ``value`` (None for a flag): how received and rport are stamped."""
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
    if not host or not TOKEN_CHARS.issuperset(host):
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
        if not name or not TOKEN_CHARS.issuperset(name) or (eq and not pvalue):
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
        """The tag that names one side of a dialog (RFC 3261 section 19.3), or None."""
        return getParam(self.params, "tag")

    def param(self, name: str) -> str | None:
        """A header parameter's value: ``""`` for a flag, None when absent."""
        return getParam(self.params, name)

    def withParam(self, name: str, value: str | None) -> NameAddr:
        """A copy with ``name`` set to ``value`` (None for a flag): how a To tag is added."""
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
