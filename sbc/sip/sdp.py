"""SDP bodies (RFC 4566) as media anchoring needs them, with the offer/answer rules of RFC 3264.

`parseSDP` turns a body into a `SessionDescription`, and ``bytes(sdp)`` turns it back. The SBC reads
and rewrites only ``o=``, ``c=``, ``m=`` and ``a=`` lines. Every other line (``v=``, ``s=``, ``t=``,
``b=``, ``i=``, unknown types) is kept as a `Field`, byte for byte and in order, so a body the SBC
does not change comes back as the same lines. Line ends may be LF or CRLF on input. Output always
uses CRLF. The parsed lines come back unchanged as long as their fields are separated by single
spaces, as RFC 4566 requires. Where a sender used extra white space inside ``o=``, ``c=`` or
``m=``, the output has single spaces, and a decimal number loses its leading zeros.

The parser is strict where a mistake would misroute media (``o=``, ``c=``, ``m=``, the line syntax)
and lenient elsewhere: it keeps unknown line types and attributes, tolerates blank lines at the end
of the body (and drops them), and accepts a rejected stream (port 0) that has no format and no
``c=``. Any bad input raises `SDPParseError` and nothing else: 400 for a malformed body, 488 for an
address or network type the SBC cannot relay.

The transforms (`rewrite`, `filterCodecs`, `bumpVersion`) return new descriptions. The model is
made of frozen dataclasses, so one parsed offer can safely be reused for both legs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from sbc.sip.errors import SIPParseError
from sbc.sip.uri import isDigits

DIRECTIONS = frozenset({"sendrecv", "sendonly", "recvonly", "inactive"})

# RFC 3551 tables 4 and 5: the static payload types, by the encoding name an rtpmap would give.
STATIC_PAYLOAD_TYPES: dict[str, str] = {
    "0": "PCMU",
    "3": "GSM",
    "4": "G723",
    "5": "DVI4",
    "6": "DVI4",
    "7": "LPC",
    "8": "PCMA",
    "9": "G722",
    "10": "L16",
    "11": "L16",
    "12": "QCELP",
    "13": "CN",
    "14": "MPA",
    "15": "G728",
    "16": "DVI4",
    "17": "DVI4",
    "18": "G729",
    "25": "CelB",
    "26": "JPEG",
    "28": "nv",
    "31": "H261",
    "32": "MPV",
    "33": "MP2T",
    "34": "H263",
}

# Formats that carry no media of their own. A stream left with only these after filtering is
# rejected: DTMF or comfort noise alone is no call.
AUXILIARY_ENCODINGS = frozenset({"telephone-event", "cn", "rtx", "red", "ulpfec", "flexfec"})

# Attributes whose first token is the payload type they describe: they go with their format.
_ADDRESS_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.:-_")
_SUFFIX_CHARS = frozenset("0123456789/")
_TYPE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
# A session version has no upper bound in RFC 4566, but must stay far below the length at which
# Python refuses to convert digits to int.
_MAX_VERSION_DIGITS = 64


class SDPParseError(SIPParseError):
    """A body that is not acceptable SDP.

    ``status`` is 400 for a malformed body, and 488 (Not Acceptable Here) for a well-formed one
    whose network or address type the SBC cannot relay.
    """

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason, status)


@dataclass(frozen=True, slots=True)
class Field:
    """A line the SBC does not interpret (``v=``, ``s=``, ``t=``, ``b=``, unknown types), kept as received."""

    type: str
    value: str

    def toLine(self) -> str:
        """The line as received, without its line end."""
        return f"{self.type}={self.value}"


@dataclass(frozen=True, slots=True)
class Origin:
    """The ``o=`` line; ``sessionVersion`` grows by one each time the content changes (RFC 3264 §8)."""

    username: str
    sessionId: str
    sessionVersion: int
    nettype: str
    addrtype: str
    address: str

    def toLine(self) -> str:
        """The ``o=`` line as text, without its line end."""
        return (
            f"o={self.username} {self.sessionId} {self.sessionVersion} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )


@dataclass(frozen=True, slots=True)
class Connection:
    """A ``c=`` line. ``suffix`` holds a multicast ``/ttl[/count]`` as received, or ``""``."""

    nettype: str
    addrtype: str
    address: str
    suffix: str = ""

    @property
    def isNull(self) -> bool:
        """True for 0.0.0.0 (RFC 2543 hold) or the IPv6 unspecified address."""
        address = self.address
        return address == "0.0.0.0" or (":" in address and set(address) <= {"0", ":"})

    def toLine(self) -> str:
        """The ``c=`` line as text, without its line end."""
        return f"c={self.nettype} {self.addrtype} {self.address}{self.suffix}"


@dataclass(frozen=True, slots=True)
class Attribute:
    """An ``a=`` line: ``value`` is None for a flag such as ``a=sendrecv``, else the text after the colon."""

    name: str
    value: str | None = None

    @property
    def key(self) -> str:
        """The name as lookups compare it: case and stray white space ignored."""
        return self.name.strip(" \t").lower()

    @property
    def payloadType(self) -> str | None:
        """The payload type that an rtpmap, fmtp or rtcp-fb line describes (its first token)."""
        if self.value is None:
            return None
        head = self.value.lstrip(" \t")
        end = head.find(" ")
        return head if end == -1 else head[:end]

    def toLine(self) -> str:
        """The ``a=`` line as text, without its line end."""
        return f"a={self.name}" if self.value is None else f"a={self.name}:{self.value}"


SessionLine = Field | Origin | Connection | Attribute
MediaLine = Field | Connection | Attribute


def _attribute(lines: Iterable[SessionLine], name: str) -> str | None:
    for line in lines:
        if isinstance(line, Attribute) and line.key == name:
            return "" if line.value is None else line.value
    return None


def _direction(lines: Iterable[SessionLine]) -> str | None:
    for line in lines:
        if isinstance(line, Attribute) and line.value is None:
            key = line.key
            if key in DIRECTIONS:
                return key
    return None


@dataclass(frozen=True, slots=True)
class Media:
    """One media section: its ``m=`` line and the lines after it, in order.

    ``numPorts`` is the ``/2`` of ``m=audio 49170/2 ...``, or None when absent. ``formats`` are the
    payload types for RTP (as text, so ``"0"``), or whatever tokens another proto uses.
    """

    media: str
    port: int
    numPorts: int | None
    proto: str
    formats: tuple[str, ...]
    lines: tuple[MediaLine, ...] = ()

    @property
    def connection(self) -> Connection | None:
        """This section's own ``c=`` (the first, if several), or None."""
        for line in self.lines:
            if isinstance(line, Connection):
                return line
        return None

    @property
    def attributes(self) -> tuple[Attribute, ...]:
        """This section's ``a=`` lines, in order."""
        return tuple(line for line in self.lines if isinstance(line, Attribute))

    @property
    def isRTP(self) -> bool:
        """RTP/AVP, RTP/SAVP, RTP/AVPF, UDP/TLS/RTP/SAVPF and the like: formats are payload types."""
        return "RTP/" in self.proto.upper()

    def attribute(self, name: str) -> str | None:
        """The first ``a=name`` value: ``""`` for a flag, None when absent (name case-insensitive)."""
        return _attribute(self.lines, name.lower())

    def attributeValues(self, name: str) -> list[str]:
        """Every ``a=name`` value, in order (flags read as ``""``)."""
        key = name.lower()
        return [
            "" if line.value is None else line.value
            for line in self.lines
            if isinstance(line, Attribute) and line.key == key
        ]

    def encodingNames(self) -> dict[str, str]:
        """Payload type -> encoding name for each format with a known name.

        An ``a=rtpmap`` wins; without one, the RFC 3551 static name applies (``"0"`` -> ``"PCMU"``).
        A dynamic payload type with no rtpmap has no name and is absent.
        """
        mapped: dict[str, str] = {}
        for line in self.lines:
            if isinstance(line, Attribute) and line.key == "rtpmap" and line.value is not None:
                pt, _, rest = line.value.strip(" \t").partition(" ")
                name = rest.strip(" \t").partition("/")[0]
                if name and pt not in mapped:
                    mapped[pt] = name
        names: dict[str, str] = {}
        for pt in self.formats:
            known = mapped.get(pt) or STATIC_PAYLOAD_TYPES.get(pt)
            if known is not None:
                names[pt] = known
        return names

    def toLines(self) -> list[str]:
        """The ``m=`` line and the section's lines, as text without line ends."""
        port = str(self.port) if self.numPorts is None else f"{self.port}/{self.numPorts}"
        lines = ["m=" + " ".join((self.media, port, self.proto, *self.formats))]
        lines.extend(line.toLine() for line in self.lines)
        return lines


