"""The Redis engine of the attachment blob records.

A blob's record lives in its owner's slot (``{u:<owner>}:blobs``: blob id -> record;
``{u:<owner>}:brefs:<blob id>``: set of "conversation hex:seq" of the entries carrying it), so
the quota check and the insert are one optimistic transaction on the owner's slot.
``{bo:<blob id>}`` names the owner (written before the record) and ``{x}:blobs`` lists every
blob for garbage collection. Whether a reference is live (the entry not recalled, the
conversation not disbanded, the reader a member) is read from the conversation's slot at the
time of the question.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import msgspec

from parley_server.store.blob_records import BlobRecords, BlobRow, BlobState, QuotaExceeded
from parley_server.store.redis import RedisStore
from parley_server.store.redis_conversations import split_entry
from parley_server.store.redis_db import RedisErrors, b

_pack = msgspec.msgpack.Encoder().encode
_unpack = msgspec.msgpack.decode

Cmds = list[list[Any]]


def _encode(row: BlobRow) -> bytes:
    return _pack(
        [
            row.blob_id,
            row.owner,
            row.size,
            row.sha256,
            row.md5,
            row.kind,
            row.state.value,
            row.created,
            row.committed,
        ]
    )


def _decode(raw: bytes) -> BlobRow:
    f = _unpack(raw)
    return BlobRow(f[0], f[1], f[2], f[3], f[4], f[5], BlobState(f[6]), f[7], f[8])


class RedisBlobRecords(RedisErrors, BlobRecords):
    def __init__(self, store: RedisStore) -> None:
        self.s = store

    def _blobs(self, owner: str) -> str:
        return f"{self.s.k.user(owner)}:blobs"

    def _owner_key(self, blob_id: str) -> str:
        return f"{self.s.k.p}{{bo:{blob_id}}}"

    async def _owner(self, blob_id: str) -> str | None:
        v = await self.s.r.get(self._owner_key(blob_id))
        return b(v) if v is not None else None

    async def _rows(self, owner: str) -> list[BlobRow]:
        return [_decode(bytes(v)) for v in await self.s.r.hvals(self._blobs(owner))]

    async def create(self, row: BlobRow, quota_bytes: int) -> None:
        await self.s.r.set(self._owner_key(row.blob_id), row.owner)
        await self.s.r.sadd(f"{self.s.k.registry}:blobs", row.blob_id)

        async def plan() -> tuple[Cmds, None]:
            used = await self.used_bytes(row.owner)
            if used + row.size > quota_bytes:
                raise QuotaExceeded(f"{used} + {row.size} bytes > quota {quota_bytes}")
            return [["HSET", self._blobs(row.owner), row.blob_id, _encode(row)]], None

        await self.s.cas("blobs.create", f"{self._blobs(row.owner)}:ver", plan)

    async def get(self, blob_id: str) -> BlobRow | None:
        owner = await self._owner(blob_id)
        if owner is None:
            return None
        raw = await self.s.r.hget(self._blobs(owner), blob_id)
        return None if raw is None else _decode(bytes(raw))

    async def used_bytes(self, owner: str) -> int:
        return sum(r.size for r in await self._rows(owner) if r.state != BlobState.DELETING)

    async def _transition(self, name: str, blob_id: str, owner: str | None, change: Any) -> bool:
        real = await self._owner(blob_id)
        if real is None or (owner is not None and owner != real):
            return False

        async def plan() -> tuple[Cmds, bool]:
            row = await self.get(blob_id)
            new = None if row is None else change(row)
            if new is None:
                return [], False
            return [["HSET", self._blobs(real), blob_id, _encode(new)]], True

        return await self.s.cas(name, f"{self._blobs(real)}:ver", plan)

    async def commit(self, blob_id: str, owner: str, now: int) -> bool:
        def change(row: BlobRow) -> BlobRow | None:
            if row.state != BlobState.PENDING:
                return None
            return dataclasses.replace(row, state=BlobState.COMMITTED, committed=now)

        return await self._transition("blobs.commit", blob_id, owner, change)

    async def mark_deleting(self, blob_id: str, owner: str | None = None) -> bool:
        def change(row: BlobRow) -> BlobRow | None:
            if row.state == BlobState.DELETING:
                return None
            return dataclasses.replace(row, state=BlobState.DELETING)

        return await self._transition("blobs.mark_deleting", blob_id, owner, change)

    async def forget(self, blob_id: str) -> None:
        row = await self.get(blob_id)
        if row is None or row.state != BlobState.DELETING:
            return
        key = self._blobs(row.owner)
        await self.s.write("blobs.forget", self.s.r.hdel(key, blob_id))
        await self.s.r.delete(f"{self.s.k.user(row.owner)}:brefs:{blob_id}")
        await self.s.r.delete(self._owner_key(blob_id))
        await self.s.r.srem(f"{self.s.k.registry}:blobs", blob_id)

    async def _live_refs(self, row: BlobRow, user_id: str | None) -> list[bytes]:
        """Conversations through which a live message carries the blob (for ``user_id``: only
        those it is a member of)."""
        out: list[bytes] = []
        refs = await self.s.r.smembers(f"{self.s.k.user(row.owner)}:brefs:{row.blob_id}")
        for ref in refs:
            cid_hex, _, seq = b(ref).partition(":")
            cid = bytes.fromhex(cid_hex)
            c = self.s.k.conv(cid)
            raw = await self.s.r.hget(f"{c}:e", seq)
            if raw is None or split_entry(bytes(raw)).recalled:
                continue
            if b(await self.s.r.hget(f"{c}:meta", "disbanded")) == "1":
                continue
            if user_id is not None and not await self.s.r.hexists(f"{c}:m", user_id):
                continue
            out.append(cid)
        return out

    async def usable(self, user_id: str, blob_ids: Sequence[str]) -> set[str]:
        out: set[str] = set()
        for blob_id in dict.fromkeys(blob_ids):
            row = await self.get(blob_id)
            if row is None or row.state != BlobState.COMMITTED:
                continue
            if row.owner == user_id or await self._live_refs(row, user_id):
                out.add(blob_id)
        return out

    async def add_refs(self, conversation_id: bytes, seq: int, blob_ids: Sequence[str]) -> None:
        for blob_id in dict.fromkeys(blob_ids):
            row = await self.get(blob_id)
            if row is None or row.state != BlobState.COMMITTED:
                continue
            await self.s.write(
                "blobs.add_refs",
                self.s.r.sadd(
                    f"{self.s.k.user(row.owner)}:brefs:{blob_id}",
                    f"{conversation_id.hex()}:{seq}",
                ),
            )

    async def readable(self, user_id: str, blob_id: str, conversation_id: bytes) -> BlobRow | None:
        row = await self.get(blob_id)
        if row is None or row.state != BlobState.COMMITTED:
            return None
        if row.owner == user_id or conversation_id in await self._live_refs(row, user_id):
            return row
        return None

    async def collect(self, pending_before: int, unsent_before: int, limit: int) -> list[str]:
        deleting: list[str] = []
        async for raw in self.s.r.sscan_iter(f"{self.s.k.registry}:blobs", count=500):
            blob_id = b(raw)
            row = await self.get(blob_id)
            if row is None:
                continue
            garbage = False
            if row.state == BlobState.PENDING:
                garbage = row.created < pending_before
            elif row.state == BlobState.COMMITTED and not await self._live_refs(row, None):
                ever_sent = await self.s.r.scard(f"{self.s.k.user(row.owner)}:brefs:{blob_id}")
                garbage = bool(ever_sent) or (row.committed or 0) < unsent_before
            if garbage:
                await self.mark_deleting(blob_id)
                row = await self.get(blob_id)
            if row is not None and row.state == BlobState.DELETING and len(deleting) < limit:
                deleting.append(blob_id)
        return deleting


__all__ = ["RedisBlobRecords"]
