"""The SQLite engine of the ``AdminStore``: tables of schema v5 in the ``SqliteStore``'s file.

Writes go through the store's writer thread (``SqliteStore.write_job``): a claim of an invite
and a purge are each one transaction. ``parley admin`` opens its own ``SqliteStore`` on the same
file while a server runs: SQLite's WAL lets both read, and ``busy_timeout`` serialises writers.
"""

from __future__ import annotations

import sqlite3

from parley_server.store.admin import (
    AccountStatus,
    AdminStore,
    AdminUserRow,
    InviteRefused,
    PurgeReport,
    RegistrationMode,
    StoreStats,
)
from parley_server.store.base import NotFound
from parley_server.store.sqlite import SqliteStore

_MODE_KEY = "registration_mode"

# Per-user rows of other domains a deleted account leaves behind: (table, column). Tables that
# an engine creates lazily (the key directory) are skipped while they do not exist.
_PURGE_BY_USER: tuple[tuple[str, str], ...] = (
    ("to_device", "user_id"),
    ("sessions", "user_id"),
    ("user_events", "user_id"),
    ("read_marks", "user_id"),
    ("profiles", "user_id"),
    ("contacts", "user_id"),
    ("contacts", "contact_id"),
    ("friend_requests", "from_user"),
    ("friend_requests", "to_user"),
    ("blocks", "user_id"),
    ("blocks", "blocked_id"),
    ("kd_opks", "user_id"),
    ("kd_devices", "user_id"),
    ("kd_devlists", "user_id"),
    ("kd_backup_records", "user_id"),
    ("kd_backup_versions", "user_id"),
)


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