@dataclass(frozen=True, slots=True)
class SessionDescription:
    """A parsed SDP body: the session-level lines (``v=`` to the first ``m=``) and the media sections.

    ``bytes(sdp)`` (or `toBytes`) writes it back with CRLF line ends.
    """

    lines: tuple[SessionLine, ...]
    media: tuple[Media, ...] = ()

    @property
    def origin(self) -> Origin:
        """The ``o=`` line, which every session description has (RFC 4566 section 5.2)."""
        for line in self.lines:
            if isinstance(line, Origin):
                return line
        raise ValueError("session description without o=")  # parseSDP never builds one

    @property
    def connection(self) -> Connection | None:
        """The session-level ``c=``, or None."""
        for line in self.lines:
            if isinstance(line, Connection):
                return line
        return None

    @property
    def attributes(self) -> tuple[Attribute, ...]:
        """The session-level attributes, in order."""
        return tuple(line for line in self.lines if isinstance(line, Attribute))

    def attribute(self, name: str) -> str | None:
        """The first session-level ``a=name`` value: ``""`` for a flag, None when absent."""
        return _attribute(self.lines, name.lower())

    def connectionFor(self, media: Media) -> Connection | None:
        """The ``c=`` in effect for ``media``: its own, else the session's (RFC 4566 §5.7).

        Only a rejected stream (port 0) can have none: the parser refuses an active one without.
        """
        return media.connection or self.connection

    def connectionAddress(self, media: Media) -> str | None:
        """Where ``media`` wants its RTP: the effective ``c=`` address (IPv4 or IPv6, without a
        multicast TTL), or None for a rejected stream that names no address."""
        connection = self.connectionFor(media)
        return None if connection is None else connection.address

    def direction(self, media: Media) -> str:
        """sendrecv, sendonly, recvonly or inactive: the media's own attribute, else the session's,
        else sendrecv (RFC 3264 §5.1)."""
        return _direction(media.lines) or _direction(self.lines) or "sendrecv"

    def isHold(self, media: Media) -> bool:
        """Whether ``media`` puts the other side on hold: sendonly or inactive (RFC 3264 §8.4), or
        the RFC 2543 style ``c=`` 0.0.0.0 (or the IPv6 ``::``). A rejected stream is not on hold."""
        if media.port == 0:
            return False
        if self.direction(media) in ("sendonly", "inactive"):
            return True
        connection = self.connectionFor(media)
        return connection is not None and connection.isNull

    def withOrigin(self, origin: Origin) -> SessionDescription:
        """A copy with its ``o=`` line replaced."""
        lines = tuple(origin if isinstance(line, Origin) else line for line in self.lines)
        return replace(self, lines=lines)

    def toBytes(self) -> bytes:
        """The body to send: every line in order, each ended by CRLF."""
        out = [line.toLine() for line in self.lines]
        for media in self.media:
            out.extend(media.toLines())
        out.append("")
        return "\r\n".join(out).encode("latin-1")

    def __bytes__(self) -> bytes:
        return self.toBytes()


