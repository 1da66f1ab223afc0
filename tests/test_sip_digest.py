# Twisted's trial assertions carry no annotations.
# mypy: disable-error-code="no-untyped-call"
"""Tests for `sbc.sip.digest`: auth-param parsing, challenges, credentials and the digest itself."""

from __future__ import annotations

import hashlib

from twisted.trial.unittest import SynchronousTestCase

from sbc.sip.digest import (
    ALGORITHMS,
    Challenge,
    Credentials,
    canonicalAlgorithm,
    formatChallenge,
    formatCredentials,
    ha1,
    makeCredentials,
    parseAuthParams,
    parseChallenge,
    parseCredentials,
    quote,
    response,
    verify,
)
from sbc.sip.errors import SIPParseError

# RFC 7616 section 3.9.1 (with erratum 4495: "Circle of Life", lower-case "of").
RFC7616_USER = "Mufasa"
RFC7616_PASSWORD = "Circle of Life"
RFC7616_REALM = "http-auth@example.org"
RFC7616_URI = "/dir/index.html"
RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
RFC7616_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
RFC7616_MD5 = "8ca523f5e9506fed4657c9700eebdbec"
RFC7616_SHA256 = "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"

# The Authorization header of RFC 7616 section 3.9.1, as the codec hands it over once unfolded.
RFC7616_AUTHORIZATION = (
    'Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", '
    'algorithm={algorithm}, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc=00000001, '
    'cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop=auth, response="{response}", '
    'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
)

# A REGISTER answered the way SIPp writes it: no space after commas, qop and nc unquoted.
# alice's password is "wonderland"; the response, computed with hashlib by hand, is
#   MD5(HA1:nonce:00000001:6b8b4567:auth:MD5("REGISTER:sip:127.0.0.1:5060"))
# with HA1 = MD5("alice:demo.acme.sbc.test:wonderland").
SIPP_NONCE = "YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0NTY3ODkwYWJj"
SIPP_RESPONSE = "1a957841014acba6198b15943e2d898f"
SIPP_AUTHORIZATION = (
    'Digest username="alice",realm="demo.acme.sbc.test",cnonce="6b8b4567",nc=00000001,qop=auth,'
    f'uri="sip:127.0.0.1:5060",nonce="{SIPP_NONCE}",response="{SIPP_RESPONSE}",algorithm=MD5'
)


class AlgorithmTests(SynchronousTestCase):
    """The algorithm table and the spelling of algorithm names."""

    def test_table(self) -> None:
        """MD5 and SHA-256 are offered, backed by hashlib."""
        self.assertEqual(set(ALGORITHMS), {"MD5", "SHA-256"})
        self.assertEqual(ALGORITHMS["MD5"](b"").hexdigest(), hashlib.md5(b"").hexdigest())
        self.assertEqual(ALGORITHMS["SHA-256"](b"").hexdigest(), hashlib.sha256(b"").hexdigest())

    def test_caseInsensitive(self) -> None:
        """Any spelling of a known name maps to its canonical one; unknown names pass through."""
        for name in ["md5", "Md5", "MD5"]:
            self.assertEqual(canonicalAlgorithm(name), "MD5")
        for name in ["sha-256", "Sha-256", "SHA-256"]:
            self.assertEqual(canonicalAlgorithm(name), "SHA-256")
        self.assertEqual(canonicalAlgorithm("SHA-512-256"), "SHA-512-256")

    def test_defaultIsMD5(self) -> None:
        """An absent algorithm parameter means MD5 (RFC 7616 section 3.3)."""
        self.assertEqual(canonicalAlgorithm(None), "MD5")
        credentials = parseCredentials('Digest username="u", realm="r", nonce="n", uri="sip:x", response="0"')
        self.assertEqual(credentials.algorithm, "MD5")

    def test_unknownAlgorithmRaises(self) -> None:
        """Computing with an algorithm we lack is a parse error, not a KeyError."""
        self.assertRaises(SIPParseError, ha1, "SHA-512-256", "u", "r", "p")
        self.assertRaises(SIPParseError, response, "MD5-sess", "0" * 32, "n", "GET", "/", None, None, None)


