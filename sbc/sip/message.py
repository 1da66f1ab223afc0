"""SIP requests and responses: bytes in, objects out, and back (RFC 3261 sections 7 and 25).

`parseMessage` does the work every message needs (start line, header lines, Content-Length
framing) and nothing more. Structured values are parsed on demand (`sbc.sip.structured`), and
`sbc.sip.validate` checks what a UAS needs before it acts on a message.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass

from sbc.sip.errors import SIPParseError
from sbc.sip.headers import (
    HeaderField,
    Headers,
    displayName,
    foldValue,
    headerKey,
    isToken,
    parseContentLength,
    splitList,
)
from sbc.sip.structured import CSeq, NameAddr, Via, parseCSeq, parseNameAddr, parseVia
from sbc.sip.uri import CACHED_TEXT_LIMIT, PARSE_CACHE_SIZE, URI, WS, isDigits, parseURI

SIP_VERSION = "SIP/2.0"
DEFAULT_MAX_HEADERS = 256
MAGIC_COOKIE = "z9hG4bK"

# Methods defined by RFC 3261 and its extensions; anything else is "unknown" (501).
KNOWN_METHODS = frozenset(
    {
        "INVITE",
        "ACK",
        "BYE",
        "CANCEL",
        "OPTIONS",
        "REGISTER",
        "PRACK",
        "SUBSCRIBE",
        "NOTIFY",
        "PUBLISH",
        "INFO",
        "REFER",
        "MESSAGE",
        "UPDATE",
    }
)

REASON_PHRASES: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    421: "Extension Required",
    422: "Session Interval Too Small",
    423: "Interval Too Brief",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    491: "Request Pending",
    493: "Undecipherable",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}


class Message:
    """What requests and responses share: a header list and a body that stays bytes.

    Not an ``ABC`` (its methods are abstract for mypy and mypyc only): every ``isinstance``
    against an ABC's subclass goes through ``ABCMeta.__instancecheck__``, and the server asks that
    of every message.
    """

    __slots__ = ("_via", "body", "headers", "version")

    def __init__(self, headers: Headers, body: bytes = b"", version: str = SIP_VERSION) -> None:
        self.headers = headers
        self.body = body
        self.version = version
        self._via: tuple[HeaderField, Via] | None = None

    @abstractmethod
    def startLine(self) -> str:
        """The request line or status line, without CRLF."""

    def toBytes(self) -> bytes:
        """The message as it goes on the wire: start line, headers, blank line, body."""
        head = self.startLine() + "\r\n" + self.headers.toText() + "\r\n"
        return head.encode("latin-1") + self.body

    def setBody(self, body: bytes, contentType: str | None = None) -> None:
        """Replace the body and keep Content-Length (and, if given, Content-Type) true to it."""
        self.body = body
        if contentType is not None:
            self.headers.set("Content-Type", contentType)
        self.headers.set("Content-Length", str(len(body)))

    # Structured views, parsed on demand.

    @property
    def callId(self) -> str:
        """The Call-ID, which with the two tags names a dialog; `SIPParseError` when missing."""
        value = self.headers.get("call-id")
        if value is None:
            raise SIPParseError("missing Call-ID")
        return value

    def cseq(self) -> CSeq:
        """The CSeq (parsed once per distinct text, by `parseCSeq`)."""
        for field in self.headers.fields:
            if field.key == "cseq":
                return parseCSeq(field.value)
        raise SIPParseError("missing CSeq")

    def vias(self) -> list[Via]:
        """Every Via value, parsed, top first (one line may carry several)."""
        return [parseVia(value) for value in self.headers.getAll("via")]

    def setTopVia(self, via: Via) -> None:
        """Put ``via`` on top, known already parsed (our own requests need no re-parsing)."""
        field = HeaderField("via", str(via))
        self.headers.fields.insert(0, field)
        self._via = (field, via)

    def topVia(self) -> Via:
        """The top Via, parsed once: every layer asks for it, so it is kept with its field."""
        for field in self.headers.fields:
            if field.key == "via":
                cached = self._via
                if cached is not None and cached[0] is field:
                    return cached[1]
                via = parseVia(splitList(field.value)[0])
                self._via = (field, via)
                return via
        raise SIPParseError("missing Via")

    def fromHeader(self) -> NameAddr:
        """The From header parsed: the originator's URI and tag."""
        return self._nameAddr("from")

    def toHeader(self) -> NameAddr:
        """The To header parsed: the target's URI and, once in a dialog, its tag."""
        return self._nameAddr("to")

    def contacts(self) -> list[NameAddr]:
        """Contact values; ``*`` is left to the registrar, which alone gives it meaning."""
        return [parseNameAddr(v) for v in self.headers.getAll("contact") if v != "*"]

    def _nameAddr(self, key: str) -> NameAddr:
        """From or To (parsed once per distinct text, by `parseNameAddr`)."""
        for field in self.headers.fields:
            if field.key == key:
                return parseNameAddr(field.value)
        raise SIPParseError(f"missing {key}")


