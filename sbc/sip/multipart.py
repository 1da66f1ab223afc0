"""Multipart bodies (RFC 2046 section 5.1) as SIP carries them (RFC 5621): parse and build.

SIP-I and SIP-T trunks (ITU-T Q.1912.5, RFC 3372) send an INVITE whose body is
``multipart/mixed``: the SDP offer and an ISUP message side by side. `parseMultipart` splits such
a body into `Part` values (each with its own MIME headers and content, byte for byte), given the
message's Content-Type, whose ``boundary`` parameter may be a token or a quoted string.
`buildMultipart` writes parts back with a boundary of the caller's choosing.

The parser is bounded: at most `MAX_PARTS` parts in all, multiparts nested at most `MAX_DEPTH`
deep, `MAX_PART_HEADERS` header lines a part. Anything malformed (no boundary, no opening or
closing delimiter, a broken part header, too many of anything) raises `SIPParseError` (400), the
codec's one error, itself rather than a subclass: this module is not in the mypyc-compiled group
(`sbc.compiled.CODEC`), and an interpreted class cannot subclass a compiled one. Line ends may be
CRLF or LF on input; output uses CRLF.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sbc.sip.errors import SIPParseError

MAX_PARTS = 16
MAX_DEPTH = 3
MAX_PART_HEADERS = 16
# RFC 2046 section 5.1.1: a boundary is 1 to 70 of these, and does not end in a space.
_BCHARS = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=? ")
_TOKEN = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!#$%&'*+-.^_`|~")
# RFC 2046 section 5.1: a part without a Content-Type is plain US-ASCII text.
DEFAULT_TYPE = "text/plain"


@dataclass(frozen=True, slots=True)
class Part:
    """One body part: its MIME headers as (name, value) in order, its content, and its own parts
    when it is itself a multipart."""

    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    parts: tuple[Part, ...] = ()

    def header(self, name: str) -> str | None:
        """The first value of a header (names are case-insensitive), or None."""
        lower = name.lower()
        for key, value in self.headers:
            if key.lower() == lower:
                return value
        return None

    @property
    def contentType(self) -> str:
        """The part's Content-Type; ``text/plain`` when it has none (RFC 2046 section 5.1)."""
        return self.header("content-type") or DEFAULT_TYPE

    @property
    def mediaType(self) -> str:
        """``type/subtype`` in lower case, without parameters."""
        return mediaType(self.contentType)


def mediaType(contentType: str | None) -> str:
    """The ``type/subtype`` of a Content-Type value in lower case ("" for None)."""
    if contentType is None:
        return ""
    return contentType.split(";", 1)[0].strip().lower()


def parameters(contentType: str) -> dict[str, str]:
    """The parameters of a Content-Type value, names in lower case, quoted values unquoted."""
    result: dict[str, str] = {}
    text = contentType
    position = text.find(";")
    while position != -1:
        position += 1
        equals = text.find("=", position)
        if equals == -1:
            if text[position:].strip():
                raise SIPParseError("parameter without a value")
            break
        name = text[position:equals].strip().lower()
        if not name or not _TOKEN.issuperset(name):
            raise SIPParseError("bad parameter name")
        position = equals + 1
        while position < len(text) and text[position] in " \t":
            position += 1
        if text.startswith('"', position):
            value, position = _quoted(text, position)
            rest = text.find(";", position)
            if text[position : rest if rest != -1 else len(text)].strip():
                raise SIPParseError("text after a quoted parameter value")
            position = rest
        else:
            rest = text.find(";", position)
            value = text[position : rest if rest != -1 else len(text)].strip()
            if not value or not _TOKEN.issuperset(value):
                raise SIPParseError(f"bad value for parameter {name}")
            position = rest
        result.setdefault(name, value)
    return result


def _quoted(text: str, start: int) -> tuple[str, int]:
    """The content of the quoted string at ``start`` (escapes undone), and the index after it."""
    chars: list[str] = []
    index = start + 1
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            chars.append(text[index + 1])
            index += 2
            continue
        if char == '"':
            return "".join(chars), index + 1
        chars.append(char)
        index += 1
    raise SIPParseError("unterminated quoted string")


def boundaryOf(contentType: str) -> str:
    """The boundary of a multipart Content-Type; raise `SIPParseError` if missing or invalid."""
    boundary = parameters(contentType).get("boundary")
    if boundary is None:
        raise SIPParseError("multipart without a boundary")
    if not 0 < len(boundary) <= 70 or not _BCHARS.issuperset(boundary) or boundary.endswith(" "):
        raise SIPParseError("bad multipart boundary")
    return boundary


def parseMultipart(
    body: bytes, contentType: str, *, maxParts: int = MAX_PARTS, maxDepth: int = MAX_DEPTH
) -> tuple[Part, ...]:
    """The parts of a multipart body, nested multiparts parsed too; raise `SIPParseError`."""
    budget = [maxParts]
    return _parse(body, boundaryOf(contentType), budget, maxDepth)


