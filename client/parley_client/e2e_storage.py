"""Where ``E2EClient`` keeps its E2E state and the decrypted timeline.

``E2EStorage`` is the small interface; ``SqliteE2EStorage`` (a plain sqlite file next to the
local store) is the default. Another storage (the CLI's sealed, encrypted-at-rest one) is
passed to ``E2EClient(storage=...)``; it may subclass ``SqliteE2EStorage`` on ``":memory:"``.

Durability contract: ``save_state`` is durable when it returns (the E2E state that advanced a
chain must be on disk before the ciphertext leaves); views written by ``put_view`` are durable
after the next ``sync`` (a lost view is re-derived: the entry is re-scanned at the next start).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Protocol

_SCHEMA = """
CREATE TABLE IF NOT EXISTS e2e_state (k TEXT PRIMARY KEY, v BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS e2e_messages (
    conversation_id BLOB NOT NULL, seq INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (conversation_id, seq)) WITHOUT ROWID;
"""


class E2EStorage(Protocol):
    def load_state(self) -> bytes | None:
        """The last saved state blob (None: a new device)."""
        ...

    def save_state(self, blob: bytes) -> None:
        """Replace the state atomically; durable when this returns."""
        ...

    def put_view(self, conversation_id: bytes, seq: int, data: bytes) -> None:
        """Insert or replace the decrypted view of one entry."""
        ...

    def views(self, conversation_id: bytes) -> list[bytes]:
        """Every view of the conversation, ascending seq."""
        ...

    def view_seqs(self, conversation_id: bytes) -> set[int]:
        """The seqs that have a view (the E2E layer has handled them)."""
        ...

    def sync(self) -> None:
        """Make the views put so far durable (called after every state save)."""
        ...

    def close(self) -> None: ...


class SqliteE2EStorage:
    """One sqlite database: a one-row state table and the views by (conversation, seq).

    One transaction replaces the state row, so a crash leaves the old or the new state, never a
    torn one; WAL with ``synchronous=FULL`` has it on disk before ``save_state`` returns."""

    def __init__(self, path: str | Path) -> None:
        self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(_SCHEMA)

    def load_state(self) -> bytes | None:
        row = self.db.execute("SELECT v FROM e2e_state WHERE k = 'state'").fetchone()
        return bytes(row[0]) if row else None

    def save_state(self, blob: bytes) -> None:
        self.db.execute("INSERT OR REPLACE INTO e2e_state (k, v) VALUES ('state', ?)", (blob,))

    def put_view(self, conversation_id: bytes, seq: int, data: bytes) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO e2e_messages (conversation_id, seq, data) VALUES (?, ?, ?)",
            (conversation_id, seq, data),
        )

    def views(self, conversation_id: bytes) -> list[bytes]:
        rows = self.db.execute(
            "SELECT data FROM e2e_messages WHERE conversation_id = ? ORDER BY seq",
            (conversation_id,),
        ).fetchall()
        return [bytes(r[0]) for r in rows]

    def view_seqs(self, conversation_id: bytes) -> set[int]:
        rows = self.db.execute(
            "SELECT seq FROM e2e_messages WHERE conversation_id = ?", (conversation_id,)
        ).fetchall()
        return {int(r[0]) for r in rows}

    def sync(self) -> None:
        """Autocommit: every statement is already its own durable transaction."""

    def close(self) -> None:
        self.db.close()