class RFC7616ExampleTests(SynchronousTestCase):
    """RFC 7616 section 3.9.1: the same request answered with MD5 and with SHA-256."""

    def test_md5Response(self) -> None:
        """The MD5 request-digest is the RFC's."""
        key = ha1("MD5", RFC7616_USER, RFC7616_REALM, RFC7616_PASSWORD)
        digest = response("MD5", key, RFC7616_NONCE, "GET", RFC7616_URI, "auth", "00000001", RFC7616_CNONCE)
        self.assertEqual(digest, RFC7616_MD5)

    def test_sha256Response(self) -> None:
        """The SHA-256 request-digest is the RFC's."""
        key = ha1("SHA-256", RFC7616_USER, RFC7616_REALM, RFC7616_PASSWORD)
        self.assertEqual(len(key), 64)
        digest = response(
            "SHA-256", key, RFC7616_NONCE, "GET", RFC7616_URI, "auth", "00000001", RFC7616_CNONCE
        )
        self.assertEqual(digest, RFC7616_SHA256)

    def test_parseAndVerify(self) -> None:
        """The RFC's Authorization headers parse and verify against the password, for both algorithms."""
        for algorithm, expected in [("MD5", RFC7616_MD5), ("SHA-256", RFC7616_SHA256)]:
            value = RFC7616_AUTHORIZATION.format(algorithm=algorithm, response=expected)
            credentials = parseCredentials(value)
            self.assertEqual(
                credentials,
                Credentials(
                    username=RFC7616_USER,
                    realm=RFC7616_REALM,
                    nonce=RFC7616_NONCE,
                    uri=RFC7616_URI,
                    response=expected,
                    algorithm=algorithm,
                    qop="auth",
                    nc="00000001",
                    cnonce=RFC7616_CNONCE,
                    opaque=RFC7616_OPAQUE,
                ),
            )
            key = ha1(algorithm, RFC7616_USER, RFC7616_REALM, RFC7616_PASSWORD)
            self.assertTrue(verify(credentials, key, "GET"))

    def test_wrongPasswordOrMethod(self) -> None:
        """A different password or method does not verify."""
        credentials = parseCredentials(RFC7616_AUTHORIZATION.format(algorithm="MD5", response=RFC7616_MD5))
        wrongKey = ha1("MD5", RFC7616_USER, RFC7616_REALM, "Circle Of Life")
        self.assertFalse(verify(credentials, wrongKey, "GET"))
        key = ha1("MD5", RFC7616_USER, RFC7616_REALM, RFC7616_PASSWORD)
        self.assertFalse(verify(credentials, key, "POST"))

    def test_ha1OfOtherAlgorithm(self) -> None:
        """An MD5 HA1 never verifies credentials that claim SHA-256."""
        credentials = parseCredentials(
            RFC7616_AUTHORIZATION.format(algorithm="SHA-256", response=RFC7616_SHA256)
        )
        md5Key = ha1("MD5", RFC7616_USER, RFC7616_REALM, RFC7616_PASSWORD)
        self.assertFalse(verify(credentials, md5Key, "GET"))

    def test_makeCredentialsFormatsTheRFCHeader(self) -> None:
        """A client answer built from the password carries the RFC's response, unquoted tokens where due."""
        credentials = makeCredentials(
            username=RFC7616_USER,
            password=RFC7616_PASSWORD,
            realm=RFC7616_REALM,
            nonce=RFC7616_NONCE,
            method="GET",
            uri=RFC7616_URI,
            algorithm="sha-256",
            qop="auth",
            nc="00000001",
            cnonce=RFC7616_CNONCE,
            opaque=RFC7616_OPAQUE,
        )
        self.assertEqual(credentials.response, RFC7616_SHA256)
        self.assertEqual(
            formatCredentials(credentials),
            'Digest username="Mufasa", realm="http-auth@example.org", '
            'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", uri="/dir/index.html", '
            f'response="{RFC7616_SHA256}", algorithm=SHA-256, qop=auth, nc=00000001, '
            'cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", '
            'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"',
        )


