"""The Redis engine of the ``KeyDirectory``: everything of one user in the user's slot.

Keys under ``{u:<id>}:kd``: ``:dev:<device>`` (identity key, signed prekey, one-time prekey
count), ``:opk:<device>`` (one-time prekey id -> public key), ``:devlist`` (the signed device
list), ``:bk`` (the current backup version), ``:bkc`` (conversations with backup records) and
``:bkr:<conversation hex>`` (record key -> record). Every write is an optimistic transaction on
``:ver`` (``RedisDatabase.cas``): the checks run in Python on what was read, and the writes apply
only if nothing changed in between, so the rules are the same code shape as the SQLite engine's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

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
from parley_server.store.redis_db import RedisDatabase, RedisErrors, b

_pack = msgspec.msgpack.Encoder().encode
_unpack = msgspec.msgpack.decode

Cmds = list[list[Any]]


class RedisKeyDirectory(RedisErrors, KeyDirectory):
    def __init__(self, db: RedisDatabase) -> None:
        self.db = db

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _k(self, user_id: str) -> str:
        return f"{self.db.k.user(user_id)}:kd"

    async def _device(self, user_id: str, device_id: int) -> dict[str, Any] | None:
        raw = await self.db.r.hgetall(f"{self._k(user_id)}:dev:{device_id}")
        return {b(k): v for k, v in raw.items()} if raw else None

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
        k = self._k(user_id)
        dkey, okey = f"{k}:dev:{device_id}", f"{k}:opk:{device_id}"

        async def plan() -> tuple[Cmds, int]:
            row = await self._device(user_id, device_id)
            cmds: Cmds = []
            if row is None:
                count = 0
            else:
                count = int(row["opk_count"])
                if bytes(row["ik"]) != ik:
                    raise IdentityKeyChanged("another identity key for this device")
                spk_id = int(row["spk_id"])
                if spk.id < spk_id or (
                    spk.id == spk_id
                    and (spk.pub, spk.sig) != (bytes(row["spk_pub"]), bytes(row["spk_sig"]))
                ):
                    raise StaleSignedPreKey("signed prekey id is not newer than the stored one")
            cmds.append(["HSET", dkey, "ik", ik, "spk_id", spk.id, "spk_pub", spk.pub])
            cmds.append(["HSET", dkey, "spk_sig", spk.sig, "updated", now])
            have = await self.db.r.hmget(okey, [o.id for o in opks]) if opks else []
            added = 0
            seen: set[int] = set()
            for opk, stored in zip(opks, have, strict=True):
                if stored is not None or opk.id in seen:
                    if stored is not None and bytes(stored) != opk.pub:
                        raise PreKeyConflict(f"one-time prekey id {opk.id} is taken")
                    continue
                seen.add(opk.id)
                cmds.append(["HSET", okey, opk.id, opk.pub])
                added += 1
            if count + added > max_stored:
                raise TooManyPreKeys(f"at most {max_stored} one-time prekeys per device")
            cmds.append(["HSET", dkey, "opk_count", count + added])
            return cmds, count + added

        return await self.db.cas("keydir.upload_keys", f"{k}:ver", plan)

    async def device_keys(self, user_id: str, device_id: int) -> DeviceKeysRow | None:
        row = await self._device(user_id, device_id)
        if row is None:
            return None
        spk = SignedPreKeyRow(int(row["spk_id"]), bytes(row["spk_pub"]), bytes(row["spk_sig"]))
        return DeviceKeysRow(user_id, device_id, bytes(row["ik"]), spk, int(row["opk_count"]))

    async def opk_count(self, user_id: str, device_id: int) -> int:
        n = await self.db.r.hget(f"{self._k(user_id)}:dev:{device_id}", "opk_count")
        return int(n) if n is not None else 0

    async def take_bundles(self, user_id: str, device_ids: Sequence[int]) -> list[BundleKeys]:
        wanted = sorted(set(device_ids))
        if not wanted:
            return []
        k = self._k(user_id)

        async def plan() -> tuple[Cmds, list[BundleKeys]]:
            cmds: Cmds = []
            out: list[BundleKeys] = []
            for d in wanted:
                row = await self._device(user_id, d)
                if row is None:
                    continue
                okey = f"{k}:opk:{d}"
                stored = {int(i): bytes(v) for i, v in (await self.db.r.hgetall(okey)).items()}
                opk = None
                if stored:
                    first = min(stored)
                    opk = OneTimePreKeyRow(first, stored[first])
                    cmds.append(["HDEL", okey, first])
                    cmds.append(["HINCRBY", f"{k}:dev:{d}", "opk_count", -1])
                spk = SignedPreKeyRow(
                    int(row["spk_id"]), bytes(row["spk_pub"]), bytes(row["spk_sig"])
                )
                out.append(BundleKeys(d, bytes(row["ik"]), spk, opk))
            return cmds, out

        return await self.db.cas("keydir.take_bundles", f"{k}:ver", plan)

    # --- signed device lists -------------------------------------------------------------------
    async def device_list(self, user_id: str) -> DeviceListRow | None:
        raw = await self.db.r.hgetall(f"{self._k(user_id)}:devlist")
        if not raw:
            return None
        r = {b(k): v for k, v in raw.items()}
        return DeviceListRow(
            user_id, bytes(r["aik"]), int(r["version"]), bytes(r["data"]), bytes(r["sig"])
        )

    async def put_device_list(self, row: DeviceListRow, now: int) -> DeviceListRow:
        k = self._k(row.user_id)

        async def plan() -> tuple[Cmds, DeviceListRow]:
            cur = await self.device_list(row.user_id)
            if cur is not None:
                if cur.aik != row.aik:
                    raise AccountKeyChanged("device list signed by another account key")
                if row.version == cur.version and (row.data, row.sig) == (cur.data, cur.sig):
                    return [], cur  # a retry
                if row.version <= cur.version:
                    raise DeviceListRollback(
                        f"device list version {row.version} is not above {cur.version}"
                    )
            cmd = ["HSET", f"{k}:devlist", "aik", row.aik, "version", row.version]
            cmd += ["data", row.data, "sig", row.sig, "updated", now]
            return [cmd], row

        return await self.db.cas("keydir.put_device_list", f"{k}:ver", plan)

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
        k = self._k(user_id)

        async def plan() -> tuple[Cmds, BackupVersionRow]:
            cur = await self.backup_version(user_id)
            version = 1 if cur is None else cur.version + 1
            cmds: Cmds = [["DEL", f"{k}:bkr:{b(c)}"] for c in await self.db.r.smembers(f"{k}:bkc")]
            cmds.append(["DEL", f"{k}:bkc"])
            params = _pack([salt, opslimit, memlimit])
            cmds.append(["HSET", f"{k}:bk", "version", version, "algorithm", algorithm])
            cmds.append(["HSET", f"{k}:bk", "check", check, "params", params])
            cmds.append(["HSET", f"{k}:bk", "created", now, "count", 0])
            row = BackupVersionRow(
                user_id, version, algorithm, check, salt, opslimit, memlimit, now, 0
            )
            return cmds, row

        return await self.db.cas("keydir.create_backup", f"{k}:ver", plan)

    async def backup_version(self, user_id: str) -> BackupVersionRow | None:
        raw = await self.db.r.hgetall(f"{self._k(user_id)}:bk")
        if not raw:
            return None
        r = {b(k): v for k, v in raw.items()}
        salt, opslimit, memlimit = _unpack(r["params"])
        return BackupVersionRow(
            user_id,
            int(r["version"]),
            b(r["algorithm"]),
            bytes(r["check"]),
            salt,
            opslimit,
            memlimit,
            int(r["created"]),
            int(r["count"]),
        )

    async def _current(self, user_id: str, version: int) -> int:
        cur = await self.backup_version(user_id)
        if cur is None:
            raise NoBackup("no key backup")
        if cur.version != version:
            raise BackupVersionMismatch(
                f"backup version {version} is not the current {cur.version}"
            )
        return cur.count

    async def put_backup_records(
        self, user_id: str, version: int, records: Sequence[BackupRecordRow], max_records: int
    ) -> BackupPutResult:
        k = self._k(user_id)

        async def plan() -> tuple[Cmds, BackupPutResult]:
            count = await self._current(user_id, version)
            stored = kept = added = 0
            cmds: Cmds = []
            pending: dict[tuple[str, bytes], int] = {}
            for rec in records:
                ckey = f"{k}:bkr:{rec.conversation_id.hex()}"
                field = _pack(
                    [rec.sender_user_id, rec.sender_device_id, rec.distribution_id, rec.chain_id]
                )
                if (ckey, field) in pending:
                    have: int | None = pending[(ckey, field)]
                else:
                    raw = await self.db.r.hget(ckey, field)
                    have = None if raw is None else int(_unpack(raw)[5])
                if have is None or rec.iteration < have:
                    value = _pack(
                        [
                            rec.conversation_id,
                            rec.sender_user_id,
                            rec.sender_device_id,
                            rec.distribution_id,
                            rec.chain_id,
                            rec.iteration,
                            rec.blob,
                        ]
                    )
                    cmds.append(["HSET", ckey, field, value])
                    cmds.append(["SADD", f"{k}:bkc", rec.conversation_id.hex()])
                    stored += 1
                    added += have is None
                    pending[(ckey, field)] = rec.iteration
                else:
                    kept += 1
            if count + added > max_records:
                raise TooManyBackupRecords(f"at most {max_records} backup records per user")
            if added:
                cmds.append(["HINCRBY", f"{k}:bk", "count", added])
            return cmds, BackupPutResult(stored, kept, count + added)

        return await self.db.cas("keydir.put_backup_records", f"{k}:ver", plan)

    async def backup_records(
        self, user_id: str, version: int, conversation_ids: Sequence[bytes]
    ) -> list[BackupRecordRow]:
        await self._current(user_id, version)
        k = self._k(user_id)
        out: list[BackupRecordRow] = []
        for cid in sorted(dict.fromkeys(conversation_ids)):
            rows = [
                BackupRecordRow(*_unpack(v)) for v in await self.db.r.hvals(f"{k}:bkr:{cid.hex()}")
            ]
            rows.sort(
                key=lambda r: (r.sender_user_id, r.sender_device_id, r.distribution_id, r.chain_id)
            )
            out.extend(rows)
        return out


__all__ = ["RedisKeyDirectory"]
