"""``parley admin migrate --from sqlite:DIR --to redis://...``: copy an embedded installation to
Redis (one Redis or a cluster), in the Redis engine's key layout.

It reads the SQLite file in one read transaction (a consistent snapshot, also while a server is
running on it: WAL readers never block the writer), writes every row to its keys, then checks
per conversation that Redis holds the same number of entries and the same last seq, and per
user the same number of events. Running it again changes nothing: every write sets a key to the
value it already has, counters only move up (``HMAX``), and a to-device item is added only if
its queue does not have it yet. Left out on purpose: pending device-link requests (a link
started on the old server is simply started again).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import msgspec

if TYPE_CHECKING:  # the Redis client loads only when the command runs
    from parley_server.store.redis import RedisStore

_pack = msgspec.msgpack.Encoder().encode

_HMAX = """
for i = 1, #ARGV, 2 do
  local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0')
  if tonumber(ARGV[i + 1]) > cur then redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
return 1
"""

BATCH = 500


class MigrationReport(msgspec.Struct):
    rows: dict[str, int]
    conversations_checked: int
    users_checked: int
    mismatches: list[str]


def _connect(db: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
    conn.execute("BEGIN")  # one snapshot for the whole copy
    return conn


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


class Migrator:
    def __init__(self, conn: sqlite3.Connection, store: RedisStore) -> None:
        self.conn = conn
        self.s = store
        self.k = store.k
        self.r: Any = store.r
        self.tables = _tables(conn)
        self.rows: dict[str, int] = {}

    def count(self, table: str) -> int:
        if table not in self.tables:
            return 0
        return int(self.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

    def select(self, table: str, sql: str) -> Iterator[tuple[Any, ...]]:
        if table not in self.tables:
            return iter(())
        return iter(self.conn.execute(sql))

    async def hmax(self, key: str, *pairs: Any) -> None:
        await self.s.script("migrate.hmax", _HMAX)(keys=[key], args=list(pairs))

    async def _batched(
        self,
        table: str,
        rows: Iterator[tuple[Any, ...]],
        write: Callable[[Any, tuple[Any, ...]], Any],
        advance: Callable[[int], None],
    ) -> None:
        n = 0
        pipe = self.r.pipeline(transaction=False)
        for row in rows:
            write(pipe, row)
            n += 1
            if n % BATCH == 0:
                await pipe.execute()
                pipe = self.r.pipeline(transaction=False)
                advance(BATCH)
        await pipe.execute()
        advance(n % BATCH)
        self.rows[table] = n

    # --- the copy ------------------------------------------------------------------------------
    async def copy(self, advance: Callable[[int], None]) -> None:
        from parley_server.store.redis_conversations import IDEMPOTENCY_TTL_S, Entry, join_entry

        k, now_ms = self.k, int(time.time() * 1000)

        def user(pipe: Any, r: tuple[Any, ...]) -> None:
            uid, username, pw, created = r[0], r[1], r[2], r[3]
            pipe.hset(
                k.user(uid),
                mapping={
                    "user_id": uid,
                    "username": username,
                    "password_hash": pw,
                    "created": created,
                },
            )
            pipe.set(k.name(username), uid)
            pipe.zadd(f"{k.registry}:users", {f"{username}\x00{uid}": 0})

        await self._batched(
            "users",
            self.select("users", "SELECT user_id, username, password_hash, created FROM users"),
            user,
            advance,
        )
        for uid, last_dev, last_ev in self.select(
            "users", "SELECT user_id, last_device_id, last_event_seq FROM users"
        ):
            await self.hmax(k.user(uid), "last_device_id", last_dev, "last_event_seq", last_ev)

        def device(pipe: Any, r: tuple[Any, ...]) -> None:
            uid, dev, name, created, last_seen, revoked = r
            u = k.user(uid)
            pipe.hset(f"{u}:dev", dev, _pack([name, created, bool(revoked)]))
            pipe.hset(f"{u}:seen", dev, last_seen)

        await self._batched(
            "devices",
            self.select(
                "devices",
                "SELECT user_id, device_id, name, created, last_seen, revoked FROM devices",
            ),
            device,
            advance,
        )
        for uid, dev, td in self.select(
            "devices", "SELECT user_id, device_id, td_last_seq FROM devices"
        ):
            await self.hmax(f"{k.user(uid)}:tdseq", dev, td)
        await self._batched(
            "sessions",
            self.select("sessions", "SELECT token_hash, user_id, device_id FROM sessions"),
            lambda pipe, r: pipe.set(k.session(bytes(r[0])), f"{r[1]}|{r[2]}"),
            advance,
        )

        def conversation(pipe: Any, r: tuple[Any, ...]) -> None:
            cid, kind, created, last_ts, meta, disbanded = r
            pipe.hset(
                f"{k.conv(bytes(cid))}:meta",
                mapping={
                    "kind": kind,
                    "created_ts": created,
                    "last_ts": last_ts,
                    "meta": meta or b"",
                    "disbanded": int(bool(disbanded)),
                },
            )

        await self._batched(
            "conversations",
            self.select(
                "conversations",
                "SELECT conversation_id, kind, created_ts, last_ts, meta, disbanded"
                " FROM conversations",
            ),
            conversation,
            advance,
        )
        for cid, last_seq in self.select(
            "conversations", "SELECT conversation_id, last_seq FROM conversations"
        ):
            await self.hmax(f"{k.conv(bytes(cid))}:meta", "last_seq", last_seq)

        def member(pipe: Any, r: tuple[Any, ...]) -> None:
            cid, uid, role = bytes(r[0]), r[1], r[2]
            pipe.hset(f"{k.conv(cid)}:m", uid, role)
            pipe.zadd(f"{k.user(uid)}:convs", {cid: 0})

        await self._batched(
            "members",
            self.select("members", "SELECT conversation_id, user_id, role FROM members"),
            member,
            advance,
        )
        await self._batched(
            "direct_pairs",
            self.select(
                "direct_pairs", "SELECT user_lo, user_hi, conversation_id FROM direct_pairs"
            ),
            lambda pipe, r: pipe.set(k.pair(r[0], r[1]), bytes(r[2])),
            advance,
        )

        edits: dict[tuple[bytes, int], list[int]] = {}

        def entry(pipe: Any, r: tuple[Any, ...]) -> None:
            cid, seq, ts, sender, dev, body, ref_seq, ref_kind, recalled = r
            cid = bytes(cid)
            e = Entry(ts, sender, dev, ref_seq, ref_kind or "", bool(recalled), bytes(body))
            pipe.hset(f"{k.conv(cid)}:e", seq, join_entry(e))
            if ref_kind == "edit" and ref_seq is not None:
                edits.setdefault((cid, ref_seq), []).append(seq)

        await self._batched(
            "entries",
            self.select(
                "entries",
                "SELECT conversation_id, seq, ts, sender, sender_device, body, ref_seq,"
                " ref_kind, recalled FROM entries ORDER BY conversation_id, seq",
            ),
            entry,
            advance,
        )
        for (cid, target), seqs in edits.items():
            await self.r.hset(f"{k.conv(cid)}:edits", target, ",".join(map(str, seqs)))

        def idem(pipe: Any, r: tuple[Any, ...]) -> None:
            sender, dev, cmid, cid, seq, created = r
            left = IDEMPOTENCY_TTL_S - (now_ms - created) // 1000
            if left > 0:
                pipe.set(f"{k.conv(bytes(cid))}:idem:{sender}:{dev}:{cmid}", f"{seq}|", ex=left)

        await self._batched(
            "idempotency",
            self.select(
                "idempotency",
                "SELECT sender, sender_device, client_msg_id, conversation_id, seq, created"
                " FROM idempotency",
            ),
            idem,
            advance,
        )
        await self._batched(
            "user_events",
            self.select("user_events", "SELECT user_id, seq, ts, body FROM user_events"),
            lambda pipe, r: pipe.hset(
                f"{k.user(r[0])}:ev", r[1], f"{r[2]}|".encode() + bytes(r[3])
            ),
            advance,
        )

        def invite(pipe: Any, r: tuple[Any, ...]) -> None:
            cid, invitee, inviter, created = bytes(r[0]), r[1], r[2], r[3]
            pipe.hset(f"{k.user(invitee)}:inv", cid, _pack([inviter, created]))
            pipe.sadd(f"{k.conv(cid)}:invitees", invitee)

        await self._batched(
            "group_invites",
            self.select(
                "group_invites",
                "SELECT conversation_id, invitee, inviter, created FROM group_invites",
            ),
            invite,
            advance,
        )
        await self._copy_to_device(advance)
        await self._copy_social(advance)
        await self._copy_keys(advance)
        await self._copy_admin(advance)

    async def _copy_to_device(self, advance: Callable[[int], None]) -> None:
        k = self.k
        last: dict[str, int] = {}
        n = 0
        for uid, dev, seq, ts, sender, sdev, body in self.select(
            "to_device",
            "SELECT user_id, device_id, seq, ts, sender, sender_device, body FROM to_device"
            " ORDER BY user_id, device_id, seq",
        ):
            q = f"{k.user(uid)}:td:{dev}"
            if q not in last:
                top = await self.r.xrevrange(q, "+", "-", count=1)
                last[q] = int(top[0][0].decode().split("-")[0]) if top else 0
                await self.r.sadd(f"{k.registry}:tdq", q)
            if seq > last[q]:
                await self.r.xadd(
                    q, {"t": ts, "s": sender, "d": sdev, "b": bytes(body)}, id=f"{seq}-0"
                )
                last[q] = seq
            n += 1
        advance(n)
        self.rows["to_device"] = n

    async def _copy_social(self, advance: Callable[[int], None]) -> None:
        k = self.k
        g = f"{k.social}:"

        def profile(pipe: Any, r: tuple[Any, ...]) -> None:
            uid, email, phone, hidden, receipts, seen = r
            fields = {
                "hidden": int(bool(hidden)),
                "read_receipts": int(bool(receipts)),
                "last_seen_visible": int(bool(seen)),
                "email": email or "",
                "phone": phone or "",
            }
            pipe.hset(f"{k.user(uid)}:profile", mapping=fields)
            if email:
                pipe.sadd(f"{k.p}{{idx:email:{email}}}", uid)
            if phone:
                pipe.sadd(f"{k.p}{{idx:phone:{phone}}}", uid)

        await self._batched(
            "profiles",
            self.select(
                "profiles",
                "SELECT user_id, email, phone, hidden, read_receipts, last_seen_visible"
                " FROM profiles",
            ),
            profile,
            advance,
        )
        await self._batched(
            "contacts",
            self.select("contacts", "SELECT user_id, contact_id, since FROM contacts"),
            lambda pipe, r: pipe.hset(f"{g}contacts:{r[0]}", r[1], r[2]),
            advance,
        )
        cols = "from_user, to_user, note, created"
        if "friend_requests" in self.tables and "from_event_seq" in {
            c[1] for c in self.conn.execute("PRAGMA table_info(friend_requests)")
        }:
            cols += ", from_event_seq, to_event_seq"

        def request(pipe: Any, r: tuple[Any, ...]) -> None:
            frm, to, note, created = r[:4]
            pipe.hset(f"{g}out:{frm}", to, created)
            pipe.hset(f"{g}in:{to}", frm, created)
            pipe.set(f"{g}note:{frm}:{to}", note)
            if len(r) > 4 and r[4]:
                pipe.set(f"{g}seqs:{frm}:{to}", f"{r[4]},{r[5]}")

        await self._batched(
            "friend_requests",
            self.select("friend_requests", f"SELECT {cols} FROM friend_requests"),
            request,
            advance,
        )
        await self._batched(
            "blocks",
            self.select("blocks", "SELECT user_id, blocked_id, created FROM blocks"),
            lambda pipe, r: pipe.hset(f"{g}blocks:{r[0]}", r[1], r[2]),
            advance,
        )

        def read_mark(pipe: Any, r: tuple[Any, ...]) -> None:
            cid, uid, seq = bytes(r[0]), r[1], r[2]
            pipe.hset(f"{k.user(uid)}:reads", cid, seq)
            pipe.hset(f"{k.conv(cid)}:reads", uid, seq)

        await self._batched(
            "read_marks",
            self.select("read_marks", "SELECT conversation_id, user_id, seq FROM read_marks"),
            read_mark,
            advance,
        )

    async def _copy_keys(self, advance: Callable[[int], None]) -> None:
        k = self.k

        def kd(uid: str) -> str:
            return f"{k.user(uid)}:kd"

        await self._batched(
            "kd_devices",
            self.select(
                "kd_devices",
                "SELECT user_id, device_id, ik, spk_id, spk_pub, spk_sig, opk_count, updated"
                " FROM kd_devices",
            ),
            lambda pipe, r: pipe.hset(
                f"{kd(r[0])}:dev:{r[1]}",
                mapping={
                    "ik": bytes(r[2]),
                    "spk_id": r[3],
                    "spk_pub": bytes(r[4]),
                    "spk_sig": bytes(r[5]),
                    "opk_count": r[6],
                    "updated": r[7],
                },
            ),
            advance,
        )
        await self._batched(
            "kd_opks",
            self.select("kd_opks", "SELECT user_id, device_id, opk_id, pub FROM kd_opks"),
            lambda pipe, r: pipe.hset(f"{kd(r[0])}:opk:{r[1]}", r[2], bytes(r[3])),
            advance,
        )
        await self._batched(
            "kd_devlists",
            self.select(
                "kd_devlists", "SELECT user_id, aik, version, data, sig, updated FROM kd_devlists"
            ),
            lambda pipe, r: pipe.hset(
                f"{kd(r[0])}:devlist",
                mapping={
                    "aik": bytes(r[1]),
                    "version": r[2],
                    "data": bytes(r[3]),
                    "sig": bytes(r[4]),
                    "updated": r[5],
                },
            ),
            advance,
        )
        await self._batched(
            "kd_backup_versions",
            self.select(
                "kd_backup_versions",
                "SELECT user_id, version, algorithm, check_ct, salt, opslimit, memlimit, created,"
                " count FROM kd_backup_versions",
            ),
            lambda pipe, r: pipe.hset(
                f"{kd(r[0])}:bk",
                mapping={
                    "version": r[1],
                    "algorithm": r[2],
                    "check": bytes(r[3]),
                    "params": _pack([None if r[4] is None else bytes(r[4]), r[5], r[6]]),
                    "created": r[7],
                    "count": r[8],
                },
            ),
            advance,
        )

        def record(pipe: Any, r: tuple[Any, ...]) -> None:
            uid, cid, su, sd, dist, chain, it, blob = r
            cid, dist = bytes(cid), bytes(dist)
            field = _pack([su, sd, dist, chain])
            pipe.hset(
                f"{kd(uid)}:bkr:{cid.hex()}",
                field,
                _pack([cid, su, sd, dist, chain, it, bytes(blob)]),
            )
            pipe.sadd(f"{kd(uid)}:bkc", cid.hex())

        await self._batched(
            "kd_backup_records",
            self.select(
                "kd_backup_records",
                "SELECT user_id, conversation_id, sender_user_id, sender_device_id,"
                " distribution_id, chain_id, iteration, blob FROM kd_backup_records",
            ),
            record,
            advance,
        )

    async def _copy_admin(self, advance: Callable[[int], None]) -> None:
        k = self.k
        x = k.registry
        await self._batched(
            "account_status",
            self.select("account_status", "SELECT user_id, status FROM account_status"),
            lambda pipe, r: pipe.hset(f"{x}:status", r[0], r[1]),
            advance,
        )
        await self._batched(
            "server_settings",
            self.select("server_settings", "SELECT key, value FROM server_settings"),
            lambda pipe, r: pipe.hset(f"{x}:settings", r[0], r[1]),
            advance,
        )

        def invite(pipe: Any, r: tuple[Any, ...]) -> None:
            h, created, expires, used_at, used_by = bytes(r[0]), r[1], r[2], r[3], r[4]
            fields: dict[str, Any] = {"created": created, "expires": expires}
            if used_at is not None:
                fields["used_at"] = used_at
            if used_by is not None:
                fields["used_by"] = used_by
            pipe.hset(f"{k.p}{{inv:{h.hex()}}}", mapping=fields)
            pipe.sadd(f"{x}:invites", h.hex())

        await self._batched(
            "invites",
            self.select(
                "invites", "SELECT code_hash, created, expires, used_at, used_by FROM invites"
            ),
            invite,
            advance,
        )
        if "blobs" in self.tables:
            from parley_server.store.blob_records import BlobRow, BlobState
            from parley_server.store.redis_blob_records import _encode as encode_blob

            def blob(pipe: Any, r: tuple[Any, ...]) -> None:
                row = BlobRow(
                    r[0], r[1], r[2], bytes(r[3]), None if r[4] is None else bytes(r[4]), r[5],
                    BlobState(r[6]), r[7], r[8],
                )  # fmt: skip
                pipe.hset(f"{k.user(row.owner)}:blobs", row.blob_id, encode_blob(row))
                pipe.set(f"{k.p}{{bo:{row.blob_id}}}", row.owner)
                pipe.sadd(f"{x}:blobs", row.blob_id)

            await self._batched(
                "blobs",
                self.select(
                    "blobs",
                    "SELECT blob_id, owner, size, sha256, md5, kind, state, created, committed"
                    " FROM blobs",
                ),
                blob,
                advance,
            )
            await self._batched(
                "blob_refs",
                self.select(
                    "blob_refs",
                    "SELECT r.blob_id, b.owner, r.conversation_id, r.seq FROM blob_refs AS r"
                    " JOIN blobs AS b USING (blob_id)",
                ),
                lambda pipe, r: pipe.sadd(
                    f"{k.user(r[1])}:brefs:{r[0]}", f"{bytes(r[2]).hex()}:{r[3]}"
                ),
                advance,
            )

    # --- the check -----------------------------------------------------------------------------
    async def verify(self) -> tuple[int, int, list[str]]:
        k = self.k
        bad: list[str] = []
        convs = 0
        for cid, last_seq, n in self.select(
            "conversations",
            "SELECT c.conversation_id, c.last_seq, (SELECT count(*) FROM entries AS e"
            " WHERE e.conversation_id = c.conversation_id) FROM conversations AS c",
        ):
            c = k.conv(bytes(cid))
            got_last = int(await self.r.hget(f"{c}:meta", "last_seq") or 0)
            got_n = int(await self.r.hlen(f"{c}:e"))
            if got_last < last_seq or got_n < n:
                bad.append(
                    f"conversation {bytes(cid).hex()}: seq {got_last}/{last_seq} entries {got_n}/{n}"
                )
            convs += 1
        users = 0
        for uid, n in self.select(
            "users",
            "SELECT u.user_id, (SELECT count(*) FROM user_events AS e WHERE e.user_id = u.user_id)"
            " FROM users AS u",
        ):
            if int(await self.r.hlen(f"{k.user(uid)}:ev")) < n:
                bad.append(f"user {uid}: events {await self.r.hlen(f'{k.user(uid)}:ev')}/{n}")
            users += 1
        return convs, users, bad

    def total(self) -> int:
        tables = [
            "users", "devices", "sessions", "conversations", "members", "direct_pairs", "entries",
            "idempotency", "user_events", "to_device", "profiles", "contacts", "friend_requests",
            "blocks", "read_marks", "kd_devices", "kd_opks", "kd_devlists", "kd_backup_versions",
            "kd_backup_records", "account_status", "server_settings", "invites", "blobs",
            "blob_refs", "group_invites",
        ]  # fmt: skip
        return sum(self.count(t) for t in tables)


async def migrate(
    db: Path,
    url: str,
    prefix: str,
    progress: Callable[[int, int], None] = lambda _done, _total: None,
) -> MigrationReport:
    """Copy the SQLite database ``db`` into the Redis at ``url`` under ``prefix``; verify."""
    from parley_server.store.redis import RedisStore

    store = RedisStore(url, prefix=prefix, sweep_every_s=0)
    await store.open()
    conn = _connect(db)
    try:
        m = Migrator(conn, store)
        total = m.total()
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            progress(done, total)

        await m.copy(advance)
        convs, users, bad = await m.verify()
        return MigrationReport(m.rows, convs, users, bad)
    finally:
        conn.close()
        await store.close()


@click.command("migrate")
@click.option("--from", "source", required=True, help="sqlite:DIR (the server's data dir).")
@click.option("--to", "target", required=True, help="redis://HOST:PORT/DB or redis+cluster://...")
@click.option("--prefix", default=None, help="Redis key prefix [PARLEY_REDIS_PREFIX or parley:].")
def migrate_command(source: str, target: str, prefix: str | None) -> None:
    """Copy an embedded (SQLite) installation to Redis, then verify it. Safe to run again."""
    from rich.progress import Progress

    from parley_server.config import load_settings

    if not source.startswith("sqlite:"):
        raise click.UsageError("--from must be sqlite:DIR")
    db = Path(source[len("sqlite:") :]) / "parley.db"
    if not db.exists():
        raise click.UsageError(f"{db} does not exist")
    if not target.startswith(("redis://", "rediss://", "redis+cluster://")):
        raise click.UsageError("--to must be redis://... or redis+cluster://...")
    prefix = prefix or load_settings().redis_prefix
    with Progress() as bar:
        task = bar.add_task("copying", total=None)
        report = asyncio.run(
            migrate(db, target, prefix, lambda d, t: bar.update(task, completed=d, total=t))
        )
    for table, n in report.rows.items():
        click.echo(f"{table:20} {n}")
    click.echo(
        f"checked {report.conversations_checked} conversations (entries, last seq) and"
        f" {report.users_checked} users (events)"
    )
    if report.mismatches:
        for line in report.mismatches:
            click.echo(f"MISMATCH {line}", err=True)
        raise SystemExit(1)
    click.echo("ok: Redis holds everything the SQLite file held")


__all__ = ["MigrationReport", "migrate", "migrate_command"]
