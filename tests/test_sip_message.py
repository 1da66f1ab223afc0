"""Tests for `sbc.sip.message`: parsing, validating and writing requests and responses."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from sbc.sip import message
from sbc.sip.errors import SIPParseError
from sbc.sip.headers import Headers
from sbc.sip.message import KNOWN_METHODS, Limits, MessageParseError, Request, Response, parseMessage
from sbc.sip.structured import CSeq
from sbc.sip.uri import CACHED_TEXT_LIMIT, URI, parseURI
from sbc.sip.validate import validateRequest, validateResponse

SDP = (
    b"v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.101\r\ns=-\r\nc=IN IP4 192.0.2.101\r\n"
    b"t=0 0\r\nm=audio 49172 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b'To: "Bob" <sip:bob@biloxi.example.com>\r\n'
    b'From: "Alice" <sip:alice@atlanta.example.com>;tag=1928301774\r\n'
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(SDP)).encode() + b"\r\n"
    b"\r\n" + SDP
)

RESPONSE = (
    b"SIP/2.0 180 Ringing\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKnashds8;received=192.0.2.1\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710\r\n"
    b"Contact: <sip:bob@192.0.2.4>\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


def request(data: bytes = INVITE, limits: Limits | None = None) -> Request:
    message = parseMessage(data) if limits is None else parseMessage(data, limits)
    assert isinstance(message, Request)
    return message


def response(data: bytes = RESPONSE) -> Response:
    message = parseMessage(data)
    assert isinstance(message, Response)
    return message


def replaceLine(data: bytes, old: bytes, new: bytes) -> bytes:
    assert data.count(old) == 1, old
    return data.replace(old, new)


class RoundTripTests(SynchronousTestCase):
    """Messages the SBC does not touch are written back byte for byte."""

    def test_request(self) -> None:
        """A request parses into its parts and writes back identically."""
        message = request()
        self.assertEqual(message.method, "INVITE")
        self.assertEqual(message.uri, parseURI("sip:bob@biloxi.example.com"))
        self.assertEqual(message.version, "SIP/2.0")
        self.assertEqual(message.body, SDP)
        self.assertEqual(message.toBytes(), INVITE)

    def test_response(self) -> None:
        """A response parses into its parts and writes back identically."""
        message = response()
        self.assertEqual(message.status, 180)
        self.assertEqual(message.reason, "Ringing")
        self.assertEqual(message.body, b"")
        self.assertEqual(message.toBytes(), RESPONSE)

    def test_foldedAndOddSpacing(self) -> None:
        """Folded headers, odd LWS and compact names are written back exactly, unfolded on read."""
        data = (
            b"OPTIONS sip:user@example.com SIP/2.0\r\n"
            b"Via  : SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=z9hG4bK390skdjuw\r\n"
            b"TO :\r\n sip:user@example.com ;   tag    = 1918181833n\r\n"
            b"f:<sip:caller@example.net>;tag=1\r\n"
            b"i:   x1  \r\n"
            b"cseq: 0009\r\n  OPTIONS\r\n"
            b"NewFangledHeader:   newfangled value\r\n continued newfangled value\r\n"
            b"UnknownHeaderWithUnusualValue: ;;,,;;,;\r\n"
            b"l: 0\r\n"
            b"\r\n"
        )
        message = request(data)
        self.assertEqual(message.toBytes(), data)
        self.assertEqual(
            message.headers.get("newfangledheader"), "newfangled value continued newfangled value"
        )
        self.assertEqual(message.headers.get("to"), "sip:user@example.com ;   tag    = 1918181833n")
        self.assertEqual(message.callId, "x1")
        self.assertEqual(message.cseq(), CSeq(9, "OPTIONS"))
        self.assertEqual(message.topVia().host, "192.0.2.2")
        self.assertEqual(message.toHeader().tag, "1918181833n")
        validateRequest(message)

    def test_canonicalLinesKeepOneString(self) -> None:
        """A "Name: value" line spelt as we write it keeps only its value; others keep the line."""
        data = (
            b"OPTIONS sip:user@example.com SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP 192.0.2.2;branch=z9hG4bK390skdjuw\r\n"
            b"to: <sip:user@example.com>\r\n"
            b"From:<sip:caller@example.net>;tag=1\r\n"
            b"Call-ID: x1 \r\n"
            b"CSeq:  9 OPTIONS\r\n"
            b"Content-Length: 0\r\n"
            b"\r\n"
        )
        message = request(data)
        raw = {field.key: field.raw for field in message.headers}
        self.assertEqual(raw["via"], None)
        self.assertEqual(raw["content-length"], None)
        self.assertEqual(raw["to"], "to: <sip:user@example.com>")
        self.assertEqual(raw["from"], "From:<sip:caller@example.net>;tag=1")
        self.assertEqual(raw["call-id"], "Call-ID: x1 ")
        self.assertEqual(raw["cseq"], "CSeq:  9 OPTIONS")
        self.assertEqual(message.toBytes(), data)

    def test_repeatedLinesShareFields(self) -> None:
        """A line seen before gives the same (never changed) field; a long line is not kept."""
        long = "X-Long: " + "v" * CACHED_TEXT_LIMIT
        data = (
            b"OPTIONS sip:user@example.com SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP 192.0.2.2;branch=z9hG4bK390skdjuw\r\n"
            b"To: <sip:user@example.com>\r\n"
            b"From: <sip:caller@example.net>;tag=1\r\n"
            b"Call-ID: shared-1\r\n"
            b"CSeq: 9 OPTIONS\r\n" + long.encode() + b"\r\n"
            b"Content-Length: 0\r\n"
            b"\r\n"
        )
        first, second = request(data), request(data)
        for a, b in zip(first.headers, second.headers, strict=True):
            if a.key == "x-long":
                self.assertIsNot(a, b)
            else:
                self.assertIs(a, b)
        self.assertNotIn(long, message._LINES)
        self.assertEqual(second.toBytes(), data)

    def test_requestLineKeptAsReceived(self) -> None:
        """A Request-URI that `str` would normalise (scheme case, port zeros) is written back as sent."""
        data = replaceLine(
            INVITE, b"INVITE sip:bob@biloxi.example.com ", b"INVITE SIP:bob@biloxi.example.com:05060 "
        )
        message = request(data)
        self.assertEqual(message.uri.scheme, "sip")
        self.assertEqual(message.uri.port, 5060)
        self.assertEqual(message.toBytes(), data)

    def test_requestLineRewrittenWhenChanged(self) -> None:
        """Once method, URI or version changes, the request line is written from the new values."""
        message = request()
        message.uri = parseURI("sip:bob@192.0.2.4:5062;transport=tcp")
        self.assertTrue(
            message.toBytes().startswith(b"INVITE sip:bob@192.0.2.4:5062;transport=tcp SIP/2.0\r\n")
        )
        message = request()
        message.method = "ACK"
        self.assertTrue(message.toBytes().startswith(b"ACK sip:bob@biloxi.example.com SIP/2.0\r\n"))

    def test_changedHeaderOnly(self) -> None:
        """Setting one header rewrites that one; every other line keeps its bytes."""
        data = replaceLine(INVITE, b"Max-Forwards: 70\r\n", b"max-forwards:   70\r\n")
        message = request(data)
        message.headers.set("Call-ID", "new")
        expected = replaceLine(
            data, b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n", b"Call-ID: new\r\n"
        )
        self.assertEqual(message.toBytes(), expected)

    def test_leadingCRLFSkipped(self) -> None:
        """CRLFs before the start line are ignored (RFC 3261 section 7.5)."""
        message = request(b"\r\n\r\n\r\n" + INVITE)
        self.assertEqual(message.toBytes(), INVITE)

    def test_constructed(self) -> None:
        """Messages built in code write a start line, ``Name: value`` fields and the body."""
        headers = Headers.of(("Via", "SIP/2.0/UDP h;branch=z9hG4bKx"), ("call-id", "c"))
        built = Request("OPTIONS", URI("sip", host="example.com"), headers)
        self.assertEqual(
            built.toBytes(),
            b"OPTIONS sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nCall-ID: c\r\n\r\n",
        )
        self.assertEqual(Response(404).toBytes(), b"SIP/2.0 404 Not Found\r\n\r\n")
        self.assertEqual(Response(499).reason, "Unknown")
        self.assertEqual(Response(200, "Fine").startLine(), "SIP/2.0 200 Fine")


class HeaderAccessTests(SynchronousTestCase):
    """Header lookups on parsed messages."""

    def test_caseInsensitiveNames(self) -> None:
        """Headers are found whatever the case of the name in the message or the lookup."""
        data = replaceLine(INVITE, b"Max-Forwards: 70", b"MaX-fOrWaRdS: 70")
        message = request(data)
        self.assertEqual(message.headers.get("max-forwards"), "70")
        self.assertEqual(message.headers.get("MAX-FORWARDS"), "70")

    def test_everyCompactFormInAMessage(self) -> None:
        """A message written with the compact forms reads like one written with long names."""
        data = (
            b"INVITE sip:bob@example.com SIP/2.0\r\n"
            b"v: SIP/2.0/UDP h;branch=z9hG4bKc\r\n"
            b"f: <sip:a@example.com>;tag=1\r\n"
            b"t: <sip:bob@example.com>\r\n"
            b"i: compact@h\r\n"
            b"CSeq: 1 INVITE\r\n"
            b"m: <sip:a@h>\r\n"
            b"k: 100rel, timer\r\n"
            b"s: hello\r\n"
            b"e: gzip\r\n"
            b"o: presence\r\n"
            b"u: dialog\r\n"
            b"a: *;audio\r\n"
            b"b: <sip:ref@example.com>\r\n"
            b"d: proxy\r\n"
            b"j: *;video\r\n"
            b"n: <https://example.com/cert>\r\n"
            b"r: <sip:c@example.com>\r\n"
            b"x: 1800\r\n"
            b"y: abc\r\n"
            b"c: application/sdp\r\n"
            b"l: 3\r\n"
            b"\r\nabc"
        )
        message = request(data)
        get = message.headers.get
        self.assertEqual(message.topVia().branch, "z9hG4bKc")
        self.assertEqual(message.fromHeader().tag, "1")
        self.assertEqual(message.toHeader().uri.user, "bob")
        self.assertEqual(message.callId, "compact@h")
        self.assertEqual(str(message.contacts()[0].uri), "sip:a@h")
        self.assertEqual(message.headers.getAll("supported"), ["100rel", "timer"])
        self.assertEqual(get("subject"), "hello")
        self.assertEqual(get("content-encoding"), "gzip")
        self.assertEqual(get("event"), "presence")
        self.assertEqual(get("allow-events"), "dialog")
        self.assertEqual(get("accept-contact"), "*;audio")
        self.assertEqual(get("referred-by"), "<sip:ref@example.com>")
        self.assertEqual(get("request-disposition"), "proxy")
        self.assertEqual(get("reject-contact"), "*;video")
        self.assertEqual(get("identity-info"), "<https://example.com/cert>")
        self.assertEqual(get("refer-to"), "<sip:c@example.com>")
        self.assertEqual(get("session-expires"), "1800")
        self.assertEqual(get("identity"), "abc")
        self.assertEqual(get("content-type"), "application/sdp")
        self.assertEqual(message.body, b"abc")
        self.assertEqual(message.toBytes(), data)
        validateRequest(message)

    def test_structuredViews(self) -> None:
        """The on-demand views read Call-ID, CSeq, Vias, From, To and Contacts."""
        data = replaceLine(
            INVITE,
            b"Max-Forwards: 70\r\n",
            b"Via: SIP/2.0/TCP [2001:db8::1]:5061;branch=z9hG4bK2, SIP/2.0/UDP h3;branch=z9hG4bK3\r\n"
            b"Max-Forwards: 70\r\n",
        )
        message = request(data)
        self.assertEqual(message.callId, "a84b4c76e66710@pc33.atlanta.example.com")
        self.assertEqual(message.cseq(), CSeq(314159, "INVITE"))
        self.assertEqual(message.topVia().rport, "")
        self.assertEqual(
            [v.host for v in message.vias()], ["pc33.atlanta.example.com", "[2001:db8::1]", "h3"]
        )
        self.assertEqual(message.fromHeader().tag, "1928301774")
        self.assertIsNone(message.toHeader().tag)
        self.assertEqual(message.contacts()[0].uri.host, "pc33.atlanta.example.com")

    def test_starContact(self) -> None:
        """``Contact: *`` is left to the registrar: `contacts` skips it."""
        data = replaceLine(INVITE, b"Contact: <sip:alice@pc33.atlanta.example.com>", b"Contact: *")
        self.assertEqual(request(data).contacts(), [])

    def test_missingHeadersRaise(self) -> None:
        """Views of absent headers raise `SIPParseError`, not KeyError or IndexError."""
        message = Request("OPTIONS", URI("sip", host="h"))
        for view in [
            lambda: message.callId,
            message.cseq,
            message.topVia,
            message.fromHeader,
            message.toHeader,
        ]:
            self.assertRaises(SIPParseError, view)
        self.assertEqual(message.vias(), [])
        self.assertEqual(message.contacts(), [])


class BodyTests(SynchronousTestCase):
    """Bodies stay bytes and are framed by Content-Length."""

    def test_nonUTF8Body(self) -> None:
        """A body that is not UTF-8 (NUL, bare CR/LF, high octets) comes back as the same bytes."""
        body = b"\x00\xff\xfe\r\r\n\n\x80binary\r\n\r\n"
        data = replaceLine(INVITE, b"Content-Length: " + str(len(SDP)).encode(), b"Content-Length: 18")
        data = data[: -len(SDP)] + body
        message = request(data)
        self.assertEqual(message.body, body)
        self.assertIsInstance(message.body, bytes)
        self.assertEqual(message.toBytes(), data)

    def test_noContentLengthRunsToEnd(self) -> None:
        """Without Content-Length the body is the rest of the datagram."""
        data = replaceLine(INVITE, b"Content-Length: " + str(len(SDP)).encode() + b"\r\n", b"")
        self.assertEqual(request(data).body, SDP)

    def test_extraOctetsIgnored(self) -> None:
        """Octets after Content-Length's count are not part of the message."""
        message = request(INVITE + b"INVITE sip:x@y SIP/2.0\r\n\r\n")
        self.assertEqual(message.body, SDP)
        self.assertEqual(message.toBytes(), INVITE)

    def test_contentLengthTooLarge(self) -> None:
        """A Content-Length beyond the datagram is a 400 that can still be answered."""
        error = self.assertRaises(MessageParseError, parseMessage, INVITE[:-1])
        self.assertEqual(error.status, 400)
        self.assertEqual(error.method, "INVITE")
        assert error.headers is not None
        self.assertEqual(error.headers.get("call-id"), "a84b4c76e66710@pc33.atlanta.example.com")

    def test_badContentLength(self) -> None:
        """Negative, non-numeric, non-ASCII-digit and conflicting Content-Lengths raise SIPParseError."""
        length = b"Content-Length: " + str(len(SDP)).encode()
        for bad in [
            b"Content-Length: -999",
            b"Content-Length: ten",
            b"Content-Length: \xb2",
            b"l: 1\r\nl: 2",
        ]:
            with self.assertRaises(MessageParseError, msg=bad):
                parseMessage(replaceLine(INVITE, length, bad))

    def test_setBody(self) -> None:
        """`setBody` keeps Content-Length (and Content-Type when given) true to the new body."""
        message = request()
        message.setBody(b"hello", "text/plain")
        self.assertEqual(message.headers.get("content-length"), "5")
        self.assertEqual(message.headers.get("content-type"), "text/plain")
        self.assertTrue(message.toBytes().endswith(b"Content-Length: 5\r\n\r\nhello"))
        reparsed = request(message.toBytes())
        self.assertEqual(reparsed.body, b"hello")


