"""The SQLite engine of the per-user event timelines (``user_events``; the counter is
``users.last_event_seq``). ``append_events_txn`` is the in-transaction helper other domains use to
append events atomically with their own rows (membership changes, social relations)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import msgspec

from parley.protocol.records import EventBody, UserEvent
from parley_server.store.events import EventStore
from parley_server.store.records import NotFound
from parley_server.store.sqlite_db import SqliteDatabase

_encode = msgspec.msgpack.Encoder().encode
encode_event = _encode
"""How an ``EventBody`` is stored (for domains that rewrite one of their own events)."""
_decode_event = msgspec.msgpack.Decoder(EventBody).decode


def append_events_txn(
    conn: sqlite3.Connection, events: Sequence[tuple[str, EventBody]], now: int
) -> list[tuple[str, UserEvent]]:
    out: list[tuple[str, UserEvent]] = []
    for user_id, body in events:
        r = conn.execute(
            "UPDATE users SET last_event_seq = last_event_seq + 1 WHERE user_id = ?"
            " RETURNING last_event_seq",
            (user_id,),
        ).fetchone()
        if r is None:
            raise NotFound(f"user {user_id}")
        seq = int(r[0])
        conn.execute(
            "INSERT INTO user_events (user_id, seq, ts, body) VALUES (?,?,?,?)",
            (user_id, seq, now, _encode(body)),
        )
        out.append((user_id, UserEvent(seq, now, body)))
    return out


class SqliteEventStore(SqliteDatabase, EventStore):
    async def append_events(
        self, events: Sequence[tuple[str, EventBody]], now: int
    ) -> list[tuple[str, UserEvent]]:
        events = list(events)
        return await self._write(
            "events.append_events", lambda conn: append_events_txn(conn, events, now)
        )

    async def events_after(self, user_id: str, after: int, limit: int) -> list[UserEvent]:
        return [
            UserEvent(seq, ts, _decode_event(body))
            for seq, ts, body in self._r.execute(
                "SELECT seq, ts, body FROM user_events WHERE user_id = ? AND seq > ?"
                " ORDER BY seq LIMIT ?",
                (user_id, after, limit),
            )
        ]


__all__ = ["SqliteEventStore", "append_events_txn"]