# -- parsing


def fieldsOf(value: str) -> list[str]:
    """Split on the single SP of RFC 4566; tolerate runs of SP and HTAB, which a few stacks send."""
    fields = value.split(" ")
    if "" in fields or "\t" in value:
        fields = [field for field in value.replace("\t", " ").split(" ") if field]
    return fields


def _number(text: str, what: str, limit: int = 5) -> int:
    if not isDigits(text) or len(text) > limit:
        raise SDPParseError(f"bad {what}")
    return int(text)


def _parseOrigin(value: str) -> Origin:
    fields = fieldsOf(value)
    if len(fields) != 6:
        raise SDPParseError("o= needs six fields")
    username, sessionId, version, nettype, addrtype, address = fields
    return Origin(
        username,
        sessionId,
        _number(version, "o= session version", _MAX_VERSION_DIGITS),
        nettype,
        addrtype,
        address,
    )


def _parseConnection(value: str) -> Connection:
    fields = fieldsOf(value)
    if len(fields) != 3:
        raise SDPParseError("c= needs three fields")
    nettype, addrtype, address = fields
    if nettype.upper() != "IN":
        raise SDPParseError(f"unsupported c= network type {nettype!r}", 488)
    if addrtype.upper() not in ("IP4", "IP6"):
        raise SDPParseError(f"unsupported c= address type {addrtype!r}", 488)
    slash = address.find("/")
    suffix = ""
    if slash != -1:
        address, suffix = address[:slash], address[slash:]
        if not _SUFFIX_CHARS.issuperset(suffix):
            raise SDPParseError("bad c= multicast suffix")
    if not address or not _ADDRESS_CHARS.issuperset(address):
        raise SDPParseError("bad c= address")
    return Connection(nettype, addrtype, address, suffix)