class LimitTests(SynchronousTestCase):
    """Size and header-count limits."""

    def test_oversize(self) -> None:
        """A message over maxMessageSize is refused with 513; one at the limit parses."""
        limits = Limits(maxMessageSize=len(INVITE))
        self.assertEqual(request(INVITE, limits).body, SDP)
        error = self.assertRaises(SIPParseError, parseMessage, INVITE + b"x", limits)
        self.assertEqual(error.status, 513)

    def test_defaultOversize(self) -> None:
        """The default limit refuses a 64 KiB + 1 datagram with 513."""
        error = self.assertRaises(SIPParseError, parseMessage, INVITE + b"x" * 65536)
        self.assertEqual(error.status, 513)

    def test_headerCount(self) -> None:
        """maxHeaders fields are accepted and one more is refused; a folded field counts once."""
        base = b"OPTIONS sip:a@b SIP/2.0\r\n"
        limits = Limits(maxHeaders=10)
        ok = base + b"X: 1\r\n" * 9 + b"Y: a\r\n b\r\n c\r\n\r\n"
        self.assertEqual(len(request(ok, limits).headers), 10)
        over = base + b"X: 1\r\n" * 11 + b"\r\n"
        self.assertRaises(SIPParseError, parseMessage, over, limits)

    def test_defaultHeaderCount(self) -> None:
        """The default Limits refuses more than 256 header fields."""
        self.assertEqual(Limits().maxHeaders, 256)
        data = b"OPTIONS sip:a@b SIP/2.0\r\n" + b"X: 1\r\n" * 257 + b"\r\n"
        self.assertRaises(SIPParseError, parseMessage, data)


