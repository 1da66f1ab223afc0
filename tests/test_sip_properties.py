"""Property tests for the SIP codec: on any input, only `SIPParseError` may escape.

Inputs are random bytes, and mutations (byte flips, insertions, deletions, truncations, CRLF and
separator injection) of the valid RFC 4475 messages and of a typical INVITE. The stream framer is
fed the same inputs in random chunkings.
"""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sbc.sip.errors import SIPParseError
from sbc.sip.framing import PING, PONG, Keepalive, StreamFramer
from sbc.sip.headers import splitList
from sbc.sip.message import Limits, Message, Request, parseMessage
from sbc.sip.structured import _parseVia, parseCSeq, parseNameAddr, parseVia
from sbc.sip.uri import parseParams, parseURI, unescape
from sbc.sip.validate import validateRequest, validateResponse

from .rfc4475 import load
from .test_sip_message import INVITE, RESPONSE
from .test_sip_rfc4475 import EXPECTED

# No example database: the checkout may be read-only, and these tests must not write to it.
settings.register_profile(
    "sbc-sip",
    database=None,
    deadline=None,
    max_examples=300,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROFILE = settings.get_profile("sbc-sip")

SEEDS = [INVITE, RESPONSE] + [load(name) for name, outcome in EXPECTED.items() if outcome.stage == "valid"]

# Octets and fragments that sit on the codec's decision points.
INJECTIONS = [
    b"\r\n",
    b"\r",
    b"\n",
    b"\r\n\r\n",
    b"\r\n ",
    b"\r\n\t",
    b" ",
    b"\t",
    b":",
    b";",
    b",",
    b"=",
    b"<",
    b">",
    b'"',
    b"\\",
    b"%",
    b"%4",
    b"%00",
    b"@",
    b"[",
    b"]",
    b"/",
    b"?",
    b"\x00",
    b"\xb2",
    b"\xa0",
    b"\x85",
    b"\xff",
    b"\xb3",
    b"\xb9",
    b"\xbc",
    b"0",
    b"9999999999",
    b"-1",
    b"SIP/2.0",
    b"Content-Length: 5\r\n",
    b"l: 99999\r\n",
    b"Via: SIP/2.0/UDP [::1]:5060;rport\r\n",
    b"Contact: *\r\n",
    b"Call-ID: x\r\n",
]

OPERATIONS = ("flip", "insert", "inject", "delete", "truncate", "duplicate", "swap", "value", "number")
TARGETED = ("swap", "value", "number")
DIGITS = frozenset(b"0123456789")
NUMBERS = [
    b"",
    b"\xb2",
    b"1\xb3",
    b"\xb9\xbc",
    b"-1",
    b"+1",
    b"1e3",
    b"0x10",
    b"99999999999999999999",
    b"4294967296",
    b"65536",
    b"00000000000",
    b" 1 ",
    b"\xa01",
    b"1\x00",
]
SWAPPABLE = frozenset(b'0123456789:;,<>@="/ \r\n[]%?')

BIG = Limits(maxMessageSize=1 << 20, maxHeaders=1 << 16)


FRAGMENTS = [
    "sip:",
    "sips:",
    "tel:",
    "SIP:",
    "x:",
    "@",
    ":",
    ";",
    "=",
    "<",
    ">",
    '"',
    "\\",
    ",",
    "[",
    "]",
    "%",
    "%4",
    "%41",
    "%zz",
    " ",
    "\t",
    "a",
    "Z",
    "1",
    "0",
    "65536",
    "\xb2",
    "\xa0",
    "?",
    "&",
    "/",
    "SIP",
    "2.0",
    "UDP",
    "SIP/2.0/UDP ",
    "z9hG4bK",
    "branch=",
    "tag=",
    "5060",
    "::1",
    "host.example.com",
    "user",
    "lr",
    "*",
    "INVITE",
    "4294967296",
]
texts = st.one_of(
    st.lists(st.sampled_from(FRAGMENTS), max_size=24).map("".join),
    st.binary(max_size=64).map(lambda raw: raw.decode("latin-1")),
)


@st.composite
def mutated(draw: st.DrawFn, operations: tuple[str, ...] = OPERATIONS, most: int = 6) -> bytes:
    """A seed message with up to ``most`` mutations applied."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, most))):
        op = draw(st.sampled_from(operations))
        pos = draw(st.integers(0, len(data)))
        head = data.find(b"\r\n\r\n")
        head = len(data) if head == -1 else head
        if op == "value":
            # Replace the value of one header line with fuzzed text.
            lines = [i + 2 for i in range(head) if data.startswith(b"\r\n", i)]
            if lines:
                start = draw(st.sampled_from(lines))
                colon = data.find(b":", start, head)
                end = data.find(b"\r\n", start)
                if colon != -1 and end != -1:
                    data[colon + 1 : end] = draw(texts).encode("latin-1")
        elif op == "number":
            # Replace a run of digits in the header section with a hostile number.
            runs = [i for i in range(head) if data[i] in DIGITS and (i == 0 or data[i - 1] not in DIGITS)]
            if runs:
                start = end = draw(st.sampled_from(runs))
                while end < len(data) and data[end] in DIGITS:
                    end += 1
                data[start:end] = draw(st.sampled_from(NUMBERS))
        elif op == "swap":
            # Replace a digit or separator: where numbers and structure are read.
            targets = [i for i, octet in enumerate(data) if octet in SWAPPABLE]
            if targets:
                pos = draw(st.sampled_from(targets))
                data[pos : pos + 1] = draw(st.sampled_from(INJECTIONS))
        elif op == "flip" and pos < len(data):
            data[pos] ^= draw(st.integers(1, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "inject":
            data[pos:pos] = draw(st.sampled_from(INJECTIONS))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 32))]
        elif op == "truncate":
            del data[pos:]
        elif op == "duplicate":
            data[pos:pos] = data[pos : pos + draw(st.integers(1, 64))]
    return bytes(data)


inputs = st.one_of(st.binary(max_size=512), mutated())
# One change where the codec reads numbers and structure, the rest of the message left valid.
targeted = mutated(TARGETED, 1)


def exercise(message: Message) -> None:
    """Use every structured view; each may raise only `SIPParseError`."""
    views = [
        lambda: message.callId,
        message.cseq,
        message.topVia,
        message.vias,
        message.fromHeader,
        message.toHeader,
        message.contacts,
    ]
    for view in views:
        with contextlib.suppress(SIPParseError):
            view()
    for field in message.headers:
        with contextlib.suppress(SIPParseError):
            message.headers.getAll(field.key)
    if isinstance(message, Request):
        unescape(message.uri.user or "")


def check(data: bytes) -> None:
    """parseMessage and validation raise only SIPParseError; parsed messages write back stably."""
    try:
        message = parseMessage(data)
    except SIPParseError:
        return
    written = message.toBytes()
    again = parseMessage(written, BIG)
    assert again.toBytes() == written
    exercise(message)
    try:
        cseq = validateRequest(message) if isinstance(message, Request) else validateResponse(message)
    except SIPParseError:
        return
    # What validation promises the layers above, which then use these without a try.
    assert message.cseq() == cseq
    assert message.topVia().host
    assert message.callId is not None
    if isinstance(message, Request):
        message.fromHeader()
        message.toHeader()
        message.contacts()
        maxForwards = message.headers.get("max-forwards")
        assert maxForwards is None or int(maxForwards) >= 0


def frame(data: bytes, cuts: list[int], maxSize: int) -> tuple[list[bytes | Keepalive], bool]:
    """Feed ``data`` cut at ``cuts``; return what came out and whether the framer gave up."""
    framer = StreamFramer(maxSize)
    out: list[bytes | Keepalive] = []
    start = 0
    try:
        for cut in [*sorted(cuts), len(data)]:
            out.extend(framer.feed(data[start:cut]))
            start = max(start, cut)
    except SIPParseError:
        return out, True
    return out, False


class ParserPropertyTests(SynchronousTestCase):
    """`parseMessage` and the validators on hostile input."""

    @settings(PROFILE)
    @given(inputs)
    def test_onlySIPParseError(self, data: bytes) -> None:
        """Random and mutated messages raise nothing but SIPParseError, through validation."""
        check(data)

    @settings(PROFILE, max_examples=1000)
    @given(targeted)
    def test_targetedMutations(self, data: bytes) -> None:
        """A single hostile number, separator or header value in a valid message raises only SIPParseError."""
        check(data)

    @settings(PROFILE)
    @given(st.sampled_from(SEEDS), st.integers(0, 4000))
    def test_truncations(self, data: bytes, cut: int) -> None:
        """Every truncation of a valid message raises nothing but SIPParseError."""
        check(data[:cut])

    @settings(PROFILE)
    @given(st.sampled_from(SEEDS))
    def test_seedsRoundTrip(self, data: bytes) -> None:
        """The unmutated seeds parse and validate (so mutations start from valid messages)."""
        message = parseMessage(data)
        if isinstance(message, Request):
            validateRequest(message)
        else:
            validateResponse(message)
        self.assertEqual(parseMessage(message.toBytes()).toBytes(), message.toBytes())


class StructuredPropertyTests(SynchronousTestCase):
    """The structured parsers on random text."""

    @settings(PROFILE)
    @given(texts)
    def test_structuredParsers(self, text: str) -> None:
        """The URI, Via, name-addr, CSeq, list and parameter parsers raise only SIPParseError."""
        for parse in (parseURI, parseVia, parseNameAddr, parseCSeq, splitList):
            with contextlib.suppress(SIPParseError):
                parse(text)
        with contextlib.suppress(SIPParseError):
            parseParams(text, "test")
        self.assertIsInstance(unescape(text), str)

    @settings(PROFILE)
    @given(texts)
    def test_uriStrReparses(self, text: str) -> None:
        """A URI that parses writes back to text that parses to the same URI."""
        try:
            uri = parseURI(text)
        except SIPParseError:
            return
        self.assertEqual(parseURI(str(uri)), uri)


class FramerPropertyTests(SynchronousTestCase):
    """`StreamFramer.feed` in random chunkings."""

    @settings(PROFILE)
    @given(
        st.lists(st.sampled_from([*SEEDS[:2], INVITE, PING, PONG]), min_size=1, max_size=8),
        st.lists(st.integers(0, 20000), max_size=12),
    )
    def test_chunkingInvariant(self, parts: list[bytes], cuts: list[int]) -> None:
        """A valid stream yields the same items however it is cut, and its messages in order."""
        data = b"".join(parts)
        whole, failed = frame(data, [], 65536)
        self.assertFalse(failed)
        self.assertEqual(frame(data, cuts, 65536), (whole, False))
        self.assertEqual(
            [item for item in whole if isinstance(item, bytes)], [p for p in parts if p[:1] != b"\r"]
        )

    @settings(PROFILE)
    @given(
        st.lists(inputs, min_size=1, max_size=3),
        st.lists(st.integers(0, 4000), max_size=8),
        st.sampled_from([256, 1500, 65536]),
    )
    def test_onlySIPParseError(self, parts: list[bytes], cuts: list[int], maxSize: int) -> None:
        """Hostile streams raise only SIPParseError, the same way for any chunking."""
        data = b"".join(parts)
        whole, wholeFailed = frame(data, [], maxSize)
        chunked, chunkedFailed = frame(data, cuts, maxSize)
        self.assertEqual(chunkedFailed, wholeFailed)
        if not wholeFailed:
            self.assertEqual(chunked, whole)
        for item in chunked:
            if isinstance(item, bytes):
                self.assertLessEqual(len(item), maxSize)
                check(item)


def _outcome(parse: object, value: str) -> object:
    try:
        return parse(value)  # type: ignore[operator]
    except SIPParseError:
        return SIPParseError


class ViaFastPathTests(SynchronousTestCase):
    """The short path for plain Via values decides exactly as the full Via parser does."""

    @settings(PROFILE, max_examples=500)
    @given(
        st.from_regex(
            r"SIP/2\.0/[A-Za-z]{0,4}[ ]{1,2}[a-z0-9.\-\[\]:]{0,20}(:[0-9]{0,7})?"
            r"(;[a-zA-Z]{0,6}(=[a-zA-Z0-9.\-\" ]{0,8})?){0,4}",
            fullmatch=True,
        )
    )
    def test_agreesWithFullParser(self, value: str) -> None:
        """Same Via or same refusal, for values near the common form."""
        self.assertEqual(_outcome(parseVia, value), _outcome(_parseVia, value))
