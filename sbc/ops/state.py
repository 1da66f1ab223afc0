"""The state directory: what the SBC must remember across a restart.

One SQLite database holds registrations (``bindings``, read by `sbc.registrar.location.SQLiteLocationStore`)
and bans. Its schema is versioned with ``PRAGMA user_version``: each entry of `_MIGRATIONS` takes
the schema one version up, so a later release adds an entry rather than editing an old one.
Beside it, ``secret`` holds the random server secret (for digest nonces), kept so that nonces
handed out before a restart still verify after it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
import tempfile
from pathlib import Path

from sbc.config.errors import ConfigError

__all__ = ["SCHEMA_VERSION", "SECRET_SIZE", "BanTable", "loadSecret", "openDatabase"]

SECRET_SIZE = 32

# _MIGRATIONS[n] takes a database from user_version n to n + 1. Append; never edit a released one.
_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE bindings (
        aor TEXT NOT NULL,
        contact TEXT NOT NULL,
        expires REAL NOT NULL,
        q REAL NOT NULL,
        call_id TEXT NOT NULL,
        cseq INTEGER NOT NULL,
        transport TEXT NOT NULL,
        source_host TEXT NOT NULL,
        source_port INTEGER NOT NULL,
        instance TEXT,
        reg_id INTEGER,
        user_agent TEXT NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (aor, contact)
    );
    CREATE INDEX bindings_expires ON bindings (expires);
    CREATE TABLE bans (
        host TEXT PRIMARY KEY,
        until REAL NOT NULL,
        reason TEXT NOT NULL
    );
    """,
)

SCHEMA_VERSION = len(_MIGRATIONS)


def _makeDirectory(directory: Path) -> None:
    """Create ``directory`` private to us: it holds the server secret and users' addresses."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)


def openDatabase(path: Path) -> sqlite3.Connection:
    """Open (creating if need be) the state database, migrated to `SCHEMA_VERSION`.

    The connection is in autocommit mode, so each write is committed as it is made; WAL lets
    those small commits be cheap. Errors become `ConfigError` naming the file, for ops.
    """
    _makeDirectory(path.parent)
    try:
        # Create the file 0600 before SQLite does (it would follow the umask); the -wal and
        # -shm files SQLite makes later copy the database file's mode.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        connection = sqlite3.connect(path, isolation_level=None, timeout=5.0)
    except (OSError, sqlite3.Error) as e:
        raise ConfigError(path, f"cannot open state database: {e}") from None
    try:
        _migrate(connection, path)
        connection.execute("PRAGMA journal_mode = WAL")
        # In WAL mode NORMAL cannot corrupt the database; a power cut may lose the last commits.
        connection.execute("PRAGMA synchronous = NORMAL")
    except sqlite3.Error as e:
        connection.close()
        raise ConfigError(path, f"cannot use state database: {e}") from None
    except BaseException:
        connection.close()
        raise
    return connection


def _migrate(connection: sqlite3.Connection, path: Path) -> None:
    """Bring the schema up to `SCHEMA_VERSION`, each step in one transaction."""
    (version,) = connection.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise ConfigError(path, f"schema version {version} is newer than this sbc knows ({SCHEMA_VERSION})")
    for target in range(version + 1, SCHEMA_VERSION + 1):
        # executescript commits any open transaction first, then runs the script as written.
        # user_version cannot be a ? parameter; target is an int we computed.
        connection.executescript(
            f"BEGIN; {_MIGRATIONS[target - 1]}; PRAGMA user_version = {int(target)}; COMMIT;"
        )


def loadSecret(directory: Path) -> bytes:
    """The server's random secret from ``directory/secret``, made (mode 0600) on first use.

    A secret that is there but the wrong size is refused rather than replaced: replacing it
    silently would invalidate every nonce in flight and hide a damaged state directory.
    """
    path = directory / "secret"
    try:
        return _readSecret(path)
    except FileNotFoundError:
        pass
    try:
        _makeDirectory(directory)
        descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=".secret.")  # mode 0600
        try:
            with os.fdopen(descriptor, "wb") as f:
                f.write(secrets.token_bytes(SECRET_SIZE))
                f.flush()
                os.fsync(f.fileno())
            # link, unlike rename, fails if the name exists: a second process starting at the
            # same moment keeps the first one's secret instead of replacing it.
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
        return _readSecret(path)
    except OSError as e:
        raise ConfigError(path, f"cannot create server secret: {e}") from None


def _readSecret(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as e:
        raise ConfigError(path, f"cannot read server secret: {e}") from None
    if len(data) != SECRET_SIZE:
        raise ConfigError(path, f"server secret must be {SECRET_SIZE} bytes, found {len(data)}")
    return data


class BanTable:
    """Bans kept in the state database, so a restart does not free a host we banned.

    `sbc.access` decides and expires bans on its clock; this only stores them.
    """

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def load(self) -> dict[str, tuple[float, str]]:
        """Every stored ban: host -> (until, reason). Expired ones too; `purge` drops those."""
        rows = self._connection.execute("SELECT host, until, reason FROM bans").fetchall()
        return {host: (until, reason) for host, until, reason in rows}

    def save(self, host: str, until: float, reason: str) -> None:
        """Add a ban, or replace the one on the same host."""
        with self._connection:
            self._connection.execute(
                "INSERT OR REPLACE INTO bans (host, until, reason) VALUES (?, ?, ?)", (host, until, reason)
            )

    def delete(self, host: str) -> None:
        """Lift the ban on ``host``; no error if there is none."""
        with self._connection:
            self._connection.execute("DELETE FROM bans WHERE host = ?", (host,))

    def purge(self, now: float) -> int:
        """Drop bans that ended at or before ``now``; returns how many."""
        with self._connection:
            cursor = self._connection.execute("DELETE FROM bans WHERE until <= ?", (now,))
        return cursor.rowcount
