"""Tests for sbc.dialog: a leg's requests inside its dialog, by its route set (RFC 3261 section 12)."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from sbc.dialog import Leg
from sbc.sip import Response, parseMessage, parseURI
from tests.fakes import RecordingTransport

TARGET = "sip:bob@192.0.2.20:5070;transport=udp"


def leg(routeSet: tuple[str, ...] = (), transport: RecordingTransport | None = None) -> Leg:
    return Leg(
        callId="call-1",
        localTag="ours",
        localUri="sip:sbc@127.0.0.1",
        remoteUri="sip:bob@example.com",
        remoteTag="theirs",
        remoteTarget=parseURI(TARGET),
        transport=transport or RecordingTransport(),
        address=("192.0.2.20", 5070),
        routeSet=routeSet,
    )


def response(status: int, *extra: str, tag: str | None = "theirs") -> Response:
    to = "<sip:bob@example.com>" + (f";tag={tag}" if tag else "")
    lines = [
        f"SIP/2.0 {status} Whatever",
        "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1",
        "From: <sip:sbc@127.0.0.1>;tag=ours",
        f"To: {to}",
        "Call-ID: call-1",
        "CSeq: 1 INVITE",
        *extra,
        "Content-Length: 0",
    ]
    message = parseMessage(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert isinstance(message, Response)
    return message


class RouteSetTests(SynchronousTestCase):
    def test_noRouteSet(self) -> None:
        """Without a route set the Request-URI is the remote target and there is no Route."""
        request = leg().request("BYE")
        self.assertEqual(str(request.uri), TARGET)
        self.assertNotIn("route", request.headers)
        self.assertIsNone(leg().nextHop())

    def test_looseRouting(self) -> None:
        """Loose routing: Request-URI = remote target, Route = the route set, in order."""
        routes = ("<sip:10.0.0.1:5080;lr>", '<sip:p2.example;lr>;x="a, b"')
        request = leg(routes).request("BYE")
        self.assertEqual(str(request.uri), TARGET)
        self.assertEqual(request.headers.getAll("route"), list(routes))
        self.assertEqual(leg(routes).nextHop(), ("10.0.0.1", 5080))

    def test_strictRouting(self) -> None:
        """Strict routing: the first route is the Request-URI (no method, no headers), the target last."""
        routes = ("<sip:10.0.0.1;maddr=10.0.0.9;method=INVITE?Subject=x>", "<sip:p2.example;lr>")
        request = leg(routes).request("INFO")
        self.assertEqual(str(request.uri), "sip:10.0.0.1;maddr=10.0.0.9")
        self.assertEqual(request.headers.getAll("route"), ["<sip:p2.example;lr>", f"<{TARGET}>"])
        self.assertEqual(leg(routes).nextHop(), ("10.0.0.9", 5060))

    def test_nextHop(self) -> None:
        """The next hop is the first route's address and port; TLS defaults to 5061; names give None."""
        self.assertEqual(leg(("<sip:[2001:db8::1]:5090;lr>",)).nextHop(), ("2001:db8::1", 5090))
        self.assertEqual(leg(("<sips:10.0.0.1;lr>",)).nextHop(), ("10.0.0.1", 5061))
        self.assertIsNone(leg(("<sip:proxy.example;lr>",)).nextHop())
        self.assertIsNone(leg(("<sip:not a uri>",)).nextHop())

    def test_learnFromResponse(self) -> None:
        """As a UAC the route set is the Record-Route of the answer, reversed."""
        b = leg()
        b.learn(
            response(
                200,
                "Record-Route: <sip:10.0.0.3;lr>, <sip:10.0.0.2;lr>",
                "Record-Route: <sip:10.0.0.1:5062;lr>",
                "Contact: <sip:bob@10.9.9.9>",
            )
        )
        self.assertEqual(b.routeSet, ("<sip:10.0.0.1:5062;lr>", "<sip:10.0.0.2;lr>", "<sip:10.0.0.3;lr>"))
        self.assertEqual(str(b.remoteTarget), "sip:bob@10.9.9.9")
        self.assertEqual(b.nextHop(), ("10.0.0.1", 5062))

    def test_finalAnswerRecomputes(self) -> None:
        """The 2xx sets the route set again, even to none, after an early dialog's 18x."""
        b = leg()
        b.learn(response(183, "Record-Route: <sip:10.0.0.1;lr>"))
        self.assertEqual(b.routeSet, ("<sip:10.0.0.1;lr>",))
        b.learn(response(200))
        self.assertEqual(b.routeSet, ())

    def test_untaggedProvisionalMakesNoDialog(self) -> None:
        """A 18x without a To tag teaches nothing: no route set, no target."""
        b = leg()
        b.learn(response(180, "Record-Route: <sip:10.0.0.1;lr>", "Contact: <sip:x@10.9.9.9>", tag=None))
        self.assertEqual((b.routeSet, str(b.remoteTarget)), ((), TARGET))

    def test_targetRefreshKeepsRouteSet(self) -> None:
        """A target refresh changes the remote target only (RFC 3261 section 12.2.1.2)."""
        b = leg(("<sip:10.0.0.1;lr>",))
        b.refresh(response(200, "Record-Route: <sip:10.0.0.7;lr>", "Contact: <sip:bob@10.9.9.8>"))
        self.assertEqual(b.routeSet, ("<sip:10.0.0.1;lr>",))
        self.assertEqual(str(b.remoteTarget), "sip:bob@10.9.9.8")
