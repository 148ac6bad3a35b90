"""The SQLite engine of the accounts domain: users, devices, sessions (``users``, ``devices``,
``sessions`` tables). ``last_seen`` updates are coalesced into the writer's next batch."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path

from parley_server.store.accounts import AccountStore
from parley_server.store.records import (
    DeviceRow,
    NotFound,
    SessionRow,
    StoreError,
    UsernameTaken,
    UserRow,
)
from parley_server.store.sqlite_db import IN_CHUNK, SqliteDatabase


class SqliteAccountStore(SqliteDatabase, AccountStore):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._touches: dict[tuple[str, int], int] = {}
        self._touch_lock = threading.Lock()  # shared with the writer thread
        self._touch_scheduled = False

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

        return await self._write("accounts.create_user", job)

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
        for i in range(0, len(wanted), IN_CHUNK):
            chunk = wanted[i : i + IN_CHUNK]
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

        return await self._write("accounts.create_device", job)

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

        return await self._write("accounts.revoke_device", job)


__all__ = ["SqliteAccountStore"]
