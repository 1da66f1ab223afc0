"""Tests for `sbc.sip.multipart`: multipart bodies (RFC 2046 section 5.1) as SIP carries them (RFC 5621)."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from sbc.sip.errors import SIPParseError
from sbc.sip.multipart import (
    MAX_DEPTH,
    MAX_PARTS,
    Part,
    boundaryOf,
    buildMultipart,
    mediaType,
    multipartType,
    parameters,
    parseMultipart,
)

SDP = b"v=0\r\no=- 1 1 IN IP4 192.0.2.77\r\ns=-\r\nc=IN IP4 192.0.2.77\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
# An ISUP IAM's first octets: binary, with a CRLF and a dash inside.
ISUP = b"\x01\x00\x49\x00\x00\x03\x02\x00\x07\x04\x10\r\n--\x00\x19\x88\x05"
SIPI = (
    b"--unique-boundary-1\r\n"
    b"Content-Type: application/sdp\r\n"
    b"\r\n" + SDP + b"\r\n"
    b"--unique-boundary-1\r\n"
    b"Content-Type: application/isup;version=itu-t92+;base=itu-t92+\r\n"
    b"Content-Disposition: signal;handling=optional\r\n"
    b"\r\n" + ISUP + b"\r\n"
    b"--unique-boundary-1--\r\n"
)
MIXED = 'multipart/mixed;boundary="unique-boundary-1"'


def multipart(boundary: str, *parts: bytes) -> bytes:
    """A multipart body from raw parts (headers, empty line, content each)."""
    delimiter = b"--" + boundary.encode()
    return b"".join(delimiter + b"\r\n" + part + b"\r\n" for part in parts) + delimiter + b"--\r\n"


class ContentTypeTests(SynchronousTestCase):
    def test_mediaType(self) -> None:
        """The media type is lower case without parameters; none gives ""."""
        self.assertEqual(mediaType("Multipart/Mixed ; boundary=x"), "multipart/mixed")
        self.assertEqual(mediaType(None), "")

    def test_boundaryQuotedOrNot(self) -> None:
        """A boundary may be a token or a quoted string (with separators and escapes)."""
        self.assertEqual(boundaryOf("multipart/mixed;boundary=abc-1"), "abc-1")
        self.assertEqual(boundaryOf('multipart/mixed; charset=x; Boundary="a b:c/d?"'), "a b:c/d?")
        self.assertEqual(boundaryOf('multipart/mixed;boundary="a\\:b"'), "a:b")

    def test_badBoundary(self) -> None:
        """No boundary, an empty or too long one, or one with bad characters is a SIPParseError."""
        for value in (
            "multipart/mixed",
            'multipart/mixed;boundary=""',
            "multipart/mixed;boundary=" + "a" * 71,
            'multipart/mixed;boundary="a\x00b"',
            'multipart/mixed;boundary="ends "',
            'multipart/mixed;boundary="unterminated',
            "multipart/mixed;boundary",
            "multipart/mixed;boundary=a@b",
        ):
            with self.assertRaises(SIPParseError, msg=value):
                boundaryOf(value)

    def test_parametersLowerCaseNames(self) -> None:
        """Parameter names fold to lower case; the first of a repeated name wins."""
        self.assertEqual(parameters('a/b; X=1; x=2; y="q"'), {"x": "1", "y": "q"})


class ParseTests(SynchronousTestCase):
    def test_sipI(self) -> None:
        """A SIP-I body splits into its SDP and ISUP parts, headers and content byte for byte."""
        sdp, isup = parseMultipart(SIPI, MIXED)
        self.assertEqual(sdp.mediaType, "application/sdp")
        self.assertEqual(sdp.body, SDP)
        self.assertEqual(isup.mediaType, "application/isup")
        self.assertEqual(isup.contentType, "application/isup;version=itu-t92+;base=itu-t92+")
        self.assertEqual(isup.header("CONTENT-DISPOSITION"), "signal;handling=optional")
        self.assertEqual(isup.body, ISUP)

    def test_preambleAndEpilogueIgnored(self) -> None:
        """Text before the first boundary and after the last is not a part."""
        body = b"This is a preamble\r\n" + SIPI + b"an epilogue\r\n"
        self.assertEqual(parseMultipart(body, MIXED), parseMultipart(SIPI, MIXED))

    def test_bareLineFeeds(self) -> None:
        """LF line ends are accepted as well as CRLF."""
        body = multipart("b", b"Content-Type: text/plain\r\n\r\nhello").replace(b"\r\n", b"\n")
        (part,) = parseMultipart(body, "multipart/mixed;boundary=b")
        self.assertEqual((part.mediaType, part.body), ("text/plain", b"hello"))

    def test_partWithoutHeaders(self) -> None:
        """A part with no headers is text/plain (RFC 2046), and an empty part is allowed."""
        first, second = parseMultipart(multipart("b", b"\r\nplain", b""), "multipart/mixed;boundary=b")
        self.assertEqual((first.headers, first.body, first.mediaType), ((), b"plain", "text/plain"))
        self.assertEqual(second, Part())

    def test_foldedPartHeader(self) -> None:
        """A folded part header is unfolded."""
        body = multipart("b", b"Content-Type: application/isup;\r\n version=itu-t92+\r\n\r\nx")
        (part,) = parseMultipart(body, "multipart/mixed;boundary=b")
        self.assertEqual(part.contentType, "application/isup; version=itu-t92+")

    def test_boundaryInsideALineIsContent(self) -> None:
        """The boundary counts only at the start of a line."""
        body = multipart("b", b"\r\nx --b y")
        (part,) = parseMultipart(body, "multipart/mixed;boundary=b")
        self.assertEqual(part.body, b"x --b y")

    def test_nested(self) -> None:
        """A multipart part is parsed into its own parts."""
        inner = multipart("in", b"Content-Type: application/sdp\r\n\r\n" + SDP)
        body = multipart("out", b"Content-Type: multipart/alternative;boundary=in\r\n\r\n" + inner)
        (outer,) = parseMultipart(body, "multipart/mixed;boundary=out")
        (sdp,) = outer.parts
        self.assertEqual(sdp.body, SDP)

    def test_malformed(self) -> None:
        """A body without its boundaries, with text after one, or a broken part header raises."""
        for body in (
            b"",
            b"no boundary at all",
            b"--unique-boundary-1\r\nContent-Type: text/plain\r\n\r\nunterminated\r\n",
            b"--unique-boundary-1--\r\n",
            b"--unique-boundary-1 trailing\r\n\r\nx\r\n--unique-boundary-1--\r\n",
            b"--unique-boundary-1\r\nno colon here\r\n\r\nx\r\n--unique-boundary-1--\r\n",
            b"--unique-boundary-1\r\n bad: fold\r\n\r\nx\r\n--unique-boundary-1--\r\n",
            b"--unique-boundary-1\r\nBad Name: x\r\n\r\nx\r\n--unique-boundary-1--\r\n",
            b"--unique-boundary-1\r\nContent-Type: \xff\r\n\r\nx\r\n--unique-boundary-1--\r\n",
        ):
            with self.assertRaises(SIPParseError, msg=body):
                parseMultipart(body, MIXED)

    def test_errorIsA400(self) -> None:
        """Malformed input raises the codec's SIPParseError with status 400."""
        with self.assertRaises(SIPParseError) as raised:
            parseMultipart(b"junk", MIXED)
        self.assertEqual(raised.exception.status, 400)


