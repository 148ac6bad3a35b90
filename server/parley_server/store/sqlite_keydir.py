"""The SQLite engine of the ``KeyDirectory``: tables in the ``SqliteDatabase``'s own database file.

It writes through the store's single writer thread (``SqliteDatabase.transaction``: one job per
method, group commit, savepoint per job) and reads through its read connection on the event
loop, so there is still one writer per file. Every check-and-set (IK pinning, AIK pinning,
version increase, OPK pop, lowest-iteration-wins) runs inside one writer job: the writer runs
jobs one after another, so two concurrent bundle fetches can never get the same one-time prekey.

The tables carry their own schema version (``kd_schema``) and are created on first use; they
deliberately have no foreign keys into the store's tables, so the store's migrations never have
to know about them (the service checks users and devices through the ``Store``).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence

from parley_server.store.keydir import (
    AccountKeyChanged,
    BackupPutResult,
    BackupRecordRow,
    BackupVersionMismatch,
    BackupVersionRow,
    BundleKeys,
    DeviceKeysRow,
    DeviceListRollback,
    DeviceListRow,
    IdentityKeyChanged,
    KeyDirectory,
    NoBackup,
    OneTimePreKeyRow,
    PreKeyConflict,
    SignedPreKeyRow,
    StaleSignedPreKey,
    TooManyBackupRecords,
    TooManyPreKeys,
)
from parley_server.store.sqlite_db import SqliteDatabase

KEYDIR_SCHEMA_VERSION = 1

_V1 = """
CREATE TABLE IF NOT EXISTS kd_schema (version INTEGER NOT NULL);

