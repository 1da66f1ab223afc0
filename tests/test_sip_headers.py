"""Tests for `sbc.sip.headers`: header names, the header list and the structured headers."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from sbc.sip import structured
from sbc.sip.errors import SIPParseError
from sbc.sip.headers import (
    COMPACT_FORMS,
    LIST_HEADERS,
    HeaderField,
    Headers,
    displayName,
    foldValue,
    headerKey,
    lwsSplit,
    parseContentLength,
    splitList,
)
from sbc.sip.structured import CSeq, NameAddr, Via, parseCSeq, parseNameAddr, parseVia
from sbc.sip.uri import PARSE_CACHE_SIZE, URI


class HeaderNameTests(SynchronousTestCase):
    """Header names are case-insensitive and compact forms fold into the long ones."""

    def test_caseInsensitive(self) -> None:
        """Any spelling of a name gives the same lower-case key."""
        for name in ["Call-ID", "call-id", "CALL-ID", "cAlL-iD"]:
            self.assertEqual(headerKey(name), "call-id")

    def test_rfc3261CompactForms(self) -> None:
        """The compact forms of RFC 3261 (and RFC 3265, 3903 era) map to their long names."""
        expected = {
            "i": "call-id",
            "m": "contact",
            "f": "from",
            "t": "to",
            "v": "via",
            "l": "content-length",
            "c": "content-type",
            "k": "supported",
            "s": "subject",
            "e": "content-encoding",
            "o": "event",
            "u": "allow-events",
        }
        for short, long in expected.items():
            self.assertEqual(headerKey(short), long)
            self.assertEqual(headerKey(short.upper()), long)

    def test_everyCompactForm(self) -> None:
        """Every entry of COMPACT_FORMS, in either case, looks up as its long name."""
        self.assertGreaterEqual(len(COMPACT_FORMS), 20)
        for short, long in COMPACT_FORMS.items():
            self.assertEqual(len(short), 1)
            self.assertEqual(headerKey(short), long)
            self.assertEqual(headerKey(short.upper()), long)
            self.assertEqual(headerKey(long), long)

    def test_compactLookupInHeaders(self) -> None:
        """A header received compact is found by its long name and the other way round."""
        headers = Headers([HeaderField(headerKey("i"), "abc", "i: abc")])
        self.assertEqual(headers.get("Call-ID"), "abc")
        self.assertEqual(headers.get("I"), "abc")
        self.assertIn("call-id", headers)

    def test_displayName(self) -> None:
        """Names we write ourselves use the usual capitalisation, with RFC special cases."""
        self.assertEqual(displayName("call-id"), "Call-ID")
        self.assertEqual(displayName("cseq"), "CSeq")
        self.assertEqual(displayName("www-authenticate"), "WWW-Authenticate")
        self.assertEqual(displayName("content-length"), "Content-Length")
        self.assertEqual(displayName("x-custom-thing"), "X-Custom-Thing")


class SplitListTests(SynchronousTestCase):
    """`splitList` splits list headers on commas outside quotes and ``<>``."""

    def test_plain(self) -> None:
        """Commas split, and each element loses its surrounding LWS."""
        self.assertEqual(splitList("INVITE, ACK ,\tBYE"), ["INVITE", "ACK", "BYE"])

    def test_single(self) -> None:
        """A value without commas is one element."""
        self.assertEqual(splitList("  timer "), ["timer"])

    def test_commaInQuotes(self) -> None:
        """A comma in a quoted display name does not split."""
        self.assertEqual(
            splitList('"Bell, Alexander" <sip:a@b>, <sip:c@d>'),
            ['"Bell, Alexander" <sip:a@b>', "<sip:c@d>"],
        )

    def test_escapedQuote(self) -> None:
        """An escaped quote does not end a quoted string."""
        self.assertEqual(splitList('"a\\", b" <sip:a@b>, <sip:c@d>'), ['"a\\", b" <sip:a@b>', "<sip:c@d>"])

    def test_commaInAngles(self) -> None:
        """A comma inside ``<>`` (allowed in a URI's user part) does not split."""
        self.assertEqual(
            splitList("<sip:a,b@example.com>;q=1, <sip:c@d>"),
            ["<sip:a,b@example.com>;q=1", "<sip:c@d>"],
        )

    def test_unterminatedQuote(self) -> None:
        """An unterminated quoted string is refused."""
        self.assertRaises(SIPParseError, splitList, '"a, <sip:a@b>')

    def test_lwsOnly(self) -> None:
        """Only SP and HTAB are stripped; a no-break space is part of the element."""
        self.assertEqual(splitList("a\xa0, b"), ["a\xa0", "b"])
        self.assertEqual(lwsSplit(" a\t b\xa0c "), ["a", "b\xa0c"])


class HeadersTests(SynchronousTestCase):
    """The ordered header list."""

    def headers(self) -> Headers:
        return Headers.of(
            ("Via", "SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2"),
            ("v", "SIP/2.0/UDP c;branch=z9hG4bK3"),
            ("From", "<sip:a@b>;tag=1"),
            ("Date", "Sat, 13 Nov 2010 23:29:00 GMT"),
            ("Authorization", 'Digest username="a", realm="b"'),
            ("X-Empty", ""),
        )

    def test_get(self) -> None:
        """`get` gives the first field's whole value, or None when absent."""
        headers = self.headers()
        self.assertEqual(headers.get("via"), "SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2")
        self.assertEqual(headers.get("x-empty"), "")
        self.assertIsNone(headers.get("to"))

    def test_getAllSplitsListHeaders(self) -> None:
        """`getAll` splits list headers on commas, across every field of the name."""
        self.assertIn("via", LIST_HEADERS)
        self.assertEqual(
            self.headers().getAll("Via"),
            [
                "SIP/2.0/UDP a;branch=z9hG4bK1",
                "SIP/2.0/UDP b;branch=z9hG4bK2",
                "SIP/2.0/UDP c;branch=z9hG4bK3",
            ],
        )

    def test_getAllKeepsOtherHeadersWhole(self) -> None:
        """Date and Authorization hold commas in their grammar and are never split."""
        headers = self.headers()
        self.assertEqual(headers.getAll("date"), ["Sat, 13 Nov 2010 23:29:00 GMT"])
        self.assertEqual(headers.getAll("authorization"), ['Digest username="a", realm="b"'])
        self.assertEqual(headers.getAll("route"), [])

    def test_countContainsLenIter(self) -> None:
        """`count`, ``in``, ``len`` and iteration see fields, not list elements."""
        headers = self.headers()
        self.assertEqual(headers.count("VIA"), 2)
        self.assertIn("From", headers)
        self.assertNotIn("To", headers)
        self.assertNotIn(42, headers)
        self.assertEqual(len(headers), 6)
        self.assertEqual([f.key for f in headers][:3], ["via", "via", "from"])

    def test_addAppends(self) -> None:
        """`add` appends a field at the end."""
        headers = self.headers()
        headers.add("Route", "<sip:p;lr>")
        self.assertEqual(headers.fields[-1].key, "route")
        self.assertEqual(headers.fields[-1].toText(), "Route: <sip:p;lr>")

    def test_addFirst(self) -> None:
        """``add(first=True)`` puts the field before every other field of its name."""
        headers = self.headers()
        headers.add("Via", "SIP/2.0/TCP me;branch=z9hG4bKme", first=True)
        self.assertEqual(headers.fields[0].value, "SIP/2.0/TCP me;branch=z9hG4bKme")
        headers.add("Record-Route", "<sip:me;lr>", first=True)
        self.assertEqual(headers.fields[-1].key, "record-route")

    def test_set(self) -> None:
        """`set` replaces every field of the name by one, where the first one was."""
        headers = self.headers()
        headers.set("via", "SIP/2.0/UDP x")
        self.assertEqual(headers.count("via"), 1)
        self.assertEqual(headers.fields[0].value, "SIP/2.0/UDP x")
        self.assertIsNone(headers.fields[0].raw)
        headers.set("To", "<sip:t@t>")
        self.assertEqual(headers.fields[-1].toText(), "To: <sip:t@t>")

    def test_remove(self) -> None:
        """`remove` drops every field of the name, long or compact."""
        headers = self.headers()
        headers.remove("V")
        self.assertNotIn("via", headers)
        self.assertEqual(len(headers), 4)

    def test_copyIsIndependent(self) -> None:
        """A copy keeps raw text and is not changed by changes to the original."""
        headers = Headers([HeaderField("via", "x", "v:  x")])
        copy = headers.copy()
        headers.set("via", "y")
        self.assertEqual(copy.get("via"), "x")
        self.assertEqual(copy.toText(), "v:  x\r\n")

    def test_toText(self) -> None:
        """`toText` writes raw fields as received and new ones as ``Name: value``."""
        headers = Headers([HeaderField("subject", "a b", "s :  a\r\n b")])
        headers.add("call-id", "c1")
        self.assertEqual(headers.toText(), "s :  a\r\n b\r\nCall-ID: c1\r\n")


class ValueHelperTests(SynchronousTestCase):
    """The value helpers the parser and the stream framer share."""

    def test_foldValue(self) -> None:
        """Continuation lines join with one SP, LWS around each part dropped."""
        self.assertEqual(foldValue([" a "]), "a")
        self.assertEqual(foldValue(["  a", "   b", "\tc  "]), "a b c")

    def test_contentLength(self) -> None:
        """Content-Length values give the count, None when absent."""
        self.assertIsNone(parseContentLength([]))
        self.assertEqual(parseContentLength(["0"]), 0)
        self.assertEqual(parseContentLength(["150", "150"]), 150)

    def test_contentLengthRefused(self) -> None:
        """Conflicting, negative, non-ASCII or absurdly long values are refused."""
        for values in [["1", "2"], ["-999"], ["\xb2"], ["12345678901"], [""], ["1 2"]]:
            with self.assertRaises(SIPParseError, msg=repr(values)):
                parseContentLength(values)


class ViaTests(SynchronousTestCase):
    """`parseVia` and the `Via` value (RFC 3261 section 20.42, RFC 3581)."""

    def test_basic(self) -> None:
        """Transport, host, port and branch are read from a plain Via."""
        via = parseVia("SIP/2.0/UDP pc33.example.com:5066;branch=z9hG4bK776asdhds")
        self.assertEqual(via.transport, "UDP")
        self.assertEqual(via.host, "pc33.example.com")
        self.assertEqual(via.port, 5066)
        self.assertEqual(via.branch, "z9hG4bK776asdhds")
        self.assertEqual(via.version, "2.0")
        self.assertEqual(via.sentBy, "pc33.example.com:5066")
        self.assertIsNone(via.rport)
        self.assertIsNone(via.received)

    def test_rportFlag(self) -> None:
        """A bare rport reads as "" (present, no value)."""
        via = parseVia("SIP/2.0/UDP 192.0.2.1;rport;branch=z9hG4bKx")
        self.assertEqual(via.rport, "")
        self.assertIsNone(via.port)

    def test_rportAndReceived(self) -> None:
        """rport with a value and received are read as strings."""
        via = parseVia("SIP/2.0/UDP 10.0.0.1:5060;received=192.0.2.7;rport=40000;branch=z9hG4bKy")
        self.assertEqual(via.rport, "40000")
        self.assertEqual(via.received, "192.0.2.7")

    def test_ipv6(self) -> None:
        """An IPv6 sent-by keeps its brackets, with or without a port; received may be bare IPv6."""
        via = parseVia("SIP/2.0/TLS [2001:db8::9:1]:5061;branch=z9hG4bKz;received=2001:db8::9:255")
        self.assertEqual(via.host, "[2001:db8::9:1]")
        self.assertEqual(via.port, 5061)
        self.assertEqual(via.received, "2001:db8::9:255")
        self.assertIsNone(parseVia("SIP/2.0/UDP [::1]").port)
        self.assertEqual(parseVia("SIP/2.0/UDP [::1]").sentBy, "[::1]")

    def test_lws(self) -> None:
        """LWS around ``/``, ``:``, ``;`` and ``=`` is allowed, and the transport is upper-cased."""
        via = parseVia("SIP  / 2.0  / tcp     spindle.example.com : 5060  ;  branch  =   z9hG4bK9ikj8")
        self.assertEqual(via.transport, "TCP")
        self.assertEqual(via.host, "spindle.example.com")
        self.assertEqual(via.port, 5060)
        self.assertEqual(via.branch, "z9hG4bK9ikj8")

    def test_otherVersionKept(self) -> None:
        """A sent-protocol version other than 2.0 is read (so a 505 can be routed) and written back."""
        via = parseVia("SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw")
        self.assertEqual(via.version, "7.0")
        self.assertEqual(str(via), "SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw")

    def test_strAndWithParam(self) -> None:
        """`withParam` replaces a parameter of any case and `str` writes the Via back."""
        via = parseVia("SIP/2.0/UDP h:5060;RPORT;branch=z9hG4bKa")
        stamped = via.withParam("rport", "1234").withParam("received", "192.0.2.1")
        self.assertEqual(str(stamped), "SIP/2.0/UDP h:5060;branch=z9hG4bKa;rport=1234;received=192.0.2.1")
        self.assertEqual(str(Via("TCP", "[::1]", 5060)), "SIP/2.0/TCP [::1]:5060")

    def test_refused(self) -> None:
        """Broken Via values raise `SIPParseError`."""
        for text in [
            "",
            "SIP/2.0",
            "SIP/2.0/UDP",
            "SIP/2.0/UDP ",
            "HTTP/2.0/UDP host",
            "SIP/2.0/U@P host",
            "SIP/2.0/UDP ho<st",
            "SIP/2.0/UDP host:",
            "SIP/2.0/UDP host:99999",
            "SIP/2.0/UDP host:\xb2",
            "SIP/2.0/UDP host:5060:1",
            "SIP/2.0/UDP [::1",
            "SIP/2.0/UDP []",
            "SIP/2.0/UDP [zz::1]",
            "SIP/2.0/UDP [::1]5060",
            "SIP/2.0/UDP 192.0.2.15;;,;,,",
            "SIP/2.0/UDP host;branch=",
            "SIP/2.0/UDP host;br@nch=1",
        ]:
            with self.assertRaises(SIPParseError, msg=text):
                parseVia(text)


class ValueEqualityTests(SynchronousTestCase):
    def test_otherTypesAskedBack(self) -> None:
        """Via, CSeq and NameAddr leave comparison with another type to it (NotImplemented)."""

        def make() -> tuple[Via, CSeq, NameAddr]:
            return (Via("UDP", "h", 5060), CSeq(1, "INVITE"), NameAddr(URI("sip", host="h"), "A"))

        for value, same in zip(make(), make(), strict=True):
            self.assertEqual((value, hash(value)), (same, hash(same)))
            self.assertIs(value.__eq__(object()), NotImplemented)
            self.assertNotEqual(value, "text")


class CSeqTests(SynchronousTestCase):
    """`parseCSeq`."""

    def test_basic(self) -> None:
        """Number and method are read; leading zeros and LWS are allowed."""
        self.assertEqual(parseCSeq("4711 INVITE"), CSeq(4711, "INVITE"))
        self.assertEqual(parseCSeq("  0009 \t INVITE "), CSeq(9, "INVITE"))
        self.assertEqual(str(CSeq(1, "BYE")), "1 BYE")

    def test_range(self) -> None:
        """2**32-1 is the largest number; one more is refused."""
        self.assertEqual(parseCSeq("4294967295 ACK").number, 4294967295)
        self.assertRaises(SIPParseError, parseCSeq, "4294967296 ACK")

    def test_refused(self) -> None:
        """Missing parts, signs, non-ASCII digits and non-token methods are refused."""
        for text in ["", "1", "INVITE", "-1 INVITE", "1 INVITE x", "\xb2 INVITE", "1 IN<VITE", "1\xa0INVITE"]:
            with self.assertRaises(SIPParseError, msg=text):
                parseCSeq(text)


class NameAddrTests(SynchronousTestCase):
    """`parseNameAddr`: name-addr and addr-spec forms with header parameters."""

    def test_nameAddrQuoted(self) -> None:
        """A quoted display name, the URI in ``<>`` and header parameters are read apart."""
        value = parseNameAddr('"Bell, Alexander" <sip:a.g.bell@example.com;transport=tcp>;tag=433423')
        self.assertEqual(value.display, '"Bell, Alexander"')
        self.assertEqual(value.uri.user, "a.g.bell")
        self.assertEqual(value.uri.param("transport"), "tcp")
        self.assertEqual(value.tag, "433423")
        self.assertEqual(value.params, (("tag", "433423"),))

    def test_nameAddrTokens(self) -> None:
        """Unquoted display-name tokens are kept, joined by one SP."""
        value = parseNameAddr("token1~`   token2'+_ <sip:mundane@example.com>")
        self.assertEqual(value.display, "token1~` token2'+_")

    def test_tokenDirectlyBeforeAngle(self) -> None:
        """A display token directly followed by ``<`` is accepted (RFC 4475 section 3.1.1.6)."""
        value = parseNameAddr("caller<sip:caller@example.com>;tag=323")
        self.assertEqual(value.display, "caller")
        self.assertEqual(value.tag, "323")

    def test_noDisplay(self) -> None:
        """``<URI>`` alone has no display name."""
        value = parseNameAddr("<sip:a@b>")
        self.assertIsNone(value.display)
        self.assertEqual(str(value), "<sip:a@b>")

    def test_addrSpecParamsAreHeaderParams(self) -> None:
        """Without ``<>``, parameters after the URI belong to the header, not to the URI."""
        value = parseNameAddr("sip:+19725552222@gw1.example.net;unknownparam;tag=1")
        self.assertEqual(value.uri, URI("sip", user="+19725552222", host="gw1.example.net"))
        self.assertEqual(value.param("unknownparam"), "")
        self.assertEqual(value.tag, "1")

    def test_addrSpecWithReservedRefused(self) -> None:
        """An addr-spec holding ``?`` or ``,`` must be in ``<>``."""
        self.assertRaises(SIPParseError, parseNameAddr, "sip:user@example.com?Route=%3Csip:x%3E")

    def test_quotedParamValue(self) -> None:
        """A quoted header parameter value may hold ``;`` and ``<>``."""
        value = parseNameAddr('<sip:a@b>;+sip.instance="<urn:uuid:1;2>";expires=60')
        self.assertEqual(value.param("+sip.instance"), '"<urn:uuid:1;2>"')
        self.assertEqual(value.param("expires"), "60")

    def test_escapedQuoteInDisplay(self) -> None:
        """Quoted-pairs in a display name (even NUL) do not end it."""
        value = parseNameAddr('"J Rosenberg \\\\\\"" <sip:jdrosen@example.com>')
        self.assertEqual(value.display, '"J Rosenberg \\\\\\""')
        value = parseNameAddr('"NUL:\\\x00" <sip:x@example.com>')
        self.assertEqual(value.display, '"NUL:\\\x00"')

    def test_withParamAndStr(self) -> None:
        """`withParam` adds or replaces a header parameter; `str` writes name-addr form."""
        value = parseNameAddr("sip:a@b").withParam("tag", "x")
        self.assertEqual(str(value), "<sip:a@b>;tag=x")
        self.assertEqual(str(NameAddr(URI("sip", host="h"), '"D"')), '"D" <sip:h>')

    def test_refused(self) -> None:
        """Broken values raise `SIPParseError`."""
        for text in [
            "",
            '"unterminated <sip:a@b>',
            '"quoted" sip:a@b',
            "Bell, Alexander <sip:a@b>",
            "<sip:a@b",
            "<sip:a@b> junk",
            "<sip:a@b>;;",
            "<sip:a@b>;t@g=1",
            "<>",
            "< sip:a b@c >",
            "sip:a,b@c",
        ]:
            with self.assertRaises(SIPParseError, msg=text):
                parseNameAddr(text)


class NameAddrCacheTests(SynchronousTestCase):
    """From, To and Contact values are parsed once per distinct text, within a bound."""

    def test_sameTextSameObject(self) -> None:
        """The same value text gives back the same immutable NameAddr."""
        value = '"Alice" <sip:alice@atlanta.example.com>;tag=9fxced76sl'
        first = parseNameAddr(value)
        self.assertIs(parseNameAddr(value), first)
        self.assertEqual(first.tag, "9fxced76sl")

    def test_badValueNotCached(self) -> None:
        """A value that fails to parse fails every time and is not remembered."""
        for _ in range(2):
            self.assertRaises(SIPParseError, parseNameAddr, "<sip:alice@atlanta.example.com")
        self.assertNotIn("<sip:alice@atlanta.example.com", structured._NAME_ADDR_CACHE)

    def test_bounded(self) -> None:
        """Distinct values beyond the bound empty the cache instead of growing it."""
        for i in range(PARSE_CACHE_SIZE + 10):
            parseNameAddr(f"<sip:u{i}@example.com>;tag={i}")
        self.assertLessEqual(len(structured._NAME_ADDR_CACHE), PARSE_CACHE_SIZE)
