"""The RFC 4475 torture messages against `sbc.sip.message` (and the codec below it).

The corpus lives in ``tests/data/rfc4475`` (see its INDEX.md; `tests.rfc4475` names the path). Every
one of its 49 files gets a test asserting the codec-level outcome the INDEX implies; the service-level
answers (416, 420, 483, 501, the bare magic cookie's 400) are checked here only as far as the
codec exposes what the service decides them on.
"""

from __future__ import annotations

from dataclasses import dataclass

from twisted.trial.unittest import SynchronousTestCase

from sbc.sip.errors import SIPParseError
from sbc.sip.message import KNOWN_METHODS, MAGIC_COOKIE, MessageParseError, Request, Response, parseMessage
from sbc.sip.structured import NameAddr
from sbc.sip.uri import unescape
from sbc.sip.validate import validateRequest, validateResponse

from .rfc4475 import CORPUS, load


@dataclass(frozen=True)
class Outcome:
    """What the codec must do with one corpus file.

    ``stage`` is ``"valid"`` (parses and validates), ``"parse"`` (`parseMessage` raises) or
    ``"validate"`` (`validateRequest`/`validateResponse` raises).
    """

    stage: str
    why: str
    response: bool = False
    status: int = 400
    answerable: bool = True
    roundTrip: bool = True


def valid(why: str, *, response: bool = False, roundTrip: bool = True) -> Outcome:
    return Outcome("valid", why, response=response, roundTrip=roundTrip)


def parseError(why: str, *, answerable: bool = True, response: bool = False) -> Outcome:
    return Outcome("parse", why, response=response, answerable=answerable)


def invalid(why: str, *, status: int = 400, response: bool = False) -> Outcome:
    return Outcome("validate", why, response=response, status=status)


EXPECTED: dict[str, Outcome] = {
    # 3.1.1: valid messages
    "wsinv.dat": valid("folding, odd LWS and mixed short/long names parse as well-formed"),
    "intmeth.dat": valid("the unusual method and URI characters are accepted"),
    "esc01.dat": valid("escapes are accepted and kept escaped"),
    "escnull.dat": valid("%00 escapes are accepted"),
    "esc02.dat": valid("an escaped method and header name are accepted as unknown ones"),
    "lwsdisp.dat": valid("a display-name token directly followed by < is accepted"),
    "longreq.dat": valid("very long values, names and 34 Vias are accepted"),
    "dblreq.dat": valid("the REGISTER parses, the octets after its body are ignored", roundTrip=False),
    "semiuri.dat": valid("a ; in the Request-URI's user part is accepted"),
    "transports.dat": valid("SCTP, TLS and unknown Via transports are accepted"),
    "mpart01.dat": valid("a binary multipart body is framed by Content-Length"),
    "unreason.dat": valid("a reason phrase with =, * and UTF-8 is accepted", response=True),
    "noreason.dat": valid("an empty reason phrase is accepted", response=True),
    # 3.1.2: invalid messages
    "badinv01.dat": invalid("the empty ; and , separators in Via and Contact are refused"),
    "clerr.dat": parseError("a Content-Length past the datagram is an answerable 400"),
    "ncl.dat": parseError("a negative Content-Length is an answerable 400"),
    "scalar02.dat": invalid("a CSeq number over 2**32-1 is refused"),
    "scalarlg.dat": invalid("a response with an out-of-range CSeq is discarded", response=True),
    "quotbal.dat": invalid("the unterminated quote in To is refused"),
    "ltgtruri.dat": parseError("a Request-URI in <> is an answerable 400"),
    "lwsruri.dat": parseError("a space inside the Request-URI is an answerable 400"),
    "lwsstart.dat": parseError("a double SP in the request line is an answerable 400"),
    "trws.dat": parseError("an SP after SIP/2.0 is an answerable 400"),
    "escruri.dat": parseError("escaped headers in the Request-URI are an answerable 400"),
    "baddate.dat": valid("the non-GMT Date is ignored: the codec never reads Date"),
    "regbadct.dat": invalid("a Contact URI with headers outside <> is refused"),
    "badaspec.dat": valid("the spaces inside <> around the To addr-spec are ignored"),
    "baddn.dat": invalid("unquoted display names with non-token characters are refused"),
    "badvers.dat": invalid("SIP/7.0 is refused with 505", status=505),
    "mismatch01.dat": invalid("OPTIONS with an INVITE CSeq is refused"),
    "mismatch02.dat": valid("an unknown method with a mismatched CSeq passes, for a 501"),
    "bigcode.dat": parseError("status code 4294967301 is dropped", answerable=False, response=True),
    # 3.2 - 3.4: valid syntax, with service-level handling
    "badbranch.dat": valid("the bare z9hG4bK branch parses, for the service's 400"),
    "insuf.dat": invalid("the missing Call-ID, From and To are refused"),
    "unkscm.dat": valid("the unknown Request-URI scheme parses, for the service's 416"),
    "novelsc.dat": valid("the novel Request-URI scheme parses, for the service's 416"),
    "unksm2.dat": valid("unknown schemes in To, From and Contact parse"),
    "bext01.dat": valid("Require and Proxy-Require parse, for the service's 420"),
    "invut.dat": valid("an unknown body type parses"),
    "regaut01.dat": valid("an unknown Authorization scheme parses and passes unchanged"),
    "multi01.dat": invalid("two different Call-ID, To, From and CSeq values are refused"),
    "mcl01.dat": parseError("conflicting Content-Length values are an answerable 400"),
    "bcast.dat": valid("a response toward a broadcast Via parses", response=True),
    "zeromf.dat": valid("Max-Forwards 0 parses, for the proxy's 483"),
    "cparam01.dat": valid("a REGISTER whose contact has a header parameter parses"),
    "cparam02.dat": valid("a REGISTER whose contact has a URI parameter parses"),
    "regescrt.dat": valid("a REGISTER whose contact keeps escaped headers parses"),
    "sdp01.dat": valid("an INVITE whose Accept excludes SDP parses"),
    "inv2543.dat": valid("RFC 2543 syntax parses: no branch, tags or Content-Length"),
}


