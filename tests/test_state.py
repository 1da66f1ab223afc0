"""Tests for sbc.ops.state: the state database, its schema version, the server secret and stored bans."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import tempfile
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from sbc.config.errors import ConfigError
from sbc.ops.state import SCHEMA_VERSION, SECRET_SIZE, BanTable, loadSecret, openDatabase


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


class StateTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.directory)
        self.path = self.directory / "state" / "sbc.sqlite"

    def open(self) -> sqlite3.Connection:
        connection = openDatabase(self.path)
        self.addCleanup(connection.close)
        return connection


class OpenDatabaseTests(StateTestCase):
    def test_creates(self) -> None:
        """The parent directory is made 0700 and the database 0600, at the current schema version."""
        connection = self.open()
        self.assertEqual(mode(self.path.parent), 0o700)
        self.assertEqual(mode(self.path), 0o600)
        (version,) = connection.execute("PRAGMA user_version").fetchone()
        self.assertEqual(version, SCHEMA_VERSION)
        self.assertGreaterEqual(SCHEMA_VERSION, 1)

    def test_tables(self) -> None:
        """The bindings and bans tables exist; bans has host, until and reason."""
        connection = self.open()
        tables = {
            name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        self.assertLessEqual({"bindings", "bans"}, tables)
        columns = [(row[1], row[2], row[3], row[5]) for row in connection.execute("PRAGMA table_info(bans)")]
        self.assertEqual(columns, [("host", "TEXT", 0, 1), ("until", "REAL", 1, 0), ("reason", "TEXT", 1, 0)])

    def test_wal(self) -> None:
        """The journal is in WAL mode."""
        (journal,) = self.open().execute("PRAGMA journal_mode").fetchone()
        self.assertEqual(journal, "wal")

    def test_autocommit(self) -> None:
        """A write is committed at once: another connection sees it."""
        connection = self.open()
        connection.execute("INSERT INTO bans (host, until, reason) VALUES (?, ?, ?)", ("192.0.2.1", 1.0, "x"))
        self.assertFalse(connection.in_transaction)
        other = self.open()
        self.assertEqual(other.execute("SELECT host FROM bans").fetchall(), [("192.0.2.1",)])

    def test_reopen(self) -> None:
        """Opening an existing database keeps its data and does not migrate it again."""
        self.open().execute("INSERT INTO bans (host, until, reason) VALUES (?, ?, ?)", ("h", 1.0, "r"))
        connection = self.open()
        self.assertEqual(connection.execute("SELECT host FROM bans").fetchall(), [("h",)])
        (version,) = connection.execute("PRAGMA user_version").fetchone()
        self.assertEqual(version, SCHEMA_VERSION)

    def test_existingDirectoryKept(self) -> None:
        """An existing state directory is used as it is."""
        self.path.parent.mkdir(mode=0o750)
        self.open()
        self.assertEqual(mode(self.path.parent), 0o750)

    def test_newerSchemaRefused(self) -> None:
        """A database from a newer sbc is refused rather than misread."""
        self.path.parent.mkdir()
        connection = sqlite3.connect(self.path)
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        connection.close()
        with self.assertRaises(ConfigError) as caught:
            openDatabase(self.path)
        self.assertIn("newer", str(caught.exception))
        self.assertEqual(caught.exception.path, self.path)

    def test_notADatabase(self) -> None:
        """A file that is not a database is an error naming it."""
        self.path.parent.mkdir()
        self.path.write_bytes(b"this is not sqlite, and it is long enough to have a header" * 20)
        with self.assertRaises(ConfigError) as caught:
            openDatabase(self.path)
        self.assertIn(str(self.path), str(caught.exception))


class LoadSecretTests(StateTestCase):
    def test_created(self) -> None:
        """The first call makes a random 32-byte secret, 0600, in a 0700 directory, and no leftovers."""
        directory = self.directory / "state"
        secret = loadSecret(directory)
        self.assertEqual(len(secret), SECRET_SIZE)
        self.assertEqual((directory / "secret").read_bytes(), secret)
        self.assertEqual(mode(directory / "secret"), 0o600)
        self.assertEqual(mode(directory), 0o700)
        self.assertEqual(os.listdir(directory), ["secret"])

    def test_persistent(self) -> None:
        """Later calls read the same secret back."""
        first = loadSecret(self.directory)
        self.assertEqual(loadSecret(self.directory), first)

    def test_random(self) -> None:
        """Two state directories get different secrets."""
        self.assertNotEqual(loadSecret(self.directory / "a"), loadSecret(self.directory / "b"))

    def test_wrongSizeRefused(self) -> None:
        """A damaged secret is refused, not silently replaced."""
        (self.directory / "secret").write_bytes(b"short")
        with self.assertRaises(ConfigError) as caught:
            loadSecret(self.directory)
        self.assertIn("32 bytes", str(caught.exception))
        self.assertEqual((self.directory / "secret").read_bytes(), b"short")


class BanTableTests(StateTestCase):
    def test_roundTrip(self) -> None:
        """Saved bans load back, on a new connection too."""
        table = BanTable(self.open())
        self.assertEqual(table.load(), {})
        table.save("192.0.2.1", 100.5, "too many failed registrations")
        table.save("2001:db8::1", 200.0, "scanner")
        expected = {"192.0.2.1": (100.5, "too many failed registrations"), "2001:db8::1": (200.0, "scanner")}
        self.assertEqual(table.load(), expected)
        self.assertEqual(BanTable(self.open()).load(), expected)

    def test_replace(self) -> None:
        """Banning a banned host again replaces its ban."""
        table = BanTable(self.open())
        table.save("192.0.2.1", 100.0, "first")
        table.save("192.0.2.1", 300.0, "second")
        self.assertEqual(table.load(), {"192.0.2.1": (300.0, "second")})

    def test_delete(self) -> None:
        """delete lifts one ban, and lifting a missing one is no error."""
        table = BanTable(self.open())
        table.save("192.0.2.1", 100.0, "a")
        table.save("192.0.2.2", 100.0, "b")
        table.delete("192.0.2.1")
        table.delete("192.0.2.1")
        self.assertEqual(BanTable(self.open()).load(), {"192.0.2.2": (100.0, "b")})

    def test_purge(self) -> None:
        """purge drops bans that ended by ``now`` and counts them."""
        table = BanTable(self.open())
        table.save("192.0.2.1", 100.0, "a")
        table.save("192.0.2.2", 150.0, "b")
        table.save("192.0.2.3", 200.0, "c")
        self.assertEqual(table.purge(150.0), 2)
        self.assertEqual(table.purge(150.0), 0)
        self.assertEqual(BanTable(self.open()).load(), {"192.0.2.3": (200.0, "c")})