class SqliteAdminStore(AdminStore):
    def __init__(self, store: SqliteStore) -> None:
        self.store = store

    @property
    def _r(self) -> sqlite3.Connection:
        return self.store.read_connection()

    # --- account status ----------------------------------------------------------------------
    async def statuses(self) -> dict[str, AccountStatus]:
        return {
            u: AccountStatus(s)
            for u, s in self._r.execute("SELECT user_id, status FROM account_status")
        }

    async def status(self, user_id: str) -> AccountStatus | None:
        r = self._r.execute(
            "SELECT status FROM account_status WHERE user_id = ?", (user_id,)
        ).fetchone()
        return AccountStatus(r[0]) if r else None

    async def set_status(self, user_id: str, status: AccountStatus | None, now: int) -> bool:
        def job(conn: sqlite3.Connection) -> bool:
            if conn.execute("SELECT 1 FROM users WHERE user_id = ?", (user_id,)).fetchone() is None:
                raise NotFound(f"user {user_id}")
            r = conn.execute(
                "SELECT status FROM account_status WHERE user_id = ?", (user_id,)
            ).fetchone()
            if r is not None and r[0] == AccountStatus.DELETED:
                return status == AccountStatus.DELETED
            if status is None:
                conn.execute("DELETE FROM account_status WHERE user_id = ?", (user_id,))
            else:
                conn.execute(
                    "INSERT INTO account_status (user_id, status, since) VALUES (?,?,?)"
                    " ON CONFLICT (user_id) DO UPDATE SET status = excluded.status,"
                    " since = excluded.since",
                    (user_id, status.value, now),
                )
            return True

        return await self.store.write_job(job, "admin_set_status")

    async def list_users(self, after: str, limit: int) -> list[AdminUserRow]:
        rows = self._r.execute(
            "SELECT u.user_id, u.username, u.created, s.status,"
            " (SELECT COUNT(*) FROM devices d WHERE d.user_id = u.user_id AND d.revoked = 0),"
            " (SELECT COALESCE(MAX(last_seen), 0) FROM devices d"
            "  WHERE d.user_id = u.user_id AND d.revoked = 0)"
            " FROM users u LEFT JOIN account_status s USING (user_id)"
            " WHERE u.username > ? ORDER BY u.username LIMIT ?",
            (after, limit),
        ).fetchall()
        return [AdminUserRow(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]

    async def set_password(self, user_id: str, password_hash: bytes, revoke: bool) -> int:
        def job(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "UPDATE users SET password_hash = ? WHERE user_id = ?", (password_hash, user_id)
            )
            if cur.rowcount == 0:
                raise NotFound(f"user {user_id}")
            if not revoke:
                return 0
            n = conn.execute(
                "UPDATE devices SET revoked = 1 WHERE user_id = ? AND revoked = 0", (user_id,)
            ).rowcount
            conn.execute("UPDATE sessions SET revoked = 1 WHERE user_id = ?", (user_id,))
            conn.execute("DELETE FROM to_device WHERE user_id = ?", (user_id,))
            return int(n)

        return await self.store.write_job(job, "admin_set_password")

    async def purge_user(self, user_id: str, tombstone: bytes, now: int) -> PurgeReport:
        def job(conn: sqlite3.Connection) -> PurgeReport:
            if conn.execute("SELECT 1 FROM users WHERE user_id = ?", (user_id,)).fetchone() is None:
                raise NotFound(f"user {user_id}")
            devices = conn.execute(
                "UPDATE devices SET revoked = 1 WHERE user_id = ? AND revoked = 0", (user_id,)
            ).rowcount
            queued = conn.execute(
                "SELECT COUNT(*) FROM to_device WHERE user_id = ?", (user_id,)
            ).fetchone()[0]
            tables = _tables(conn)
            for table, column in _PURGE_BY_USER:
                if table in tables:
                    conn.execute(f"DELETE FROM {table} WHERE {column} = ?", (user_id,))
            # Its own messages (not server-authored entries naming it) lose their envelopes.
            tombstoned = conn.execute(
                "UPDATE entries SET body = ?, recalled = 1"
                " WHERE sender = ? AND sender_device IS NOT NULL AND recalled = 0",
                (tombstone, user_id),
            ).rowcount
            conn.execute(
                "UPDATE users SET username = ?, password_hash = x'' WHERE user_id = ?",
                (f"deleted-{user_id}", user_id),
            )
            conn.execute(
                "INSERT INTO account_status (user_id, status, since) VALUES (?,?,?)"
                " ON CONFLICT (user_id) DO UPDATE SET status = excluded.status",
                (user_id, AccountStatus.DELETED.value, now),
            )
            return PurgeReport(devices=devices, to_device=queued, messages_tombstoned=tombstoned)

        return await self.store.write_job(job, "admin_purge_user")

    # --- registration ------------------------------------------------------------------------
    async def registration_mode(self) -> RegistrationMode | None:
        r = self._r.execute(
            "SELECT value FROM server_settings WHERE key = ?", (_MODE_KEY,)
        ).fetchone()
        return RegistrationMode(r[0]) if r else None

    async def set_registration_mode(self, mode: RegistrationMode) -> None:
        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO server_settings (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (_MODE_KEY, mode.value),
            )

        await self.store.write_job(job, "admin_set_registration_mode")

    async def create_invite(self, code_hash: bytes, now: int, expires: int) -> None:
        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO invites (code_hash, created, expires) VALUES (?,?,?)",
                (code_hash, now, expires),
            )

        await self.store.write_job(job, "admin_create_invite")

    async def claim_invite(self, code_hash: bytes, now: int) -> None:
        def job(conn: sqlite3.Connection) -> None:
            cur = conn.execute(
                "UPDATE invites SET used_at = ? WHERE code_hash = ? AND used_at IS NULL"
                " AND expires > ?",
                (now, code_hash, now),
            )
            if cur.rowcount == 0:
                raise InviteRefused("unknown, used or expired invite")

        await self.store.write_job(job, "admin_claim_invite")

    async def release_invite(self, code_hash: bytes) -> None:
        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE invites SET used_at = NULL WHERE code_hash = ? AND used_by IS NULL",
                (code_hash,),
            )

        await self.store.write_job(job, "admin_release_invite")

    async def bind_invite(self, code_hash: bytes, user_id: str) -> None:
        def job(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE invites SET used_by = ? WHERE code_hash = ?", (user_id, code_hash))

        await self.store.write_job(job, "admin_bind_invite")

    # --- housekeeping ------------------------------------------------------------------------
    async def stats(self) -> StoreStats:
        def count(sql: str) -> int:
            return int(self._r.execute(sql).fetchone()[0])

        return StoreStats(
            users=count("SELECT COUNT(*) FROM users"),
            disabled=count("SELECT COUNT(*) FROM account_status WHERE status = 'disabled'"),
            deleted=count("SELECT COUNT(*) FROM account_status WHERE status = 'deleted'"),
            devices=count("SELECT COUNT(*) FROM devices WHERE revoked = 0"),
            conversations=count("SELECT COUNT(*) FROM conversations"),
            entries=count("SELECT COALESCE(SUM(last_seq), 0) FROM conversations"),
            to_device_queued=count("SELECT COUNT(*) FROM to_device"),
            invites_open=count("SELECT COUNT(*) FROM invites WHERE used_at IS NULL"),
        )

    async def expire_invites(self, now: int) -> int:
        def job(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "DELETE FROM invites WHERE used_at IS NULL AND expires <= ?", (now,)
            ).rowcount

        return await self.store.write_job(job, "admin_expire_invites")


__all__ = ["SqliteAdminStore"]