class Request(Message):
    """A SIP request (RFC 3261 section 7.1): method, Request-URI, headers and body."""

    __slots__ = ("_received", "method", "uri")

    def __init__(
        self,
        method: str,
        uri: URI,
        headers: Headers | None = None,
        body: bytes = b"",
        version: str = SIP_VERSION,
    ) -> None:
        super().__init__(headers if headers is not None else Headers(), body, version)
        self.method = method
        self.uri = uri
        # The request line as received, with what it was parsed into: written back unchanged while
        # method, URI and version are untouched (``str(uri)`` normalises scheme case and ports).
        self._received: tuple[str, URI, str, str] | None = None

    def startLine(self) -> str:
        """The request line, written back as received while method, URI and version are unchanged."""
        received = self._received
        if (
            received is not None
            and received[0] == self.method
            and received[1] == self.uri
            and received[2] == self.version
        ):
            return received[3]
        return f"{self.method} {self.uri} {self.version}"

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri}>"


class Response(Message):
    """A SIP response (RFC 3261 section 7.2): status code, reason phrase, headers and body."""

    __slots__ = ("reason", "status")

    def __init__(
        self,
        status: int,
        reason: str | None = None,
        headers: Headers | None = None,
        body: bytes = b"",
        version: str = SIP_VERSION,
    ) -> None:
        super().__init__(headers if headers is not None else Headers(), body, version)
        self.status = status
        self.reason = REASON_PHRASES.get(status, "Unknown") if reason is None else reason

    def startLine(self) -> str:
        """The status line: version, status code and reason phrase."""
        return f"{self.version} {self.status} {self.reason}"

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"


_RESPONSE_KEYS = frozenset({"via", "from", "to", "call-id", "cseq"})


def responseTo(
    headers: Headers, status: int, reason: str | None = None, *, toTag: str | None = None
) -> Response:
    """A response to the request with ``headers`` (RFC 3261 section 8.2.6): its Via, From, To,
    Call-ID and CSeq. ``toTag`` is added to a To that has none (a UAS's dialog tag).
    """
    fields: list[HeaderField] = []
    for field in headers.fields:
        if field.key in _RESPONSE_KEYS:
            if field.key == "to" and toTag is not None and ";tag=" not in field.value.replace(" ", ""):
                fields.append(HeaderField("to", f"{field.value};tag={toTag}"))
            else:
                fields.append(field)
    return Response(status, reason, Headers(fields))


@dataclass(frozen=True, slots=True)
class Limits:
    """Codec limits; anything over them is refused, never buffered (config keys in [sip])."""

    maxMessageSize: int = 65536
    maxHeaders: int = DEFAULT_MAX_HEADERS


DEFAULT_LIMITS = Limits()


class MessageParseError(SIPParseError):
    """A parse failure that got far enough to know the message kind and its header list.

    ``headers`` lets a UAS answer a request with a 400 that copies Via, From, To, Call-ID and
    CSeq, as RFC 3261 section 8.2.6.2 asks.
    """

    def __init__(
        self, reason: str, status: int = 400, *, method: str | None = None, headers: Headers | None = None
    ) -> None:
        super().__init__(reason, status)
        self.method = method
        self.headers = headers


def _parseHeaderLines(lines: list[str], limit: int, folded: bool) -> Headers:
    if folded:
        return _parseFoldedLines(lines, limit)
    # No folding (nearly every message): one field per line, built inline.
    if len(lines) > limit:
        raise SIPParseError("too many header fields")
    fields: list[HeaderField] = []
    append = fields.append
    names = _FIELD_NAMES
    seen = _LINES
    for line in lines:
        field = seen.get(line)
        if field is not None:
            append(field)
            continue
        colon = line.find(":")
        if colon <= 0:
            raise SIPParseError("header line without a name")
        known = names.get(line[:colon])
        if known is None:
            known = _learnName(line[:colon])
        value = line[colon + 1 :].strip(WS)
        if known[1] and len(value) == len(line) - colon - 2 and line[colon + 1] == " ":
            # "Name: value" exactly as we would write it: keep one string, not two. Most lines
            # are like this, and a held call keeps its messages for minutes.
            field = HeaderField(known[0], value)
        else:
            field = HeaderField(known[0], value, line)
        if len(line) <= CACHED_TEXT_LIMIT:
            if len(seen) >= PARSE_CACHE_SIZE:
                seen.clear()
            seen[line] = field
        append(field)
    return Headers(fields)


# Header lines seen lately, with their fields. A call repeats most of its lines (From, To,
# Call-ID, Contact, Content-Type, CSeq) in several messages, and a field is never changed once
# made (headers are replaced, not edited), so the messages can share one. Bounded as the
# parse caches of `sbc.sip.uri` are: emptied when full, and long lines are not kept at all.
_LINES: dict[str, HeaderField] = {}


