"""Tests for sbc.calls.policy: which headers cross between the legs, judged by who sent them."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from sbc.calls.policy import copyHeaders, isAddressHost, standardReason, withoutAddressURLs, withoutText
from sbc.sip.headers import Headers


def copied(lines: list[tuple[str, str]], **kwargs: object) -> list[tuple[str, str]]:
    source, target = Headers(), Headers()
    for name, value in lines:
        source.add(name, value)
    copyHeaders(source, target, **kwargs)  # type: ignore[arg-type]
    return [(f.key, f.value) for f in target.fields]


PAI = ("P-Asserted-Identity", "<sip:+15551234@carrier.example>")


class CopyHeadersTests(SynchronousTestCase):
    def test_diversionOnlyFromTrusted(self) -> None:
        """Diversion crosses from a trusted party and not from an untrusted one."""
        diversion = ("Diversion", "<sip:+15550009@carrier.example>;reason=unconditional")
        self.assertEqual(copied([diversion]), [])
        self.assertEqual(copied([diversion], fromTrusted=True), [("diversion", diversion[1])])

    def test_identityJudgedBySender(self) -> None:
        """P-Asserted-Identity and Privacy need a trusted sender; a trusted receiver is not enough."""
        privacy = ("Privacy", "none")
        self.assertEqual(copied([PAI, privacy], toTrusted=True), [])
        self.assertEqual(len(copied([PAI, privacy], fromTrusted=True, toTrusted=True)), 2)

    def test_privacyIdKeepsIdentityInTrustDomain(self) -> None:
        """With Privacy: id, an asserted identity never leaves the trust domain (RFC 3325 section 5)."""
        privacy = ("Privacy", "header; id")
        self.assertEqual(copied([PAI, privacy], fromTrusted=True), [("privacy", "header; id")])
        self.assertEqual(len(copied([PAI, privacy], fromTrusted=True, toTrusted=True)), 2)

    def test_passHeadersCannotLiftTrust(self) -> None:
        """A trunk's pass_headers does not let an untrusted sender's identity through."""
        self.assertEqual(copied([PAI], extra=("p-asserted-identity",)), [])

    def test_alertingDroppedByDefault(self) -> None:
        """Call-Info and Alert-Info (auto-answer carriers) stay behind, trusted sender or not."""
        lines = [
            ("Call-Info", "<sip:sbc.example>;answer-after=0"),
            ("Alert-Info", "<http://ring.example/bell>;info=alert-autoanswer"),
        ]
        self.assertEqual(copied(lines, fromTrusted=True, toTrusted=True), [])

    def test_alertingOptInWithoutAddresses(self) -> None:
        """Opted in, Call-Info crosses without the elements whose URL host is an address."""
        value = "<http://10.1.2.3/a.png>;purpose=icon, <http://pics.example/b.png>;purpose=icon"
        result = copied([("Call-Info", value)], extra=("call-info",))
        self.assertEqual(result, [("call-info", "<http://pics.example/b.png>;purpose=icon")])
        self.assertEqual(copied([("Alert-Info", "<http://[fd00::1]/r>")], extra=("alert-info",)), [])

    def test_reasonTextRemoved(self) -> None:
        """A Reason header crosses with its cause, without the peer's text."""
        result = copied([("Reason", 'Q.850;cause=16;text="gw 10.1.2.3 down"')])
        self.assertEqual(result, [("reason", "Q.850;cause=16")])

    def test_retryAfterWithoutComment(self) -> None:
        """Retry-After crosses with its delta-seconds and duration only: no comment, no other params."""
        result = copied(
            [
                ("Retry-After", "3600 (gw 10.1.2.3 down)"),
                ("Retry-After", "120 (a (nested) \\) one);x=gw7;duration=60"),
                ("Retry-After", "soon"),
            ]
        )
        self.assertEqual(result, [("retry-after", "3600"), ("retry-after", "120;duration=60")])

    def test_plainHeadersCross(self) -> None:
        """Subject crosses from anyone; Warning and unknown headers from no one."""
        lines = [("Subject", "hi"), ("Warning", '399 gw.internal "x"'), ("X-Secret", "1")]
        self.assertEqual(copied(lines, fromTrusted=True, toTrusted=True), [("subject", "hi")])


class AddressURLTests(SynchronousTestCase):
    def test_addressHosts(self) -> None:
        """IPv4 in any numeric form and bracketed IPv6 are addresses; names are not."""
        for host in ("10.1.2.3", "167772161", "0xa000001", "1.2.3.4.", "[::1]", "::1"):
            self.assertTrue(isAddressHost(host), host)
        for host in ("pics.example", "10.1.2.3.example", "cafe"):
            self.assertFalse(isAddressHost(host), host)

    def test_elementsWithoutURLDropped(self) -> None:
        """An element with no readable URL is dropped, and user info or ports do not hide a host."""
        self.assertEqual(withoutAddressURLs("garbage"), "")
        self.assertEqual(withoutAddressURLs("<http://u:p@10.0.0.1:8080/x>"), "")
        self.assertEqual(withoutAddressURLs("<sip:ring@10.0.0.1;transport=tcp>"), "")
        self.assertEqual(withoutAddressURLs("<sip:ring@pbx.example>"), "<sip:ring@pbx.example>")

    def test_withoutText(self) -> None:
        """Quoted and bare text parameters both go; other parameters stay."""
        self.assertEqual(withoutText("SIP;text=x;cause=200"), "SIP;cause=200")


class StandardReasonTests(SynchronousTestCase):
    def test_standardPhrases(self) -> None:
        """Known codes get their phrase, unknown ones their class's."""
        self.assertEqual(standardReason(503), "Service Unavailable")
        self.assertEqual(standardReason(599), standardReason(500))
