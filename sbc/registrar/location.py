"""The location service (RFC 3261 section 10): which contacts an address-of-record has registered.

`MemoryLocationStore` is the embedded store. `SQLiteLocationStore` keeps the same index in memory
for reads and writes every change through to SQLite, so registrations survive a restart.
Both provide `sbc.interfaces.ILocationStore`, whose methods return Deferreds so that a network
store (Redis, for several SBC nodes) can take their place; these two answer at once.
"""

from __future__ import annotations

import math
import sqlite3
from collections import Counter
from dataclasses import dataclass

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from sbc.interfaces import ILocationStore

__all__ = ["Binding", "MemoryLocationStore", "SQLiteLocationStore", "canonicalAOR"]

# A binding whose expiry is this close counts its last second as whole: clock arithmetic
# (now + 3600 - now) must not turn 3600 into 3601.
_EPSILON = 1e-6


def canonicalAOR(user: str, domain: str) -> str:
    """The store's key for an address-of-record: the user as given, the domain in lower case.

    SIP compares host names case-insensitively and user parts case-sensitively (RFC 3261 19.1.4).
    """
    return f"{user}@{domain.lower()}"


@dataclass(frozen=True, slots=True)
class Binding:
    """One registered contact of one AOR, with what we need to reach the device behind NAT."""

    aor: str
    contact: str
    expires: float
    q: float = 1.0
    callId: str = ""
    cseq: int = 0
    transport: str = "UDP"
    source: tuple[str, int] = ("", 0)
    instance: str | None = None
    regId: int | None = None
    userAgent: str = ""

    def remaining(self, now: float) -> int:
        """Whole seconds left, rounded up so a live binding never reports 0 (which means removed)."""
        return max(0, math.ceil(self.expires - now - _EPSILON))

    def isLive(self, now: float) -> bool:
        """Whether the binding still counts at ``now``."""
        return self.expires > now


# Bindings of one AOR by contact URI, each with the sequence number of its last save, which
# orders bindings of equal q: the most recently saved first.
_Entries = dict[str, tuple[int, Binding]]


@implementer(ILocationStore)
class MemoryLocationStore:
    """Bindings in a dict of AORs, so a lookup costs only the bindings of that AOR."""

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self._aors: dict[str, _Entries] = {}
        self._sequence = 0
        # Bindings by source host, kept as they are saved and removed (expired ones count until
        # `expire` drops them): the flood limit gives a source a budget per device it registered.
        self.sources: Counter[str] = Counter()

    # ILocationStore

    def lookup(self, aor: str) -> defer.Deferred[list[Binding]]:
        """Every live binding of ``aor``: highest q first, then the most recently saved."""
        now = self._clock.seconds()
        entries = self._aors.get(aor, {})
        live = [(seq, b) for seq, b in entries.values() if b.isLive(now)]
        live.sort(key=lambda entry: (-entry[1].q, -entry[0]))
        return defer.succeed([binding for _, binding in live])

    def save(self, binding: Binding) -> defer.Deferred[None]:
        """Add ``binding`` or replace the one with the same AOR and contact URI."""
        return defer.execute(self._save, binding)

    def remove(self, aor: str, contact: str) -> defer.Deferred[None]:
        """Drop one binding; a missing one is not an error (a REGISTER may be retried)."""
        return defer.execute(self._remove, aor, contact)

    def removeAll(self, aor: str) -> defer.Deferred[None]:
        """Drop every binding of ``aor``, as ``Contact: *`` with ``Expires: 0`` asks."""
        return defer.execute(self._removeAll, aor)

    def expire(self) -> defer.Deferred[int]:
        """Drop every binding whose time has come; the count is for logs and metrics."""
        return defer.execute(self._expire)

    def all(self) -> defer.Deferred[list[Binding]]:
        """Every live binding, grouped by AOR, each group ordered as `lookup` orders it."""
        now = self._clock.seconds()
        result: list[Binding] = []
        for entries in self._aors.values():
            live = [(seq, b) for seq, b in entries.values() if b.isLive(now)]
            live.sort(key=lambda entry: (-entry[1].q, -entry[0]))
            result.extend(binding for _, binding in live)
        return defer.succeed(result)

    # The in-memory index, and the hooks a persistent store fills in. A hook runs before the
    # index changes, so a failed write leaves memory as it was and the Deferred fails.

    def _save(self, binding: Binding) -> None:
        self._sequence += 1
        self._persistSave(binding, self._sequence)
        self._insert(binding, self._sequence)

    def _insert(self, binding: Binding, sequence: int) -> None:
        entries = self._aors.setdefault(binding.aor, {})
        old = entries.get(binding.contact)
        if old is not None:
            self._uncount(old[1])
        entries[binding.contact] = (sequence, binding)
        self.sources[binding.source[0]] += 1
        self._sequence = max(self._sequence, sequence)

    def _uncount(self, binding: Binding) -> None:
        host = binding.source[0]
        left = self.sources[host] - 1
        if left > 0:
            self.sources[host] = left
        else:
            del self.sources[host]

    def _remove(self, aor: str, contact: str) -> None:
        self._persistRemove(aor, contact)
        entries = self._aors.get(aor)
        if entries is not None:
            old = entries.pop(contact, None)
            if old is not None:
                self._uncount(old[1])
            if not entries:
                del self._aors[aor]

    def _removeAll(self, aor: str) -> None:
        self._persistRemoveAll(aor)
        for _, binding in self._aors.pop(aor, {}).values():
            self._uncount(binding)

    def _expire(self) -> int:
        now = self._clock.seconds()
        self._persistExpire(now)
        count = 0
        for aor in list(self._aors):
            entries = self._aors[aor]
            for contact in [c for c, (_, b) in entries.items() if not b.isLive(now)]:
                self._uncount(entries.pop(contact)[1])
                count += 1
            if not entries:
                del self._aors[aor]
        return count

    def _persistSave(self, binding: Binding, sequence: int) -> None:
        """Nothing to persist: this store lives in memory only."""

    def _persistRemove(self, aor: str, contact: str) -> None:
        """Nothing to persist: this store lives in memory only."""

    def _persistRemoveAll(self, aor: str) -> None:
        """Nothing to persist: this store lives in memory only."""

    def _persistExpire(self, now: float) -> None:
        """Nothing to persist: this store lives in memory only."""


