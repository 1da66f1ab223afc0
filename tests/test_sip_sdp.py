"""Tests for `sbc.sip.sdp`: the SDP codec (RFC 4566) and the offer/answer rewrites (RFC 3264)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sbc.sip.errors import SIPParseError
from sbc.sip.sdp import (
    Attribute,
    Connection,
    Field,
    Media,
    Origin,
    SDPParseError,
    SessionDescription,
    parseSDP,
)
from sbc.sip.sdprewrite import bumpVersion, filterCodecs, hasActiveMedia, rewrite
from tests.rfc4475 import messages


def sdp(*lines: str) -> bytes:
    """An SDP body from its lines, CRLF-terminated as on the wire."""
    return "".join(line + "\r\n" for line in lines).encode("latin-1")


# What SIPp's built-in uac scenario sends, with its placeholders filled in.
SIPP = sdp(
    "v=0",
    "o=user1 53655765 2353687637 IN IP4 192.0.2.10",
    "s=-",
    "c=IN IP4 192.0.2.10",
    "t=0 0",
    "m=audio 6000 RTP/AVP 0",
    "a=rtpmap:0 PCMU/8000",
)

# A softphone offer: audio and video, media-level c= only, ICE, RTCP on an explicit port.
PHONE = sdp(
    "v=0",
    "o=alice 2890844526 2890844527 IN IP4 198.51.100.7",
    "s=call",
    "b=AS:2048",
    "t=0 0",
    "a=ice-options:trickle",
    "a=group:BUNDLE 0 1",
    "m=audio 49170 RTP/AVP 96 0 8 9 101",
    "c=IN IP4 198.51.100.7",
    "b=TIAS:64000",
    "a=mid:0",
    "a=rtpmap:96 opus/48000/2",
    "a=fmtp:96 minptime=10;useinbandfec=1",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-16",
    "a=rtcp:49171 IN IP4 198.51.100.7",
    "a=ice-ufrag:F7gI",
    "a=ice-pwd:x9cml/YzichV2+XlhiMu8g",
    "a=candidate:1 1 UDP 2130706431 10.0.1.1 49170 typ host",
    "a=candidate:2 1 UDP 1694498815 198.51.100.7 49170 typ srflx raddr 10.0.1.1 rport 49170",
    "a=end-of-candidates",
    "a=sendrecv",
    "a=x-unknown:keep me",
    "m=video 51372 RTP/AVPF 97 98 31",
    "c=IN IP4 198.51.100.7",
    "a=mid:1",
    "a=rtpmap:97 H264/90000",
    "a=fmtp:97 profile-level-id=42e01f;packetization-mode=1",
    "a=rtpmap:98 rtx/90000",
    "a=fmtp:98 apt=97",
    "a=rtcp-fb:97 nack pli",
    "a=rtcp-fb:* ccm fir",
    "a=rtcp:51372",
    "a=rtcp-mux",
    "a=recvonly",
)

# An IPv6 answer with one rejected stream and session-level c= only.
IPV6 = sdp(
    "v=0",
    "o=bob 1 1 IN IP6 2001:db8::2",
    "s=-",
    "c=IN IP6 2001:db8::2",
    "t=0 0",
    "m=audio 30000 RTP/AVP 8 13",
    "a=ptime:20",
    "m=video 0 RTP/AVP 31",
)


def corpusBodies() -> dict[str, bytes]:
    """The SDP bodies of the RFC 4475 messages (the octets after the header section)."""
    bodies = {}
    for path in messages():
        head, sep, body = path.read_bytes().partition(b"\r\n\r\n")
        if sep and b"application/sdp" in head.lower() and body.startswith(b"v=0"):
            bodies[path.name] = body
    return bodies


class ParseTests(SynchronousTestCase):
    """`parseSDP` reads o=, c=, m= and a= lines and keeps the others as they came."""

    def test_origin(self) -> None:
        """Every o= field is exposed, the session version as an int."""
        origin = parseSDP(SIPP).origin
        self.assertEqual(origin, Origin("user1", "53655765", 2353687637, "IN", "IP4", "192.0.2.10"))

    def test_sessionConnection(self) -> None:
        """A session-level c= is exposed with its network and address types."""
        self.assertEqual(parseSDP(SIPP).connection, Connection("IN", "IP4", "192.0.2.10"))

    def test_mediaSections(self) -> None:
        """Each m= line becomes a Media with type, port, proto, formats and its own lines."""
        description = parseSDP(PHONE)
        audio, video = description.media
        self.assertEqual(
            (audio.media, audio.port, audio.numPorts, audio.proto, audio.formats),
            ("audio", 49170, None, "RTP/AVP", ("96", "0", "8", "9", "101")),
        )
        self.assertEqual(
            (video.media, video.port, video.proto, video.formats),
            ("video", 51372, "RTP/AVPF", ("97", "98", "31")),
        )
        self.assertEqual(audio.connection, Connection("IN", "IP4", "198.51.100.7"))
        self.assertIsNone(description.connection)

    def test_attributesInOrder(self) -> None:
        """Attributes keep their order, a flag has value None, and lookups ignore case."""
        audio = parseSDP(PHONE).media[0]
        names = [attribute.name for attribute in audio.attributes]
        self.assertEqual(names[:4], ["mid", "rtpmap", "fmtp", "rtpmap"])
        self.assertIn(Attribute("sendrecv"), audio.attributes)
        self.assertEqual(audio.attribute("RTCP"), "49171 IN IP4 198.51.100.7")
        self.assertEqual(audio.attribute("sendrecv"), "")
        self.assertIsNone(audio.attribute("rtcp-mux"))
        self.assertEqual(len(audio.attributeValues("candidate")), 2)

    def test_sessionAttributes(self) -> None:
        """Session-level attributes are kept apart from the media's."""
        description = parseSDP(PHONE)
        self.assertEqual(description.attribute("ice-options"), "trickle")
        self.assertEqual([a.name for a in description.attributes], ["ice-options", "group"])

    def test_unknownLinesKept(self) -> None:
        """Lines the SBC does not interpret are Fields, kept in place."""
        description = parseSDP(PHONE)
        self.assertIn(Field("b", "AS:2048"), description.lines)
        self.assertEqual(description.media[0].lines[1], Field("b", "TIAS:64000"))

    def test_numberOfPorts(self) -> None:
        """``m=audio 49170/2`` reads as port 49170 with two ports, and is written back the same."""
        body = sdp(
            "v=0",
            "o=- 1 1 IN IP4 192.0.2.1",
            "s=-",
            "c=IN IP4 192.0.2.1",
            "t=0 0",
            "m=audio 49170/2 RTP/AVP 0",
        )
        description = parseSDP(body)
        self.assertEqual((description.media[0].port, description.media[0].numPorts), (49170, 2))
        self.assertEqual(bytes(description), body)

    def test_lineFeedsOnly(self) -> None:
        """A body with bare LF line ends parses, and comes out with CRLF."""
        description = parseSDP(SIPP.replace(b"\r\n", b"\n"))
        self.assertEqual(bytes(description), SIPP)

    def test_noFinalLineEnd(self) -> None:
        """A body whose last line has no line end still parses; the output ends with CRLF."""
        self.assertEqual(bytes(parseSDP(SIPP.rstrip(b"\r\n"))), SIPP)

    def test_trailingBlankLinesDropped(self) -> None:
        """Blank lines at the end of a body are tolerated and not written back."""
        self.assertEqual(bytes(parseSDP(SIPP + b"\r\n\r\n")), SIPP)

    def test_multicastSuffix(self) -> None:
        """A multicast TTL/count is split off the address and written back."""
        body = sdp(
            "v=0",
            "o=- 1 1 IN IP4 192.0.2.1",
            "s=-",
            "c=IN IP4 224.2.1.1/127/3",
            "t=0 0",
            "m=audio 5000 RTP/AVP 0",
        )
        description = parseSDP(body)
        self.assertEqual(description.connection, Connection("IN", "IP4", "224.2.1.1", "/127/3"))
        self.assertEqual(bytes(description), body)

    def test_extraWhiteSpaceNormalised(self) -> None:
        """Runs of white space inside o=, c= and m= are read, and written back as single spaces."""
        description = parseSDP(
            sdp(
                "v=0",
                "o=-  1 1 IN IP4 192.0.2.1",
                "s=-",
                "c=IN\tIP4 192.0.2.1 ",
                "t=0 0",
                "m=audio  5000 RTP/AVP 0",
            )
        )
        self.assertEqual(description.media[0].port, 5000)
        self.assertEqual(description.connectionAddress(description.media[0]), "192.0.2.1")
        self.assertEqual(
            bytes(description),
            sdp(
                "v=0",
                "o=- 1 1 IN IP4 192.0.2.1",
                "s=-",
                "c=IN IP4 192.0.2.1",
                "t=0 0",
                "m=audio 5000 RTP/AVP 0",
            ),
        )

    def test_rejectedStreamWithoutConnection(self) -> None:
        """A rejected stream (port 0) may lack any c= and a format list."""
        body = sdp("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "t=0 0", "m=audio 0 RTP/AVP")
        description = parseSDP(body)
        self.assertEqual(description.media[0].formats, ())
        self.assertIsNone(description.connectionAddress(description.media[0]))
        self.assertEqual(bytes(description), body)

    def test_noMedia(self) -> None:
        """A description with no m= line needs no c=."""
        description = parseSDP(sdp("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "t=0 0"))
        self.assertEqual(description.media, ())

    def test_errorIsSIPParseError(self) -> None:
        """SDPParseError is a SIPParseError, so the SIP layer's 400 handling applies to it."""
        self.assertTrue(issubclass(SDPParseError, SIPParseError))
        error = SDPParseError("x")
        self.assertEqual((error.reason, error.status), ("x", 400))


BASE = ["v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1", "t=0 0", "m=audio 5000 RTP/AVP 0"]


class ParseErrorTests(SynchronousTestCase):
    """Malformed SDP raises SDPParseError with the status the B2BUA should answer."""

    def assertRejected(self, body: bytes, status: int = 400) -> None:
        error = self.assertRaises(SDPParseError, parseSDP, body)
        self.assertEqual(error.status, status)

    def replaced(self, index: int, line: str | None) -> bytes:
        """BASE with one line replaced (or removed when ``line`` is None)."""
        lines = list(BASE)
        if line is None:
            del lines[index]
        else:
            lines[index] = line
        return sdp(*lines)

    def test_empty(self) -> None:
        """An empty body, or one of blank lines, is refused."""
        self.assertRejected(b"")
        self.assertRejected(b"\r\n\r\n")

    def test_notStartingWithVersion(self) -> None:
        """The first line must be v=."""
        self.assertRejected(sdp(*BASE[1:]))

    def test_unknownVersion(self) -> None:
        """Only SDP version 0 exists."""
        self.assertRejected(self.replaced(0, "v=1"))

    def test_missingOrigin(self) -> None:
        """o= is mandatory: the SBC needs it for versioning."""
        self.assertRejected(self.replaced(1, None))

    def test_twoOrigins(self) -> None:
        """A second o= is ambiguous."""
        self.assertRejected(sdp(*BASE[:2], "o=- 2 2 IN IP4 192.0.2.1", *BASE[2:]))

    def test_originInMedia(self) -> None:
        """o= belongs to the session, not to a media section."""
        self.assertRejected(sdp(*BASE, "o=- 2 2 IN IP4 192.0.2.1"))

    def test_badOrigin(self) -> None:
        """o= needs six fields and a decimal session version of sane length."""
        self.assertRejected(self.replaced(1, "o=- 1 1 IN IP4"))
        self.assertRejected(self.replaced(1, "o=- 1 x IN IP4 192.0.2.1"))
        self.assertRejected(self.replaced(1, "o=- 1 \xb2 IN IP4 192.0.2.1"))
        self.assertRejected(self.replaced(1, "o=- 1 " + "9" * 5000 + " IN IP4 192.0.2.1"))

    def test_missingConnection(self) -> None:
        """An active stream with no c= at either level is refused."""
        self.assertRejected(self.replaced(3, None))

    def test_badConnection(self) -> None:
        """c= needs three fields and a plausible address."""
        self.assertRejected(self.replaced(3, "c=IN IP4"))
        self.assertRejected(self.replaced(3, "c=IN IP4 192.0.2.1 extra"))
        self.assertRejected(self.replaced(3, "c=IN IP4 192.0.2.1;evil"))
        self.assertRejected(self.replaced(3, "c=IN IP4 /127"))
        self.assertRejected(self.replaced(3, "c=IN IP4 224.2.1.1/x"))

    def test_unsupportedAddressing(self) -> None:
        """A network or address type the relay cannot use gets 488, not 400."""
        self.assertRejected(self.replaced(3, "c=ATM NSAP 47.0005.80.ffe100.0000.f200.0000"), 488)
        self.assertRejected(self.replaced(3, "c=IN IP7 192.0.2.1"), 488)

    def test_badMediaLine(self) -> None:
        """m= needs media, a port in range, a positive port count, proto and formats."""
        for line in [
            "m=audio 5000",
            "m=audio x RTP/AVP 0",
            "m=audio 65536 RTP/AVP 0",
            "m=audio 123456 RTP/AVP 0",
            "m=audio 5000/0 RTP/AVP 0",
            "m=audio 5000/ RTP/AVP 0",
            "m=audio -1 RTP/AVP 0",
            "m=audio 5000 RTP/AVP",
        ]:
            self.assertRejected(self.replaced(5, line))

    def test_malformedLines(self) -> None:
        """A line that is not ``x=value``, a blank line inside the body, NUL and bare CR are refused."""
        self.assertRejected(sdp(*BASE, "m =video 3227 RTP/AVP 31"))
        self.assertRejected(sdp(*BASE, "garbage"))
        self.assertRejected(sdp(*BASE, "=x"))
        self.assertRejected(sdp(*BASE[:3], "", *BASE[3:]))
        self.assertRejected(sdp(*BASE, "a=x\x00"))
        self.assertRejected(sdp(*BASE, "a=x\ry"))
        self.assertRejected(sdp(*BASE, "\xe9=x"))


class RoundTripTests(SynchronousTestCase):
    """An untouched description is written back as the same lines."""

    def test_corpus(self) -> None:
        """Every SDP body of the RFC 4475 corpus comes back byte for byte (bar trailing blank lines)."""
        bodies = corpusBodies()
        self.assertGreaterEqual(len(bodies), 19)
        self.assertIn("wsinv.dat", bodies)
        self.assertIn("sdp01.dat", bodies)
        for name, body in bodies.items():
            self.assertEqual(bytes(parseSDP(body)), body.rstrip(b"\r\n") + b"\r\n", name)

    def test_wsinv(self) -> None:
        """wsinv.dat's body: o= and c= name different hosts, and both are read."""
        description = parseSDP(corpusBodies()["wsinv.dat"])
        self.assertEqual(description.origin.address, "192.0.2.3")
        self.assertEqual(description.connectionAddress(description.media[0]), "192.0.2.4")
        self.assertEqual([m.media for m in description.media], ["audio", "video"])
        self.assertEqual(description.media[1].attribute("rtpmap"), "31 LPC")

    def test_lenientCorpusBody(self) -> None:
        """mismatch02.dat's body lacks s= and t=, and is accepted as it is."""
        body = corpusBodies()["mismatch02.dat"]
        self.assertEqual(bytes(parseSDP(body)), body)

    def test_samples(self) -> None:
        """The SIPp, softphone and IPv6 samples come back byte for byte."""
        for body in (SIPP, PHONE, IPV6):
            self.assertEqual(parseSDP(body).toBytes(), body)

    def test_oddButValidLines(self) -> None:
        """Unknown types, empty attribute values, odd spacing inside a= and non-ASCII text survive."""
        body = sdp(
            *BASE[:3], "i=caf\xe9", "z=2882844526 -1h", "y=unknown", *BASE[3:], "a=", "a=x:", "a=fmtp:0  a=b "
        )
        self.assertEqual(bytes(parseSDP(body)), body)


class ConnectionTests(SynchronousTestCase):
    """`connectionAddress` gives the c= address in effect for a media section."""

    def test_sessionLevelOnly(self) -> None:
        """With only a session-level c=, every stream uses it."""
        description = parseSDP(corpusBodies()["sdp01.dat"])
        self.assertEqual([description.connectionAddress(m) for m in description.media], ["192.0.2.5"] * 2)

    def test_mediaLevelOnly(self) -> None:
        """With only media-level c= lines, each stream uses its own."""
        body = sdp(
            *BASE[:3],
            "t=0 0",
            "m=audio 5000 RTP/AVP 0",
            "c=IN IP4 192.0.2.7",
            "m=video 5002 RTP/AVP 31",
            "c=IN IP4 192.0.2.8",
        )
        description = parseSDP(body)
        self.assertEqual(
            [description.connectionAddress(m) for m in description.media], ["192.0.2.7", "192.0.2.8"]
        )

    def test_mediaOverridesSession(self) -> None:
        """A media-level c= wins over the session-level one."""
        description = parseSDP(sdp(*BASE, "c=IN IP4 192.0.2.9", "m=video 5002 RTP/AVP 31"))
        audio, video = description.media
        self.assertEqual(description.connectionAddress(audio), "192.0.2.9")
        self.assertEqual(description.connectionAddress(video), "192.0.2.1")
        self.assertEqual(description.connectionFor(video), description.connection)

    def test_ipv6(self) -> None:
        """An ``IN IP6`` address is read as it is written."""
        description = parseSDP(IPV6)
        self.assertEqual(
            description.connectionFor(description.media[0]), Connection("IN", "IP6", "2001:db8::2")
        )
        self.assertEqual(description.connectionAddress(description.media[0]), "2001:db8::2")

    def test_multicastAddress(self) -> None:
        """The address comes without its multicast TTL."""
        description = parseSDP(self.replacedConnection("c=IN IP4 224.2.1.1/127"))
        self.assertEqual(description.connectionAddress(description.media[0]), "224.2.1.1")

    def replacedConnection(self, line: str) -> bytes:
        return sdp(*BASE[:3], line, *BASE[4:])


class DirectionTests(SynchronousTestCase):
    """`direction` and `isHold` read RFC 3264 direction attributes and RFC 2543 hold."""

    def described(
        self, *extra: str, session: tuple[str, ...] = (), connection: str = "192.0.2.1"
    ) -> SessionDescription:
        return parseSDP(
            sdp(
                "v=0",
                "o=- 1 1 IN IP4 192.0.2.1",
                "s=-",
                f"c=IN IP4 {connection}",
                "t=0 0",
                *session,
                BASE[5],
                *extra,
            )
        )

    def test_default(self) -> None:
        """No direction attribute means sendrecv, and no hold."""
        description = self.described()
        self.assertEqual(description.direction(description.media[0]), "sendrecv")
        self.assertFalse(description.isHold(description.media[0]))

    def test_mediaLevel(self) -> None:
        """Each direction attribute at media level is read."""
        for direction in ("sendrecv", "sendonly", "recvonly", "inactive"):
            description = self.described(f"a={direction}")
            self.assertEqual(description.direction(description.media[0]), direction)

    def test_sessionLevelApplies(self) -> None:
        """A session-level direction applies to a stream that has none of its own."""
        description = self.described(session=("a=inactive",))
        self.assertEqual(description.direction(description.media[0]), "inactive")

    def test_mediaOverridesSession(self) -> None:
        """A media-level direction wins over the session's."""
        description = self.described("a=sendrecv", session=("a=sendonly",))
        self.assertEqual(description.direction(description.media[0]), "sendrecv")

    def test_holdByDirection(self) -> None:
        """sendonly and inactive are hold; recvonly is not."""
        for direction, hold in (("sendonly", True), ("inactive", True), ("recvonly", False)):
            description = self.described(f"a={direction}")
            self.assertEqual(description.isHold(description.media[0]), hold, direction)

    def test_holdByNullAddress(self) -> None:
        """c= 0.0.0.0 (RFC 2543) is hold, and so is the IPv6 unspecified address."""
        description = self.described(connection="0.0.0.0")
        self.assertTrue(description.isHold(description.media[0]))
        ipv6 = parseSDP(IPV6.replace(b"c=IN IP6 2001:db8::2", b"c=IN IP6 ::"))
        self.assertTrue(ipv6.isHold(ipv6.media[0]))

    def test_rejectedIsNotHold(self) -> None:
        """A rejected stream is not on hold, whatever its attributes say."""
        description = parseSDP(sdp(*BASE[:5], "m=audio 0 RTP/AVP 0", "a=inactive"))
        self.assertFalse(description.isHold(description.media[0]))


class RewriteTests(SynchronousTestCase):
    """`rewrite` anchors a description on the SBC's address and relay ports."""

    def test_originAndSessionConnection(self) -> None:
        """o= and the session-level c= take our address; the rest of o= stays."""
        out = rewrite(parseSDP(SIPP), "203.0.113.1", [40000])
        self.assertEqual(out.origin, Origin("user1", "53655765", 2353687637, "IN", "IP4", "203.0.113.1"))
        self.assertEqual(out.connection, Connection("IN", "IP4", "203.0.113.1"))
        self.assertEqual(
            bytes(out),
            SIPP.replace(b"192.0.2.10", b"203.0.113.1").replace(b"m=audio 6000", b"m=audio 40000"),
        )

    def test_mediaPortsAndConnections(self) -> None:
        """Audio and video ports and their media-level c= lines are replaced."""
        out = rewrite(parseSDP(PHONE), "203.0.113.1", [40000, 40002])
        self.assertEqual([m.port for m in out.media], [40000, 40002])
        self.assertEqual([out.connectionAddress(m) for m in out.media], ["203.0.113.1"] * 2)
        self.assertNotIn(b"198.51.100.7", bytes(out))

    def test_noneLeavesPort(self) -> None:
        """A None entry leaves that stream's port as it was."""
        out = rewrite(parseSDP(PHONE), "203.0.113.1", [None, 40002])
        self.assertEqual([m.port for m in out.media], [49170, 40002])

    def test_rejectedStaysRejected(self) -> None:
        """A stream with port 0 keeps port 0 whatever port is given."""
        out = rewrite(parseSDP(IPV6), "2001:db8::99", [40000, 40002])
        self.assertEqual([m.port for m in out.media], [40000, 0])

    def test_numberOfPortsKept(self) -> None:
        """The ``/count`` of an m= line survives a port change."""
        out = rewrite(parseSDP(self.body("m=audio 49170/2 RTP/AVP 0")), "203.0.113.1", [40000])
        self.assertIn(b"m=audio 40000/2 RTP/AVP 0\r\n", bytes(out))

    def test_ipv6Address(self) -> None:
        """An IPv6 address gives ``IN IP6`` in o= and c=, brackets or not."""
        for address in ("2001:db8::99", "[2001:db8::99]"):
            out = rewrite(parseSDP(SIPP), address, [40000])
            self.assertEqual(out.origin.addrtype, "IP6")
            self.assertEqual(out.origin.address, "2001:db8::99")
            self.assertEqual(out.connection, Connection("IN", "IP6", "2001:db8::99"))

    def test_ipv6ToIPv4(self) -> None:
        """An IPv6 peer's description anchored on an IPv4 address reads ``IN IP4``."""
        out = rewrite(parseSDP(IPV6), "203.0.113.1", [40000, None])
        self.assertIn(b"o=bob 1 1 IN IP4 203.0.113.1\r\n", bytes(out))
        self.assertIn(b"c=IN IP4 203.0.113.1\r\n", bytes(out))

    def test_nullAddressKept(self) -> None:
        """A c= 0.0.0.0 (hold) stays null, in our address family, and the stream still reads as hold."""
        held = parseSDP(SIPP.replace(b"c=IN IP4 192.0.2.10", b"c=IN IP4 0.0.0.0"))
        out = rewrite(held, "203.0.113.1", [40000])
        self.assertEqual(out.connection, Connection("IN", "IP4", "0.0.0.0"))
        self.assertTrue(out.isHold(out.media[0]))
        self.assertEqual(rewrite(held, "2001:db8::99", [40000]).connection, Connection("IN", "IP6", "::"))

    def test_multicastSuffixDropped(self) -> None:
        """Our relay address is unicast: a multicast TTL does not carry over."""
        body = sdp(*BASE[:3], "c=IN IP4 224.2.1.1/127", *BASE[4:])
        self.assertEqual(
            rewrite(parseSDP(body), "203.0.113.1", [None]).connection, Connection("IN", "IP4", "203.0.113.1")
        )

    def test_rtcpWithAddress(self) -> None:
        """``a=rtcp:PORT IN IP4 addr`` moves to the new port + 1 at our address."""
        out = rewrite(parseSDP(PHONE), "203.0.113.1", [40000, 40002])
        self.assertEqual(out.media[0].attribute("rtcp"), "40001 IN IP4 203.0.113.1")

    def test_rtcpWithAddressIPv6(self) -> None:
        """The a=rtcp address takes our IPv6 address type too."""
        out = rewrite(parseSDP(PHONE), "2001:db8::99", [40000, 40002])
        self.assertEqual(out.media[0].attribute("rtcp"), "40001 IN IP6 2001:db8::99")

    def test_rtcpWithoutAddress(self) -> None:
        """A bare ``a=rtcp:PORT`` gets only the new port (the c= address applies)."""
        out = rewrite(parseSDP(self.body("a=rtcp:5003")), "203.0.113.1", [40000])
        self.assertEqual(out.media[0].attribute("rtcp"), "40001")

    def test_rtcpMuxFollowsRTPPort(self) -> None:
        """An a=rtcp naming the RTP port itself (RFC 5761 mux) follows the new RTP port."""
        out = rewrite(parseSDP(PHONE), "203.0.113.1", [40000, 40002])
        self.assertEqual(out.media[1].attribute("rtcp"), "40002")
        self.assertEqual(out.media[1].attribute("rtcp-mux"), "")

    def test_rtcpPortLeftAlone(self) -> None:
        """With the RTP port left alone, the RTCP port stays, but its address becomes ours."""
        out = rewrite(parseSDP(PHONE), "203.0.113.1", [None, None])
        self.assertEqual(out.media[0].attribute("rtcp"), "49171 IN IP4 203.0.113.1")

    def test_rtcpDropped(self) -> None:
        """A malformed a=rtcp, one past port 65535, or one on a rejected stream is removed."""
        for line in ("a=rtcp:x", "a=rtcp:5001 IN IP4", "a=rtcp"):
            out = rewrite(parseSDP(self.body(line)), "203.0.113.1", [40000])
            self.assertEqual(out.media[0].attributeValues("rtcp"), [], line)
        out = rewrite(parseSDP(self.body("a=rtcp:5001")), "203.0.113.1", [65535])
        self.assertEqual(out.media[0].attributeValues("rtcp"), [])
        out = rewrite(parseSDP(self.body("a=rtcp:5001")), "203.0.113.1", [0])
        self.assertEqual((out.media[0].port, out.media[0].attributeValues("rtcp")), (0, []))

    def test_iceStripped(self) -> None:
        """Candidates, ice-* and end-of-candidates go at both levels; nothing else does."""
        original = parseSDP(PHONE + b"a=remote-candidates:1 192.0.2.1 5000\r\na=ICE-LITE\r\n")
        out = rewrite(original, "203.0.113.1", [40000, 40002])
        text = bytes(out).decode("latin-1").lower()
        for marker in ("candidate", "ice-", "end-of-candidates"):
            self.assertNotIn(marker, text)
        self.assertEqual(out.attribute("group"), "BUNDLE 0 1")
        removed = {
            "ice-options",
            "ice-ufrag",
            "ice-pwd",
            "candidate",
            "end-of-candidates",
            "remote-candidates",
            "ice-lite",
        }
        self.assertEqual(
            [a for m in out.media for a in m.attributes if a.name != "rtcp"],
            [a for m in original.media for a in m.attributes if a.name != "rtcp" and a.key not in removed],
        )

    def test_iceKept(self) -> None:
        """With stripICE=False, ICE attributes stay."""
        out = rewrite(parseSDP(PHONE), "203.0.113.1", [40000, 40002], stripICE=False)
        self.assertEqual(len(out.media[0].attributeValues("candidate")), 2)
        self.assertEqual(out.attribute("ice-options"), "trickle")

    def test_directionAndCodecsKept(self) -> None:
        """Direction, rtpmap, fmtp and unknown attributes come through untouched."""
        original = parseSDP(PHONE)
        out = rewrite(original, "203.0.113.1", [40000, 40002])
        self.assertEqual([out.direction(m) for m in out.media], ["sendrecv", "recvonly"])
        for before, after in zip(original.media, out.media, strict=True):
            for name in ("rtpmap", "fmtp", "rtcp-fb", "x-unknown", "mid"):
                self.assertEqual(after.attributeValues(name), before.attributeValues(name))
            self.assertEqual(after.formats, before.formats)

    def test_originalUntouched(self) -> None:
        """The input description is not modified."""
        original = parseSDP(PHONE)
        rewrite(original, "203.0.113.1", [40000, 40002])
        self.assertEqual(bytes(original), PHONE)

    def test_outputParses(self) -> None:
        """The rewritten body parses again to the same description."""
        out = rewrite(parseSDP(PHONE), "2001:db8::99", [40000, 40002])
        self.assertEqual(parseSDP(bytes(out)), out)

    def test_callerErrors(self) -> None:
        """A non-IP address, a wrong number of ports or a port out of range is a ValueError."""
        description = parseSDP(PHONE)
        self.assertRaises(ValueError, rewrite, description, "sbc.example.com", [1, 2])
        self.assertRaises(ValueError, rewrite, description, "203.0.113.1", [1])
        self.assertRaises(ValueError, rewrite, description, "203.0.113.1", [70000, 2])

    def body(self, *extra: str) -> bytes:
        """BASE (one audio stream on port 5000) with ``extra`` replacing or following its m= line."""
        if extra and extra[0].startswith("m="):
            return sdp(*BASE[:5], *extra)
        return sdp(*BASE, *extra)


class FilterCodecsTests(SynchronousTestCase):
    """`filterCodecs` keeps only the allowed payload types."""

    def test_staticNames(self) -> None:
        """Static payload types without rtpmap are named by RFC 3551."""
        description = parseSDP(PHONE)
        self.assertEqual(
            description.media[0].encodingNames(),
            {"96": "opus", "0": "PCMU", "8": "PCMA", "9": "G722", "101": "telephone-event"},
        )
        out = filterCodecs(description, {"PCMA", "G722"})
        self.assertEqual(out.media[0].formats, ("8", "9"))

    def test_rtpmapNamesCaseInsensitive(self) -> None:
        """Names from a=rtpmap match whatever the case on either side."""
        out = filterCodecs(parseSDP(PHONE), {"OPUS", "h264"})
        self.assertEqual(out.media[0].formats, ("96",))
        self.assertEqual(out.media[1].formats, ("97",))

    def test_telephoneEvent(self) -> None:
        """telephone-event stays when allowed, and goes when not."""
        description = parseSDP(PHONE)
        self.assertEqual(
            filterCodecs(description, {"pcmu", "telephone-event"}).media[0].formats, ("0", "101")
        )
        self.assertEqual(filterCodecs(description, {"pcmu"}).media[0].formats, ("0",))

    def test_attributesOfRemovedFormatsDropped(self) -> None:
        """rtpmap, fmtp and rtcp-fb lines of removed payload types go; others stay in order."""
        out = filterCodecs(parseSDP(PHONE), {"pcmu", "h261"})
        audio, video = out.media
        self.assertEqual(audio.attributeValues("rtpmap"), [])
        self.assertEqual(audio.attributeValues("fmtp"), [])
        self.assertEqual(audio.attribute("rtcp"), "49171 IN IP4 198.51.100.7")
        self.assertEqual(video.formats, ("31",))
        self.assertEqual(video.attributeValues("rtcp-fb"), ["* ccm fir"])
        self.assertEqual(audio.attribute("x-unknown"), "keep me")

    def test_rtxFollowsItsFormat(self) -> None:
        """rtx stays only while the format it repairs (its apt) stays."""
        description = parseSDP(PHONE)
        self.assertEqual(filterCodecs(description, {"h264", "rtx"}).media[1].formats, ("97", "98"))
        self.assertEqual(filterCodecs(description, {"h261", "rtx"}).media[1].formats, ("31",))

    def test_everyFormatRemovedRejects(self) -> None:
        """A stream left with no format is rejected: port 0, first original format kept."""
        out = filterCodecs(parseSDP(PHONE), {"pcmu"})
        video = out.media[1]
        self.assertEqual((video.port, video.formats), (0, ("97",)))
        self.assertEqual(video.attributeValues("rtpmap"), ["97 H264/90000"])
        self.assertTrue(hasActiveMedia(out))
        self.assertEqual(parseSDP(bytes(out)), out)

    def test_onlyAuxiliaryLeftRejects(self) -> None:
        """telephone-event alone is no call: the stream is rejected."""
        out = filterCodecs(parseSDP(PHONE), {"telephone-event", "cn"})
        self.assertEqual([m.port for m in out.media], [0, 0])
        self.assertFalse(hasActiveMedia(out))

    def test_rejectedCountDropped(self) -> None:
        """A rejected stream loses its ``/count``."""
        body = sdp(*BASE[:5], "m=audio 5000/2 RTP/AVP 0")
        media = filterCodecs(parseSDP(body), {"pcma"}).media[0]
        self.assertEqual((media.port, media.numPorts), (0, None))

    def test_dynamicWithoutRtpmapDropped(self) -> None:
        """A dynamic payload type with no rtpmap has no name, and goes."""
        out = filterCodecs(parseSDP(sdp(*BASE[:5], "m=audio 5000 RTP/AVP 0 96")), {"pcmu"})
        self.assertEqual(out.media[0].formats, ("0",))

    def test_unchangedWhenAllAllowed(self) -> None:
        """With every codec allowed, the description is unchanged."""
        description = parseSDP(SIPP)
        self.assertEqual(filterCodecs(description, ["PCMU"]), description)

    def test_nonRTPAndRejectedUntouched(self) -> None:
        """T.38 and already rejected streams are left alone."""
        body = sdp(*BASE[:5], "m=image 5000 udptl t38", "m=audio 0 RTP/AVP 8")
        description = parseSDP(body)
        self.assertEqual(filterCodecs(description, {"pcmu"}), description)

    def test_ipv6AndStatic(self) -> None:
        """Filtering works the same on an IPv6 answer; CN alone does not keep a stream."""
        out = filterCodecs(parseSDP(IPV6), {"pcma"})
        self.assertEqual(out.media[0].formats, ("8",))
        self.assertEqual(filterCodecs(parseSDP(IPV6), {"cn"}).media[0].port, 0)


class BumpVersionTests(SynchronousTestCase):
    """`bumpVersion` keeps a leg's o= consistent, per RFC 3264 section 8."""

    def test_firstOffer(self) -> None:
        """With no previous SDP on the leg, the description is returned as it is."""
        description = parseSDP(SIPP)
        self.assertIs(bumpVersion(description, None), description)

    def test_unchangedKeepsVersion(self) -> None:
        """Same content as last time: same o=, version included, even if the peer bumped its own."""
        previous = parseSDP(SIPP)
        peer = previous.withOrigin(Origin("other", "999", 7, "IN", "IP4", "192.0.2.10"))
        self.assertEqual(bumpVersion(peer, previous), previous)

    def test_changedBumpsByOne(self) -> None:
        """Changed content: username and sess-id from the previous SDP, version plus one."""
        previous = parseSDP(SIPP)
        changed = rewrite(parseSDP(SIPP), "192.0.2.10", [6002]).withOrigin(
            Origin("other", "999", 1, "IN", "IP4", "192.0.2.10")
        )
        out = bumpVersion(changed, previous)
        self.assertEqual(out.origin, Origin("user1", "53655765", 2353687638, "IN", "IP4", "192.0.2.10"))
        self.assertEqual(out.media, changed.media)

    def test_holdReinvite(self) -> None:
        """A hold re-INVITE after an offer gets the next version, and the un-hold the one after."""
        first = bumpVersion(rewrite(parseSDP(SIPP), "203.0.113.1", [40000]), None)
        held = parseSDP(SIPP + b"a=sendonly\r\n")
        second = bumpVersion(rewrite(held, "203.0.113.1", [40000]), first)
        third = bumpVersion(rewrite(parseSDP(SIPP), "203.0.113.1", [40000]), second)
        self.assertEqual(
            [d.origin.sessionVersion for d in (first, second, third)], [2353687637, 2353687638, 2353687639]
        )
        self.assertEqual(bumpVersion(third, third), third)


# -- properties: on any input, only SDPParseError may escape.

SEEDS = [SIPP, PHONE, IPV6, *sorted(set(corpusBodies().values()))]
INJECTIONS = [
    b"\r\n",
    b"\n",
    b"\r",
    b" ",
    b"  ",
    b"\t",
    b"=",
    b":",
    b"/",
    b"\x00",
    b"\xb2",
    b"\xa0",
    b"\xff",
    b"0",
    b"-1",
    b"65536",
    b"99999999999999999999999",
    b"a=",
    b"c=IN IP6 ::\r\n",
    b"c=IN IP4 0.0.0.0\r\n",
    b"m=audio 0 RTP/AVP\r\n",
    b"m=video 5000 RTP/AVP 96\r\n",
    b"a=rtcp:65535 IN IP4 1.2.3.4\r\n",
    b"a=rtcp:5000\r\n",
    b"a=rtpmap:96 rtx/90000\r\n",
    b"a=fmtp:96 apt=96\r\n",
    b"a=sendonly\r\n",
    b"a=candidate:1 1 UDP 1 1.2.3.4 5 typ host\r\n",
    b"o=- 1 1 IN IP4 1.2.3.4\r\n",
    b"v=0\r\n",
]

PROPERTY = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A seed body with up to six flips, insertions, injections, deletions or truncations."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(("flip", "insert", "inject", "delete", "truncate", "swapLines")))
        pos = draw(st.integers(0, len(data)))
        if op == "flip" and pos < len(data):
            data[pos] ^= draw(st.integers(1, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "inject":
            data[pos:pos] = draw(st.sampled_from(INJECTIONS))
        elif op == "delete":
            data[pos : pos + draw(st.integers(1, 16))] = b""
        elif op == "truncate":
            del data[pos:]
        elif op == "swapLines":
            lines = bytes(data).split(b"\r\n")
            i = draw(st.integers(0, len(lines) - 1))
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
            data = bytearray(b"\r\n".join(lines))
    return bytes(data)


class PropertyTests(SynchronousTestCase):
    """Hostile input raises SDPParseError and nothing else; what parses survives every helper."""

    def exercise(self, data: bytes) -> None:
        try:
            description = parseSDP(data)
        except SDPParseError as error:
            self.assertIn(error.status, (400, 488))
            return
        # What parses is stable: written and parsed again, it is the same description.
        again = parseSDP(bytes(description))
        self.assertEqual(again, description)
        self.assertEqual(bytes(again), bytes(description))
        for media in description.media:
            description.direction(media)
            description.isHold(media)
            address = description.connectionAddress(media)
            self.assertTrue(address is not None or media.port == 0)
            media.encodingNames()
        ports: list[int | None] = [40000 + 2 * i for i in range(len(description.media))]
        for address in ("203.0.113.1", "2001:db8::1"):
            out = bumpVersion(
                filterCodecs(rewrite(description, address, ports), {"pcmu", "telephone-event"}), description
            )
            self.assertEqual(parseSDP(bytes(out)), out)
            self.assertGreaterEqual(out.origin.sessionVersion, description.origin.sessionVersion)

    @PROPERTY
    @given(st.binary(max_size=512))
    def test_randomBytes(self, data: bytes) -> None:
        """Random bytes raise nothing but SDPParseError."""
        self.exercise(data)

    @PROPERTY
    @given(st.binary(max_size=256))
    def test_randomAfterHeader(self, data: bytes) -> None:
        """Random bytes after a valid session header raise nothing but SDPParseError."""
        self.exercise(b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n" + data)

    @PROPERTY
    @given(mutated())
    def test_mutatedBodies(self, data: bytes) -> None:
        """Mutated real bodies raise nothing but SDPParseError, and what parses round-trips."""
        self.exercise(data)

    @PROPERTY
    @given(st.lists(st.sampled_from(INJECTIONS), max_size=30))
    def test_assembledFragments(self, parts: list[bytes]) -> None:
        """Bodies assembled from SDP fragments raise nothing but SDPParseError."""
        self.exercise(b"".join(parts))


class ModelTests(SynchronousTestCase):
    """The model can be built by hand and written out."""

    def test_handBuilt(self) -> None:
        """A description built from dataclasses writes the expected body."""
        description = SessionDescription(
            (
                Field("v", "0"),
                Origin("-", "1", 2, "IN", "IP4", "192.0.2.1"),
                Field("s", "-"),
                Field("t", "0 0"),
            ),
            (
                Media(
                    "audio",
                    5000,
                    None,
                    "RTP/AVP",
                    ("0",),
                    (
                        Connection("IN", "IP4", "192.0.2.1"),
                        Attribute("rtpmap", "0 PCMU/8000"),
                        Attribute("sendrecv"),
                    ),
                ),
            ),
        )
        expected = sdp(
            "v=0",
            "o=- 1 2 IN IP4 192.0.2.1",
            "s=-",
            "t=0 0",
            "m=audio 5000 RTP/AVP 0",
            "c=IN IP4 192.0.2.1",
            "a=rtpmap:0 PCMU/8000",
            "a=sendrecv",
        )
        self.assertEqual(bytes(description), expected)
        self.assertEqual(parseSDP(expected), description)
