"""Tests for `sbc.sip.uri`: SIP, SIPS and tel URIs kept in their escaped form."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from sbc.sip import uri
from sbc.sip.errors import SIPParseError
from sbc.sip.uri import URI, formatParams, getParam, isDigits, parseParams, parseURI, unescape


class ParseURITests(SynchronousTestCase):
    """`parseURI` splits sip, sips, tel and other URIs into their parts."""

    def test_sipAllParts(self) -> None:
        """Every part of a full SIP URI lands in its own field, still escaped."""
        uri = parseURI("sip:al%69ce:secret@example.com:5070;transport=tcp;lr?Subject=hi&Priority=urgent")
        self.assertEqual(uri.scheme, "sip")
        self.assertEqual(uri.user, "al%69ce")
        self.assertEqual(uri.password, "secret")
        self.assertEqual(uri.host, "example.com")
        self.assertEqual(uri.port, 5070)
        self.assertEqual(uri.params, (("transport", "tcp"), ("lr", None)))
        self.assertEqual(uri.headers, "Subject=hi&Priority=urgent")
        self.assertIsNone(uri.opaque)
        self.assertTrue(uri.isSIP)

    def test_sipMinimal(self) -> None:
        """A bare host gives no user, no port, no params and no headers."""
        uri = parseURI("sip:example.com")
        self.assertEqual(uri, URI("sip", host="example.com"))
        self.assertEqual(uri.hostport, "example.com")

    def test_sipsIPv6WithPort(self) -> None:
        """A sips URI keeps an IPv6 reference in brackets and reads the port after it."""
        uri = parseURI("sips:bob@[2001:db8::1]:5061;transport=tls")
        self.assertEqual(uri.scheme, "sips")
        self.assertEqual(uri.host, "[2001:db8::1]")
        self.assertEqual(uri.port, 5061)
        self.assertEqual(uri.hostport, "[2001:db8::1]:5061")
        self.assertTrue(uri.isSIP)

    def test_sipIPv6WithoutPort(self) -> None:
        """An IPv6 reference without a port has port None; the colons inside are not a port."""
        uri = parseURI("sip:[::ffff:192.0.2.1];maddr=[::1]")
        self.assertEqual(uri.host, "[::ffff:192.0.2.1]")
        self.assertIsNone(uri.port)
        self.assertEqual(uri.param("maddr"), "[::1]")

    def test_paramsWithAndWithoutValues(self) -> None:
        """A flag parameter reads as "", a valued one as its value, an absent one as None."""
        uri = parseURI("sip:proxy.example.com;lr;transport=udp;ttl=")
        self.assertEqual(uri.param("lr"), "")
        self.assertEqual(uri.param("transport"), "udp")
        self.assertEqual(uri.param("ttl"), "")
        self.assertIsNone(uri.param("maddr"))

    def test_paramNamesCaseInsensitive(self) -> None:
        """Parameter lookups ignore the case of the name."""
        self.assertEqual(parseURI("sip:h;Transport=TCP").param("transport"), "TCP")

    def test_tel(self) -> None:
        """A tel URI keeps the number as ``user`` and reads its parameters."""
        uri = parseURI("tel:+1-201-555-0123;ext=1234;phone-context=example.com")
        self.assertEqual(uri.scheme, "tel")
        self.assertEqual(uri.user, "+1-201-555-0123")
        self.assertEqual(uri.param("ext"), "1234")
        self.assertFalse(uri.isSIP)
        self.assertEqual(str(uri), "tel:+1-201-555-0123;ext=1234;phone-context=example.com")

    def test_telEmpty(self) -> None:
        """A tel URI without a number is refused."""
        self.assertRaises(SIPParseError, parseURI, "tel:;x=1")

    def test_otherSchemeOpaque(self) -> None:
        """An unknown scheme is lower-cased and keeps the rest opaque, so a UAS can answer 416."""
        uri = parseURI("NobodyKnowsThisScheme:totallyOpaqueContent")
        self.assertEqual(uri.scheme, "nobodyknowsthisscheme")
        self.assertEqual(uri.opaque, "totallyOpaqueContent")
        self.assertEqual(str(uri), "nobodyknowsthisscheme:totallyOpaqueContent")

    def test_schemeLowerCased(self) -> None:
        """``SIP:`` and ``sip:`` are the same scheme."""
        self.assertEqual(parseURI("SIP:a@b").scheme, "sip")

    def test_semicolonInUser(self) -> None:
        """The first ``@`` ends the userinfo, so ``;`` in the user part is not a parameter."""
        uri = parseURI("sip:user;par=u%40example.net@example.com")
        self.assertEqual(uri.user, "user;par=u%40example.net")
        self.assertEqual(uri.host, "example.com")
        self.assertEqual(uri.params, ())

    def test_emptyPassword(self) -> None:
        """``user:@host`` has an empty password, and writes back the same."""
        uri = parseURI("sip:user:@host")
        self.assertEqual(uri.password, "")
        self.assertEqual(str(uri), "sip:user:@host")

    def test_strRoundTrip(self) -> None:
        """``str`` gives back the text of every canonical URI."""
        for text in [
            "sip:example.com",
            "sip:alice@example.com:5060;transport=tcp;lr",
            "sips:[2001:db8::1]:5061",
            "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
            "sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31",
            "tel:+358-555-1234567;postd=pp22",
        ]:
            self.assertEqual(str(parseURI(text)), text)

    def test_withParams(self) -> None:
        """``withParams`` replaces the parameters and leaves the rest alone."""
        uri = parseURI("sip:a@b;x=1").withParams((("lr", None),))
        self.assertEqual(str(uri), "sip:a@b;lr")

    def test_refused(self) -> None:
        """Text outside the grammar raises `SIPParseError`, never another exception."""
        for text in [
            "",
            "example.com",
            ":x",
            "1sip:x",
            "s\xe9:x",
            "sip:",
            "sip:a b@c",
            "sip:a@b c",
            "sip:<a@b>",
            'sip:"a"@b',
            "sip:@host",
            "sip:user@",
            "sip:host:",
            "sip:host:65536",
            "sip:host:123456",
            "sip:host:5o60",
            "sip:host:\xb2",
            "sip:[::1",
            "sip:[]",
            "sip:[::g]",
            "sip:[::1]x",
            "sip:ho/st",
            "sip:host;;lr",
            "sip:host;=x",
            "sip:a%4@host",
            "sip:a%zz@host",
        ]:
            with self.assertRaises(SIPParseError, msg=text):
                parseURI(text)


class UnescapeTests(SynchronousTestCase):
    """`unescape` decodes ``%HH`` exactly once (RFC 4475 section 3.1.1.3)."""

    def test_decodesOnce(self) -> None:
        """``v%61lue%25%34%31`` is ``value%41``, not ``valueA``."""
        self.assertEqual(unescape("v%61lue%25%34%31"), "value%41")

    def test_noEscapes(self) -> None:
        """Text without ``%`` comes back as it is."""
        self.assertEqual(unescape("plain"), "plain")

    def test_nul(self) -> None:
        """``%00`` is a NUL octet and does not end the text."""
        self.assertEqual(unescape("null-%00-null"), "null-\x00-null")

    def test_incompleteEscapesKept(self) -> None:
        """A ``%`` without two hex digits after it stays literal."""
        self.assertEqual(unescape("a%4"), "a%4")
        self.assertEqual(unescape("a%zz%"), "a%zz%")
        self.assertEqual(unescape("%41%"), "A%")

    def test_octetsAreLatin1(self) -> None:
        """Each escape gives one octet, as the Latin-1 character of that value."""
        self.assertEqual(unescape("%C3%A9"), "\xc3\xa9")


class ParamsTests(SynchronousTestCase):
    """The shared ``;name[=value]`` helpers."""

    def test_parseAndFormat(self) -> None:
        """`formatParams` writes back what `parseParams` read, LWS around names and values dropped."""
        params = parseParams(" tag = 1 ; lr ;q=0.5", "test")
        self.assertEqual(params, (("tag", "1"), ("lr", None), ("q", "0.5")))
        self.assertEqual(formatParams(params), ";tag=1;lr;q=0.5")

    def test_quotedSemicolon(self) -> None:
        """A ``;`` inside a quoted value does not split the parameter."""
        params = parseParams('a="x;y";b', "test")
        self.assertEqual(params, (("a", '"x;y"'), ("b", None)))

    def test_unterminatedQuote(self) -> None:
        """An unterminated quoted value is refused."""
        self.assertRaises(SIPParseError, parseParams, 'a="x;b', "test")

    def test_getParam(self) -> None:
        """`getParam` is case-insensitive and tells a flag ("") from an absent name (None)."""
        params = (("Lr", None), ("x", "1"))
        self.assertEqual(getParam(params, "lr"), "")
        self.assertEqual(getParam(params, "X"), "1")
        self.assertIsNone(getParam(params, "y"))

    def test_isDigits(self) -> None:
        """Only ASCII digits count: Latin-1 superscripts would make ``int`` raise ValueError."""
        self.assertTrue(isDigits("0123"))
        self.assertFalse(isDigits("\xb2"))
        self.assertFalse(isDigits(""))
        self.assertFalse(isDigits("-1"))


class ParseCacheTests(SynchronousTestCase):
    """Parsed URIs are shared by text, never for a bad one, and the cache stays bounded."""

    def test_sameTextSameObject(self) -> None:
        """A URI text seen again costs a lookup: the same immutable URI comes back."""
        first = parseURI("sip:+15551234@192.0.2.7:5070;user=phone")
        self.assertIs(parseURI("sip:+15551234@192.0.2.7:5070;user=phone"), first)
        self.assertEqual(first.port, 5070)

    def test_badTextNotCached(self) -> None:
        """A URI that fails to parse fails every time."""
        for _ in range(2):
            self.assertRaises(SIPParseError, parseURI, "sip:user@bad host")
        self.assertNotIn("sip:user@bad host", uri._URI_CACHE)

    def test_bounded(self) -> None:
        """However many distinct URIs arrive, the cache never holds more than its size."""
        for i in range(uri.PARSE_CACHE_SIZE + 10):
            parseURI(f"sip:u{i}@example.com")
        self.assertLessEqual(len(uri._URI_CACHE), uri.PARSE_CACHE_SIZE)
        self.assertEqual(parseURI("sip:u1@example.com").user, "u1")

    def test_longTextNotCached(self) -> None:
        """A URI longer than the limit is parsed but not kept: the cache's memory stays small."""
        text = "sip:" + "u" * uri.CACHED_TEXT_LIMIT + "@example.com"
        self.assertEqual(parseURI(text).host, "example.com")
        self.assertNotIn(text, uri._URI_CACHE)