# A constant, joined into the statements below; every value goes in as a ? parameter.
_COLUMNS = (
    "aor, contact, expires, q, call_id, cseq, transport, source_host, source_port,"
    " instance, reg_id, user_agent, seq"
)


@implementer(ILocationStore)
class SQLiteLocationStore(MemoryLocationStore):
    """Memory for reads, SQLite written through on every change, so a restart keeps registrations.

    ``connection`` comes from `sbc.ops.state.openDatabase`, which creates the ``bindings`` table.
    Each change is one statement, committed before the in-memory index changes.
    """

    def __init__(self, clock: IReactorTime, connection: sqlite3.Connection) -> None:
        super().__init__(clock)
        self._connection = connection
        rows = connection.execute(
            f"SELECT {_COLUMNS} FROM bindings WHERE expires > ? ORDER BY seq",
            (clock.seconds(),),
        ).fetchall()
        for row in rows:
            (aor, contact, expires, q, callId, cseq, transport, host, port, instance, regId, ua, seq) = row
            binding = Binding(
                aor=aor,
                contact=contact,
                expires=expires,
                q=q,
                callId=callId,
                cseq=cseq,
                transport=transport,
                source=(host, port),
                instance=instance,
                regId=regId,
                userAgent=ua,
            )
            self._insert(binding, seq)

    def _write(self, sql: str, parameters: tuple[object, ...]) -> None:
        with self._connection:
            self._connection.execute(sql, parameters)

    def _persistSave(self, binding: Binding, sequence: int) -> None:
        self._write(
            f"INSERT OR REPLACE INTO bindings ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                binding.aor,
                binding.contact,
                binding.expires,
                binding.q,
                binding.callId,
                binding.cseq,
                binding.transport,
                binding.source[0],
                binding.source[1],
                binding.instance,
                binding.regId,
                binding.userAgent,
                sequence,
            ),
        )

    def _persistRemove(self, aor: str, contact: str) -> None:
        self._write("DELETE FROM bindings WHERE aor = ? AND contact = ?", (aor, contact))

    def _persistRemoveAll(self, aor: str) -> None:
        self._write("DELETE FROM bindings WHERE aor = ?", (aor,))

    def _persistExpire(self, now: float) -> None:
        self._write("DELETE FROM bindings WHERE expires <= ?", (now,))
