"""Tests for sbc.registrar.location: the registrar's bindings, in memory and written through to SQLite."""

from __future__ import annotations

import dataclasses
import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from sbc.interfaces import ILocationStore
from sbc.ops.state import openDatabase
from sbc.registrar.location import Binding, MemoryLocationStore, SQLiteLocationStore, canonicalAOR

ALICE = "alice@example.com"
BOB = "bob@example.com"


def binding(
    contact: str, expires: float, *, aor: str = ALICE, q: float = 1.0, cseq: int = 0, userAgent: str = ""
) -> Binding:
    """A binding of ``aor`` with the fields the test cares about."""
    return Binding(aor=aor, contact=contact, expires=expires, q=q, cseq=cseq, userAgent=userAgent)


class BindingTests(SynchronousTestCase):
    def test_remaining(self) -> None:
        """remaining() counts whole seconds up, never below zero, and 3600 stays 3600."""
        b = binding("sip:alice@192.0.2.1", 1000.25 + 3600)
        self.assertEqual(b.remaining(1000.25), 3600)
        self.assertEqual(b.remaining(1000.25 + 3599.5), 1)
        self.assertEqual(b.remaining(1000.25 + 3600), 0)
        self.assertEqual(b.remaining(99999), 0)

    def test_frozen(self) -> None:
        """A binding is a value: it cannot be changed in place."""
        b = binding("sip:alice@192.0.2.1", 60)
        with self.assertRaises(dataclasses.FrozenInstanceError):
            b.expires = 120  # type: ignore[misc]

    def test_canonicalAOR(self) -> None:
        """The domain is lower-cased and the user kept as it is."""
        self.assertEqual(canonicalAOR("Alice", "Example.COM"), "Alice@example.com")


# The mixin is typed as a test case, but is not one at run time, so it is not collected alone.
if TYPE_CHECKING:
    _TestCase = SynchronousTestCase
else:
    _TestCase = object


