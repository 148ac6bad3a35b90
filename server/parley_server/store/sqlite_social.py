"""The SQLite engine of the ``SocialStore``: tables of schema v2 in the ``SqliteDatabase`` of the ``SqliteStore``.

Writes go through the store's single writer thread (``SqliteDatabase.transaction``, one named transaction per method), so every
check-and-set (a request meeting a reverse request, a block racing an accept, a monotonic read
mark, a recall) is one transaction; reads use the store's read connection on the event loop.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import msgspec

from parley.protocol.records import (
    BlockChanged,
    ContactAdded,
    ContactRemoved,
    ConvEntry,
    EntryBody,
    EventBody,
    FriendRequestClosed,
    FriendRequestOpened,
    FriendRequestOutcome,
    Message,
    MessageRecalled,
    ReadPosition,
    Recalled,
)
from parley_server.store.base import NotFound
from parley_server.store.social import (
    AlreadyContacts,
    Blocked,
    ContactRow,
    Events,
    ProfileChange,
    ProfileRow,
    RecallResult,
    RequestResult,
    RequestRow,
    SocialStore,
    TooManyPending,
)
from parley_server.store.sqlite_db import SqliteDatabase
from parley_server.store.sqlite_events import append_events_txn, encode_event

_encode = msgspec.msgpack.Encoder().encode
_decode_entry = msgspec.msgpack.Decoder(EntryBody).decode
_LOOKUP_SQL = {
    "username": "SELECT u.user_id, u.username FROM users AS u"
    " LEFT JOIN profiles AS p USING (user_id)"
    " WHERE u.username = ? AND COALESCE(p.hidden, 0) = 0 LIMIT ?",
    "email": "SELECT u.user_id, u.username FROM profiles AS p JOIN users AS u USING (user_id)"
    " WHERE p.email = ? AND p.hidden = 0 ORDER BY u.username LIMIT ?",
    "phone": "SELECT u.user_id, u.username FROM profiles AS p JOIN users AS u USING (user_id)"
    " WHERE p.phone = ? AND p.hidden = 0 ORDER BY u.username LIMIT ?",
}


def _blocked(conn: sqlite3.Connection, a: str, b: str) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM blocks WHERE (user_id = ? AND blocked_id = ?)"
            " OR (user_id = ? AND blocked_id = ?)",
            (a, b, b, a),
        ).fetchone()
        is not None
    )


def _contacts(conn: sqlite3.Connection, a: str, b: str) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM contacts WHERE user_id = ? AND contact_id = ?", (a, b)
        ).fetchone()
        is not None
    )


def _drop_request(conn: sqlite3.Connection, sender: str, target: str) -> bool:
    """Delete a pending request, and its note from both users' stored timelines: a note is
    kept only while the request is unanswered (docs/threat-model.md)."""
    row = conn.execute(
        "DELETE FROM friend_requests WHERE from_user = ? AND to_user = ?"
        " RETURNING note, from_event_seq, to_event_seq",
        (sender, target),
    ).fetchone()
    if row is None:
        return False
    note, from_seq, to_seq = row
    if note:
        for user_id, seq, body in (
            (sender, from_seq, FriendRequestOpened(user_id=target, incoming=False)),
            (target, to_seq, FriendRequestOpened(user_id=sender, incoming=True)),
        ):
            if seq:
                conn.execute(
                    "UPDATE user_events SET body = ? WHERE user_id = ? AND seq = ?",
                    (encode_event(body), user_id, seq),
                )
    return True


def _closed(sender: str, target: str, outcome: FriendRequestOutcome) -> list[tuple[str, EventBody]]:
    return [
        (sender, FriendRequestClosed(user_id=target, incoming=False, outcome=outcome)),
        (target, FriendRequestClosed(user_id=sender, incoming=True, outcome=outcome)),
    ]


def _connect(conn: sqlite3.Connection, a: str, b: str, now: int) -> list[tuple[str, EventBody]]:
    conn.executemany(
        "INSERT OR IGNORE INTO contacts (user_id, contact_id, since) VALUES (?,?,?)",
        [(a, b, now), (b, a, now)],
    )
    return [(a, ContactAdded(user_id=b)), (b, ContactAdded(user_id=a))]


class SqliteSocialStore(SocialStore):
    def __init__(self, store: SqliteDatabase) -> None:
        self.store = store

    @property
    def _r(self) -> sqlite3.Connection:
        return self.store.read_connection()

    # --- profile and lookup ------------------------------------------------------------------
    async def get_profile(self, user_id: str) -> ProfileRow:
        r = self._r.execute(
            "SELECT email, phone, hidden, read_receipts, last_seen_visible FROM profiles"
            " WHERE user_id = ?",
            (user_id,),
        ).fetchone()
        if r is None:
            return ProfileRow()
        return ProfileRow(r[0], r[1], bool(r[2]), bool(r[3]), bool(r[4]))

    async def set_profile(self, user_id: str, change: ProfileChange) -> ProfileRow:
        def job(conn: sqlite3.Connection) -> ProfileRow:
            conn.execute("INSERT OR IGNORE INTO profiles (user_id) VALUES (?)", (user_id,))
            sets: list[str] = []
            args: list[object] = []
            for name in ("email", "phone"):
                value = getattr(change, name)
                if value is not None:
                    sets.append(f"{name} = ?")
                    args.append(value or None)
            for name in ("hidden", "read_receipts", "last_seen_visible"):
                value = getattr(change, name)
                if value is not None:
                    sets.append(f"{name} = ?")
                    args.append(int(value))
            if sets:
                conn.execute(
                    f"UPDATE profiles SET {', '.join(sets)} WHERE user_id = ?", (*args, user_id)
                )
            r = conn.execute(
                "SELECT email, phone, hidden, read_receipts, last_seen_visible FROM profiles"
                " WHERE user_id = ?",
                (user_id,),
            ).fetchone()
            return ProfileRow(r[0], r[1], bool(r[2]), bool(r[3]), bool(r[4]))

        return await self.store.transaction("social.set_profile", job)

    async def find_users(self, field: str, value: str, limit: int) -> list[tuple[str, str]]:
        return [(r[0], r[1]) for r in self._r.execute(_LOOKUP_SQL[field], (value, limit))]

    # --- contacts, requests, blocks ------------------------------------------------------------
    async def are_contacts(self, a: str, b: str) -> bool:
        return _contacts(self._r, a, b)

    async def blocked_between(self, a: str, b: str) -> bool:
        return _blocked(self._r, a, b)

    async def blockers_of(self, user_id: str, others: Sequence[str]) -> set[str]:
        wanted = set(others)
        if not wanted:
            return set()
        rows = self._r.execute(
            "SELECT user_id FROM blocks WHERE blocked_id = ?", (user_id,)
        ).fetchall()
        return {r[0] for r in rows} & wanted

    async def contact_ids(self, user_id: str) -> list[str]:
        return [
            r[0]
            for r in self._r.execute(
                "SELECT contact_id FROM contacts WHERE user_id = ?", (user_id,)
            )
        ]

    async def send_request(
        self, sender: str, target: str, note: str, max_pending: int, now: int
    ) -> RequestResult:
        def job(conn: sqlite3.Connection) -> RequestResult:
            if conn.execute("SELECT 1 FROM users WHERE user_id = ?", (target,)).fetchone() is None:
                raise NotFound("user")
            if _blocked(conn, sender, target):
                raise Blocked("blocked")
            if _contacts(conn, sender, target):
                raise AlreadyContacts("already contacts")
            if _drop_request(conn, target, sender):  # they asked first: accept theirs
                events = _closed(target, sender, FriendRequestOutcome.ACCEPTED)
                events += _connect(conn, sender, target, now)
                return RequestResult(True, append_events_txn(conn, events, now))
            if conn.execute(
                "SELECT 1 FROM friend_requests WHERE from_user = ? AND to_user = ?",
                (sender, target),
            ).fetchone():
                return RequestResult(False, [])
            (pending,) = conn.execute(
                "SELECT count(*) FROM friend_requests WHERE from_user = ?", (sender,)
            ).fetchone()
            if pending >= max_pending:
                raise TooManyPending("too many pending requests")
            conn.execute(
                "INSERT INTO friend_requests (from_user, to_user, note, created) VALUES (?,?,?,?)",
                (sender, target, note, now),
            )
            opened: list[tuple[str, EventBody]] = [
                (sender, FriendRequestOpened(user_id=target, incoming=False, note=note)),
                (target, FriendRequestOpened(user_id=sender, incoming=True, note=note)),
            ]
            appended = append_events_txn(conn, opened, now)
            conn.execute(
                "UPDATE friend_requests SET from_event_seq = ?, to_event_seq = ?"
                " WHERE from_user = ? AND to_user = ?",
                (appended[0][1].seq, appended[1][1].seq, sender, target),
            )
            return RequestResult(False, appended)

        return await self.store.transaction("social.send_request", job)

    async def close_request(self, sender: str, target: str, outcome: str, now: int) -> Events:
        result = FriendRequestOutcome(outcome)

        def job(conn: sqlite3.Connection) -> Events:
            if not _drop_request(conn, sender, target):
                raise NotFound("no pending request")
            events = _closed(sender, target, result)
            if result == FriendRequestOutcome.ACCEPTED:
                events += _connect(conn, sender, target, now)
            return append_events_txn(conn, events, now)

        return await self.store.transaction("social.close_request", job)

    async def list_requests(
        self, user_id: str, limit: int
    ) -> tuple[list[RequestRow], list[RequestRow], bool]:
        def rows(sql: str) -> list[RequestRow]:
            return [RequestRow(*r) for r in self._r.execute(sql, (user_id, limit + 1))]

        incoming = rows(
            "SELECT f.from_user, u.username, f.note, f.created FROM friend_requests AS f"
            " JOIN users AS u ON u.user_id = f.from_user WHERE f.to_user = ?"
            " ORDER BY f.created, f.from_user LIMIT ?"
        )
        outgoing = rows(
            "SELECT f.to_user, u.username, f.note, f.created FROM friend_requests AS f"
            " JOIN users AS u ON u.user_id = f.to_user WHERE f.from_user = ?"
            " ORDER BY f.created, f.to_user LIMIT ?"
        )
        more = len(incoming) > limit or len(outgoing) > limit
        return incoming[:limit], outgoing[:limit], more

    async def list_contacts(
        self, user_id: str, limit: int
    ) -> tuple[list[ContactRow], list[str], bool]:
        contacts = [
            ContactRow(*r)
            for r in self._r.execute(
                "SELECT c.contact_id, u.username, c.since FROM contacts AS c"
                " JOIN users AS u ON u.user_id = c.contact_id WHERE c.user_id = ?"
                " ORDER BY u.username LIMIT ?",
                (user_id, limit + 1),
            )
        ]
        blocked = [
            r[0]
            for r in self._r.execute(
                "SELECT blocked_id FROM blocks WHERE user_id = ? ORDER BY created, blocked_id"
                " LIMIT ?",
                (user_id, limit + 1),
            )
        ]
        more = len(contacts) > limit or len(blocked) > limit
        return contacts[:limit], blocked[:limit], more

    async def remove_contact(self, user_id: str, other: str, now: int) -> Events:
        def job(conn: sqlite3.Connection) -> Events:
            n = conn.execute(
                "DELETE FROM contacts WHERE (user_id = ? AND contact_id = ?)"
                " OR (user_id = ? AND contact_id = ?)",
                (user_id, other, other, user_id),
            ).rowcount
            if n == 0:
                raise NotFound("not a contact")
            events: list[tuple[str, EventBody]] = [
                (user_id, ContactRemoved(user_id=other)),
                (other, ContactRemoved(user_id=user_id)),
            ]
            return append_events_txn(conn, events, now)

        return await self.store.transaction("social.remove_contact", job)

    async def block(self, user_id: str, other: str, now: int) -> Events:
        def job(conn: sqlite3.Connection) -> Events:
            cur = conn.execute(
                "INSERT OR IGNORE INTO blocks (user_id, blocked_id, created) VALUES (?,?,?)",
                (user_id, other, now),
            )
            if cur.rowcount == 0:
                return []
            events: list[tuple[str, EventBody]] = [(user_id, BlockChanged(other, True))]
            if conn.execute(
                "DELETE FROM contacts WHERE (user_id = ? AND contact_id = ?)"
                " OR (user_id = ? AND contact_id = ?)",
                (user_id, other, other, user_id),
            ).rowcount:
                events += [
                    (user_id, ContactRemoved(user_id=other)),
                    (other, ContactRemoved(user_id=user_id)),
                ]
            for a, b in ((user_id, other), (other, user_id)):
                if _drop_request(conn, a, b):
                    events += _closed(a, b, FriendRequestOutcome.CANCELLED)
            return append_events_txn(conn, events, now)

        return await self.store.transaction("social.block", job)

    async def unblock(self, user_id: str, other: str, now: int) -> Events:
        def job(conn: sqlite3.Connection) -> Events:
            if not conn.execute(
                "DELETE FROM blocks WHERE user_id = ? AND blocked_id = ?", (user_id, other)
            ).rowcount:
                raise NotFound("not blocked")
            return append_events_txn(conn, [(user_id, BlockChanged(other, False))], now)

        return await self.store.transaction("social.unblock", job)

    # --- read marks ------------------------------------------------------------------------------
    async def set_read(
        self, conversation_id: bytes, user_id: str, seq: int, now: int
    ) -> tuple[int, Events]:
        def job(conn: sqlite3.Connection) -> tuple[int, Events]:
            r = conn.execute(
                "SELECT seq FROM read_marks WHERE conversation_id = ? AND user_id = ?",
                (conversation_id, user_id),
            ).fetchone()
            if r is not None and r[0] >= seq:
                return int(r[0]), []
            conn.execute(
                "INSERT INTO read_marks (conversation_id, user_id, seq, ts) VALUES (?,?,?,?)"
                " ON CONFLICT (conversation_id, user_id)"
                " DO UPDATE SET seq = excluded.seq, ts = excluded.ts",
                (conversation_id, user_id, seq, now),
            )
            event = ReadPosition(conversation_id=conversation_id, seq=seq)
            return seq, append_events_txn(conn, [(user_id, event)], now)

        return await self.store.transaction("social.set_read", job)

    async def read_marks(self, conversation_id: bytes) -> dict[str, int]:
        return {
            r[0]: r[1]
            for r in self._r.execute(
                "SELECT user_id, seq FROM read_marks WHERE conversation_id = ?",
                (conversation_id,),
            )
        }

    async def read_seqs(self, user_id: str) -> dict[bytes, int]:
        return {
            r[0]: r[1]
            for r in self._r.execute(
                "SELECT conversation_id, seq FROM read_marks WHERE user_id = ?", (user_id,)
            )
        }

    async def unread_count(self, conversation_id: bytes, user_id: str, after: int, cap: int) -> int:
        (n,) = self._r.execute(
            "SELECT count(*) FROM (SELECT 1 FROM entries WHERE conversation_id = ? AND seq > ?"
            " AND sender_device IS NOT NULL AND sender != ? AND recalled = 0"
            " AND (ref_kind IS NULL OR ref_kind = 'reply') LIMIT ?)",
            (conversation_id, after, user_id, cap),
        ).fetchone()
        return int(n)

    # --- recall ----------------------------------------------------------------------------------
    async def get_entry(self, conversation_id: bytes, seq: int) -> ConvEntry | None:
        r = self._r.execute(
            "SELECT ts, sender, sender_device, body FROM entries"
            " WHERE conversation_id = ? AND seq = ?",
            (conversation_id, seq),
        ).fetchone()
        if r is None:
            return None
        return ConvEntry(conversation_id, seq, r[0], r[1], r[2], _decode_entry(r[3]))

    async def recall(
        self, conversation_id: bytes, seq: int, by: str, notify: Sequence[str], now: int
    ) -> RecallResult:
        users = list(notify)

        def tombstone(conn: sqlite3.Connection, s: int) -> ConvEntry:
            r = conn.execute(
                "SELECT ts, sender, sender_device, body FROM entries"
                " WHERE conversation_id = ? AND seq = ?",
                (conversation_id, s),
            ).fetchone()
            body = _decode_entry(r[3])
            if isinstance(body, Message):
                body = Recalled(
                    by=by, recalled_ts=now, ref_seq=body.ref_seq, ref_kind=body.ref_kind
                )
                conn.execute(
                    "UPDATE entries SET body = ?, recalled = 1 WHERE conversation_id = ? AND seq = ?",
                    (_encode(body), conversation_id, s),
                )
            return ConvEntry(conversation_id, s, r[0], r[1], r[2], body)

        def job(conn: sqlite3.Connection) -> RecallResult:
            r = conn.execute(
                "SELECT sender, sender_device, recalled FROM entries"
                " WHERE conversation_id = ? AND seq = ?",
                (conversation_id, seq),
            ).fetchone()
            if r is None or r[1] is None:
                raise NotFound("no such message")
            if r[2]:
                entry = tombstone(conn, seq)
                return RecallResult(entry, [], [], duplicate=True)
            entry = tombstone(conn, seq)
            also = [
                int(e[0])
                for e in conn.execute(
                    "SELECT seq FROM entries WHERE conversation_id = ? AND ref_seq = ?"
                    " AND ref_kind = 'edit' AND sender = ? AND recalled = 0 ORDER BY seq",
                    (conversation_id, seq, r[0]),
                ).fetchall()
            ]
            for s in also:
                tombstone(conn, s)
            event = MessageRecalled(conversation_id=conversation_id, seq=seq, by=by, also=also)
            events = append_events_txn(conn, [(u, event) for u in users], now)
            return RecallResult(entry, also, events, duplicate=False)

        return await self.store.transaction("social.recall", job)


__all__ = ["SqliteSocialStore"]
