"""The CPython E2E glue's state file: every save is one durable sqlite commit of the whole
state (old or new after a crash, never torn), and saves that change nothing write nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from parley.client.e2e import state as st_mod
from parley_client.e2e_client import E2EClient
from parley_client.e2e_storage import SqliteE2EStorage


async def test_save_is_durable_atomic_and_skips_unchanged_states(tmp_path: Path) -> None:
    db = tmp_path / "dev.db"
    c = E2EClient("http://127.0.0.1:9", "u1", 1, "token", db)  # never connects here
    assert isinstance(c.storage, SqliteE2EStorage)  # the default: a plain sqlite file
    try:
        assert c.storage.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert c.storage.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        before = c.storage.db.total_changes
        c.save()
        c.save()  # nothing changed in between: no second write
        assert c.storage.db.total_changes == before + 1
        c.st.strict = True
        c.st.own.next_opk_id = 77
        c.save()
        assert c.storage.db.total_changes == before + 2
        # another connection (as after a crash/restart) sees exactly the committed state
        other = sqlite3.connect(f"{db}.e2e")
        (blob,) = other.execute("SELECT v FROM e2e_state WHERE k = 'state'").fetchone()
        other.close()
        assert blob == st_mod.dumps(c.st)
        again = st_mod.loads(blob)
        assert again.strict and again.own.next_opk_id == 77
        assert again.own.ik_seed == c.st.own.ik_seed
    finally:
        await c.close()
    # a new client on the same file continues from it (and does not rewrite it)
    c2 = E2EClient("http://127.0.0.1:9", "u1", 1, "token", db)
    assert isinstance(c2.storage, SqliteE2EStorage)
    try:
        assert c2.st.strict and c2.st.own.next_opk_id == 77
        n = c2.storage.db.total_changes
        c2.save()
        assert c2.storage.db.total_changes == n
    finally:
        await c2.close()
