"""The embedded SQLite engine of the ``Store``.

Durability: WAL journal with ``synchronous=NORMAL``. A COMMIT is appended to the WAL file
before we acknowledge, so an application crash (even SIGKILL) loses nothing acknowledged; but
the WAL is fsynced only at checkpoints, so a power loss or kernel crash can lose the last
commits (never corrupt the database). We chose it because ``synchronous=FULL`` costs an fsync per
commit (about half the append rate measured in SERVER.md) and a self-hosted chat server's usual
failure is a process restart, not a power cut; clients resend unacknowledged messages anyway
and the server may still lose only what it acknowledged in the last moments before a power cut.

Writes: one writer thread owns the write connection and commits in groups (see ``writer.py``);
every write method is one job, so it is atomic and costs one thread hop. Seqs (conversation,
user event, to-device) are assigned inside the writer, from counter rows, in the same
transaction as the rows they number: gap-free and race-free.

Reads: one read-only connection used directly on the event-loop thread. Every read is an
indexed point or range lookup (well under a millisecond, see bench/store_bench.py), cheaper than
the thread hop it would take to run it elsewhere. WAL readers never wait for the writer, and
each statement runs in its own implicit read transaction, so a read sees every acknowledged
write.

Idempotency keys of appends are kept for ``IDEMPOTENCY_TTL_MS`` (7 days): older ones are
deleted on ``open()`` and by ``expire_idempotency``. A retry older than that appends again.

Foreign keys are enforced; a write naming a user, device or conversation that does not exist
raises ``NotFound`` and changes nothing.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

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
    ToDeviceItem,
    UserEvent,
)
from parley.protocol.types import ConversationKind, Role
from parley_server.store.base import (
    AppendResult,
    BadReference,
    DeviceRow,
    MemberChange,
    MembershipResult,
    NotFound,
    SessionRow,
    Store,
    StoreError,
    ToDeviceOut,
    UsernameTaken,
    UserRow,
)
from parley_server.store.sqlite_schema import migrate
from parley_server.store.writer import Writer

T = TypeVar("T")

IDEMPOTENCY_TTL_MS = 7 * 24 * 3600 * 1000
MEMBERSHIP_CACHE_MAX = 50_000
"""Conversations whose members the send path keeps in memory (a few hundred bytes each)."""
_IN_CHUNK = 500  # bound on bound parameters per IN (...) query

_KINDS = {k.value: k for k in ConversationKind}  # dict lookup: cheaper than Enum() per row
_encode = msgspec.msgpack.Encoder().encode
_decode_entry = msgspec.msgpack.Decoder(EntryBody).decode
_decode_event = msgspec.msgpack.Decoder(EventBody).decode


def _connect(path: Path, readonly: bool) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
    else:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=True)
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=5000")
    if not readonly:  # truncate the WAL file after checkpoints instead of keeping its peak size
        conn.execute("PRAGMA journal_size_limit=67108864")
    return conn


def _fk_guard(job: Callable[[sqlite3.Connection], T]) -> Callable[[sqlite3.Connection], T]:
    """Turn a foreign-key violation into NotFound (the savepoint already undoes the job)."""

    def run(conn: sqlite3.Connection) -> T:
        try:
            return job(conn)
        except sqlite3.IntegrityError as exc:
            if "FOREIGN KEY" in str(exc):
                raise NotFound("a referenced user, device or conversation does not exist") from exc
            raise

    return run


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


class SqliteStore(Store):
    """``Store`` on one SQLite file (plus its -wal and -shm companions)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._writer: Writer | None = None
        self._reader: sqlite3.Connection | None = None
        self._touches: dict[tuple[str, int], int] = {}
        self._touch_lock = threading.Lock()  # shared with the writer thread
        self._touch_scheduled = False
        # conversation_id -> ConversationInfo for the send path (get_membership); filled by
        # reads on the event loop, dropped by the writer's hook when a membership change ends
        self._membership: dict[bytes, ConversationInfo] = {}

    # --- lifecycle ---------------------------------------------------------------------------
    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)

        def connect() -> sqlite3.Connection:
            conn = _connect(self.path, readonly=False)
            migrate(conn)
            cutoff = int(time.time() * 1000) - IDEMPOTENCY_TTL_MS
            conn.execute("DELETE FROM idempotency WHERE created < ?", (cutoff,))
            return conn

        writer = Writer(connect, name=f"sqlite-writer:{self.path.name}")
        await writer.start()
        self._writer = writer
        self._reader = _connect(self.path, readonly=True)

    async def close(self) -> None:
        if self._writer is not None:
            await self._writer.close()
            self._writer = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    @property
    def _r(self) -> sqlite3.Connection:
        if self._reader is None:
            raise StoreError("store is not open")
        return self._reader

    async def _write(
        self, job: Callable[[sqlite3.Connection], T], after: Callable[[], None] | None = None
    ) -> T:
        if self._writer is None:
            raise StoreError("store is not open")
        return await self._writer.submit(_fk_guard(job), after)

    def _forget_membership(self, conversation_id: bytes) -> Callable[[], None]:
        """The writer's after-commit hook for a membership change: runs in the event loop
        once the change committed (or failed), before its caller resumes, even if the caller
        was cancelled; so no request that starts after the change can see the old members."""

        def forget() -> None:
            self._membership.pop(conversation_id, None)

        return forget

    # --- sharing the file with other engines (store/sqlite_keydir.py) ----------------------
    async def write_job(self, job: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``job`` as one atomic write of this store's writer thread (group commit)."""
        return await self._write(job)

    def read_connection(self) -> sqlite3.Connection:
        """The read-only connection (event-loop thread only)."""
        return self._r

    # --- accounts and devices ----------------------------------------------------------------
    async def create_user(self, username: str, password_hash: bytes, now: int) -> UserRow:
        row = UserRow(str(uuid.uuid4()), username, password_hash, now)

        def job(conn: sqlite3.Connection) -> UserRow:
            try:
                conn.execute(
                    "INSERT INTO users (user_id, username, password_hash, created) VALUES (?,?,?,?)",
                    (row.user_id, username, password_hash, now),
                )
            except sqlite3.IntegrityError as exc:
                raise UsernameTaken(username) from exc
            return row

        return await self._write(job)

    async def get_user(self, user_id: str) -> UserRow | None:
        r = self._r.execute(
            "SELECT user_id, username, password_hash, created FROM users WHERE user_id = ?",
            (user_id,),
        ).fetchone()
        return UserRow(*r) if r else None

    async def get_user_by_name(self, username: str) -> UserRow | None:
        r = self._r.execute(
            "SELECT user_id, username, password_hash, created FROM users WHERE username = ?",
            (username,),
        ).fetchone()
        return UserRow(*r) if r else None

    async def users_exist(self, user_ids: Sequence[str]) -> set[str]:
        wanted = list(dict.fromkeys(user_ids))
        found: set[str] = set()
        for i in range(0, len(wanted), _IN_CHUNK):
            chunk = wanted[i : i + _IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            found.update(
                r[0]
                for r in self._r.execute(
                    f"SELECT user_id FROM users WHERE user_id IN ({marks})", chunk
                )
            )
        return found

    async def create_device(
        self, user_id: str, name: str, token_hash: bytes, now: int
    ) -> DeviceRow:
        def job(conn: sqlite3.Connection) -> DeviceRow:
            r = conn.execute(
                "UPDATE users SET last_device_id = last_device_id + 1 WHERE user_id = ?"
                " RETURNING last_device_id",
                (user_id,),
            ).fetchone()
            if r is None:
                raise NotFound(f"user {user_id}")
            device_id = int(r[0])
            conn.execute(
                "INSERT INTO devices (user_id, device_id, name, created, last_seen)"
                " VALUES (?,?,?,?,?)",
                (user_id, device_id, name, now, now),
            )
            conn.execute(
                "INSERT INTO sessions (token_hash, user_id, device_id) VALUES (?,?,?)",
                (token_hash, user_id, device_id),
            )
            return DeviceRow(user_id, device_id, name, now, now, False)

        return await self._write(job)

    async def get_session(self, token_hash: bytes) -> SessionRow | None:
        r = self._r.execute(
            "SELECT user_id, device_id, revoked FROM sessions WHERE token_hash = ?", (token_hash,)
        ).fetchone()
        return SessionRow(r[0], r[1], bool(r[2])) if r else None

    async def touch_device(self, user_id: str, device_id: int, now: int) -> None:
        """Coalesced: queued in memory and written by the writer's next batch, not awaited."""
        if self._writer is None:
            raise StoreError("store is not open")
        with self._touch_lock:
            key = (user_id, device_id)
            self._touches[key] = max(now, self._touches.get(key, now))
            if self._touch_scheduled:
                return
            self._touch_scheduled = True
        self._writer.submit_nowait(self._flush_touches)

    def _flush_touches(self, conn: sqlite3.Connection) -> None:
        with self._touch_lock:  # runs in the writer thread
            touches, self._touches = self._touches, {}
            self._touch_scheduled = False
        conn.executemany(
            "UPDATE devices SET last_seen = MAX(last_seen, ?) WHERE user_id = ? AND device_id = ?",
            [(now, u, d) for (u, d), now in touches.items()],
        )

    async def list_devices(self, user_id: str) -> list[DeviceRow]:
        rows = self._r.execute(
            "SELECT user_id, device_id, name, created, last_seen, revoked FROM devices"
            " WHERE user_id = ? AND revoked = 0 ORDER BY device_id",
            (user_id,),
        ).fetchall()
        return [DeviceRow(r[0], r[1], r[2], r[3], r[4], bool(r[5])) for r in rows]

    async def revoke_device(self, user_id: str, device_id: int) -> bool:
        """Also drops the device's pending to-device items: nobody can fetch them any more."""

        def job(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE devices SET revoked = 1 WHERE user_id = ? AND device_id = ? AND revoked = 0",
                (user_id, device_id),
            )
            if cur.rowcount == 0:
                return False
            conn.execute(
                "UPDATE sessions SET revoked = 1 WHERE user_id = ? AND device_id = ?",
                (user_id, device_id),
            )
            conn.execute(
                "DELETE FROM to_device WHERE user_id = ? AND device_id = ?", (user_id, device_id)
            )
            return True

        return await self._write(job)

    # --- conversations (writer-side helpers) -------------------------------------------------
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
    def _append_events(
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
        events = self._append_events(conn, [(u, added) for u in roles], now)
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

        return await self._write(job, self._forget_membership(conversation_id))

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

        return await self._write(job, self._forget_membership(conversation_id))

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
            user_events = self._append_events(conn, filled, now)
            info = self._info(conn, conversation_id)
            assert info is not None
            return MembershipResult(appended, user_events, info)

        return await self._write(job, self._forget_membership(conversation_id))

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
            events = self._append_events(
                conn,
                [
                    (u, Mentioned(conversation_id=conversation_id, seq=entry.seq, by=sender))
                    for u in mentioned
                ],
                now,
            )
            return AppendResult(entry, duplicate=False, events=events)

        return await self._write(job)

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

    # --- per-user event timeline -------------------------------------------------------------
    async def append_events(
        self, events: Sequence[tuple[str, EventBody]], now: int
    ) -> list[tuple[str, UserEvent]]:
        events = list(events)
        return await self._write(lambda conn: self._append_events(conn, events, now))

    async def events_after(self, user_id: str, after: int, limit: int) -> list[UserEvent]:
        return [
            UserEvent(seq, ts, _decode_event(body))
            for seq, ts, body in self._r.execute(
                "SELECT seq, ts, body FROM user_events WHERE user_id = ? AND seq > ?"
                " ORDER BY seq LIMIT ?",
                (user_id, after, limit),
            )
        ]

    # --- per-device to-device queue ----------------------------------------------------------
    async def enqueue_to_device(
        self, sender: str, sender_device: int, messages: Sequence[ToDeviceOut], now: int
    ) -> list[tuple[str, int, ToDeviceItem]]:
        """Raises NotFound (queuing nothing) if any recipient device is unknown or revoked."""
        messages = list(messages)

        def job(conn: sqlite3.Connection) -> list[tuple[str, int, ToDeviceItem]]:
            out: list[tuple[str, int, ToDeviceItem]] = []
            for m in messages:
                r = conn.execute(
                    "UPDATE devices SET td_last_seq = td_last_seq + 1"
                    " WHERE user_id = ? AND device_id = ? AND revoked = 0 RETURNING td_last_seq",
                    (m.user_id, m.device_id),
                ).fetchone()
                if r is None:
                    raise NotFound(f"device {m.user_id}/{m.device_id}")
                seq = int(r[0])
                conn.execute(
                    "INSERT INTO to_device"
                    " (user_id, device_id, seq, ts, sender, sender_device, body)"
                    " VALUES (?,?,?,?,?,?,?)",
                    (m.user_id, m.device_id, seq, now, sender, sender_device, m.body),
                )
                out.append(
                    (m.user_id, m.device_id, ToDeviceItem(seq, now, sender, sender_device, m.body))
                )
            return out

        return await self._write(job)

    async def to_device_after(
        self, user_id: str, device_id: int, after: int, limit: int
    ) -> list[ToDeviceItem]:
        return [
            ToDeviceItem(seq, ts, sender, sender_device, body)
            for seq, ts, sender, sender_device, body in self._r.execute(
                "SELECT seq, ts, sender, sender_device, body FROM to_device"
                " WHERE user_id = ? AND device_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                (user_id, device_id, after, limit),
            )
        ]

    async def ack_to_device(self, user_id: str, device_id: int, upto_seq: int) -> int:
        def job(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "DELETE FROM to_device WHERE user_id = ? AND device_id = ? AND seq <= ?",
                (user_id, device_id, upto_seq),
            ).rowcount

        return await self._write(job)

    async def expire_to_device(self, older_than: int) -> int:
        def job(conn: sqlite3.Connection) -> int:
            return conn.execute("DELETE FROM to_device WHERE ts < ?", (older_than,)).rowcount

        return await self._write(job)

    # --- engine-specific maintenance ---------------------------------------------------------
    async def expire_idempotency(self, older_than: int) -> int:
        """Forget append idempotency keys created before ``older_than`` (ms); how many."""

        def job(conn: sqlite3.Connection) -> int:
            return conn.execute("DELETE FROM idempotency WHERE created < ?", (older_than,)).rowcount

        return await self._write(job)


__all__ = ["IDEMPOTENCY_TTL_MS", "SqliteStore"]
