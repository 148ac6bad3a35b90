"""``LocalStore`` on sqlite3: messages by (conversation, seq), cursors, events, to-device items
and the outbox. Every method is one transaction; cursors move in the transaction that stores
what they cover, and only forward (``max``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

import msgspec

from parley.client.model import Cursors, OutboxItem
from parley.protocol.records import ConvEntry, ToDeviceItem, UserEvent

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    conversation_id BLOB NOT NULL, seq INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (conversation_id, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cursors (
    kind TEXT NOT NULL, key BLOB NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (kind, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS to_device (seq INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    n INTEGER PRIMARY KEY AUTOINCREMENT, client_msg_id TEXT NOT NULL UNIQUE,
    data BLOB NOT NULL);
"""

_SET_CURSOR = (
    "INSERT INTO cursors (kind, key, seq) VALUES (?, ?, ?) "
    "ON CONFLICT (kind, key) DO UPDATE SET seq = max(seq, excluded.seq)"
)

_enc = msgspec.msgpack.Encoder()
_entry_dec = msgspec.msgpack.Decoder(ConvEntry)
_outbox_dec = msgspec.msgpack.Decoder(OutboxItem)
_td_dec = msgspec.msgpack.Decoder(ToDeviceItem)


class SqliteLocalStore:
    """Synchronous sqlite under async methods: local, small transactions, WAL."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)

    async def load_cursors(self) -> Cursors:
        c = Cursors()
        for kind, key, seq in self.db.execute("SELECT kind, key, seq FROM cursors"):
            if kind == "conv":
                c.conversations[bytes(key)] = int(seq)
            elif kind == "events":
                c.events = int(seq)
            elif kind == "to_device":
                c.to_device = int(seq)
        return c

    async def store_entries(
        self, conversation_id: bytes, entries: Sequence[ConvEntry], cursor: int | None
    ) -> None:
        with self._tx() as db:
            db.executemany(
                "INSERT OR IGNORE INTO entries (conversation_id, seq, data) VALUES (?, ?, ?)",
                [(conversation_id, e.seq, _enc.encode(e)) for e in entries],
            )
            if cursor is not None:
                db.execute(_SET_CURSOR, ("conv", conversation_id, cursor))

    async def store_events(self, events: Sequence[UserEvent], cursor: int) -> None:
        with self._tx() as db:
            db.executemany(
                "INSERT OR IGNORE INTO events (seq, data) VALUES (?, ?)",
                [(e.seq, _enc.encode(e)) for e in events],
            )
            db.execute(_SET_CURSOR, ("events", b"", cursor))

    async def store_to_device(self, items: Sequence[ToDeviceItem], cursor: int) -> None:
        with self._tx() as db:
            db.executemany(
                "INSERT OR IGNORE INTO to_device (seq, data) VALUES (?, ?)",
                [(i.seq, _enc.encode(i)) for i in items],
            )
            db.execute(_SET_CURSOR, ("to_device", b"", cursor))

    async def to_device_after(self, seq: int) -> list[ToDeviceItem]:
        rows = self.db.execute(
            "SELECT data FROM to_device WHERE seq > ? ORDER BY seq", (seq,)
        ).fetchall()
        return [_td_dec.decode(r[0]) for r in rows]

    async def outbox_put(self, item: OutboxItem) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO outbox (client_msg_id, data) VALUES (?, ?)",
                (item.client_msg_id, _enc.encode(item)),
            )

    async def outbox_delete(self, client_msg_id: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM outbox WHERE client_msg_id = ?", (client_msg_id,))

    async def outbox_all(self) -> list[OutboxItem]:
        rows = self.db.execute("SELECT data FROM outbox ORDER BY n").fetchall()
        return [_outbox_dec.decode(r[0]) for r in rows]

    async def entries(
        self,
        conversation_id: bytes,
        *,
        after: int | None = None,
        before: int | None = None,
        limit: int = 100,
    ) -> list[ConvEntry]:
        q = "SELECT data FROM entries WHERE conversation_id = ?"
        if after is not None:
            rows = self.db.execute(
                f"{q} AND seq > ? ORDER BY seq LIMIT ?", (conversation_id, after, limit)
            )
        elif before is not None:
            rows = self.db.execute(
                f"{q} AND seq < ? ORDER BY seq DESC LIMIT ?", (conversation_id, before, limit)
            )
        else:
            rows = self.db.execute(f"{q} ORDER BY seq DESC LIMIT ?", (conversation_id, limit))
        out = [_entry_dec.decode(r[0]) for r in rows]
        return out if after is not None else out[::-1]

    def conversation_ids(self) -> list[bytes]:
        """Every conversation with a stored entry."""
        rows = self.db.execute("SELECT DISTINCT conversation_id FROM entries").fetchall()
        return [bytes(r[0]) for r in rows]

    async def close(self) -> None:
        self.db.close()

    def _tx(self) -> _Transaction:
        return _Transaction(self.db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.db.execute("ROLLBACK" if exc_type is not None else "COMMIT")