class LocationStoreTestsMixin(_TestCase):
    """Behaviour every ILocationStore must show; subclasses say how to make the store."""

    clock: Clock

    def makeStore(self) -> MemoryLocationStore:
        raise NotImplementedError

    def lookup(self, store: MemoryLocationStore, aor: str = ALICE) -> list[Binding]:
        result: list[Binding] = self.successResultOf(store.lookup(aor))
        return result

    def test_interface(self) -> None:
        """The store provides ILocationStore."""
        self.assertTrue(verifyObject(ILocationStore, self.makeStore()))

    def test_severalContactsOrderedByQ(self) -> None:
        """An AOR's contacts come back best q first, equal q most recently saved first."""
        store = self.makeStore()
        low = binding("sip:alice@192.0.2.1", 100, q=0.1)
        first = binding("sip:alice@192.0.2.2", 100, q=0.5)
        second = binding("sip:alice@192.0.2.3", 100, q=0.5)
        high = binding("sip:alice@192.0.2.4", 100, q=1.0)
        for b in (low, first, second, high):
            self.successResultOf(store.save(b))
        self.successResultOf(store.save(binding("sip:bob@192.0.2.9", 100, aor=BOB)))
        self.assertEqual(self.lookup(store), [high, second, first, low])

    def test_eachContactExpiresOnItsOwn(self) -> None:
        """Each contact lives until its own expiry on the clock."""
        store = self.makeStore()
        short = binding("sip:alice@192.0.2.1", 30)
        long = binding("sip:alice@192.0.2.2", 60)
        self.successResultOf(store.save(short))
        self.successResultOf(store.save(long))
        self.clock.advance(29.9)
        self.assertEqual(set(self.lookup(store)), {short, long})
        self.clock.advance(0.1)
        self.assertEqual(self.lookup(store), [long])
        self.clock.advance(30)
        self.assertEqual(self.lookup(store), [])

    def test_replace(self) -> None:
        """Saving the same AOR and contact again replaces the binding, and refreshes its recency."""
        store = self.makeStore()
        old = binding("sip:alice@192.0.2.1", 30, cseq=1)
        other = binding("sip:alice@192.0.2.2", 30)
        new = binding("sip:alice@192.0.2.1", 90, cseq=2, userAgent="phone/2")
        for b in (old, other, new):
            self.successResultOf(store.save(b))
        self.assertEqual(self.lookup(store), [new, other])
        self.clock.advance(60)
        self.assertEqual(self.lookup(store), [new])

    def test_sameContactOtherAOR(self) -> None:
        """One contact URI registered for two AORs is two bindings."""
        store = self.makeStore()
        a = binding("sip:shared@192.0.2.1", 30)
        b = binding("sip:shared@192.0.2.1", 30, aor=BOB)
        self.successResultOf(store.save(a))
        self.successResultOf(store.save(b))
        self.assertEqual(self.lookup(store), [a])
        self.assertEqual(self.lookup(store, BOB), [b])

    def test_remove(self) -> None:
        """remove drops one binding, and removing a missing one is no error."""
        store = self.makeStore()
        keep = binding("sip:alice@192.0.2.2", 30)
        self.successResultOf(store.save(binding("sip:alice@192.0.2.1", 30)))
        self.successResultOf(store.save(keep))
        self.assertIsNone(self.successResultOf(store.remove(ALICE, "sip:alice@192.0.2.1")))
        self.assertIsNone(self.successResultOf(store.remove(ALICE, "sip:alice@192.0.2.1")))
        self.assertIsNone(self.successResultOf(store.remove("nobody@example.com", "sip:x")))
        self.assertEqual(self.lookup(store), [keep])

    def test_removeAll(self) -> None:
        """removeAll drops every binding of one AOR and none of another."""
        store = self.makeStore()
        bob = binding("sip:bob@192.0.2.9", 30, aor=BOB)
        self.successResultOf(store.save(binding("sip:alice@192.0.2.1", 30)))
        self.successResultOf(store.save(binding("sip:alice@192.0.2.2", 30)))
        self.successResultOf(store.save(bob))
        self.assertIsNone(self.successResultOf(store.removeAll(ALICE)))
        self.assertIsNone(self.successResultOf(store.removeAll(ALICE)))
        self.assertEqual(self.lookup(store), [])
        self.assertEqual(self.successResultOf(store.all()), [bob])

    def test_expire(self) -> None:
        """expire drops the bindings whose time has passed and counts them."""
        store = self.makeStore()
        keep = binding("sip:alice@192.0.2.2", 60)
        self.successResultOf(store.save(binding("sip:alice@192.0.2.1", 30)))
        self.successResultOf(store.save(keep))
        self.successResultOf(store.save(binding("sip:bob@192.0.2.9", 10, aor=BOB)))
        self.assertEqual(self.successResultOf(store.expire()), 0)
        self.clock.advance(30)
        self.assertEqual(self.successResultOf(store.expire()), 2)
        self.assertEqual(self.successResultOf(store.expire()), 0)
        self.assertEqual(self.successResultOf(store.all()), [keep])

    def test_sourcesCounted(self) -> None:
        """Bindings are counted by source host as they are saved, replaced, removed and expired."""
        store = self.makeStore()
        nat, other = ("198.51.100.7", 5060), ("198.51.100.8", 5060)
        for n in range(3):
            phone = dataclasses.replace(binding(f"sip:a@10.0.0.{n}", 30), source=nat)
            self.successResultOf(store.save(phone))
        bob = dataclasses.replace(binding("sip:bob@10.0.0.9", 60, aor=BOB), source=nat)
        self.successResultOf(store.save(bob))
        self.successResultOf(store.save(dataclasses.replace(bob, cseq=2)))  # a refresh: no new device
        self.assertEqual(store.sources, {"198.51.100.7": 4})
        self.successResultOf(store.save(dataclasses.replace(bob, source=other)))  # it moved
        self.successResultOf(store.remove(ALICE, "sip:a@10.0.0.0"))
        self.assertEqual(store.sources, {"198.51.100.7": 2, "198.51.100.8": 1})
        self.successResultOf(store.removeAll(ALICE))
        self.assertEqual(store.sources, {"198.51.100.8": 1})
        self.clock.advance(60)
        self.successResultOf(store.expire())
        self.assertEqual(store.sources, {})

    def test_all(self) -> None:
        """all lists the live bindings of every AOR."""
        store = self.makeStore()
        a = binding("sip:alice@192.0.2.1", 30)
        b = binding("sip:bob@192.0.2.9", 60, aor=BOB)
        self.successResultOf(store.save(a))
        self.successResultOf(store.save(b))
        everything: list[Binding] = self.successResultOf(store.all())
        self.assertEqual(set(everything), {a, b})
        self.clock.advance(30)
        self.assertEqual(self.successResultOf(store.all()), [b])