def _parseFoldedLines(lines: list[str], limit: int) -> Headers:
    fields: list[HeaderField] = []
    append = fields.append
    current: list[str] | None = None
    for line in lines:
        if line[:1] in (" ", "\t"):
            if current is None:
                raise SIPParseError("continuation line before the first header")
            current.append(line)
            continue
        if current is not None:
            append(_makeField(current))
            if len(fields) >= limit:
                raise SIPParseError("too many header fields")
        current = [line]
    if current is not None:
        append(_makeField(current))
    return Headers(fields)


# Header names already seen in messages and found to be tokens, with their lookup keys and
# whether they are spelt as we spell them: the common names then cost one dict lookup. Bounded,
# so hostile names cannot grow it.
_FIELD_NAMES: dict[str, tuple[str, bool]] = {}


def _learnName(name: str) -> tuple[str, bool]:
    """A header name as written before its colon: its lookup key, and whether we spell it so."""
    stripped = name.rstrip(" \t")
    if not isToken(stripped):
        raise SIPParseError("bad header name")
    key = headerKey(stripped)
    known = (key, stripped == name and displayName(key) == name)
    if len(_FIELD_NAMES) < 1024:
        _FIELD_NAMES[name] = known
    return known


def _makeField(lines: list[str]) -> HeaderField:
    """A field from its line and continuation lines (the folded case)."""
    first = lines[0]
    colon = first.find(":")
    if colon <= 0:
        raise SIPParseError("header line without a name")
    known = _FIELD_NAMES.get(first[:colon]) or _learnName(first[:colon])
    if len(lines) == 1:
        return HeaderField(known[0], first[colon + 1 :].strip(WS), first)
    return HeaderField(known[0], foldValue([first[colon + 1 :], *lines[1:]]), "\r\n".join(lines))


def _contentLength(headers: Headers) -> int | None:
    return parseContentLength([f.value for f in headers.fields if f.key == "content-length"])


def parseMessage(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Request | Response:
    """Parse one message, as a datagram or as framed by `sbc.sip.framing.StreamFramer`.

    Without Content-Length the body runs to the end of ``data`` (RFC 3261 section 18.3, UDP);
    the stream framer never hands over a message without one. Raises `SIPParseError` only.
    """
    if len(data) > limits.maxMessageSize:
        raise SIPParseError("message too large", 513)
    start = 0
    while data.startswith(b"\r\n", start):
        start += 2
    end = data.find(b"\r\n\r\n", start)
    if end == -1:
        head, rest = data[start:], b""
        if head.endswith(b"\r\n"):
            head = head[:-2]
    else:
        head, rest = data[start:end], data[end + 4 :]
    lines = head.decode("latin-1").split("\r\n")
    startLine = lines[0]
    if not startLine:
        raise SIPParseError("empty message")
    if head.count(b"\r") != len(lines) - 1 or head.count(b"\n") != len(lines) - 1:
        # A bare CR or LF ends a line for some parsers and not for others: refuse it rather than
        # pass on a header that a lenient peer would read as two.
        raise SIPParseError("bare CR or LF in the header section")

    folded = b"\n " in head or b"\n\t" in head
    if startLine.startswith("SIP/"):
        parts = startLine.split(" ", 2)
        if len(parts) < 3 or len(parts[1]) != 3 or not isDigits(parts[1]):
            raise SIPParseError("bad status line")
        status = int(parts[1])
        if not 100 <= status <= 699:
            raise SIPParseError("status code out of range")
        headers = _parseHeaderLines(lines[1:], limits.maxHeaders, folded)
        response = Response(status, parts[2], headers, version=parts[0])
        response.body = _frameBody(headers, rest)
        return response

    method = startLine.partition(" ")[0]
    if not isToken(method):
        raise SIPParseError("bad request line")
    headers = _parseHeaderLines(lines[1:], limits.maxHeaders, folded)
    try:
        parts = startLine.split(" ")
        if len(parts) != 3 or not all(parts):
            raise SIPParseError("bad request line")
        uriText, version = parts[1], parts[2]
        if not version.upper().startswith("SIP/"):
            raise SIPParseError("bad SIP version")
        if uriText.startswith("<"):
            raise SIPParseError("Request-URI in <>")
        uri = parseURI(uriText)
        if uri.headers is not None:
            raise SIPParseError("headers in the Request-URI")
        request = Request(method, uri, headers, version=version)
        request._received = (method, uri, version, startLine)
        request.body = _frameBody(headers, rest)
    except SIPParseError as e:
        raise MessageParseError(e.reason, e.status, method=method, headers=headers) from None
    return request


def _frameBody(headers: Headers, rest: bytes) -> bytes:
    length = _contentLength(headers)
    if length is None:
        return rest
    if length > len(rest):
        raise SIPParseError("Content-Length larger than the body")
    return rest if length == len(rest) else rest[:length]
