"""The SQLite engine of conversations, members and their timelines (``conversations``,
``members``, ``direct_pairs``, ``entries``, ``idempotency``).

Seqs are assigned inside the writer, from ``conversations.last_seq``, in the same transaction as
the entry: gap-free and race-free. Idempotency keys of appends are kept for
``IDEMPOTENCY_TTL_MS`` (7 days): older ones are deleted on open and by ``expire_idempotency``.
The send path reads members from an in-memory cache that every membership change drops in the
writer's after-commit hook.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import msgspec

from parley.protocol.ops import ConvState
from parley.protocol.records import (
    ConvEntry,
    ConversationAdded,
    ConversationChanged,
    ConversationInfo,
    EntryBody,
    EventBody,
    Member,
    Membership,
    MembershipAction,
    Mentioned,
    Message,
    RefKind,
)
from parley.protocol.types import ConversationKind, Role
from parley_server.store.conversations import ConversationStore
from parley_server.store.records import (
    AppendResult,
    BadReference,
    MemberChange,
    MembershipResult,
    NotFound,
    StoreError,
)
from parley_server.store.sqlite_db import SqliteDatabase
from parley_server.store.sqlite_events import append_events_txn

IDEMPOTENCY_TTL_MS = 7 * 24 * 3600 * 1000
MEMBERSHIP_CACHE_MAX = 50_000
"""Conversations whose members the send path keeps in memory (a few hundred bytes each)."""

_KINDS = {k.value: k for k in ConversationKind}  # dict lookup: cheaper than Enum() per row
_encode = msgspec.msgpack.Encoder().encode
_decode_entry = msgspec.msgpack.Decoder(EntryBody).decode


def _check_reference(
    conn: sqlite3.Connection,
    conversation_id: bytes,
    sender: str,
    ref_seq: int,
    kind: RefKind | None,
) -> None:
    """Raise BadReference unless ``ref_seq`` is a live message ``kind`` may point at."""
    r = conn.execute(
        "SELECT sender, sender_device, recalled, ref_kind FROM entries"
        " WHERE conversation_id = ? AND seq = ?",
        (conversation_id, ref_seq),
    ).fetchone()
    if r is None or r[1] is None or r[2]:
        raise BadReference("no such message in this conversation")
    target_kind = r[3]
    if kind == RefKind.EDIT and (r[0] != sender or target_kind in ("edit", "reaction")):
        raise BadReference("you can only edit your own original messages", forbidden=True)
    if kind == RefKind.REACTION and target_kind == "reaction":
        raise BadReference("cannot react to a reaction", forbidden=True)


class SqliteConversationStore(SqliteDatabase, ConversationStore):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        # conversation_id -> ConversationInfo for the send path (get_membership); filled by
        # reads on the event loop, dropped by the writer's hook when a membership change ends
        self._membership: dict[bytes, ConversationInfo] = {}

    def _prepare(self, conn: sqlite3.Connection) -> None:
        super()._prepare(conn)
        cutoff = int(time.time() * 1000) - IDEMPOTENCY_TTL_MS
        conn.execute("DELETE FROM idempotency WHERE created < ?", (cutoff,))

    def _forget_membership(self, conversation_id: bytes) -> Callable[[], None]:
        """The writer's after-commit hook for a membership change: runs in the event loop
        once the change committed (or failed), before its caller resumes, even if the caller
        was cancelled; so no request that starts after the change can see the old members."""

        def forget() -> None:
            self._membership.pop(conversation_id, None)

        return forget

    @staticmethod
    def _append_entry(
        conn: sqlite3.Connection,
        conversation_id: bytes,
        sender: str,
        sender_device: int | None,
        body: EntryBody,
        now: int,
        ref: tuple[int, str] | None = None,
    ) -> ConvEntry:
        r = conn.execute(
            "UPDATE conversations SET last_seq = last_seq + 1, last_ts = ?"
            " WHERE conversation_id = ? RETURNING last_seq",
            (now, conversation_id),
        ).fetchone()
        if r is None:
            raise NotFound("conversation")
        seq = int(r[0])
        conn.execute(
            "INSERT INTO entries"
            " (conversation_id, seq, ts, sender, sender_device, body, ref_seq, ref_kind)"
            " VALUES (?,?,?,?,?,?,?,?)",
            (
                conversation_id,
                seq,
                now,
                sender,
                sender_device,
                _encode(body),
                None if ref is None else ref[0],
                None if ref is None else ref[1],
            ),
        )
        return ConvEntry(conversation_id, seq, now, sender, sender_device, body)

    @staticmethod
    @staticmethod
    def _info(conn: sqlite3.Connection, conversation_id: bytes) -> ConversationInfo | None:
        r = conn.execute(
            "SELECT kind, last_seq, created_ts, meta, disbanded FROM conversations"
            " WHERE conversation_id = ?",
            (conversation_id,),
        ).fetchone()
        if r is None:
            return None
        members = [
            Member(u, Role(role))
            for u, role in conn.execute(
                "SELECT user_id, role FROM members WHERE conversation_id = ? ORDER BY user_id",
                (conversation_id,),
            )
        ]
        return ConversationInfo(
            conversation_id, ConversationKind(r[0]), members, r[1], r[2], r[3], bool(r[4])
        )

    def _create(
        self,
        conn: sqlite3.Connection,
        conversation_id: bytes,
        kind: ConversationKind,
        actor: str,
        roles: dict[str, Role],
        meta: bytes,
        now: int,
    ) -> MembershipResult:
        if conn.execute(
            "SELECT 1 FROM conversations WHERE conversation_id = ?", (conversation_id,)
        ).fetchone():
            raise StoreError("conversation id already in use")
        conn.execute(
            "INSERT INTO conversations (conversation_id, kind, created_ts, last_ts, meta)"
            " VALUES (?,?,?,?,?)",
            (conversation_id, kind.value, now, now, meta),
        )
        conn.executemany(
            "INSERT INTO members (conversation_id, user_id, role) VALUES (?,?,?)",
            [(conversation_id, u, role.value) for u, role in roles.items()],
        )
        targets = [u for u in roles if u != actor]
        entry = self._append_entry(
            conn,
            conversation_id,
            actor,
            None,
            Membership(action=MembershipAction.CREATED, actor=actor, targets=targets),
            now,
        )
        added = ConversationAdded(conversation_id=conversation_id, kind=kind, by=actor)
        events = append_events_txn(conn, [(u, added) for u in roles], now)
        info = self._info(conn, conversation_id)
        assert info is not None
        return MembershipResult(entry, events, info)

    # --- conversations -----------------------------------------------------------------------
    async def open_direct(
        self, user_a: str, user_b: str, conversation_id: bytes, now: int
    ) -> tuple[ConversationInfo, MembershipResult | None]:
        """The pair is decided inside the writer, so concurrent opens create one conversation.
        ``user_a`` is the actor of the CREATED entry; both members get Role.MEMBER."""
        lo, hi = sorted((user_a, user_b))

        def job(conn: sqlite3.Connection) -> tuple[ConversationInfo, MembershipResult | None]:
            r = conn.execute(
                "SELECT conversation_id FROM direct_pairs WHERE user_lo = ? AND user_hi = ?",
                (lo, hi),
            ).fetchone()
            if r is not None:
                info = self._info(conn, r[0])
                assert info is not None
                return info, None
            roles = {user_a: Role.MEMBER, user_b: Role.MEMBER}
            result = self._create(
                conn, conversation_id, ConversationKind.DIRECT, user_a, roles, b"", now
            )
            conn.execute(
                "INSERT INTO direct_pairs (user_lo, user_hi, conversation_id) VALUES (?,?,?)",
                (lo, hi, conversation_id),
            )
            return result.info, result

        return await self._write(
            "conversations.open_direct", job, self._forget_membership(conversation_id)
        )

    async def create_group(
        self, owner: str, members: Sequence[str], meta: bytes, conversation_id: bytes, now: int
    ) -> MembershipResult:
        roles = {owner: Role.OWNER}
        for u in members:
            roles.setdefault(u, Role.MEMBER)

        def job(conn: sqlite3.Connection) -> MembershipResult:
            return self._create(
                conn, conversation_id, ConversationKind.GROUP, owner, roles, meta, now
            )

        return await self._write(
            "conversations.create_group", job, self._forget_membership(conversation_id)
        )

    async def get_conversation(self, conversation_id: bytes) -> ConversationInfo | None:
        return self._info(self._r, conversation_id)

    async def get_membership(self, conversation_id: bytes) -> ConversationInfo | None:
        """Cached ``get_conversation`` (kind, members and disbanded current; ``last_seq`` and
        ``meta`` as of the read that filled the cache). The read and the fill run without an
        await in between, and every membership change drops the entry after it commits."""
        info = self._membership.get(conversation_id)
        if info is None:
            info = self._info(self._r, conversation_id)
            if info is not None:
                if len(self._membership) >= MEMBERSHIP_CACHE_MAX:
                    del self._membership[next(iter(self._membership))]  # the oldest fill
                self._membership[conversation_id] = info
        return info

    async def member_role(self, conversation_id: bytes, user_id: str) -> Role | None:
        r = self._r.execute(
            "SELECT role FROM members WHERE conversation_id = ? AND user_id = ?",
            (conversation_id, user_id),
        ).fetchone()
        return Role(r[0]) if r else None

    async def members(self, conversation_id: bytes) -> list[Member]:
        return [
            Member(u, Role(role))
            for u, role in self._r.execute(
                "SELECT user_id, role FROM members WHERE conversation_id = ? ORDER BY user_id",
                (conversation_id,),
            )
        ]

    async def change_membership(
        self,
        conversation_id: bytes,
        entry: Membership,
        changes: Sequence[MemberChange],
        events: Sequence[tuple[str, EventBody]],
        now: int,
        meta: bytes | None = None,
        disband: bool = False,
    ) -> MembershipResult:
        def job(conn: sqlite3.Connection) -> MembershipResult:
            appended = self._append_entry(conn, conversation_id, entry.actor, None, entry, now)
            for change in changes:
                if change.role is None:
                    conn.execute(
                        "DELETE FROM members WHERE conversation_id = ? AND user_id = ?",
                        (conversation_id, change.user_id),
                    )
                else:
                    conn.execute(
                        "INSERT INTO members (conversation_id, user_id, role) VALUES (?,?,?)"
                        " ON CONFLICT (conversation_id, user_id) DO UPDATE SET role = excluded.role",
                        (conversation_id, change.user_id, change.role.value),
                    )
            if meta is not None:
                conn.execute(
                    "UPDATE conversations SET meta = ? WHERE conversation_id = ?",
                    (meta, conversation_id),
                )
            if disband:
                conn.execute(
                    "UPDATE conversations SET disbanded = 1 WHERE conversation_id = ?",
                    (conversation_id,),
                )
            filled = [
                (u, ConversationChanged(conversation_id=body.conversation_id, seq=appended.seq))
                if isinstance(body, ConversationChanged) and body.seq == 0
                else (u, body)
                for u, body in events
            ]
            user_events = append_events_txn(conn, filled, now)
            info = self._info(conn, conversation_id)
            assert info is not None
            return MembershipResult(appended, user_events, info)

        return await self._write(
            "conversations.change_membership", job, self._forget_membership(conversation_id)
        )

    async def list_conversations(
        self, user_id: str, after: bytes | None, limit: int
    ) -> list[ConversationInfo]:
        ids = [
            r[0]
            for r in self._r.execute(
                "SELECT conversation_id FROM members WHERE user_id = ? AND conversation_id > ?"
                " ORDER BY conversation_id LIMIT ?",
                (user_id, after or b"", limit),
            )
        ]
        out: list[ConversationInfo] = []
        for cid in ids:
            info = self._info(self._r, cid)
            if info is not None:
                out.append(info)
        return out

    async def conversation_states(self, user_id: str) -> list[ConvState]:
        return [
            ConvState(cid, _KINDS[kind], last_seq, last_ts)
            for cid, kind, last_seq, last_ts in self._r.execute(
                "SELECT c.conversation_id, c.kind, c.last_seq, c.last_ts"
                " FROM members AS m JOIN conversations AS c USING (conversation_id)"
                " WHERE m.user_id = ? ORDER BY m.conversation_id",
                (user_id,),
            )
        ]

    # --- timeline ----------------------------------------------------------------------------
    async def append_message(
        self,
        conversation_id: bytes,
        sender: str,
        sender_device: int,
        client_msg_id: str,
        envelope: bytes,
        now: int,
        ref_seq: int | None = None,
        ref_kind: RefKind | None = None,
        mentions: Sequence[str] = (),
    ) -> AppendResult:
        mentioned = list(dict.fromkeys(mentions))
        ref = None if ref_seq is None or ref_kind is None else (ref_seq, ref_kind.value)

        def job(conn: sqlite3.Connection) -> AppendResult:
            r = conn.execute(
                "SELECT e.conversation_id, e.seq, e.ts, e.sender, e.sender_device, e.body"
                " FROM idempotency AS i JOIN entries AS e"
                " ON e.conversation_id = i.conversation_id AND e.seq = i.seq"
                " WHERE i.sender = ? AND i.sender_device = ? AND i.client_msg_id = ?",
                (sender, sender_device, client_msg_id),
            ).fetchone()
            if r is not None:
                original = ConvEntry(r[0], r[1], r[2], r[3], r[4], _decode_entry(r[5]))
                return AppendResult(original, duplicate=True)
            if ref is not None:
                _check_reference(conn, conversation_id, sender, ref[0], ref_kind)
            body = Message(
                envelope=envelope, ref_seq=ref_seq, ref_kind=ref_kind, mentions=mentioned
            )
            entry = self._append_entry(conn, conversation_id, sender, sender_device, body, now, ref)
            conn.execute(
                "INSERT INTO idempotency"
                " (sender, sender_device, client_msg_id, conversation_id, seq, created)"
                " VALUES (?,?,?,?,?,?)",
                (sender, sender_device, client_msg_id, conversation_id, entry.seq, now),
            )
            events = append_events_txn(
                conn,
                [
                    (u, Mentioned(conversation_id=conversation_id, seq=entry.seq, by=sender))
                    for u in mentioned
                ],
                now,
            )
            return AppendResult(entry, duplicate=False, events=events)

        return await self._write("conversations.append_message", job)

    async def history(
        self,
        conversation_id: bytes,
        after_seq: int | None,
        before_seq: int | None,
        limit: int,
    ) -> tuple[list[ConvEntry], bool]:
        """With both bounds: the first ``limit`` entries strictly between them."""
        cols = "SELECT seq, ts, sender, sender_device, body FROM entries WHERE conversation_id = ?"
        upper = before_seq if before_seq is not None else 2**63 - 1
        if after_seq is not None:
            rows = self._r.execute(
                f"{cols} AND seq > ? AND seq < ? ORDER BY seq LIMIT ?",
                (conversation_id, after_seq, upper, limit + 1),
            ).fetchall()
        else:
            rows = self._r.execute(
                f"{cols} AND seq < ? ORDER BY seq DESC LIMIT ?",
                (conversation_id, upper, limit + 1),
            ).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        if after_seq is None:
            rows.reverse()
        entries = [
            ConvEntry(conversation_id, seq, ts, sender, dev, _decode_entry(body))
            for seq, ts, sender, dev, body in rows
        ]
        return entries, more

    # --- housekeeping ---------------------------------------------------------
    async def expire_idempotency(self, older_than: int) -> int:
        """Forget append idempotency keys created before ``older_than`` (ms); how many."""

        def job(conn: sqlite3.Connection) -> int:
            return conn.execute("DELETE FROM idempotency WHERE created < ?", (older_than,)).rowcount

        return await self._write("conversations.expire_idempotency", job)


__all__ = ["IDEMPOTENCY_TTL_MS", "SqliteConversationStore"]
