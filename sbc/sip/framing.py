"""Cut a SIP byte stream (TCP, TLS) into messages (RFC 3261 section 18.3, RFC 5626 section 4.4.1).

The framer holds at most one message's worth of bytes: a header section that grows past the size
limit, or a Content-Length that would take a message past it, is refused at once.
"""

from __future__ import annotations

from typing import Final

from sbc.sip.errors import SIPParseError
from sbc.sip.headers import foldValue, parseContentLength

PING: Final = b"\r\n\r\n"
PONG: Final = b"\r\n"

_CONTENT_LENGTH_NAMES: Final = frozenset({b"content-length", b"l"})


def _contentLengthValues(head: bytes) -> list[str]:
    """The Content-Length values of a header section, read line by line as `parseMessage` does.

    Only lines that can start a Content-Length (``c``/``l``) cost more than a byte comparison.
    """
    values: list[str] = []
    current: list[str] | None = None
    lines = head.split(b"\r\n")
    for line in lines[1:]:  # lines[0] is the start line
        first = line[:1]
        if first in (b" ", b"\t"):
            if current is not None:
                current.append(line.decode("latin-1"))
            continue
        if current is not None:
            values.append(foldValue(current))
            current = None
        if first not in (b"c", b"C", b"l", b"L"):
            continue
        colon = line.find(b":")
        if colon > 0 and line[:colon].rstrip(b" \t").lower() in _CONTENT_LENGTH_NAMES:
            current = [line[colon + 1 :].decode("latin-1")]
    if current is not None:
        values.append(foldValue(current))
    return values


class Keepalive:
    """A double-CRLF ping seen between messages; the transport answers it with a CRLF pong."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "KEEPALIVE"


KEEPALIVE: Final = Keepalive()


class StreamFramer:
    """Feed it bytes as they arrive; it returns whole messages and keepalive pings."""

    __slots__ = ("_buffer", "_maxSize", "_need", "_scan")

    def __init__(self, maxMessageSize: int = 65536) -> None:
        self._buffer = bytearray()
        self._maxSize = maxMessageSize
        self._need: int | None = None  # the length of the message at the head of the buffer
        self._scan = 0  # where to resume looking for the end of the header section

    @property
    def buffered(self) -> int:
        """How many bytes wait for the rest of their message: the stream's message deadline watches it."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes | Keepalive]:
        """Raise `SIPParseError` when the stream can no longer be framed; the caller closes it."""
        buf = self._buffer
        buf += data
        out: list[bytes | Keepalive] = []
        while buf:
            if self._need is not None:
                if len(buf) < self._need:
                    break
                out.append(bytes(buf[: self._need]))
                del buf[: self._need]
                self._need = None
                continue
            if buf[0] == 0x0D:  # CRs between messages: ping, pong, or not yet known
                if buf.startswith(PING):
                    out.append(KEEPALIVE)
                    del buf[:4]
                    continue
                if len(buf) < 4 and PING.startswith(buf):
                    break
                if buf.startswith(PONG):
                    del buf[:2]
                    continue
            end = buf.find(PING, self._scan)
            if end == -1:
                if len(buf) > self._maxSize:
                    raise SIPParseError("header section too large", 513)
                self._scan = max(0, len(buf) - 3)
                break
            self._scan = 0
            headEnd = end + 4
            length = parseContentLength(_contentLengthValues(bytes(buf[:end])))
            if length is None:
                raise SIPParseError("missing Content-Length on a stream")
            if headEnd + length > self._maxSize:
                raise SIPParseError("message too large", 513)
            self._need = headEnd + length
        return out