class MalformedTests(SynchronousTestCase):
    """Malformed input raises `SIPParseError`, answerable where the request line is the problem."""

    def test_errorDefaults(self) -> None:
        """A parse error is a ValueError with a reason and status 400 unless told otherwise."""
        error = SIPParseError("why")
        self.assertIsInstance(error, ValueError)
        self.assertEqual((error.reason, error.status), ("why", 400))
        self.assertEqual(SIPParseError("big", 513).status, 513)
        derived = MessageParseError("x", method="BYE")
        self.assertIsInstance(derived, SIPParseError)
        self.assertEqual((derived.status, derived.method, derived.headers), (400, "BYE", None))

    def test_empty(self) -> None:
        """Empty or blank input is refused."""
        for data in [b"", b"\r\n", b"\r\n\r\n", b"\r\n\r\n\r\n\r\n"]:
            self.assertRaises(SIPParseError, parseMessage, data)

    def test_bareLineEnds(self) -> None:
        """A bare LF or CR in the header section is refused, so no peer can read it as a line end."""
        for bad in [b"X-Foo: a\nVia: SIP/2.0/UDP evil", b"X-Foo: a\rb", b"X-Foo: a\n"]:
            data = replaceLine(INVITE, b"Max-Forwards: 70", b"Max-Forwards: 70\r\n" + bad)
            self.assertRaises(SIPParseError, parseMessage, data)
        self.assertRaises(SIPParseError, parseMessage, b"INVITE sip:a@b SIP/2.0\n\n")

    def test_badHeaderLines(self) -> None:
        """Header lines without a name, with a bad name, or folded before the first header are refused."""
        for bad in [b": x", b"no colon", b"Bad Name: x", b"B@d: x"]:
            data = replaceLine(INVITE, b"Max-Forwards: 70", bad)
            self.assertRaises(SIPParseError, parseMessage, data)
        self.assertRaises(SIPParseError, parseMessage, b"OPTIONS sip:a@b SIP/2.0\r\n folded: x\r\n\r\n")

    def test_badRequestLineIsAnswerable(self) -> None:
        """A broken Request-Line raises MessageParseError carrying method and headers for a 400."""
        for line in [
            b"INVITE  sip:bob@biloxi.example.com SIP/2.0",
            b"INVITE sip:bob@biloxi.example.com SIP/2.0 ",
            b"INVITE <sip:bob@biloxi.example.com> SIP/2.0",
            b"INVITE sip:bob@biloxi.example.com; lr SIP/2.0",
            b"INVITE sip:bob@biloxi.example.com?Route=%3Csip:x%3E SIP/2.0",
            b"INVITE sip:bob@biloxi.example.com HTTP/1.1",
            b"INVITE sip:bob@biloxi.example.com",
        ]:
            data = replaceLine(INVITE, b"INVITE sip:bob@biloxi.example.com SIP/2.0", line)
            error = self.assertRaises(MessageParseError, parseMessage, data)
            self.assertEqual(error.status, 400)
            self.assertEqual(error.method, "INVITE")
            self.assertIsNotNone(error.headers)

    def test_badMethod(self) -> None:
        """A method that is not a token is refused."""
        self.assertRaises(SIPParseError, parseMessage, b"IN<VITE sip:a@b SIP/2.0\r\n\r\n")

    def test_badStatusLine(self) -> None:
        """Status codes must be three ASCII digits from 100 to 699."""
        for line in [
            b"SIP/2.0 4294967301 x",
            b"SIP/2.0 099 x",
            b"SIP/2.0 700 x",
            b"SIP/2.0 2OO OK",
            b"SIP/2.0 \xb200 OK",
            b"SIP/2.0 200",
            b"SIP/2.0  200 OK",
        ]:
            data = replaceLine(RESPONSE, b"SIP/2.0 180 Ringing", line)
            self.assertRaises(SIPParseError, parseMessage, data)

    def test_emptyReason(self) -> None:
        """An empty reason phrase after the SP is accepted and kept."""
        data = replaceLine(RESPONSE, b"SIP/2.0 180 Ringing", b"SIP/2.0 180 ")
        message = response(data)
        self.assertEqual(message.reason, "")
        self.assertEqual(message.toBytes(), data)