class BoundsTests(SynchronousTestCase):
    def test_partCap(self) -> None:
        """At most MAX_PARTS parts are read; one more raises."""
        parts = [b"\r\nx"] * MAX_PARTS
        self.assertEqual(len(parseMultipart(multipart("b", *parts), "multipart/mixed;boundary=b")), MAX_PARTS)
        with self.assertRaises(SIPParseError):
            parseMultipart(multipart("b", *parts, b"\r\nx"), "multipart/mixed;boundary=b")

    def test_partCapCountsNestedParts(self) -> None:
        """Parts of nested multiparts count against the same cap."""
        inner = multipart("in", *[b"\r\nx"] * MAX_PARTS)
        body = multipart("out", b"Content-Type: multipart/mixed;boundary=in\r\n\r\n" + inner)
        with self.assertRaises(SIPParseError):
            parseMultipart(body, "multipart/mixed;boundary=out")

    def test_depthCap(self) -> None:
        """Multiparts nest at most MAX_DEPTH deep."""

        def nested(depth: int) -> bytes:
            body = b"\r\nleaf"
            for level in range(depth):
                inner = multipart(f"b{level}", body)
                body = f"Content-Type: multipart/mixed;boundary=b{level}\r\n\r\n".encode() + inner
            return body

        deep = nested(MAX_DEPTH)  # a part holding MAX_DEPTH - 1 more levels below the top
        top = deep.split(b"\r\n\r\n", 1)[1]
        parseMultipart(top, f"multipart/mixed;boundary=b{MAX_DEPTH - 1}")
        deeper = nested(MAX_DEPTH + 1).split(b"\r\n\r\n", 1)[1]
        with self.assertRaises(SIPParseError):
            parseMultipart(deeper, f"multipart/mixed;boundary=b{MAX_DEPTH}")


class BuildTests(SynchronousTestCase):
    def test_roundTrip(self) -> None:
        """Built parts parse back to the same parts."""
        parts = parseMultipart(SIPI, MIXED)
        body = buildMultipart(parts, "sbc-1234")
        self.assertEqual(parseMultipart(body, multipartType("sbc-1234")), parts)
        self.assertTrue(body.startswith(b"--sbc-1234\r\nContent-Type: application/sdp\r\n\r\nv=0"))
        self.assertTrue(body.endswith(b"\r\n--sbc-1234--\r\n"))

    def test_typeQuotesWhenNeeded(self) -> None:
        """The Content-Type quotes a boundary that is not a token."""
        self.assertEqual(multipartType("abc"), "multipart/mixed;boundary=abc")
        self.assertEqual(multipartType("a:b", "related"), 'multipart/related;boundary="a:b"')
        self.assertEqual(boundaryOf(multipartType("a:b")), "a:b")

    def test_boundaryInContentRefused(self) -> None:
        """A part whose content holds the delimiter, no part, or a bad boundary cannot be built."""
        with self.assertRaises(SIPParseError):
            buildMultipart([Part((), b"x\r\n--sbc\r\ny")], "sbc")
        with self.assertRaises(SIPParseError):
            buildMultipart([], "sbc")
        with self.assertRaises(SIPParseError):
            buildMultipart([Part()], "")
