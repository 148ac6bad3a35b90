"""The SQLite engine of ``BlobRecords``: tables ``blobs`` and ``blob_refs`` (schema v4) in the
main store's database. Reads use the read connection; every write is one transaction on the
writer thread, so the quota check and the insert, or the garbage test and the mark, are atomic.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from parley_server.store.blob_records import BlobRecords, BlobRow, BlobState, QuotaExceeded

T = TypeVar("T")

_COLS = "blob_id, owner, size, sha256, md5, kind, state, created, committed"

# a reference that still grants access: a live entry of a conversation that was not disbanded
_LIVE_REF = (
    "SELECT 1 FROM blob_refs AS r"
    " JOIN entries AS e ON e.conversation_id = r.conversation_id AND e.seq = r.seq"
    " JOIN conversations AS c ON c.conversation_id = r.conversation_id"
    " WHERE r.blob_id = b.blob_id AND e.recalled = 0 AND c.disbanded = 0"
)


class _Database(Protocol):
    """What this engine needs of the main SQLite store."""

    def read_connection(self) -> sqlite3.Connection: ...

    async def write_job(self, job: Callable[[sqlite3.Connection], T]) -> T: ...


def _row(r: Any) -> BlobRow:
    return BlobRow(
        blob_id=str(r[0]),
        owner=str(r[1]),
        size=int(r[2]),
        sha256=bytes(r[3]),
        md5=None if r[4] is None else bytes(r[4]),
        kind=str(r[5]),
        state=BlobState(r[6]),
        created=int(r[7]),
        committed=None if r[8] is None else int(r[8]),
    )


class SqliteBlobRecords(BlobRecords):
    def __init__(self, db: _Database) -> None:
        self.db = db

    @property
    def _r(self) -> sqlite3.Connection:
        return self.db.read_connection()

    async def create(self, row: BlobRow, quota_bytes: int) -> None:
        def blob_create(conn: sqlite3.Connection) -> None:
            (used,) = conn.execute(
                "SELECT COALESCE(SUM(size), 0) FROM blobs WHERE owner = ? AND state != 'deleting'",
                (row.owner,),
            ).fetchone()
            if used + row.size > quota_bytes:
                raise QuotaExceeded(f"{used} + {row.size} bytes > quota {quota_bytes}")
            conn.execute(
                f"INSERT INTO blobs ({_COLS}) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    row.blob_id,
                    row.owner,
                    row.size,
                    row.sha256,
                    row.md5,
                    row.kind,
                    row.state.value,
                    row.created,
                    row.committed,
                ),
            )

        await self.db.write_job(blob_create)

    async def get(self, blob_id: str) -> BlobRow | None:
        r = self._r.execute(f"SELECT {_COLS} FROM blobs WHERE blob_id = ?", (blob_id,)).fetchone()
        return None if r is None else _row(r)

    async def used_bytes(self, owner: str) -> int:
        (used,) = self._r.execute(
            "SELECT COALESCE(SUM(size), 0) FROM blobs WHERE owner = ? AND state != 'deleting'",
            (owner,),
        ).fetchone()
        return int(used)

    async def commit(self, blob_id: str, owner: str, now: int) -> bool:
        def blob_commit(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE blobs SET state = 'committed', committed = ?"
                " WHERE blob_id = ? AND owner = ? AND state = 'pending'",
                (now, blob_id, owner),
            )
            return cur.rowcount > 0

        return await self.db.write_job(blob_commit)

    async def mark_deleting(self, blob_id: str, owner: str | None = None) -> bool:
        def blob_mark_deleting(conn: sqlite3.Connection) -> bool:
            sql = "UPDATE blobs SET state = 'deleting' WHERE blob_id = ? AND state != 'deleting'"
            args: tuple[str, ...] = (blob_id,)
            if owner is not None:
                sql += " AND owner = ?"
                args = (blob_id, owner)
            return conn.execute(sql, args).rowcount > 0

        return await self.db.write_job(blob_mark_deleting)

    async def forget(self, blob_id: str) -> None:
        def blob_forget(conn: sqlite3.Connection) -> None:
            n = conn.execute(
                "DELETE FROM blobs WHERE blob_id = ? AND state = 'deleting'", (blob_id,)
            ).rowcount
            if n:
                conn.execute("DELETE FROM blob_refs WHERE blob_id = ?", (blob_id,))

        await self.db.write_job(blob_forget)

    async def usable(self, user_id: str, blob_ids: Sequence[str]) -> set[str]:
        out: set[str] = set()
        for blob_id in dict.fromkeys(blob_ids):
            r = self._r.execute(
                "SELECT 1 FROM blobs AS b WHERE b.blob_id = ? AND b.state = 'committed'"
                " AND (b.owner = ? OR EXISTS (" + _LIVE_REF + " AND EXISTS (SELECT 1 FROM"
                " members AS m WHERE m.conversation_id = r.conversation_id AND m.user_id = ?)))",
                (blob_id, user_id, user_id),
            ).fetchone()
            if r is not None:
                out.add(blob_id)
        return out

    async def add_refs(self, conversation_id: bytes, seq: int, blob_ids: Sequence[str]) -> None:
        def blob_add_refs(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT OR IGNORE INTO blob_refs (blob_id, conversation_id, seq)"
                " SELECT blob_id, ?, ? FROM blobs WHERE blob_id = ? AND state = 'committed'",
                [(conversation_id, seq, b) for b in dict.fromkeys(blob_ids)],
            )

        await self.db.write_job(blob_add_refs)

    async def readable(self, user_id: str, blob_id: str, conversation_id: bytes) -> BlobRow | None:
        r = self._r.execute(
            f"SELECT {', '.join('b.' + c.strip() for c in _COLS.split(','))} FROM blobs AS b"
            " WHERE b.blob_id = ? AND b.state = 'committed' AND (b.owner = ? OR EXISTS ("
            + _LIVE_REF
            + " AND r.conversation_id = ? AND EXISTS (SELECT 1 FROM members AS m"
            " WHERE m.conversation_id = r.conversation_id AND m.user_id = ?)))",
            (blob_id, user_id, conversation_id, user_id),
        ).fetchone()
        return None if r is None else _row(r)

    async def collect(self, pending_before: int, unsent_before: int, limit: int) -> list[str]:
        def blob_collect(conn: sqlite3.Connection) -> list[str]:
            conn.execute(
                "UPDATE blobs SET state = 'deleting' WHERE state = 'pending' AND created < ?",
                (pending_before,),
            )
            # never sent, past the grace; or sent, but no message carrying it is live any more
            conn.execute(
                "UPDATE blobs AS b SET state = 'deleting' WHERE b.state = 'committed'"
                " AND NOT EXISTS (" + _LIVE_REF + ") AND (b.committed < ? OR EXISTS"
                " (SELECT 1 FROM blob_refs AS r2 WHERE r2.blob_id = b.blob_id))",
                (unsent_before,),
            )
            rows = conn.execute(
                "SELECT blob_id FROM blobs WHERE state = 'deleting' LIMIT ?", (limit,)
            ).fetchall()
            return [str(r[0]) for r in rows]

        return await self.db.write_job(blob_collect)