class ValidateRequestTests(SynchronousTestCase):
    """`validateRequest` checks what a UAS needs before it acts."""

    def test_valid(self) -> None:
        """A well-formed request validates and gives its CSeq."""
        self.assertEqual(validateRequest(request()), CSeq(314159, "INVITE"))

    def test_missingHeaders(self) -> None:
        """Each of Via, To, From, Call-ID and CSeq is required."""
        for line in [
            b"Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport\r\n",
            b'To: "Bob" <sip:bob@biloxi.example.com>\r\n',
            b'From: "Alice" <sip:alice@atlanta.example.com>;tag=1928301774\r\n',
            b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n",
            b"CSeq: 314159 INVITE\r\n",
        ]:
            message = request(replaceLine(INVITE, line, b""))
            error = self.assertRaises(SIPParseError, validateRequest, message)
            self.assertEqual(error.status, 400)

    def test_version(self) -> None:
        """A version other than SIP/2.0 is refused with 505."""
        data = replaceLine(INVITE, b" SIP/2.0\r\nVia", b" SIP/7.0\r\nVia")
        error = self.assertRaises(SIPParseError, validateRequest, request(data))
        self.assertEqual(error.status, 505)

    def test_lowerCaseVersion(self) -> None:
        """The version is compared without regard to case."""
        data = replaceLine(INVITE, b" SIP/2.0\r\nVia", b" sip/2.0\r\nVia")
        validateRequest(request(data))
        self.assertEqual(request(data).toBytes(), data)

    def test_cseqMethodMismatch(self) -> None:
        """A known method whose CSeq names another method is refused."""
        data = replaceLine(INVITE, b"CSeq: 314159 INVITE", b"CSeq: 314159 OPTIONS")
        self.assertRaises(SIPParseError, validateRequest, request(data))

    def test_unknownMethodMismatchPasses(self) -> None:
        """An unknown method passes even with a mismatched CSeq, so the UAS can answer 501."""
        data = replaceLine(INVITE, b"INVITE sip:", b"NEWMETHOD sip:")
        message = request(data)
        self.assertEqual(validateRequest(message).method, "INVITE")
        self.assertNotIn(message.method, KNOWN_METHODS)

    def test_badValues(self) -> None:
        """Broken Via, CSeq, From, To, Contact or Max-Forwards values are refused."""
        for old, new in [
            (b"SIP/2.0/UDP pc33", b"SIP/2.0/UDP pc<33"),
            (b"CSeq: 314159 INVITE", b"CSeq: 4294967296 INVITE"),
            (b'From: "Alice" <sip', b'From: "Alice <sip'),
            (b'To: "Bob" <sip:bob@biloxi.example.com>', b"To: Bob, Jr <sip:bob@biloxi.example.com>"),
            (b"Contact: <sip:alice@pc33.atlanta.example.com>", b"Contact: sip:a@b?x=y"),
            (b"Max-Forwards: 70", b"Max-Forwards: -1"),
            (b"Max-Forwards: 70", b"Max-Forwards: \xb2"),
        ]:
            message = request(replaceLine(INVITE, old, new))
            with self.assertRaises(SIPParseError, msg=new):
                validateRequest(message)

    def test_duplicateSingleHeaders(self) -> None:
        """Two different Call-IDs are refused; an identical repeat is tolerated."""
        callId = b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
        self.assertRaises(
            SIPParseError,
            validateRequest,
            request(replaceLine(INVITE, callId, callId + b"Call-ID: other\r\n")),
        )
        validateRequest(request(replaceLine(INVITE, callId, callId + callId)))


class ValidateResponseTests(SynchronousTestCase):
    """`validateResponse` checks what a client transaction needs."""

    def test_valid(self) -> None:
        """A well-formed response validates and gives its CSeq."""
        self.assertEqual(validateResponse(response()), CSeq(314159, "INVITE"))

    def test_missing(self) -> None:
        """Via, Call-ID and CSeq are required."""
        for line in [
            b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKnashds8;received=192.0.2.1\r\n",
            b"Call-ID: a84b4c76e66710\r\n",
            b"CSeq: 314159 INVITE\r\n",
        ]:
            self.assertRaises(SIPParseError, validateResponse, response(replaceLine(RESPONSE, line, b"")))

    def test_version(self) -> None:
        """A response of another SIP version is refused."""
        data = replaceLine(RESPONSE, b"SIP/2.0 180", b"SIP/3.0 180")
        self.assertRaises(SIPParseError, validateResponse, response(data))

    def test_badCSeq(self) -> None:
        """A CSeq out of range is refused."""
        data = replaceLine(RESPONSE, b"CSeq: 314159 INVITE", b"CSeq: 9292394834772304023312 INVITE")
        self.assertRaises(SIPParseError, validateResponse, response(data))
