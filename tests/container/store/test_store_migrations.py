"""The container's database: made 0600 in the state dir, migrated once, kept on reopen."""

from __future__ import annotations

import sqlite3
import stat
import threading
from pathlib import Path

import pytest

from container.store import DATABASE_NAME, open_store
from container.store.db import StoreError
from container.store.migrations import MIGRATIONS


def test_a_new_database_is_private_in_wal_mode_and_at_the_latest_schema(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    path = tmp_path / DATABASE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert store.schema_version() == len(MIGRATIONS)
    with store.read() as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"settings", "clusters", "audit"} <= tables


def test_reopening_keeps_what_was_written_and_applies_nothing_twice(tmp_path: Path) -> None:
    open_store(tmp_path).set_setting("colour", "red")
    again = open_store(tmp_path)
    assert again.setting("colour") == "red"
    assert again.migrate() == len(MIGRATIONS)


def test_a_database_from_a_newer_vulcano_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / DATABASE_NAME
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 5}")
    conn.close()
    with pytest.raises(StoreError, match="newer than this Vulcano knows"):
        open_store(tmp_path)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) + 5
    assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
    conn.close()


def test_a_file_that_is_not_a_database_is_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / DATABASE_NAME).write_bytes(b"not sqlite at all, just text " * 40)
    with pytest.raises(StoreError, match=DATABASE_NAME):
        open_store(tmp_path)


def test_a_failed_transaction_changes_nothing(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    with pytest.raises(RuntimeError), store.transaction() as conn:
        conn.execute("INSERT INTO settings (name, value) VALUES ('a', '1')")
        raise RuntimeError("half way")
    assert store.setting("a") is None


def test_racing_first_writers_agree_on_one_value(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    seen: list[str] = []
    threads = [
        threading.Thread(target=lambda v=str(i): seen.append(store.setting_or_create("k", v)))
        for i in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(seen)) == 1
    assert store.setting("k") == seen[0]