def check(case: SynchronousTestCase, name: str, outcome: Outcome) -> None:
    """Assert that ``name`` meets ``outcome``."""
    data = load(name)
    if outcome.stage == "parse":
        error = case.assertRaises(SIPParseError, parseMessage, data)
        case.assertEqual(error.status, outcome.status)
        if outcome.answerable:
            case.assertIsInstance(error, MessageParseError)
            assert isinstance(error, MessageParseError)
            assert error.headers is not None
            for key in ("via", "from", "to", "call-id", "cseq"):
                case.assertIn(key, error.headers)
        else:
            case.assertIsNone(getattr(error, "headers", None))
        case.assertEqual(data.startswith(b"SIP/"), outcome.response)
        return
    message = parseMessage(data)
    case.assertIsInstance(message, Response if outcome.response else Request)
    if outcome.stage == "validate":
        if isinstance(message, Request):
            error = case.assertRaises(SIPParseError, validateRequest, message)
        else:
            error = case.assertRaises(SIPParseError, validateResponse, message)
        case.assertEqual(error.status, outcome.status)
        return
    if isinstance(message, Request):
        validateRequest(message)
    else:
        validateResponse(message)
    if outcome.roundTrip:
        case.assertEqual(message.toBytes(), data)


class CorpusTests(SynchronousTestCase):
    """Each corpus file meets its expected outcome; one generated test per file."""

    def test_corpusPresent(self) -> None:
        """The corpus folder exists and holds exactly the 49 files this table covers."""
        self.assertTrue(CORPUS.is_dir(), f"RFC 4475 corpus not found at {CORPUS}")
        self.assertEqual(len(EXPECTED), 49)
        self.assertEqual(sorted(p.name for p in CORPUS.glob("*.dat")), sorted(EXPECTED))


