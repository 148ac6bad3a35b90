"""What only the SQLite engine has: schema versioning and idempotency-key expiry."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from parley_server.store.sqlite import IDEMPOTENCY_TTL_MS, SqliteStore
from parley_server.store.sqlite_schema import SCHEMA_VERSION, SchemaTooNew

NOW = 1_800_000_000_000


async def test_schema_version_and_pragmas(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "p.db")
    await store.open()
    await store.close()
    conn = sqlite3.connect(tmp_path / "p.db")
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()
    store = SqliteStore(tmp_path / "p.db")  # reopening an up-to-date file migrates nothing
    await store.open()
    await store.close()


async def test_refuses_newer_schema(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "p.db")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    store = SqliteStore(tmp_path / "p.db")
    with pytest.raises(SchemaTooNew):
        await store.open()
    await store.close()


async def test_idempotency_keys_expire(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "p.db")
    await store.open()
    try:
        owner = (await store.create_user("o", b"x", NOW)).user_id
        c = bytes(16)
        await store.create_group(owner, [], b"", c, NOW)
        old = await store.append_message(c, owner, 1, "old", b"x", NOW - IDEMPOTENCY_TTL_MS - 1)
        new = await store.append_message(c, owner, 1, "new", b"x", NOW)
        assert await store.expire_idempotency(NOW - IDEMPOTENCY_TTL_MS) == 1
        assert (await store.append_message(c, owner, 1, "new", b"x", NOW)).entry == new.entry
        again = await store.append_message(c, owner, 1, "old", b"x", NOW)
        assert not again.duplicate and again.entry.seq != old.entry.seq  # forgotten: appended
    finally:
        await store.close()
