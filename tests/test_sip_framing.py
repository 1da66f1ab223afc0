"""Tests for `sbc.sip.framing`: cutting a TCP/TLS byte stream into SIP messages."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from sbc.sip.errors import SIPParseError
from sbc.sip.framing import KEEPALIVE, PING, PONG, Keepalive, StreamFramer
from sbc.sip.message import Request, parseMessage

from .test_sip_message import INVITE, RESPONSE, SDP

OPTIONS = (
    b"OPTIONS sip:carol@chicago.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP pc33.atlanta.example.com;branch=z9hG4bKhjhs8ass877\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: <sip:carol@chicago.example.com>\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710\r\n"
    b"CSeq: 63104 OPTIONS\r\n"
    b"l: 0\r\n"
    b"\r\n"
)

STREAM = INVITE + PING + RESPONSE + PONG + OPTIONS + PING + PING + INVITE
EXPECTED: list[bytes | Keepalive] = [INVITE, KEEPALIVE, RESPONSE, OPTIONS, KEEPALIVE, KEEPALIVE, INVITE]


def feedAll(framer: StreamFramer, chunks: list[bytes]) -> list[bytes | Keepalive]:
    out: list[bytes | Keepalive] = []
    for chunk in chunks:
        out.extend(framer.feed(chunk))
    return out


class StreamFramerTests(SynchronousTestCase):
    """`StreamFramer` frames by Content-Length and reports keepalive pings."""

    def test_oneChunk(self) -> None:
        """A stream fed at once yields its messages and pings in order, pongs skipped."""
        self.assertEqual(StreamFramer().feed(STREAM), EXPECTED)

    def test_oneByteAtATime(self) -> None:
        """A stream fed one byte at a time yields exactly what it yields fed at once."""
        framer = StreamFramer()
        self.assertEqual(feedAll(framer, [STREAM[i : i + 1] for i in range(len(STREAM))]), EXPECTED)
        self.assertEqual(framer.buffered, 0)

    def test_framedMessagesParse(self) -> None:
        """Each framed message parses, with the body cut exactly."""
        for item in StreamFramer().feed(STREAM):
            if isinstance(item, bytes):
                self.assertEqual(parseMessage(item).toBytes(), item)
        (framed,) = StreamFramer().feed(INVITE)
        assert isinstance(framed, bytes)
        message = parseMessage(framed)
        assert isinstance(message, Request)
        self.assertEqual(message.body, SDP)

    def test_bodyHoldingBlankLines(self) -> None:
        """A CRLFCRLF inside a body is body, not the end of a header section or a ping."""
        body = b"\r\n\r\nmore\r\n\r\n"
        data = OPTIONS.replace(b"l: 0", b"l: " + str(len(body)).encode()) + body
        self.assertEqual(StreamFramer().feed(data + OPTIONS), [data, OPTIONS])

    def test_pingAlone(self) -> None:
        """A double CRLF between messages is a keepalive ping; half of one waits for more."""
        framer = StreamFramer()
        self.assertIs(KEEPALIVE, framer.feed(PING)[0])
        self.assertEqual(framer.feed(b"\r\n\r"), [])
        self.assertEqual(framer.buffered, 3)
        self.assertEqual(framer.feed(b"\n"), [KEEPALIVE])
        self.assertEqual(framer.buffered, 0)

    def test_pongSkipped(self) -> None:
        """A single CRLF (a pong) before a message yields nothing and does not disturb framing."""
        framer = StreamFramer()
        self.assertEqual(framer.feed(PONG), [])
        self.assertEqual(framer.feed(b"O"), [])
        self.assertEqual(framer.buffered, 1)
        self.assertEqual(framer.feed(OPTIONS[1:] + PONG), [OPTIONS])
        self.assertEqual(framer.feed(b"x"), [])
        self.assertEqual(framer.buffered, 1)

    def test_contentLengthAnywhere(self) -> None:
        """Content-Length is found wherever it sits among the headers."""
        data = b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 2\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n\r\nhi"
        self.assertEqual(StreamFramer().feed(data + data), [data, data])

    def test_contentLengthForms(self) -> None:
        """Compact, oddly spaced and folded Content-Length values frame as the parser reads them."""
        for header in [b"l: 2", b"L:2", b"content-LENGTH   :   2  ", b"Content-Length:\r\n  2"]:
            data = b"MESSAGE sip:a@b SIP/2.0\r\nVia: x\r\n" + header + b"\r\nX: y\r\n\r\nhi"
            self.assertEqual(StreamFramer().feed(data + OPTIONS), [data, OPTIONS], header)

    def test_lookalikeIgnored(self) -> None:
        """Lines that only look like Content-Length (folded text, other names, the body) do not count."""
        data = (
            b"MESSAGE sip:a@b SIP/2.0\r\nX: a\r\n l: 99\r\nLength: 99\r\nCL: 99\r\n"
            b"Content-Length: 2\r\n\r\nhi"
        )
        self.assertEqual(StreamFramer().feed(data + OPTIONS), [data, OPTIONS])

    def test_bareLFLineIsNotAHeader(self) -> None:
        """A Content-Length hidden behind a bare LF is not a header, as `parseMessage` agrees."""
        data = b"MESSAGE sip:a@b SIP/2.0\r\nX: a\nl: 99\r\nContent-Length: 2\r\n\r\nhi"
        self.assertEqual(StreamFramer().feed(data + OPTIONS), [data, OPTIONS])
        self.assertRaises(SIPParseError, parseMessage, data)

    def test_missingContentLength(self) -> None:
        """A stream message without Content-Length cannot be framed."""
        data = OPTIONS.replace(b"l: 0\r\n", b"")
        self.assertRaises(SIPParseError, StreamFramer().feed, data)

    def test_badContentLength(self) -> None:
        """Negative, non-numeric, non-ASCII and conflicting Content-Lengths end the stream."""
        for bad in [b"l: -999", b"l: x", b"l: \xb2", b"l: 13\r\nContent-Length: 5", b"l: 12345678901"]:
            data = OPTIONS.replace(b"l: 0", bad)
            with self.assertRaises(SIPParseError, msg=bad):
                StreamFramer().feed(data)

    def test_atLimit(self) -> None:
        """A message of exactly the size limit is framed."""
        self.assertEqual(StreamFramer(len(INVITE)).feed(INVITE), [INVITE])

    def test_declaredLengthOverLimit(self) -> None:
        """A Content-Length taking the message past the limit is refused as soon as the headers end."""
        head = OPTIONS.replace(b"l: 0", b"l: 60000")
        framer = StreamFramer(len(head) + 59999)
        error = self.assertRaises(SIPParseError, framer.feed, head)
        self.assertEqual(error.status, 513)

    def test_declaredLengthOverLimitByteByByte(self) -> None:
        """Fed a byte at a time, the refusal comes with the header section's last byte."""
        head = OPTIONS.replace(b"l: 0", b"l: 60000")
        framer = StreamFramer(1000)
        for byte in range(len(head) - 1):
            self.assertEqual(framer.feed(head[byte : byte + 1]), [])
        self.assertRaises(SIPParseError, framer.feed, head[-1:])

    def test_headerSectionOverLimit(self) -> None:
        """A header section that grows past the limit is refused then, without waiting for its end."""
        framer = StreamFramer(1000)
        self.assertEqual(framer.feed(b"OPTIONS sip:a@b SIP/2.0\r\n"), [])
        line = b"X-Padding: " + b"a" * 87 + b"\r\n"  # 100 bytes
        fed = 25
        while fed + len(line) <= 1000:
            self.assertEqual(framer.feed(line), [])
            fed += len(line)
        self.assertLessEqual(framer.buffered, 1000)
        error = self.assertRaises(SIPParseError, framer.feed, line)
        self.assertEqual(error.status, 513)

    def test_crGarbageOverLimit(self) -> None:
        """CRs that never make a ping or pong cannot make the framer buffer without bound."""
        framer = StreamFramer(100)
        self.assertEqual(framer.feed(b"\r" * 100), [])
        self.assertRaises(SIPParseError, framer.feed, b"\r")

    def test_keepaliveRepr(self) -> None:
        """The keepalive marker is one shared `Keepalive` instance."""
        self.assertIsInstance(KEEPALIVE, Keepalive)
        self.assertEqual(repr(KEEPALIVE), "KEEPALIVE")