class MemoryLocationStoreTests(LocationStoreTestsMixin, SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()

    def makeStore(self) -> MemoryLocationStore:
        return MemoryLocationStore(self.clock)


class SQLiteLocationStoreTests(LocationStoreTestsMixin, SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, directory)
        self.path = directory / "state" / "sbc.sqlite"
        self.connection = self.open()

    def open(self) -> sqlite3.Connection:
        connection = openDatabase(self.path)
        self.addCleanup(connection.close)
        return connection

    def makeStore(self) -> SQLiteLocationStore:
        return SQLiteLocationStore(self.clock, self.connection)

    def restart(self) -> SQLiteLocationStore:
        """A new store on a new connection to the same file, as after a restart."""
        self.connection.close()
        self.connection = self.open()
        return self.makeStore()

    def rows(self) -> int:
        (count,) = self.connection.execute("SELECT COUNT(*) FROM bindings").fetchone()
        return int(count)

    def test_roundTrip(self) -> None:
        """Every field of every binding, and their order, survive a restart."""
        self.clock.advance(1_700_000_000.25)  # wall-clock time, as the real reactor gives
        now = self.clock.seconds()
        store = self.makeStore()
        full = Binding(
            aor=ALICE,
            contact="sip:alice@10.0.0.5:5062;transport=tls;ob",
            expires=now + 3600.5,
            q=0.7,
            callId="a84b4c76e66710@pc33",
            cseq=314159,
            transport="TLS",
            source=("2001:db8::5", 40123),
            instance='"<urn:uuid:00000000-0000-1000-8000-000a95a0e128>"',
            regId=1,
            userAgent="phone/1.0",
        )
        first = binding("sip:alice@192.0.2.1", now + 60, q=0.7)
        bob = binding("sip:bob@192.0.2.9", now + 60, aor=BOB)
        for b in (first, full, bob):
            self.successResultOf(store.save(b))
        before = self.lookup(store)
        self.assertEqual(before, [full, first])

        store = self.restart()
        self.assertEqual(self.lookup(store), before)
        self.assertEqual(self.lookup(store, BOB), [bob])

    def test_sourcesCountedAfterRestart(self) -> None:
        """The bindings loaded at a restart are counted by source host too."""
        store = self.makeStore()
        for n in range(2):
            saved = dataclasses.replace(binding(f"sip:a@10.0.0.{n}", 60), source=("198.51.100.7", 5060))
            self.successResultOf(store.save(saved))
        self.assertEqual(self.restart().sources, {"198.51.100.7": 2})

    def test_newSaveAfterRestartIsMostRecent(self) -> None:
        """The save order continues across a restart, so a new binding still ranks as newest."""
        now = self.clock.seconds()
        store = self.makeStore()
        old = binding("sip:alice@192.0.2.1", now + 60)
        self.successResultOf(store.save(old))
        store = self.restart()
        new = binding("sip:alice@192.0.2.2", now + 60)
        self.successResultOf(store.save(new))
        self.assertEqual(self.lookup(store), [new, old])

    def test_expiredNotLoaded(self) -> None:
        """A binding that expired while the server was down is not loaded."""
        now = self.clock.seconds()
        store = self.makeStore()
        live = binding("sip:alice@192.0.2.2", now + 60)
        self.successResultOf(store.save(binding("sip:alice@192.0.2.1", now + 30)))
        self.successResultOf(store.save(live))
        self.connection.close()
        self.clock.advance(30)
        self.connection = self.open()
        store = self.makeStore()
        self.assertEqual(self.successResultOf(store.all()), [live])

    def test_removalPersisted(self) -> None:
        """remove, removeAll and expire reach the database, so a restart does not bring bindings back."""
        now = self.clock.seconds()
        store = self.makeStore()
        kept = binding("sip:carol@192.0.2.7", now + 600, aor="carol@example.com")
        for b in (
            binding("sip:alice@192.0.2.1", now + 600),
            binding("sip:bob@192.0.2.8", now + 600, aor=BOB),
            binding("sip:bob@192.0.2.9", now + 600, aor=BOB),
            binding("sip:dave@192.0.2.6", now + 10, aor="dave@example.com"),
            kept,
        ):
            self.successResultOf(store.save(b))
        self.assertEqual(self.rows(), 5)
        self.successResultOf(store.remove(ALICE, "sip:alice@192.0.2.1"))
        self.successResultOf(store.removeAll(BOB))
        self.clock.advance(10)
        self.assertEqual(self.successResultOf(store.expire()), 1)
        self.assertEqual(self.rows(), 1)
        self.assertEqual(self.successResultOf(self.restart().all()), [kept])

    def test_replacePersisted(self) -> None:
        """A replaced binding is one row, holding the new values."""
        now = self.clock.seconds()
        store = self.makeStore()
        self.successResultOf(store.save(binding("sip:alice@192.0.2.1", now + 60, cseq=1)))
        new = binding("sip:alice@192.0.2.1", now + 120, cseq=2)
        self.successResultOf(store.save(new))
        self.assertEqual(self.rows(), 1)
        self.assertEqual(self.lookup(self.restart()), [new])

    def test_failedWriteChangesNothing(self) -> None:
        """When the database refuses a write the Deferred fails and memory stays as it was."""
        now = self.clock.seconds()
        store = self.makeStore()
        old = binding("sip:alice@192.0.2.1", now + 60)
        self.successResultOf(store.save(old))
        self.connection.close()
        self.failureResultOf(store.save(binding("sip:alice@192.0.2.2", now + 60)), sqlite3.ProgrammingError)
        self.failureResultOf(store.removeAll(ALICE), sqlite3.ProgrammingError)
        self.assertEqual(self.lookup(store), [old])