def _makeTest(name: str, outcome: Outcome) -> object:
    def test(self: SynchronousTestCase) -> None:
        check(self, name, outcome)

    test.__name__ = "test_" + name.removesuffix(".dat")
    test.__doc__ = f"{name}: {outcome.why}."
    return test


for _name, _outcome in EXPECTED.items():
    _test = _makeTest(_name, _outcome)
    setattr(CorpusTests, _test.__name__, _test)  # type: ignore[attr-defined]
del _name, _outcome, _test


def request(name: str) -> Request:
    message = parseMessage(load(name))
    assert isinstance(message, Request)
    return message


def response(name: str) -> Response:
    message = parseMessage(load(name))
    assert isinstance(message, Response)
    return message


class ValidDetailTests(SynchronousTestCase):
    """What the valid messages of section 3.1.1 must read as."""

    def test_wsinv(self) -> None:
        """wsinv: folded and spaced values read cleanly; the unknown headers keep their values."""
        message = request("wsinv.dat")
        self.assertEqual(message.toHeader().tag, "1918181833n")
        self.assertEqual(message.fromHeader().tag, "98asjd8")
        self.assertEqual(message.fromHeader().display, '"J Rosenberg \\\\\\""')
        self.assertEqual(message.headers.get("max-forwards"), "0068")
        self.assertEqual(message.cseq().number, 9)
        self.assertEqual(
            [(v.transport, v.host, v.branch) for v in message.vias()],
            [
                ("UDP", "192.0.2.2", "390skdjuw"),
                ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
                ("UDP", "192.168.255.111", "z9hG4bK30239"),
            ],
        )
        self.assertEqual(message.headers.get("subject"), "")
        self.assertEqual(
            message.headers.get("newfangledheader"), "newfangled value continued newfangled value"
        )
        self.assertEqual(message.headers.get("unknownheaderwithunusualvalue"), ";;,,;;,;")
        contact = message.contacts()[0]
        self.assertEqual(contact.param("newparam"), "newvalue")
        self.assertEqual(contact.param("secondparam"), "")
        self.assertEqual(contact.param("q"), "0.33")
        self.assertEqual(message.uri.param("unknownparam"), "")

    def test_intmeth(self) -> None:
        """intmeth: the method keeps its ``%``; the URI's user and password split at the first ``:``."""
        message = request("intmeth.dat")
        self.assertEqual(message.method, "!interesting-Method0123456789_*+`.%indeed'~")
        self.assertEqual(message.cseq().method, message.method)
        self.assertEqual(message.uri.user, "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
        self.assertEqual(message.uri.password, "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
        self.assertEqual(message.uri.host, "example.com")
        self.assertEqual(message.toHeader().display, '"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f"')
        self.assertEqual(message.fromHeader().display, "token1~` token2'+_ token3*%!.-")
        self.assertEqual(message.fromHeader().tag, "_token~1'+`*%!-.")
        value = message.headers.get("extensionHeader-!.%*+_`'~")
        assert value is not None
        self.assertEqual(value.encode("latin-1").decode("utf-8"), "\ufeff\u5927\u505c\u96fb")

    def test_esc01(self) -> None:
        """esc01: escapes stay escaped, and unescape decodes them exactly once."""
        message = request("esc01.dat")
        self.assertEqual(unescape(message.uri.user or ""), "sips:user@example.com")
        self.assertEqual(message.uri.host, "example.net")
        self.assertEqual(unescape(message.toHeader().uri.user or ""), "user")
        self.assertEqual(unescape(message.fromHeader().uri.user or ""), "I have spaces")
        uri = message.contacts()[0].uri
        self.assertEqual(unescape(uri.user or ""), "caller")
        self.assertEqual(uri.params, (("%6C%72", None), ("n%61me", "v%61lue%25%34%31")))
        self.assertEqual([unescape(name) for name, _ in uri.params], ["lr", "name"])
        self.assertEqual(unescape(uri.params[1][1] or ""), "value%41")

    def test_escnull(self) -> None:
        """escnull: the two contacts differ, and ``%00`` does not truncate the user names."""
        message = request("escnull.dat")
        contacts = message.contacts()
        self.assertEqual(len(contacts), 2)
        self.assertEqual([c.uri.user for c in contacts], ["%00", "%00%00"])
        self.assertEqual([unescape(c.uri.user or "") for c in contacts], ["\x00", "\x00\x00"])
        self.assertNotEqual(contacts[0].uri, contacts[1].uri)
        self.assertEqual(unescape(message.toHeader().uri.user or ""), "null-\x00-null")

    def test_esc02(self) -> None:
        """esc02: ``RE%47IST%45R`` is an unknown method and ``C%6Fntact`` an unknown header."""
        message = request("esc02.dat")
        self.assertEqual(message.method, "RE%47IST%45R")
        self.assertNotIn(message.method, KNOWN_METHODS)
        self.assertEqual(message.headers.count("contact"), 2)
        self.assertEqual([c.uri.host for c in message.contacts()], ["host1.example.com", "host3.example.com"])
        self.assertEqual(message.headers.get("C%6Fntact"), "<sip:alias2@host2.example.com>")
        self.assertEqual(message.toHeader().display, '"%Z%45"')

    def test_lwsdisp(self) -> None:
        """lwsdisp: ``caller<sip:...>`` has the display name ``caller``."""
        self.assertEqual(request("lwsdisp.dat").fromHeader().display, "caller")

    def test_longreq(self) -> None:
        """longreq: 34 Vias and the long values and names are read in full."""
        data = load("longreq.dat")
        self.assertEqual(len(data), 3515)
        message = request("longreq.dat")
        self.assertEqual(len(message.vias()), 34)
        self.assertEqual(message.topVia().host, "sip33.example.com")
        to = message.toHeader()
        self.assertEqual(to.uri.port, 6000)
        self.assertEqual(to.uri.param("unknownparam1"), "very" + "long" * 20 + "value")
        self.assertEqual(to.uri.param("longparam" + "name" * 25), "shortvalue")
        self.assertEqual(to.uri.param("very" + "long" * 25 + "ParameterNameWithNoValue"), "")

    def test_dblreq(self) -> None:
        """dblreq: the REGISTER's body stops at Content-Length 0; the trailing INVITE is never read."""
        message = request("dblreq.dat")
        self.assertEqual(message.method, "REGISTER")
        self.assertEqual(message.body, b"")
        data = load("dblreq.dat")
        self.assertEqual(message.toBytes(), data[: data.index(b"\r\n\r\n") + 4])
        self.assertNotIn(b"INVITE", message.toBytes())

    def test_semiuri(self) -> None:
        """semiuri: the Request-URI's user is ``user;par=u%40example.net``, with no URI params."""
        message = request("semiuri.dat")
        self.assertEqual(message.uri.user, "user;par=u%40example.net")
        self.assertEqual(unescape(message.uri.user or ""), "user;par=u@example.net")
        self.assertEqual(message.uri.host, "example.com")
        self.assertEqual(message.uri.params, ())
        self.assertEqual(len(message.headers.getAll("accept")), 6)

    def test_transports(self) -> None:
        """transports: UDP, SCTP, TLS, an unknown token and TCP are the Via transports."""
        message = request("transports.dat")
        self.assertEqual([v.transport for v in message.vias()], ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"])

    def test_mpart01(self) -> None:
        """mpart01: the body is exactly the Content-Length octets, binary ones included."""
        data = load("mpart01.dat")
        message = request("mpart01.dat")
        self.assertEqual(message.headers.get("content-length"), "553")
        self.assertEqual(len(message.body), 553)
        self.assertEqual(message.body, data[data.index(b"\r\n\r\n") + 4 :][:553])
        self.assertIn(b"\x00", message.body)
        self.assertRaises(UnicodeDecodeError, message.body.decode, "utf-8")

    def test_unreason(self) -> None:
        """unreason: the reason phrase is kept, as Latin-1-decoded UTF-8 octets."""
        message = response("unreason.dat")
        self.assertEqual(message.status, 200)
        self.assertEqual(
            message.reason.encode("latin-1").decode("utf-8"),
            "= 2**3 * 5**2 \u043d\u043e \u0441\u0442\u043e"
            " \u0434\u0435\u0432\u044f\u043d\u043e\u0441\u0442\u043e"
            " \u0434\u0435\u0432\u044f\u0442\u044c - \u043f\u0440\u043e\u0441\u0442\u043e\u0435",
        )

    def test_noreason(self) -> None:
        """noreason: the reason phrase is empty."""
        message = response("noreason.dat")
        self.assertEqual(message.status, 100)
        self.assertEqual(message.reason, "")


class InvalidDetailTests(SynchronousTestCase):
    """Why the invalid messages of section 3.1.2 fail, and what they still expose."""

    def test_badvers(self) -> None:
        """badvers: validateRequest answers 505, and the SIP/7.0 Via still parses to route it."""
        message = request("badvers.dat")
        self.assertEqual(message.version, "SIP/7.0")
        self.assertEqual(self.assertRaises(SIPParseError, validateRequest, message).status, 505)
        self.assertEqual(message.topVia().host, "c.example.com")

    def test_clerr(self) -> None:
        """clerr: the 400 carries the headers it must copy."""
        error = self.assertRaises(MessageParseError, parseMessage, load("clerr.dat"))
        assert error.headers is not None
        self.assertEqual(error.method, "INVITE")
        self.assertEqual(error.headers.get("content-length"), "9999")

    def test_mcl01(self) -> None:
        """mcl01: two Content-Length values are refused rather than one chosen."""
        error = self.assertRaises(MessageParseError, parseMessage, load("mcl01.dat"))
        self.assertIn("Content-Length", error.reason)

    def test_multi01(self) -> None:
        """multi01: the duplicate single-valued headers are all present for the 400."""
        message = request("multi01.dat")
        for key in ("call-id", "cseq", "to", "from", "max-forwards"):
            self.assertEqual(message.headers.count(key), 2)

    def test_scalar02(self) -> None:
        """scalar02: the CSeq overflow is what fails."""
        message = request("scalar02.dat")
        self.assertRaises(SIPParseError, message.cseq)

    def test_bigcode(self) -> None:
        """bigcode: the out-of-range status raises a plain SIPParseError: no answer for a response."""
        error = self.assertRaises(SIPParseError, parseMessage, load("bigcode.dat"))
        self.assertNotIsInstance(error, MessageParseError)

    def test_badaspec(self) -> None:
        """badaspec: the spaces inside <> are ignored, and never written back."""
        to = request("badaspec.dat").toHeader()
        self.assertEqual(str(to.uri), "sip:t.watson@example.org")
        self.assertEqual(str(to), '"Watson, Thomas" <sip:t.watson@example.org>')

    def test_baddate(self) -> None:
        """baddate: the Date value is kept whole (its comma does not split it)."""
        message = request("baddate.dat")
        self.assertEqual(message.headers.getAll("date"), ["Fri, 01 Jan 2010 16:00:00 EST"])


class ServiceLevelTests(SynchronousTestCase):
    """For answers the service gives, the codec exposes what it decides on."""

    def test_badbranch(self) -> None:
        """badbranch: the top Via branch is exactly the bare magic cookie."""
        self.assertEqual(request("badbranch.dat").topVia().branch, MAGIC_COOKIE)
        self.assertEqual(MAGIC_COOKIE, "z9hG4bK")

    def test_unknownSchemes(self) -> None:
        """unkscm, novelsc: the Request-URI scheme is neither sip, sips nor tel (416)."""
        self.assertEqual(request("unkscm.dat").uri.scheme, "nobodyknowsthisscheme")
        self.assertEqual(request("unkscm.dat").uri.opaque, "totallyopaquecontent")
        self.assertEqual(request("novelsc.dat").uri.scheme, "soap.beep")

    def test_unksm2(self) -> None:
        """unksm2: To, From and Contact carry isbn, http and name URIs."""
        message = request("unksm2.dat")
        self.assertEqual(message.uri.scheme, "sip")
        self.assertEqual(message.toHeader().uri.scheme, "isbn")
        self.assertEqual(message.fromHeader().uri.scheme, "http")
        self.assertEqual(message.contacts()[0].uri.scheme, "name")

    def test_bext01(self) -> None:
        """bext01: the Require and Proxy-Require tokens are listed, for 420 and Unsupported."""
        message = request("bext01.dat")
        self.assertEqual(
            message.headers.getAll("require"), ["nothingSupportsThis", "nothingSupportsThisEither"]
        )
        self.assertEqual(
            message.headers.getAll("proxy-require"), ["noProxiesSupportThis", "norDoAnyProxiesSupportThis"]
        )

    def test_zeromf(self) -> None:
        """zeromf: Max-Forwards reads 0 (483 for a proxy)."""
        self.assertEqual(request("zeromf.dat").headers.get("max-forwards"), "0")

    def test_mismatch02(self) -> None:
        """mismatch02: NEWMETHOD is unknown (501) and its CSeq says INVITE."""
        message = request("mismatch02.dat")
        self.assertNotIn(message.method, KNOWN_METHODS)
        self.assertEqual(validateRequest(message).method, "INVITE")

    def test_invut(self) -> None:
        """invut: the unknown Content-Type is there to answer 415."""
        self.assertEqual(request("invut.dat").headers.get("content-type"), "application/unknownformat")

    def test_regaut01(self) -> None:
        """regaut01: the unknown Authorization scheme is kept whole."""
        message = request("regaut01.dat")
        self.assertEqual(message.headers.getAll("authorization"), ["NoOneKnowsThisScheme opaque-data=here"])

    def test_bcast(self) -> None:
        """bcast: the response parses, and its second Via names the broadcast address."""
        message = response("bcast.dat")
        self.assertEqual([v.host for v in message.vias()], ["192.0.2.198", "255.255.255.255"])

    def test_cparam01(self) -> None:
        """cparam01: ``unknownparam`` is a contact (header) parameter, not a URI parameter."""
        (contact,) = request("cparam01.dat").contacts()
        self.assertEqual(contact.uri.params, ())
        self.assertEqual(contact.param("unknownparam"), "")

    def test_cparam02(self) -> None:
        """cparam02: ``unknownparam`` is a URI parameter of the binding."""
        (contact,) = request("cparam02.dat").contacts()
        self.assertEqual(contact.uri.param("unknownparam"), "")
        self.assertEqual(contact.params, ())
        self.assertEqual(str(contact.uri), "sip:+19725552222@gw1.example.net;unknownparam")

    def test_regescrt(self) -> None:
        """regescrt: the contact URI keeps its escaped Route header, still escaped."""
        (contact,) = request("regescrt.dat").contacts()
        self.assertEqual(contact.uri.headers, "Route=%3Csip:sip.example.com%3E")
        self.assertEqual(str(contact), "<sip:user@example.com?Route=%3Csip:sip.example.com%3E>")
        self.assertIsInstance(contact, NameAddr)

    def test_sdp01(self) -> None:
        """sdp01: Accept lists only text/nobodyKnowsThis, for a 406."""
        self.assertEqual(request("sdp01.dat").headers.getAll("accept"), ["text/nobodyKnowsThis"])

    def test_inv2543(self) -> None:
        """inv2543: no Content-Length, so the body runs to the end; no branch, tag or Max-Forwards."""
        data = load("inv2543.dat")
        message = request("inv2543.dat")
        self.assertNotIn("content-length", message.headers)
        self.assertEqual(message.body, data[data.index(b"\r\n\r\n") + 4 :])
        self.assertTrue(message.body.startswith(b"v=0"))
        self.assertIsNone(message.topVia().branch)
        self.assertIsNone(message.fromHeader().tag)
        self.assertNotIn("max-forwards", message.headers)