class OlderExampleTests(SynchronousTestCase):
    """The worked examples of RFC 2617 (qop=auth) and RFC 2069 (no qop)."""

    def test_rfc2617(self) -> None:
        """RFC 2617 section 3.5: password "Circle Of Life", qop=auth."""
        key = ha1("MD5", "Mufasa", "testrealm@host.com", "Circle Of Life")
        digest = response(
            "MD5",
            key,
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            "GET",
            "/dir/index.html",
            "auth",
            "00000001",
            "0a4f113b",
        )
        self.assertEqual(digest, "6629fae49393a05397450978507c4ef1")

    def test_rfc2069(self) -> None:
        """RFC 2069 section 2.4: no qop, so the response is H(HA1:nonce:HA2)."""
        key = ha1("MD5", "Mufasa", "testrealm@host.com", "CircleOfLife")
        credentials = parseCredentials(
            'Digest username="Mufasa", realm="testrealm@host.com", '
            'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", '
            'response="1949323746fe6a43ef61f9606e7febea", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
        )
        self.assertIsNone(credentials.qop)
        self.assertIsNone(credentials.nc)
        self.assertEqual(
            response("MD5", key, credentials.nonce, "GET", credentials.uri, None, None, None),
            "1949323746fe6a43ef61f9606e7febea",
        )
        self.assertTrue(verify(credentials, key, "GET"))


class SIPpCredentialsTests(SynchronousTestCase):
    """Credentials as SIPp writes them for a REGISTER."""

    def test_parse(self) -> None:
        """No spaces after commas and an unquoted qop still give every field."""
        credentials = parseCredentials(SIPP_AUTHORIZATION)
        self.assertEqual(
            credentials,
            Credentials(
                username="alice",
                realm="demo.acme.sbc.test",
                nonce=SIPP_NONCE,
                uri="sip:127.0.0.1:5060",
                response=SIPP_RESPONSE,
                algorithm="MD5",
                qop="auth",
                nc="00000001",
                cnonce="6b8b4567",
                opaque=None,
            ),
        )

    def test_verify(self) -> None:
        """The response verifies for REGISTER with alice's HA1, and for no other method or password."""
        credentials = parseCredentials(SIPP_AUTHORIZATION)
        key = ha1("MD5", "alice", "demo.acme.sbc.test", "wonderland")
        self.assertTrue(verify(credentials, key, "REGISTER"))
        self.assertFalse(verify(credentials, key, "INVITE"))
        wrongKey = ha1("MD5", "alice", "demo.acme.sbc.test", "Wonderland")
        self.assertFalse(verify(credentials, wrongKey, "REGISTER"))

    def test_upperCaseHex(self) -> None:
        """A response or stored HA1 in upper-case hex still verifies."""
        credentials = parseCredentials(SIPP_AUTHORIZATION.replace(SIPP_RESPONSE, SIPP_RESPONSE.upper()))
        key = ha1("MD5", "alice", "demo.acme.sbc.test", "wonderland")
        self.assertTrue(verify(credentials, key.upper(), "REGISTER"))

    def test_schemeAndKeysAnyCase(self) -> None:
        """The scheme and parameter names are case-insensitive."""
        value = SIPP_AUTHORIZATION.replace("Digest", "DIGEST").replace("username=", "UserName=")
        self.assertEqual(parseCredentials(value).username, "alice")


