"""Header names and the header list (RFC 3261 section 7.3); `sbc.sip.structured` parses the values we read.

Values are kept as received (``str`` decoded as Latin-1, so every octet survives) and parsed only
when asked for: a header the SBC never looks at costs one split and is written back byte for byte.
"""

from __future__ import annotations

from collections.abc import Iterator

from sbc.sip.errors import SIPParseError
from sbc.sip.uri import (
    WS,
    isDigits,
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

TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")


def isToken(text: str) -> bool:
    """Whether ``text`` is a non-empty token (RFC 3261 section 25.1), as methods and names must be."""
    return bool(text) and TOKEN_CHARS.issuperset(text)


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
        """The line to write: as received when it was, so a header we pass on keeps its spelling."""
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
        """Headers from (name, value) pairs, in order: for the requests we originate."""
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
        """How many lines carry this header (values on one line, comma-separated, count once)."""
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
        """Drop every field of this name."""
        key = headerKey(name)
        self.fields = [field for field in self.fields if field.key != key]

    def copy(self) -> Headers:
        """A header list of its own, to change without touching the message it came from."""
        return Headers([HeaderField(f.key, f.value, f.raw) for f in self.fields])

    def toText(self) -> str:
        """The header section as sent: each line ended by CRLF, ready for the blank line and the body."""
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