def _parseMediaLine(value: str) -> Media:
    fields = fieldsOf(value)
    if len(fields) < 3:
        raise SDPParseError("m= needs media, port and proto")
    media, portText, proto = fields[0], fields[1], fields[2]
    portText, slash, countText = portText.partition("/")
    port = _number(portText, "m= port")
    if port > 65535:
        raise SDPParseError("m= port out of range")
    numPorts = None
    if slash:
        numPorts = _number(countText, "m= number of ports")
        if numPorts < 1:
            raise SDPParseError("m= number of ports must be positive")
    formats = tuple(fields[3:])
    if not formats and port != 0:
        raise SDPParseError("m= without formats")
    return Media(media, port, numPorts, proto, formats)


def parseSDP(body: bytes) -> SessionDescription:
    """Parse an SDP body; raise `SDPParseError` (and only that) when it is not acceptable."""
    text = body.decode("latin-1")
    if "\x00" in text:
        raise SDPParseError("NUL in SDP")
    rawLines = text.split("\n")
    # A final line end leaves one empty item; trailing blank lines are tolerated and dropped.
    while rawLines and rawLines[-1] in ("", "\r"):
        rawLines.pop()
    if not rawLines:
        raise SDPParseError("empty SDP")

    sessionLines: list[SessionLine] = []
    media: list[Media] = []
    current: Media | None = None
    currentLines: list[MediaLine] = []
    origin: Origin | None = None
    first = True
    for raw in rawLines:
        line = raw[:-1] if raw.endswith("\r") else raw
        if len(line) < 2 or line[1] != "=" or line[0] not in _TYPE_CHARS:
            raise SDPParseError("SDP line is not type=value")
        if "\r" in line:
            raise SDPParseError("bare CR in SDP")
        kind = line[0]
        value = line[2:]
        if first:
            if kind != "v":
                raise SDPParseError("SDP must start with v=")
            if value.strip(" \t") != "0":
                raise SDPParseError("unsupported SDP version")
            sessionLines.append(Field(kind, value))
            first = False
            continue
        item: MediaLine
        if kind == "a":
            name, colon, attrValue = value.partition(":")
            item = Attribute(name, attrValue if colon else None)
        elif kind == "c":
            item = _parseConnection(value)
        elif kind == "m":
            if current is not None:
                media.append(replace(current, lines=tuple(currentLines)))
            current = _parseMediaLine(value)
            currentLines = []
            continue
        elif kind == "o":
            if current is not None:
                raise SDPParseError("o= inside a media section")
            if origin is not None:
                raise SDPParseError("more than one o=")
            origin = _parseOrigin(value)
            sessionLines.append(origin)
            continue
        else:
            item = Field(kind, value)
        if current is None:
            sessionLines.append(item)
        else:
            currentLines.append(item)
    if current is not None:
        media.append(replace(current, lines=tuple(currentLines)))
    if origin is None:
        raise SDPParseError("SDP without o=")

    sdp = SessionDescription(tuple(sessionLines), tuple(media))
    if sdp.connection is None:
        for section in media:
            if section.port != 0 and section.connection is None:
                raise SDPParseError(f"no c= for the {section.media} stream")
    return sdp