class ParseAuthParamsTests(SynchronousTestCase):
    """The scheme and auth-param list of a challenge or credentials value."""

    def test_simple(self) -> None:
        """Tokens and quoted strings, keys lower-cased, the scheme as written."""
        scheme, params = parseAuthParams('Digest Realm="x", nonce="y", algorithm=MD5, stale=TRUE')
        self.assertEqual(scheme, "Digest")
        self.assertEqual(params, {"realm": "x", "nonce": "y", "algorithm": "MD5", "stale": "TRUE"})

    def test_commaInsideQuotes(self) -> None:
        """A comma inside a quoted string does not split the list."""
        _, params = parseAuthParams('Digest qop="auth,auth-int", realm="a, b"')
        self.assertEqual(params, {"qop": "auth,auth-int", "realm": "a, b"})

    def test_whitespaceTolerated(self) -> None:
        """Spaces and tabs around '=' and ',' are linear white space."""
        _, params = parseAuthParams('  Digest \t realm = "x"\t,nonce=\t"y" ,  qop = auth  ')
        self.assertEqual(params, {"realm": "x", "nonce": "y", "qop": "auth"})

    def test_emptyElements(self) -> None:
        """Empty list elements (stray commas) are skipped, as the #rule allows."""
        _, params = parseAuthParams('Digest , realm="x",, nonce="y",')
        self.assertEqual(params, {"realm": "x", "nonce": "y"})

    def test_escapes(self) -> None:
        """A quoted-pair stands for the character after the backslash."""
        _, params = parseAuthParams(r'Digest realm="a\"b\\c\d", nonce=""')
        self.assertEqual(params, {"realm": 'a"b\\cd', "nonce": ""})

    def test_schemeAlone(self) -> None:
        """A bare scheme has no parameters."""
        self.assertEqual(parseAuthParams("Digest"), ("Digest", {}))

    def test_nonASCIIInQuotes(self) -> None:
        """Octets above 0x7f (UTF-8 as the codec holds it) are allowed in a quoted string."""
        realm = "Jäsøn".encode().decode("latin-1")
        _, params = parseAuthParams(f'Digest realm="{realm}"')
        self.assertEqual(params["realm"], realm)

    def test_garbage(self) -> None:
        """Broken values raise SIPParseError and nothing else."""
        garbage = [
            "",
            "   ",
            '"Digest" realm="x"',
            "Digest, realm=x",
            'Digest realm="unterminated',
            'Digest realm="x\\',
            'Digest realm="x" nonce="y"',
            'Digest realm="x"junk',
            "Digest realm",
            "Digest realm=",
            "Digest realm= ,nonce=y",
            "Digest =x",
            "Digest realm=x y",
            "Digest realm=<x>",
            'Digest realm="x", realm="y"',
            'Digest realm="x", REALM="x"',
            'Digest realm="a\x00b"',
            'Digest realm="a\r\nb"',
            'Digest realm="a\\\nb"',
            "Digest realm=a\x7fb",
            "Digest\x00 realm=x",
        ]
        for value in garbage:
            self.assertRaises(SIPParseError, parseAuthParams, value)


