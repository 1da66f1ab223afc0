"""Tests for `sbc.media.bencode`: the encoding of rtpengine's ng protocol."""

from __future__ import annotations

import contextlib
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sbc.media.bencode import MAX_DEPTH, BencodeError, Encodable, Value, decode, encode

# No example database: the checkout may be read-only, and these tests must not write to it.
PROFILE = settings(
    database=None,
    deadline=None,
    max_examples=300,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Any value the decoder can return: ints, byte strings, and lists and dicts of them.
values: st.SearchStrategy[Value] = st.recursive(
    st.integers(-(10**20) + 1, 10**20 - 1) | st.binary(max_size=40),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.binary(max_size=10), inner, max_size=5),
    max_leaves=30,
)


class EncodeTests(SynchronousTestCase):
    """Known vectors of the bencode definition, and the conveniences of `encode`."""

    def test_vectors(self) -> None:
        """Each type encodes as the bencode definition shows."""
        cases: list[tuple[Encodable, bytes]] = [
            (0, b"i0e"),
            (42, b"i42e"),
            (-3, b"i-3e"),
            (b"", b"0:"),
            (b"spam", b"4:spam"),
            ([], b"le"),
            ([b"spam", b"eggs"], b"l4:spam4:eggse"),
            ({}, b"de"),
            ({b"cow": b"moo", b"spam": b"eggs"}, b"d3:cow3:moo4:spam4:eggse"),
            ({b"spam": [b"a", b"b"]}, b"d4:spaml1:a1:bee"),
            ([[[]], {b"k": 1}], b"llleed1:ki1eee"),
        ]
        for value, expected in cases:
            self.assertEqual(encode(value), expected, value)

    def test_keysSorted(self) -> None:
        """Dictionary keys come out sorted by their raw bytes, whatever order they went in."""
        self.assertEqual(encode({b"zeta": 1, b"Alpha": 2, b"alpha": 3}), b"d5:Alphai2e5:alphai3e4:zetai1ee")

    def test_strAndTuple(self) -> None:
        """``str`` encodes as UTF-8 (keys too), tuples as lists, bytearray as bytes."""
        self.assertEqual(
            encode({"call-id": "caf\u00e9", "flags": ("a",)}), b"d7:call-id5:caf\xc3\xa95:flagsl1:aee"
        )
        self.assertEqual(encode(bytearray(b"xy")), b"2:xy")

    def test_ngPing(self) -> None:
        """The ng ping as rtpengine's documentation shows it."""
        self.assertEqual(encode({"command": "ping"}), b"d7:command4:pinge")

    def test_refused(self) -> None:
        """Values bencode has no form for raise BencodeError, not TypeError."""
        for value in (True, 1.5, None, {1: b"x"}, {"k": object()}, {"k": b"x", b"k": b"y"}):
            self.assertRaises(BencodeError, encode, value)

    def test_tooDeep(self) -> None:
        """Nesting beyond the limit raises BencodeError, not RecursionError."""
        value: Any = b"x"
        for _ in range(10_000):
            value = [value]
        self.assertRaises(BencodeError, encode, value)


