"""The AdminStore and BlobRecords contracts on every engine."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from parley.protocol.records import Recalled
from parley_server.store.admin import AccountStatus, AdminStore, InviteRefused, RegistrationMode
from parley_server.store.base import NotFound
from parley_server.store.blob_records import BlobRecords, BlobRow, BlobState, QuotaExceeded
from parley_server.store.redis_admin import RedisAdminStore
from parley_server.store.redis_blob_records import RedisBlobRecords
from parley_server.store.sqlite_admin import SqliteAdminStore
from parley_server.store.sqlite_blob_records import SqliteBlobRecords
from tests.contract.conftest import ENGINES

NOW = 1_800_000_000_000
Engines = tuple[Any, AdminStore, BlobRecords]


@pytest.fixture(params=sorted(ENGINES))
async def engines(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Engines]:
    store: Any = ENGINES[request.param](request, tmp_path)()
    await store.open()
    sqlite = request.param == "sqlite"
    admin: AdminStore = SqliteAdminStore(store) if sqlite else RedisAdminStore(store)
    blobs: BlobRecords = SqliteBlobRecords(store) if sqlite else RedisBlobRecords(store)
    try:
        yield store, admin, blobs
    finally:
        await store.close()


async def test_admin(engines: Engines) -> None:
    store, admin, _blobs = engines
    ann = (await store.create_user("ann", b"h", NOW)).user_id
    bob = (await store.create_user("bob", b"h", NOW)).user_id
    await store.create_device(ann, "d", os.urandom(32), NOW)
    assert await admin.statuses() == {}
    assert await admin.set_status(ann, AccountStatus.DISABLED, NOW)
    assert await admin.status(ann) == AccountStatus.DISABLED
    assert await admin.statuses() == {ann: AccountStatus.DISABLED}
    assert await admin.set_status(ann, None, NOW)
    assert await admin.status(ann) is None
    with pytest.raises(NotFound):
        await admin.set_status("ghost", AccountStatus.DISABLED, NOW)
    rows = await admin.list_users("", 10)
    assert [(r.username, r.devices) for r in rows] == [("ann", 1), ("bob", 0)]
    assert [r.username for r in await admin.list_users("ann", 10)] == ["bob"]
    assert await admin.registration_mode() is None
    await admin.set_registration_mode(RegistrationMode.INVITE)
    assert await admin.registration_mode() == RegistrationMode.INVITE
    code = hashlib.sha256(b"invite").digest()
    await admin.create_invite(code, NOW, NOW + 1000)
    await admin.claim_invite(code, NOW + 1)
    with pytest.raises(InviteRefused):
        await admin.claim_invite(code, NOW + 2)  # one claim wins
    await admin.release_invite(code)
    await admin.claim_invite(code, NOW + 3)
    await admin.bind_invite(code, bob)
    await admin.release_invite(code)  # bound: stays used
    with pytest.raises(InviteRefused):
        await admin.claim_invite(code, NOW + 4)
    late = hashlib.sha256(b"late").digest()
    await admin.create_invite(late, NOW, NOW + 10)
    with pytest.raises(InviteRefused):
        await admin.claim_invite(late, NOW + 10)  # expired
    assert await admin.expire_invites(NOW + 20) == 1
    assert await admin.set_password(ann, b"new", revoke=True) == 1
    assert await store.list_devices(ann) == []


async def test_purge_keeps_others_and_tombstones_own_messages(engines: Engines) -> None:
    store, admin, _blobs = engines
    ann = (await store.create_user("ann", b"h", NOW)).user_id
    bob = (await store.create_user("bob", b"h", NOW)).user_id
    cid = os.urandom(16)
    await store.create_group(bob, [ann], b"", cid, NOW)
    await store.append_message(cid, ann, 1, "a", b"ann-envelope", NOW)
    await store.append_message(cid, bob, 1, "b", b"bob-envelope", NOW)
    tomb = Recalled(by=ann, recalled_ts=NOW)
    report = await admin.purge_user(ann, msgspec.msgpack.encode(tomb), NOW)
    assert report.messages_tombstoned == 1
    assert await admin.status(ann) == AccountStatus.DELETED
    assert await store.get_user_by_name("ann") is None  # the name is free again
    entries, _ = await store.history(cid, 0, None, 10)
    assert isinstance(entries[1].body, Recalled) and entries[2].sender == bob


async def test_blob_records(engines: Engines) -> None:
    store, _admin, blobs = engines
    ann = (await store.create_user("ann", b"h", NOW)).user_id
    bob = (await store.create_user("bob", b"h", NOW)).user_id
    carl = (await store.create_user("carl", b"h", NOW)).user_id
    cid = os.urandom(16)
    await store.create_group(ann, [bob], b"", cid, NOW)

    def row(blob_id: str, size: int = 100) -> BlobRow:
        return BlobRow(blob_id, ann, size, b"s" * 32, None, "file", BlobState.PENDING, NOW)

    await blobs.create(row("b1"), quota_bytes=150)
    with pytest.raises(QuotaExceeded):
        await blobs.create(row("b2"), quota_bytes=150)
    assert await blobs.used_bytes(ann) == 100
    assert not await blobs.commit("b1", bob, NOW)  # not bob's
    assert await blobs.commit("b1", ann, NOW + 1)
    got = await blobs.get("b1")
    assert got is not None and got.state == BlobState.COMMITTED and got.committed == NOW + 1
    assert await blobs.usable(ann, ["b1", "nope"]) == {"b1"}
    assert await blobs.usable(bob, ["b1"]) == set()  # not carried by any message yet
    sent = await store.append_message(cid, ann, 1, "m", b"env", NOW)
    await blobs.add_refs(cid, sent.entry.seq, ["b1"])
    assert await blobs.usable(bob, ["b1"]) == {"b1"}
    assert await blobs.readable(bob, "b1", cid) is not None
    assert await blobs.readable(carl, "b1", cid) is None  # not a member
    assert await blobs.collect(NOW, NOW, 10) == []  # live: kept
    await blobs.create(row("old"), quota_bytes=1000)
    assert await blobs.collect(NOW + 1, NOW, 10) == ["old"]  # pending past its time
    await blobs.forget("old")
    assert await blobs.get("old") is None
    assert await blobs.mark_deleting("b1", owner=ann)
    assert await blobs.readable(ann, "b1", cid) is None