class ParseCredentialsTests(SynchronousTestCase):
    """What makes an Authorization value acceptable Digest credentials."""

    BASE = 'Digest username="u", realm="r", nonce="n", uri="sip:x", response="0"'

    def test_minimal(self) -> None:
        """The five required parameters alone make RFC 2069 style credentials."""
        self.assertEqual(
            parseCredentials(self.BASE),
            Credentials(username="u", realm="r", nonce="n", uri="sip:x", response="0"),
        )

    def test_notDigest(self) -> None:
        """Another scheme is refused."""
        self.assertRaises(SIPParseError, parseCredentials, "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")
        self.assertRaises(SIPParseError, parseCredentials, self.BASE.replace("Digest", "Bearer"))

    def test_requiredParameters(self) -> None:
        """Missing username, realm, nonce, uri or response is refused."""
        for name in ["username", "realm", "nonce", "uri", "response"]:
            params = [p for p in self.BASE[len("Digest ") :].split(", ") if not p.startswith(name + "=")]
            self.assertRaises(SIPParseError, parseCredentials, "Digest " + ", ".join(params))

    def test_qopNeedsNcAndCnonce(self) -> None:
        """qop without nc, or without cnonce, is refused."""
        self.assertRaises(SIPParseError, parseCredentials, self.BASE + ', qop=auth, cnonce="c"')
        self.assertRaises(SIPParseError, parseCredentials, self.BASE + ", qop=auth, nc=00000001")

    def test_ncOrCnonceWithoutQop(self) -> None:
        """nc or cnonce without qop is refused: the response would not cover them."""
        self.assertRaises(SIPParseError, parseCredentials, self.BASE + ", nc=00000001")
        self.assertRaises(SIPParseError, parseCredentials, self.BASE + ', cnonce="c"')

    def test_ncMustBeEightHexDigits(self) -> None:
        """nc is exactly 8 hex digits."""
        for nc in ["1", "0000001", "000000001", "0000000g", "+0000001", '"00000001x"']:
            value = self.BASE + f', qop=auth, cnonce="c", nc={nc}'
            self.assertRaises(SIPParseError, parseCredentials, value)
        value = self.BASE + ', qop=auth, cnonce="c", nc=0000ABcd'
        self.assertEqual(parseCredentials(value).nc, "0000ABcd")

    def test_formatRoundTrip(self) -> None:
        """formatCredentials gives a value that parses back to the same credentials."""
        cases = [
            Credentials(username="u", realm="r", nonce="n", uri="sip:x", response="0"),
            Credentials(
                username='we"ird\\',
                realm="r, s",
                nonce="n=/+",
                uri="sip:bob@example.com;transport=tcp",
                response="ab" * 16,
                algorithm="SHA-256",
                qop="auth",
                nc="0000002a",
                cnonce="c c",
                opaque="o,p",
            ),
        ]
        for credentials in cases:
            self.assertEqual(parseCredentials(formatCredentials(credentials)), credentials)

    def test_formatRefusesIncoherent(self) -> None:
        """Formatting refuses qop without nc, bad nc, and CR/LF that would split the header."""
        base = Credentials(username="u", realm="r", nonce="n", uri="sip:x", response="0")
        bad = [
            Credentials(username="u", realm="r", nonce="n", uri="sip:x", response="0", qop="auth"),
            Credentials(
                username="u", realm="r", nonce="n", uri="sip:x", response="0", qop="auth", nc="1", cnonce="c"
            ),
            Credentials(username="u\r\nVia: x", realm="r", nonce="n", uri="sip:x", response="0"),
            Credentials(username="u", realm="r", nonce="n", uri="sip:x", response="0", algorithm="MD 5"),
        ]
        formatCredentials(base)
        for credentials in bad:
            self.assertRaises(ValueError, formatCredentials, credentials)


class ChallengeTests(SynchronousTestCase):
    """WWW-Authenticate and Proxy-Authenticate values."""

    def test_format(self) -> None:
        """The challenge names realm, nonce, algorithm and quoted qop, in that order."""
        self.assertEqual(
            formatChallenge("x", "y", "MD5"),
            'Digest realm="x", nonce="y", algorithm=MD5, qop="auth"',
        )

    def test_formatStaleAndOpaque(self) -> None:
        """stale=true and opaque follow when asked for; qop may be left out."""
        self.assertEqual(
            formatChallenge("x", "y", "sha-256", stale=True, opaque="o"),
            'Digest realm="x", nonce="y", algorithm=SHA-256, qop="auth", stale=true, opaque="o"',
        )
        self.assertEqual(formatChallenge("x", "y", qop=None), 'Digest realm="x", nonce="y", algorithm=MD5')

    def test_roundTripThroughParseAuthParams(self) -> None:
        """A formatted challenge parses back to its parameters, quotes and backslashes included."""
        realm = 'odd "realm", with \\ and comma'
        value = formatChallenge(realm, "n/=", "SHA-256", stale=True, opaque="o,p")
        scheme, params = parseAuthParams(value)
        self.assertEqual(scheme, "Digest")
        self.assertEqual(
            params,
            {
                "realm": realm,
                "nonce": "n/=",
                "algorithm": "SHA-256",
                "qop": "auth",
                "stale": "true",
                "opaque": "o,p",
            },
        )

    def test_roundTripThroughParseChallenge(self) -> None:
        """parseChallenge reads back what formatChallenge wrote."""
        self.assertEqual(
            parseChallenge(formatChallenge("x", "y", "SHA-256", stale=True, opaque="o")),
            Challenge(realm="x", nonce="y", algorithm="SHA-256", qop=("auth",), stale=True, opaque="o"),
        )
        self.assertEqual(parseChallenge(formatChallenge("x", "y", qop=None)), Challenge(realm="x", nonce="y"))

    def test_parseRFC7616Challenge(self) -> None:
        """The RFC's challenge: several qop options in one quoted string."""
        challenge = parseChallenge(
            'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, '
            f'nonce="{RFC7616_NONCE}", opaque="{RFC7616_OPAQUE}"'
        )
        self.assertEqual(challenge.qop, ("auth", "auth-int"))
        self.assertEqual(challenge.algorithm, "SHA-256")
        self.assertFalse(challenge.stale)

    def test_parseRefuses(self) -> None:
        """A challenge of another scheme, or without realm or nonce, is refused."""
        self.assertRaises(SIPParseError, parseChallenge, 'Basic realm="x"')
        self.assertRaises(SIPParseError, parseChallenge, 'Digest realm="x"')
        self.assertRaises(SIPParseError, parseChallenge, 'Digest nonce="x"')

    def test_formatRefusesControlCharacters(self) -> None:
        """A realm with CR or LF would split the header, so formatting refuses it."""
        self.assertRaises(ValueError, formatChallenge, "x\r\nContact: <sip:evil>", "y")
        self.assertRaises(ValueError, quote, "a\nb")
        self.assertEqual(quote('a"b\\'), '"a\\"b\\\\"')


