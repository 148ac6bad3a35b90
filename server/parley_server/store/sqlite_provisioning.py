"""The device-linking relay's table (``prov_requests``) in the ``SqliteStore``'s own file.

Like ``sqlite_keydir``: writes go through the store's single writer thread
(``SqliteDatabase.transaction``, one job per method, so every check-and-set is atomic), reads through
its read connection on the event loop. The table is created on first use and has no foreign
keys into the store's tables. A row lives for the linking window (plus a day, so a late use
still gets ``link_expired`` rather than ``not_found``), then a later registration deletes it.
Only the SHA-256 of a link token is stored; the sealed box is opaque to the server.
"""

from __future__ import annotations

import asyncio
import sqlite3

from parley_server.store.provisioning import (
    KEEP_EXPIRED_MS,
    ProvClaimed,
    ProvExists,
    ProvisioningStore,
    ProvRow,
)
from parley_server.store.sqlite_db import SqliteDatabase

_SCHEMA = """
CREATE TABLE IF NOT EXISTS prov_requests (
    prov_id    BLOB PRIMARY KEY,
    created    INTEGER NOT NULL,
    expires    INTEGER NOT NULL,
    user_id    TEXT,                 -- the user whose device asked for a link token
    token_hash BLOB UNIQUE,          -- SHA-256 of the one-time link token
    sealed     BLOB,                 -- crypto_box_seal(ProvisionMessage, E_pub)
    used       INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID
"""


def _row(r: tuple[bytes, int, str | None, bytes | None, int] | None) -> ProvRow | None:
    if r is None:
        return None
    return ProvRow(bytes(r[0]), r[1], r[2], None if r[3] is None else bytes(r[3]), bool(r[4]))


_COLS = "prov_id, expires, user_id, sealed, used"


class SqliteProvisioning(ProvisioningStore):
    def __init__(self, store: SqliteDatabase) -> None:
        self._store = store
        self._ready = False
        self._lock = asyncio.Lock()

    async def _open(self) -> None:
        if self._ready:
            return
        async with self._lock:
            if not self._ready:
                await self._store.transaction(
                    "provisioning.schema", lambda conn: conn.execute(_SCHEMA)
                )
                self._ready = True

    async def register(self, prov_id: bytes, now: int, expires: int) -> None:
        await self._open()

        def job(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM prov_requests WHERE expires < ?", (now - KEEP_EXPIRED_MS,))
            if conn.execute("SELECT 1 FROM prov_requests WHERE prov_id = ?", (prov_id,)).fetchone():
                raise ProvExists
            conn.execute(
                "INSERT INTO prov_requests (prov_id, created, expires) VALUES (?, ?, ?)",
                (prov_id, now, expires),
            )

        await self._store.transaction("provisioning.register", job)

    async def get(self, prov_id: bytes) -> ProvRow | None:
        await self._open()
        r = (
            self._store.read_connection()
            .execute(f"SELECT {_COLS} FROM prov_requests WHERE prov_id = ?", (prov_id,))
            .fetchone()
        )
        return _row(r)

    async def by_token(self, token_hash: bytes) -> ProvRow | None:
        await self._open()
        r = (
            self._store.read_connection()
            .execute(f"SELECT {_COLS} FROM prov_requests WHERE token_hash = ?", (token_hash,))
            .fetchone()
        )
        return _row(r)

    async def set_token(self, prov_id: bytes, user_id: str, token_hash: bytes) -> None:
        """Bind the prov_id to ``user_id`` with a (new) token; ProvClaimed if another user
        holds it or the sealed box is already there."""
        await self._open()

        def job(conn: sqlite3.Connection) -> None:
            r = conn.execute(
                "SELECT user_id, sealed, used FROM prov_requests WHERE prov_id = ?", (prov_id,)
            ).fetchone()
            if r is None or (r[0] is not None and r[0] != user_id) or r[1] is not None or r[2]:
                raise ProvClaimed
            conn.execute(
                "UPDATE prov_requests SET user_id = ?, token_hash = ? WHERE prov_id = ?",
                (user_id, token_hash, prov_id),
            )

        await self._store.transaction("provisioning.set_token", job)

    async def put_sealed(self, prov_id: bytes, user_id: str, sealed: bytes) -> None:
        await self._open()

        def job(conn: sqlite3.Connection) -> None:
            r = conn.execute(
                "SELECT user_id, sealed, used FROM prov_requests WHERE prov_id = ?", (prov_id,)
            ).fetchone()
            if r is None or r[0] != user_id or r[1] is not None or r[2]:
                raise ProvClaimed
            conn.execute("UPDATE prov_requests SET sealed = ? WHERE prov_id = ?", (sealed, prov_id))

        await self._store.transaction("provisioning.put_sealed", job)

    async def use_token(self, token_hash: bytes) -> ProvRow | None:
        """Mark the token's row used (and drop the sealed box) in one step; returns the row as
        it was before, so exactly one caller sees ``used`` False."""
        await self._open()

        def job(conn: sqlite3.Connection) -> ProvRow | None:
            r = conn.execute(
                f"SELECT {_COLS} FROM prov_requests WHERE token_hash = ?", (token_hash,)
            ).fetchone()
            if r is not None and not r[4]:
                conn.execute(
                    "UPDATE prov_requests SET used = 1, sealed = NULL WHERE token_hash = ?",
                    (token_hash,),
                )
            return _row(r)

        return await self._store.transaction("provisioning.use_token", job)