class DecodeTests(SynchronousTestCase):
    """Strict, bounded decoding of what a daemon on the network sends."""

    def test_vectors(self) -> None:
        """Known encodings decode to the values they stand for."""
        self.assertEqual(decode(b"i-42e"), -42)
        self.assertEqual(decode(b"4:spam"), b"spam")
        self.assertEqual(decode(b"l4:spami7ee"), [b"spam", 7])
        self.assertEqual(decode(b"d3:cow3:moo4:spam4:eggse"), {b"cow": b"moo", b"spam": b"eggs"})
        self.assertEqual(decode(b"d6:result4:ponge"), {b"result": b"pong"})

    def test_unsortedKeysAccepted(self) -> None:
        """rtpengine writes keys in insertion order ("sdp" before "result"); that decodes."""
        self.assertEqual(decode(b"d3:sdp3:v=06:result2:oke"), {b"sdp": b"v=0", b"result": b"ok"})

    def test_stringsAreBinary(self) -> None:
        """A string may hold any bytes, including NUL, ":" and "e"."""
        self.assertEqual(decode(b"5:\x00:e\xffd"), b"\x00:e\xffd")

    def test_malformed(self) -> None:
        """Every malformed input raises BencodeError."""
        for data in [
            b"",
            b"i",
            b"ie",
            b"i-e",
            b"i-0e",
            b"i03e",
            b"i1.5e",
            b"i 1e",
            b"i1",
            b"x",
            b"5:abc",
            b"05:abcde",
            b"-1:a",
            b"1a",
            b"l",
            b"li1e",
            b"d",
            b"d1:a",
            b"di1ei2ee",
            b"dle",
            b"d1:ai1e1:ai2ee",
            b"i1ei2e",
            b"4:spamX",
            b"le ",
        ]:
            self.assertRaises(BencodeError, decode, data)

    def test_notBytes(self) -> None:
        """A str instead of bytes is refused with BencodeError."""
        self.assertRaises(BencodeError, decode, "i1e")

    def test_depthLimit(self) -> None:
        """Deep nesting raises BencodeError, never RecursionError; the limit itself is fine."""
        self.assertEqual(decode(b"l" * MAX_DEPTH + b"e" * MAX_DEPTH), self.nested(MAX_DEPTH))
        self.assertRaises(BencodeError, decode, b"l" * (MAX_DEPTH + 1) + b"e" * (MAX_DEPTH + 1))
        self.assertRaises(BencodeError, decode, b"l" * 100_000 + b"e" * 100_000)
        self.assertRaises(BencodeError, decode, b"d1:a" * 100_000)
        self.assertRaises(BencodeError, decode, b"le", maxDepth=0)

    def nested(self, depth: int) -> Value:
        value: list[Value] = []
        for _ in range(depth - 1):
            value = [value]
        return value

    def test_hugeLengthClaims(self) -> None:
        """A string claiming more bytes than there are is refused before anything is allocated."""
        self.assertRaises(BencodeError, decode, b"99999999999999999999:x")
        self.assertRaises(BencodeError, decode, b"9" * 10_000 + b":x")
        self.assertRaises(BencodeError, decode, b"2147483648:" + b"x" * 10)

    def test_hugeIntegers(self) -> None:
        """Integers are capped at 20 digits: no quadratic int() on a megabyte of digits."""
        self.assertEqual(decode(b"i18446744073709551615e"), 2**64 - 1)
        self.assertRaises(BencodeError, decode, b"i" + b"1" * 21 + b"e")
        self.assertRaises(BencodeError, decode, b"i" + b"1" * 100_000 + b"e")
        self.assertRaises(BencodeError, decode, b"i-" + b"1" * 21 + b"e")
        self.assertRaises(BencodeError, encode, 10**20)
        self.assertEqual(encode(-(10**20) + 1), b"i-" + b"9" * 20 + b"e")

    def test_sizeLimit(self) -> None:
        """Input longer than maxSize is refused whole."""
        self.assertRaises(BencodeError, decode, b"10:0123456789", maxSize=12)
        self.assertEqual(decode(b"10:0123456789", maxSize=13), b"0123456789")

    def test_errorIsValueError(self) -> None:
        """Callers that catch ValueError catch BencodeError too."""
        self.assertTrue(issubclass(BencodeError, ValueError))


class PropertyTests(SynchronousTestCase):
    """What holds for every input."""

    @PROFILE
    @given(values)
    def test_roundTrip(self, value: Value) -> None:
        """decode(encode(v)) == v for every value, and the encoding is canonical."""
        data = encode(value)
        self.assertEqual(decode(data), value)
        self.assertEqual(encode(decode(data)), data)

    @PROFILE
    @given(st.binary(max_size=300))
    def test_randomBytes(self, data: bytes) -> None:
        """Random bytes decode or raise BencodeError; nothing else escapes."""
        try:
            value = decode(data)
        except BencodeError:
            return
        self.assertEqual(encode(value), data)

    @PROFILE
    @given(values, st.data())
    def test_mutatedEncodings(self, value: Value, data: st.DataObject) -> None:
        """A valid encoding with bytes changed, cut or inserted decodes or raises BencodeError."""
        encoded = bytearray(encode(value))
        position = data.draw(st.integers(0, len(encoded)))
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip" and position < len(encoded):
            encoded[position] = data.draw(st.sampled_from(b"0123456789ilde:-x\x00"))
        elif action == "cut":
            del encoded[position:]
        else:
            encoded[position:position] = data.draw(st.binary(min_size=1, max_size=8))
        with contextlib.suppress(BencodeError):
            decode(bytes(encoded))