CREATE TABLE IF NOT EXISTS kd_devices (
    user_id   TEXT NOT NULL,
    device_id INTEGER NOT NULL,
    ik        BLOB NOT NULL,              -- pinned at the first upload
    spk_id    INTEGER NOT NULL,
    spk_pub   BLOB NOT NULL,
    spk_sig   BLOB NOT NULL,
    opk_count INTEGER NOT NULL DEFAULT 0, -- = rows in kd_opks for the device
    updated   INTEGER NOT NULL,
    PRIMARY KEY (user_id, device_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS kd_opks (
    user_id   TEXT NOT NULL,
    device_id INTEGER NOT NULL,
    opk_id    INTEGER NOT NULL,
    pub       BLOB NOT NULL,
    PRIMARY KEY (user_id, device_id, opk_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS kd_devlists (
    user_id TEXT PRIMARY KEY,
    aik     BLOB NOT NULL,                -- pinned by the first accepted list
    version INTEGER NOT NULL,
    data    BLOB NOT NULL,
    sig     BLOB NOT NULL,
    updated INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS kd_backup_versions (
    user_id   TEXT PRIMARY KEY,           -- only the current version is kept
    version   INTEGER NOT NULL,
    algorithm TEXT NOT NULL,
    check_ct  BLOB NOT NULL,
    salt      BLOB,
    opslimit  INTEGER,
    memlimit  INTEGER,
    created   INTEGER NOT NULL,
    count     INTEGER NOT NULL DEFAULT 0  -- = rows in kd_backup_records for the user
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS kd_backup_records (
    user_id          TEXT NOT NULL,
    conversation_id  BLOB NOT NULL,
    sender_user_id   TEXT NOT NULL,
    sender_device_id INTEGER NOT NULL,
    distribution_id  BLOB NOT NULL,
    chain_id         INTEGER NOT NULL,
    iteration        INTEGER NOT NULL,
    blob             BLOB NOT NULL,       -- sealed by the client, opaque
    PRIMARY KEY (user_id, conversation_id, sender_user_id, sender_device_id, distribution_id,
                 chain_id)
) WITHOUT ROWID;
"""

_IN_CHUNK = 500


def _migrate(conn: sqlite3.Connection) -> None:
    """Runs inside a writer job (its transaction); idempotent."""
    for statement in _V1.split(";"):
        if statement.strip():
            conn.execute(statement)
    row = conn.execute("SELECT version FROM kd_schema").fetchone()
    if row is None:
        conn.execute("INSERT INTO kd_schema (version) VALUES (?)", (KEYDIR_SCHEMA_VERSION,))
    elif row[0] > KEYDIR_SCHEMA_VERSION:
        raise RuntimeError(f"key directory schema {row[0]} > supported {KEYDIR_SCHEMA_VERSION}")


class SqliteKeyDirectory(KeyDirectory):
    """``KeyDirectory`` sharing a ``SqliteDatabase``'s file and writer thread. Open the store first;
    the store's ``close()`` ends both."""

    def __init__(self, store: SqliteDatabase) -> None:
        self._store = store
        self._ready = False
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        if self._ready:
            return
        async with self._lock:
            if not self._ready:
                await self._store.transaction("keydir.migrate", _migrate)
                self._ready = True

    async def close(self) -> None:
        self._ready = False

    async def _w(self) -> SqliteDatabase:
        await self.open()
        return self._store

    async def _r(self) -> sqlite3.Connection:
        await self.open()
        return self._store.read_connection()

    # --- device keys -----------------------------------------------------------------------------
    async def upload_keys(
        self,
        user_id: str,
        device_id: int,
        ik: bytes,
        spk: SignedPreKeyRow,
        opks: Sequence[OneTimePreKeyRow],
        max_stored: int,
        now: int,
    ) -> int:
        key = (user_id, device_id)

        def job(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT ik, spk_id, spk_pub, spk_sig, opk_count FROM kd_devices"
                " WHERE user_id = ? AND device_id = ?",
                key,
            ).fetchone()
            if row is None:
                count = 0
                conn.execute(
                    "INSERT INTO kd_devices (user_id, device_id, ik, spk_id, spk_pub, spk_sig,"
                    " opk_count, updated) VALUES (?,?,?,?,?,?,0,?)",
                    (*key, ik, spk.id, spk.pub, spk.sig, now),
                )
            else:
                old_ik, spk_id, spk_pub, spk_sig, count = row
                if old_ik != ik:
                    raise IdentityKeyChanged("another identity key for this device")
                if spk.id < spk_id or (
                    spk.id == spk_id and (spk.pub, spk.sig) != (spk_pub, spk_sig)
                ):
                    raise StaleSignedPreKey("signed prekey id is not newer than the stored one")
                conn.execute(
                    "UPDATE kd_devices SET spk_id = ?, spk_pub = ?, spk_sig = ?, updated = ?"
                    " WHERE user_id = ? AND device_id = ?",
                    (spk.id, spk.pub, spk.sig, now, *key),
                )
            added = 0
            for opk in opks:
                have = conn.execute(
                    "SELECT pub FROM kd_opks WHERE user_id = ? AND device_id = ? AND opk_id = ?",
                    (*key, opk.id),
                ).fetchone()
                if have is not None:
                    if have[0] != opk.pub:
                        raise PreKeyConflict(f"one-time prekey id {opk.id} is taken")
                    continue
                conn.execute(
                    "INSERT INTO kd_opks (user_id, device_id, opk_id, pub) VALUES (?,?,?,?)",
                    (*key, opk.id, opk.pub),
                )
                added += 1
            if count + added > max_stored:
                raise TooManyPreKeys(f"at most {max_stored} one-time prekeys per device")
            if added:
                conn.execute(
                    "UPDATE kd_devices SET opk_count = opk_count + ? WHERE user_id = ? AND device_id = ?",
                    (added, *key),
                )
            return int(count + added)

        return await (await self._w()).transaction("keydir.upload_keys", job)

    async def device_keys(self, user_id: str, device_id: int) -> DeviceKeysRow | None:
        r = (
            (await self._r())
            .execute(
                "SELECT ik, spk_id, spk_pub, spk_sig, opk_count FROM kd_devices"
                " WHERE user_id = ? AND device_id = ?",
                (user_id, device_id),
            )
            .fetchone()
        )
        if r is None:
            return None
        return DeviceKeysRow(user_id, device_id, r[0], SignedPreKeyRow(r[1], r[2], r[3]), r[4])

    async def opk_count(self, user_id: str, device_id: int) -> int:
        r = (
            (await self._r())
            .execute(
                "SELECT opk_count FROM kd_devices WHERE user_id = ? AND device_id = ?",
                (user_id, device_id),
            )
            .fetchone()
        )
        return int(r[0]) if r else 0

    async def take_bundles(self, user_id: str, device_ids: Sequence[int]) -> list[BundleKeys]:
        wanted = sorted(set(device_ids))

        def job(conn: sqlite3.Connection) -> list[BundleKeys]:
            out: list[BundleKeys] = []
            for device_id in wanted:
                key = (user_id, device_id)
                r = conn.execute(
                    "SELECT ik, spk_id, spk_pub, spk_sig FROM kd_devices"
                    " WHERE user_id = ? AND device_id = ?",
                    key,
                ).fetchone()
                if r is None:
                    continue
                o = conn.execute(
                    "SELECT opk_id, pub FROM kd_opks WHERE user_id = ? AND device_id = ?"
                    " ORDER BY opk_id LIMIT 1",
                    key,
                ).fetchone()
                opk = None
                if o is not None:
                    opk = OneTimePreKeyRow(o[0], o[1])
                    conn.execute(
                        "DELETE FROM kd_opks WHERE user_id = ? AND device_id = ? AND opk_id = ?",
                        (*key, opk.id),
                    )
                    conn.execute(
                        "UPDATE kd_devices SET opk_count = opk_count - 1"
                        " WHERE user_id = ? AND device_id = ?",
                        key,
                    )
                out.append(BundleKeys(device_id, r[0], SignedPreKeyRow(r[1], r[2], r[3]), opk))
            return out

        if not wanted:
            return []
        return await (await self._w()).transaction("keydir.take_bundles", job)

    # --- signed device lists -------------------------------------------------------------------
    async def device_list(self, user_id: str) -> DeviceListRow | None:
        r = (
            (await self._r())
            .execute(
                "SELECT aik, version, data, sig FROM kd_devlists WHERE user_id = ?", (user_id,)
            )
            .fetchone()
        )
        return DeviceListRow(user_id, r[0], r[1], r[2], r[3]) if r else None

    async def put_device_list(self, row: DeviceListRow, now: int) -> DeviceListRow:
        def job(conn: sqlite3.Connection) -> DeviceListRow:
            r = conn.execute(
                "SELECT aik, version, data, sig FROM kd_devlists WHERE user_id = ?",
                (row.user_id,),
            ).fetchone()
            if r is not None:
                aik, version, data, sig = r
                if aik != row.aik:
                    raise AccountKeyChanged("device list signed by another account key")
                if row.version == version and (row.data, row.sig) == (data, sig):
                    return DeviceListRow(row.user_id, aik, version, data, sig)  # a retry
                if row.version <= version:
                    raise DeviceListRollback(
                        f"device list version {row.version} is not above {version}"
                    )
            conn.execute(
                "INSERT INTO kd_devlists (user_id, aik, version, data, sig, updated)"
                " VALUES (?,?,?,?,?,?) ON CONFLICT (user_id) DO UPDATE SET"
                " version = excluded.version, data = excluded.data, sig = excluded.sig,"
                " updated = excluded.updated",
                (row.user_id, row.aik, row.version, row.data, row.sig, now),
            )
            return row

        return await (await self._w()).transaction("keydir.put_device_list", job)

    # --- key backup ----------------------------------------------------------------------------
    async def create_backup(
        self,
        user_id: str,
        algorithm: str,
        check: bytes,
        salt: bytes | None,
        opslimit: int | None,
        memlimit: int | None,
        now: int,
    ) -> BackupVersionRow:
        def job(conn: sqlite3.Connection) -> BackupVersionRow:
            r = conn.execute(
                "SELECT version FROM kd_backup_versions WHERE user_id = ?", (user_id,)
            ).fetchone()
            version = 1 if r is None else int(r[0]) + 1
            conn.execute("DELETE FROM kd_backup_records WHERE user_id = ?", (user_id,))
            conn.execute(
                "INSERT INTO kd_backup_versions (user_id, version, algorithm, check_ct, salt,"
                " opslimit, memlimit, created, count) VALUES (?,?,?,?,?,?,?,?,0)"
                " ON CONFLICT (user_id) DO UPDATE SET version = excluded.version,"
                " algorithm = excluded.algorithm, check_ct = excluded.check_ct,"
                " salt = excluded.salt, opslimit = excluded.opslimit,"
                " memlimit = excluded.memlimit, created = excluded.created, count = 0",
                (user_id, version, algorithm, check, salt, opslimit, memlimit, now),
            )
            return BackupVersionRow(
                user_id, version, algorithm, check, salt, opslimit, memlimit, now, 0
            )

        return await (await self._w()).transaction("keydir.create_backup", job)

    async def backup_version(self, user_id: str) -> BackupVersionRow | None:
        r = (
            (await self._r())
            .execute(
                "SELECT version, algorithm, check_ct, salt, opslimit, memlimit, created, count"
                " FROM kd_backup_versions WHERE user_id = ?",
                (user_id,),
            )
            .fetchone()
        )
        return BackupVersionRow(user_id, *r) if r else None

    @staticmethod
    def _current(conn: sqlite3.Connection, user_id: str, version: int) -> int:
        r = conn.execute(
            "SELECT version, count FROM kd_backup_versions WHERE user_id = ?", (user_id,)
        ).fetchone()
        if r is None:
            raise NoBackup("no key backup")
        if r[0] != version:
            raise BackupVersionMismatch(f"backup version {version} is not the current {r[0]}")
        return int(r[1])

    async def put_backup_records(
        self, user_id: str, version: int, records: Sequence[BackupRecordRow], max_records: int
    ) -> BackupPutResult:
        def job(conn: sqlite3.Connection) -> BackupPutResult:
            count = self._current(conn, user_id, version)
            stored = kept = added = 0
            for rec in records:
                key = (
                    user_id, rec.conversation_id, rec.sender_user_id, rec.sender_device_id,
                    rec.distribution_id, rec.chain_id,
                )  # fmt: skip
                r = conn.execute(
                    "SELECT iteration FROM kd_backup_records WHERE user_id = ?"
                    " AND conversation_id = ? AND sender_user_id = ? AND sender_device_id = ?"
                    " AND distribution_id = ? AND chain_id = ?",
                    key,
                ).fetchone()
                if r is None:
                    conn.execute(
                        "INSERT INTO kd_backup_records (user_id, conversation_id, sender_user_id,"
                        " sender_device_id, distribution_id, chain_id, iteration, blob)"
                        " VALUES (?,?,?,?,?,?,?,?)",
                        (*key, rec.iteration, rec.blob),
                    )
                    stored += 1
                    added += 1
                elif rec.iteration < r[0]:
                    conn.execute(
                        "UPDATE kd_backup_records SET iteration = ?, blob = ? WHERE user_id = ?"
                        " AND conversation_id = ? AND sender_user_id = ? AND sender_device_id = ?"
                        " AND distribution_id = ? AND chain_id = ?",
                        (rec.iteration, rec.blob, *key),
                    )
                    stored += 1
                else:
                    kept += 1
            if count + added > max_records:
                raise TooManyBackupRecords(f"at most {max_records} backup records per user")
            if added:
                conn.execute(
                    "UPDATE kd_backup_versions SET count = count + ? WHERE user_id = ?",
                    (added, user_id),
                )
            return BackupPutResult(stored, kept, count + added)

        return await (await self._w()).transaction("keydir.put_backup_records", job)

    async def backup_records(
        self, user_id: str, version: int, conversation_ids: Sequence[bytes]
    ) -> list[BackupRecordRow]:
        conn = await self._r()
        self._current(conn, user_id, version)
        wanted = list(dict.fromkeys(conversation_ids))
        out: list[BackupRecordRow] = []
        for i in range(0, len(wanted), _IN_CHUNK):
            chunk = wanted[i : i + _IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            out.extend(
                BackupRecordRow(*r)
                for r in conn.execute(
                    "SELECT r.conversation_id, r.sender_user_id, r.sender_device_id,"
                    " r.distribution_id, r.chain_id, r.iteration, r.blob"
                    " FROM kd_backup_records r JOIN kd_backup_versions v"
                    " ON v.user_id = r.user_id AND v.version = ?"  # one snapshot, one version
                    f" WHERE r.user_id = ? AND r.conversation_id IN ({marks})"
                    " ORDER BY r.conversation_id, r.sender_user_id, r.sender_device_id,"
                    " r.distribution_id, r.chain_id",
                    (version, user_id, *chunk),
                )
            )
        return out