def _parse(body: bytes, boundary: str, budget: list[int], depth: int) -> tuple[Part, ...]:
    if depth <= 0:
        raise SIPParseError("multipart nested too deep")
    delimiter = b"--" + boundary.encode("ascii")
    start = _delimiter(body, delimiter, 0)
    if start == -1:
        raise SIPParseError("no multipart boundary in the body")
    parts: list[Part] = []
    position = start
    while True:
        after = position + len(delimiter)
        if body.startswith(b"--", after):
            if not parts:
                raise SIPParseError("multipart without a part")
            return tuple(parts)  # the close delimiter: what follows is the epilogue
        lineEnd = body.find(b"\n", after)
        if lineEnd == -1 or body[after:lineEnd].strip(b" \t\r"):
            raise SIPParseError("text after a multipart boundary")
        contentStart = lineEnd + 1
        following = _delimiter(body, delimiter, contentStart)
        if following == -1:
            raise SIPParseError("multipart without a closing boundary")
        # The line break before a delimiter belongs to the delimiter (RFC 2046 section 5.1.1).
        contentEnd = following - 1
        if contentEnd > contentStart and body[contentEnd - 1 : contentEnd] == b"\r":
            contentEnd -= 1
        budget[0] -= 1
        if budget[0] < 0:
            raise SIPParseError("too many body parts")
        parts.append(_part(body[contentStart : max(contentStart, contentEnd)], budget, depth))
        position = following


def _delimiter(body: bytes, delimiter: bytes, start: int) -> int:
    """Where the next delimiter line starts (at a line start) at or after ``start``, or -1."""
    index = body.find(delimiter, start)
    while index > 0 and body[index - 1 : index] != b"\n":
        index = body.find(delimiter, index + 1)
    return index


def _part(data: bytes, budget: list[int], depth: int) -> Part:
    """A part is its headers, then an empty line and its content; either may be absent."""
    if not data:
        return Part()
    if data.startswith(b"\r\n") or data.startswith(b"\n"):  # no headers at all
        return Part((), data[2:] if data.startswith(b"\r\n") else data[1:])
    end, size = data.find(b"\r\n\r\n"), 4
    lfEnd = data.find(b"\n\n")
    if end == -1 or (lfEnd != -1 and lfEnd < end):
        end, size = lfEnd, 2
    if end == -1:  # headers and no content (RFC 2046 allows it)
        end, size = len(data), 0
    headers = _headers(data[:end])
    content = data[end + size :]
    part = Part(headers, content)
    if part.mediaType.startswith("multipart/"):
        return Part(headers, content, _parse(content, boundaryOf(part.contentType), budget, depth - 1))
    return part


def _headers(block: bytes) -> tuple[tuple[str, str], ...]:
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        raise SIPParseError("body part headers are not UTF-8") from None
    lines: list[list[str]] = []
    for line in text.replace("\r\n", "\n").rstrip("\n").split("\n"):
        if line[:1] in (" ", "\t"):  # a folded continuation
            if not lines:
                raise SIPParseError("body part header starts with white space")
            lines[-1].append(line.strip())
            continue
        lines.append([line])
        if len(lines) > MAX_PART_HEADERS:
            raise SIPParseError("too many body part headers")
    headers: list[tuple[str, str]] = []
    for pieces in lines:
        name, colon, value = pieces[0].partition(":")
        name = name.rstrip(" \t")
        if not colon or not name or not _TOKEN.issuperset(name):
            raise SIPParseError("bad body part header")
        headers.append((name, " ".join([value.strip(), *pieces[1:]]).strip()))
    return tuple(headers)


def multipartType(boundary: str, subtype: str = "mixed") -> str:
    """A Content-Type value for a multipart with this boundary (quoted when it must be)."""
    if _TOKEN.issuperset(boundary):
        return f"multipart/{subtype};boundary={boundary}"
    return f'multipart/{subtype};boundary="{boundary}"'


def buildMultipart(parts: Sequence[Part], boundary: str) -> bytes:
    """The body of a multipart of ``parts``; raise `SIPParseError` if a part contains the boundary."""
    if not parts:
        raise SIPParseError("multipart without a part")
    boundaryOf(multipartType(boundary))  # validates it
    delimiter = b"--" + boundary.encode("ascii")
    chunks: list[bytes] = []
    for part in parts:
        if part.body.startswith(delimiter) or b"\n" + delimiter in part.body:
            raise SIPParseError("a body part contains the boundary")
        head = "".join(f"{name}: {value}\r\n" for name, value in part.headers)
        chunks.append(delimiter + b"\r\n" + head.encode("utf-8") + b"\r\n" + part.body + b"\r\n")
    chunks.append(delimiter + b"--\r\n")
    return b"".join(chunks)
