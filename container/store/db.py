"""Opening the container's SQLite database: WAL, foreign keys, migrations on open.

Each `Store` call opens its own connection (SQLite connections are cheap, and a
connection must not cross threads: the panel serves requests on several), so one
Store is safe to share. Writers take the database's lock at the start of a transaction
(``BEGIN IMMEDIATE``) and wait up to `BUSY_TIMEOUT` for it: two processes (the panel and
a CLI run in the same container) never see each other's half-done change.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from container.services.errors import StateDirError
from container.store.migrations import MIGRATIONS
from vulcano.errors import VulcanoError

DATABASE_NAME = "vulcano.db"
DATABASE_MODE = 0o600
# How long a writer waits for another's transaction to end, seconds.
BUSY_TIMEOUT = 10.0


class StoreError(VulcanoError):
    """The database cannot be used: a newer schema, or a file that is not a database."""


class Store:
    """The database at ``path``; migrate() has brought its schema up to date."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A connection for reading; each statement sees the database as committed."""
        conn = self._connect()
        try:
            yield conn
        finally:
            conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: committed when the block ends, rolled back if it raises."""
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    def schema_version(self) -> int:
        with self.read() as conn:
            return int(conn.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> int:
        """Apply the migrations this database lacks; the schema version it is at now."""
        try:
            with self.transaction() as conn:
                version = int(conn.execute("PRAGMA user_version").fetchone()[0])
                if version > len(MIGRATIONS):
                    raise StoreError(
                        f"{self.path}: schema version {version} is newer than this "
                        f"Vulcano knows ({len(MIGRATIONS)}); run a newer container"
                    )
                for number in range(version + 1, len(MIGRATIONS) + 1):
                    for statement in _statements(MIGRATIONS[number - 1]):
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {number}")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: {exc}") from None
        return len(MIGRATIONS)

    def setting(self, name: str) -> str | None:
        """A value from the settings table, or None."""
        with self.read() as conn:
            row = conn.execute("SELECT value FROM settings WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row["value"])

    def setting_or_create(self, name: str, make: str) -> str:
        """The setting's value; ``make`` is stored first when it has none (first writer wins)."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                (name, make),
            )
            row = conn.execute("SELECT value FROM settings WHERE name = ?", (name,)).fetchone()
        return str(row["value"])

    def set_setting(self, name: str, value: str) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO settings (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (name, value),
            )


def _statements(script: str) -> list[str]:
    # executescript() would COMMIT the migration's transaction; run each statement instead.
    return [s.strip() for s in script.split(";") if s.strip()]


def open_store(state_dir: Path) -> Store:
    """The state directory's database, made (0600) and migrated if needed."""
    path = state_dir / DATABASE_NAME
    try:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, DATABASE_MODE)
        os.close(fd)
    except OSError as exc:
        raise StateDirError(f"database {path}: {exc.strerror or exc}") from None
    store = Store(path)
    store.migrate()
    return store