class ResponseTests(SynchronousTestCase):
    """The request-digest and its verification at the edges."""

    KEY = "0" * 32

    def test_authIntUnsupported(self) -> None:
        """qop=auth-int raises in response() and fails verify() instead of raising."""
        self.assertRaises(
            SIPParseError, response, "MD5", self.KEY, "n", "INVITE", "sip:x", "auth-int", "00000001", "c"
        )
        credentials = parseCredentials(
            'Digest username="u", realm="r", nonce="n", uri="sip:x", response="0", qop=auth-int, '
            'nc=00000001, cnonce="c"'
        )
        self.assertFalse(verify(credentials, self.KEY, "INVITE"))

    def test_qopWithoutCountRaises(self) -> None:
        """response() with qop but no nc or cnonce raises."""
        self.assertRaises(SIPParseError, response, "MD5", self.KEY, "n", "INVITE", "sip:x", "auth", None, "c")
        self.assertRaises(
            SIPParseError, response, "MD5", self.KEY, "n", "INVITE", "sip:x", "auth", "00000001", None
        )

    def test_unsupportedAlgorithmFailsVerify(self) -> None:
        """Credentials naming an algorithm we lack verify as False."""
        credentials = parseCredentials(SIPP_AUTHORIZATION.replace("algorithm=MD5", "algorithm=SHA-512-256"))
        self.assertEqual(credentials.algorithm, "SHA-512-256")
        self.assertFalse(verify(credentials, self.KEY, "REGISTER"))

    def test_hostileResponse(self) -> None:
        """A response holding non-ASCII octets fails to verify rather than raising TypeError."""
        credentials = parseCredentials(SIPP_AUTHORIZATION.replace(SIPP_RESPONSE, "\xe9" * 32))
        key = ha1("MD5", "alice", "demo.acme.sbc.test", "wonderland")
        self.assertFalse(verify(credentials, key, "REGISTER"))

    def test_wireOctetsHashed(self) -> None:
        """Codec-held text (Latin-1 decoded) hashes as the octets that came off the wire."""
        uri = "sip:jäsøn@example.com".encode().decode("latin-1")
        digest = response("MD5", self.KEY, "n", "REGISTER", uri, None, None, None)
        ha2 = hashlib.md5(b"REGISTER:" + "sip:jäsøn@example.com".encode()).hexdigest()
        self.assertEqual(digest, hashlib.md5(f"{self.KEY}:n:{ha2}".encode()).hexdigest())

    def test_ha1HashesUTF8(self) -> None:
        """HA1 hashes the UTF-8 octets of the username, realm and password, as user agents do."""
        self.assertEqual(
            ha1("MD5", "jäsøn", "r", "pässword"),
            hashlib.md5("jäsøn:r:pässword".encode()).hexdigest(),
        )
