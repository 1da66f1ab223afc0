"""Server nonces for digest challenges: self-validating, expiring, and never accepted twice.

A nonce carries its issue time, a sequence number, random bits and a truncated HMAC under the
server secret, so checking that a nonce is ours and how old it is needs no state at all. State
is needed only to refuse replays: for each nonce in use we remember the highest nonce-count
accepted.

That state is bounded two ways. Records older than the lifetime are pruned (their nonces are
STALE by age anyway). And at most ``maxTracked`` records are kept: when one must be evicted for
room, the "floor" rises to its place in issue order and every nonce issued at or before the
floor is STALE from then on, so forgetting a record can never let its nonce be replayed. (Issue
order is the issue time, then the sequence number: nonces issued within one clock tick are still
ordered, so an eviction never condemns the nonces issued after it in the same tick.) The floor starts just
before the manager was made, so a nonce issued by an earlier process under the same secret,
whose records died with it, is never VALID either.

Call `NonceManager.check` only once the digest response has verified: it records the nonce-count,
and recording one for a forged request would let anyone who saw a nonce burn it (and, worse, fill
the table). A nonce that is not ours is INVALID whatever the order.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import heapq
import hmac
import os
import re
import struct

from twisted.internet.interfaces import IReactorTime

_STAMP = struct.Struct(">q")  # issue time, signed microseconds since the clock's epoch
_SEQUENCE_SIZE = 6  # issue order within this manager; 2**48 issues never wrap
_RANDOM_SIZE = 6
_MAC_SIZE = 16
_BODY_SIZE = _STAMP.size + _SEQUENCE_SIZE + _RANDOM_SIZE
_RAW_SIZE = _BODY_SIZE + _MAC_SIZE  # 36 octets: base64 with no padding
_TEXT_SIZE = _RAW_SIZE * 4 // 3
_NONCE_TEXT = re.compile(rf"[A-Za-z0-9_-]{{{_TEXT_SIZE}}}")
_MAC_LABEL = b"sbc nonce v1\x00"
_NC = re.compile(r"[0-9A-Fa-f]{8}")
# Recorded for a nonce used without qop: above every 8-digit nonce-count, so any reuse is REPLAY.
_SPENT = 1 << 32
_MICRO = 1_000_000


class NonceState(enum.Enum):
    """What a nonce is worth, and so how to answer a request that carries it."""

    VALID = "valid"  # accept (the nonce-count has been recorded)
    STALE = "stale"  # ours but expired: challenge again with stale=true (RFC 7616 section 3.3)
    INVALID = "invalid"  # not ours: challenge again without stale
    REPLAY = "replay"  # ours, but this nonce-count was already used: challenge again


# Where a nonce stands in issue order: (issue time, sequence number). Time first, so that a
# restarted manager, whose sequence starts again at 0, still orders after its predecessor.
_Order = tuple[int, int]


class NonceManager:
    """Issues nonces and judges the ones that come back, on an injected clock."""

    def __init__(
        self, clock: IReactorTime, secret: bytes, lifetime: float = 300.0, maxTracked: int = 100_000
    ) -> None:
        if not secret:
            raise ValueError("the nonce secret must not be empty")
        if lifetime <= 0:
            raise ValueError("the nonce lifetime must be positive")
        if maxTracked < 1:
            raise ValueError("maxTracked must be at least 1")
        self._clock = clock
        self._secret = secret
        self._lifetime = round(lifetime * _MICRO)
        self._maxTracked = maxTracked
        self._sequence = 0
        # Highest nonce-count accepted, per nonce in use.
        self._highest: dict[str, int] = {}
        # The same records as a heap in issue order, oldest first.
        self._order: list[tuple[int, int, str]] = []
        # Every nonce at or before this point in issue order is STALE. It starts just before
        # this manager was made: nonces of an earlier process have no records any more.
        self._floor: _Order = (self._now() - 1, 1 << (8 * _SEQUENCE_SIZE))

    @property
    def tracked(self) -> int:
        """How many nonce records are held (for metrics and tests)."""
        return len(self._highest)

    def _now(self) -> int:
        return round(self._clock.seconds() * _MICRO)

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._secret, _MAC_LABEL + body, hashlib.sha256).digest()[:_MAC_SIZE]

    def issue(self) -> str:
        """A fresh nonce: URL-safe base64, so it needs no escaping inside a quoted-string.

        Issuing keeps no state, so answering a flood of unauthenticated requests costs no memory.
        """
        now = self._now()
        self._prune(now)
        self._sequence += 1
        body = _STAMP.pack(now) + self._sequence.to_bytes(_SEQUENCE_SIZE, "big") + os.urandom(_RANDOM_SIZE)
        return base64.urlsafe_b64encode(body + self._mac(body)).decode("ascii")

    def _decode(self, nonce: str) -> _Order | None:
        """Where one of our nonces stands in issue order, or None for anything else."""
        # The strict pattern makes the text canonical: base64 decoders accept other spellings
        # of the same octets ('+' for '-', padding), and each would otherwise get its own record.
        if _NONCE_TEXT.fullmatch(nonce) is None:
            return None
        raw = base64.urlsafe_b64decode(nonce)
        body, mac = raw[:_BODY_SIZE], raw[_BODY_SIZE:]
        if not hmac.compare_digest(self._mac(body), mac):
            return None
        issued: int = _STAMP.unpack_from(body)[0]
        sequence = int.from_bytes(body[_STAMP.size : _STAMP.size + _SEQUENCE_SIZE], "big")
        return issued, sequence

    def check(self, nonce: str, nc: str | None) -> NonceState:
        """Judge a nonce and nonce-count (8 hex digits, or None without qop) from a verified request."""
        now = self._now()
        self._prune(now)
        order = self._decode(nonce)
        if order is None or order[0] > now:
            return NonceState.INVALID
        if now - order[0] > self._lifetime or order <= self._floor:
            return NonceState.STALE
        if nc is None:
            count = _SPENT
        elif _NC.fullmatch(nc) is None:
            return NonceState.INVALID
        else:
            count = int(nc, 16)
        highest = self._highest.get(nonce)
        if highest is None:
            if count == 0:
                return NonceState.REPLAY
            self._record(nonce, order, count)
            return NonceState.VALID
        if nc is None or count <= highest:
            return NonceState.REPLAY
        self._highest[nonce] = count
        return NonceState.VALID

    def _record(self, nonce: str, order: _Order, count: int) -> None:
        while len(self._highest) >= self._maxTracked:
            issued, sequence, evicted = heapq.heappop(self._order)
            del self._highest[evicted]
            self._floor = max(self._floor, (issued, sequence))
        if order <= self._floor:
            # Making room raised the floor over this nonce (it is older than the record just
            # evicted): the floor alone now refuses any further use, so a record is dead weight.
            return
        self._highest[nonce] = count
        heapq.heappush(self._order, (*order, nonce))

    def _prune(self, now: int) -> None:
        """Forget records of nonces that are stale by age; each record is popped once, O(log n)."""
        heap = self._order
        limit = now - self._lifetime
        while heap and heap[0][0] < limit:
            _, _, nonce = heapq.heappop(heap)
            del self._highest[nonce]
