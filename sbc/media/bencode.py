"""Bencode, the encoding of rtpengine's ng control protocol: bytes <-> Python values, no I/O.

The four bencode types map to ``int``, ``bytes``, ``list`` and ``dict`` with ``bytes`` keys. The
encoder also takes ``str`` (as UTF-8) and tuples for convenience, and writes dictionary keys sorted
by their raw bytes, as the bencode definition requires.

The decoder reads replies from a daemon on the network, so it is strict about syntax and bounded in
what it spends: the input size, the nesting depth and the digits of a number are capped, a string
may not claim more bytes than the input still holds, and every malformed input raises
`BencodeError` and nothing else (no ``RecursionError``, no ``MemoryError``, no ``ValueError``).
It accepts dictionary keys in any order, because rtpengine writes them in insertion order, but
refuses a key that appears twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeAlias

# What `decode` returns; `encode` also takes ``str``, tuples and any mapping (see `Encodable`).
Value: TypeAlias = int | bytes | list["Value"] | dict[bytes, "Value"]
Encodable: TypeAlias = (
    int
    | bytes
    | bytearray
    | str
    | Sequence["Encodable"]
    | Mapping[str, "Encodable"]
    | Mapping[bytes, "Encodable"]
)

# Defaults for `decode`: an ng datagram is at most 64 KiB, and its nesting is a few levels deep.
MAX_SIZE = 1 << 20
MAX_DEPTH = 32
# Enough digits for any 64-bit integer and any string length `MAX_SIZE` allows, with room to spare.
MAX_DIGITS = 20

_DIGITS = frozenset(b"0123456789")


class BencodeError(ValueError):
    """The bytes are not well-formed bencode, or exceed a limit; or a value cannot be encoded."""


def encode(value: Encodable) -> bytes:
    """Encode ``value`` as bencode; raise `BencodeError` for a type bencode has no form for."""
    out: list[bytes] = []
    _encode(value, out, 0)
    return b"".join(out)


def _encode(value: Encodable, out: list[bytes], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise BencodeError(f"nesting deeper than {MAX_DEPTH} levels")
    # bool is an int, but True is no number a daemon expects: refuse it rather than send 1.
    if isinstance(value, bool):
        raise BencodeError(f"cannot encode a bool ({value!r}); use an int or a string")
    if isinstance(value, int):
        if len(str(abs(value))) > MAX_DIGITS:
            raise BencodeError(f"integer of more than {MAX_DIGITS} digits; the decoder would refuse it")
        out.append(b"i%de" % value)
    elif isinstance(value, bytes | bytearray):
        out.append(b"%d:" % len(value))
        out.append(bytes(value))
    elif isinstance(value, str):
        _encode(value.encode("utf-8"), out, depth)
    elif isinstance(value, Mapping):
        items: dict[bytes, Encodable] = {}
        for key, item in value.items():
            raw = key.encode("utf-8") if isinstance(key, str) else key
            if not isinstance(raw, bytes):
                raise BencodeError(f"dictionary keys must be bytes or str, not {type(key).__name__}")
            if raw in items:
                raise BencodeError(f"dictionary key {raw!r} given twice (as str and as bytes)")
            items[raw] = item
        out.append(b"d")
        for raw in sorted(items):
            _encode(raw, out, depth + 1)
            _encode(items[raw], out, depth + 1)
        out.append(b"e")
    elif isinstance(value, Sequence):
        out.append(b"l")
        for item in value:
            _encode(item, out, depth + 1)
        out.append(b"e")
    else:
        raise BencodeError(f"cannot encode a {type(value).__name__}")


def decode(data: bytes, *, maxSize: int = MAX_SIZE, maxDepth: int = MAX_DEPTH) -> Value:
    """Decode one bencoded value that fills ``data`` exactly.

    Raise `BencodeError` for malformed input, trailing bytes, input longer than ``maxSize`` or
    nesting deeper than ``maxDepth``.
    """
    if not isinstance(data, bytes):
        raise BencodeError(f"expected bytes, not {type(data).__name__}")
    if len(data) > maxSize:
        raise BencodeError(f"input of {len(data)} bytes exceeds the limit of {maxSize}")
    value, end = _Decoder(data, maxDepth).value(0, 0)
    if end != len(data):
        raise BencodeError(f"trailing data at offset {end}")
    return value


class _Decoder:
    """One pass over one input: the recursion carries the depth, so it stops at ``maxDepth``."""

    def __init__(self, data: bytes, maxDepth: int) -> None:
        self.data = data
        self.maxDepth = maxDepth

    def value(self, offset: int, depth: int) -> tuple[Value, int]:
        data = self.data
        if offset >= len(data):
            raise BencodeError("unexpected end of input")
        lead = data[offset]
        if lead == ord("i"):
            end = self._find(b"e", offset + 1)
            return self._integer(data[offset + 1 : end], offset), end + 1
        if lead in _DIGITS:
            return self._string(offset)
        if lead == ord("l"):
            return self._list(offset + 1, depth + 1)
        if lead == ord("d"):
            return self._dict(offset + 1, depth + 1)
        raise BencodeError(f"unexpected byte {bytes([lead])!r} at offset {offset}")

    def _find(self, marker: bytes, start: int) -> int:
        # Look only a bounded distance ahead: a number has at most MAX_DIGITS digits and a sign.
        end = self.data.find(marker, start, start + MAX_DIGITS + 2)
        if end < 0:
            raise BencodeError(f"number at offset {start} is unterminated or longer than {MAX_DIGITS} digits")
        return end

    def _integer(self, text: bytes, offset: int) -> int:
        digits = text[1:] if text.startswith(b"-") else text
        if not digits or not all(c in _DIGITS for c in digits):
            raise BencodeError(f"malformed integer {text!r} at offset {offset}")
        if len(digits) > MAX_DIGITS:
            raise BencodeError(f"integer at offset {offset} has more than {MAX_DIGITS} digits")
        if digits.startswith(b"0") and (len(digits) > 1 or text.startswith(b"-")):
            raise BencodeError(f"integer {text!r} at offset {offset} has a leading zero or is -0")
        return int(text)

    def _string(self, offset: int) -> tuple[bytes, int]:
        colon = self._find(b":", offset)
        text = self.data[offset:colon]
        if not all(c in _DIGITS for c in text) or (len(text) > 1 and text.startswith(b"0")):
            raise BencodeError(f"malformed string length {text!r} at offset {offset}")
        length = int(text)
        start = colon + 1
        if length > len(self.data) - start:
            raise BencodeError(f"string at offset {offset} claims {length} bytes; the input is shorter")
        return self.data[start : start + length], start + length

    def _checkDepth(self, depth: int, offset: int) -> None:
        if depth > self.maxDepth:
            raise BencodeError(f"nesting deeper than {self.maxDepth} levels at offset {offset}")

    def _list(self, offset: int, depth: int) -> tuple[list[Value], int]:
        self._checkDepth(depth, offset)
        items: list[Value] = []
        while True:
            if offset >= len(self.data):
                raise BencodeError("unterminated list")
            if self.data[offset] == ord("e"):
                return items, offset + 1
            item, offset = self.value(offset, depth)
            items.append(item)

    def _dict(self, offset: int, depth: int) -> tuple[dict[bytes, Value], int]:
        self._checkDepth(depth, offset)
        items: dict[bytes, Value] = {}
        while True:
            if offset >= len(self.data):
                raise BencodeError("unterminated dictionary")
            if self.data[offset] == ord("e"):
                return items, offset + 1
            if self.data[offset] not in _DIGITS:
                raise BencodeError(f"dictionary key at offset {offset} is not a string")
            key, offset = self._string(offset)
            if key in items:
                raise BencodeError(f"dictionary key {key!r} repeated")
            items[key], offset = self.value(offset, depth)
