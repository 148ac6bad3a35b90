"""The blob records of the embedded store: quota, who may read, GC with explicit times, and
crash-safe deletion (a ``deleting`` record survives a restart and is collected again)."""

from __future__ import annotations

import os
from pathlib import Path

from parley_server.config import Settings
from parley_server.store.blob_records import BlobRecords, BlobRow, BlobState, QuotaExceeded
from parley_server.store.stores import Stores, open_stores

T0 = 1_700_000_000_000
HOUR = 3600 * 1000


def _row(blob_id: str, owner: str, size: int = 100, now: int = T0) -> BlobRow:
    return BlobRow(blob_id, owner, size, os.urandom(32), None, "file", BlobState.PENDING, now)


async def _open(tmp: Path) -> tuple[Stores, BlobRecords]:
    stores = await open_stores(Settings(data_dir=str(tmp)))
    return stores, stores.get(BlobRecords)  # type: ignore[type-abstract]


async def test_quota_readers_gc_and_crash_safe_deletion(tmp_path: Path) -> None:
    stores, rec = await _open(tmp_path)
    main = stores.main
    alice = (await main.create_user("alice", b"h", T0)).user_id
    bob = (await main.create_user("bob", b"h", T0)).user_id
    carol = (await main.create_user("carol", b"h", T0)).user_id
    cid = os.urandom(16)
    await main.create_group(alice, [bob], b"", cid, T0)

    await rec.create(_row("sent-blob-000000", alice, 600), quota_bytes=1000)
    try:
        await rec.create(_row("too-much-0000000", alice, 401), quota_bytes=1000)
        raise AssertionError("quota not enforced")
    except QuotaExceeded:
        pass
    await rec.create(_row("unsent-blob-0000", alice, 400), quota_bytes=1000)  # exactly full
    await rec.create(_row("pending-blob-000", alice, 10), quota_bytes=10_000)
    assert await rec.used_bytes(alice) == 1010

    assert not await rec.commit("sent-blob-000000", bob, T0)  # not his
    assert await rec.commit("sent-blob-000000", alice, T0)
    assert await rec.commit("unsent-blob-0000", alice, T0)
    assert await rec.usable(bob, ["sent-blob-000000"]) == set()
    assert await rec.usable(alice, ["sent-blob-000000", "pending-blob-000"]) == {"sent-blob-000000"}
    appended = await main.append_message(cid, alice, 1, "m1", b"env", T0)
    await rec.add_refs(cid, appended.entry.seq, ["sent-blob-000000"])
    assert await rec.readable(bob, "sent-blob-000000", cid) is not None
    assert await rec.readable(carol, "sent-blob-000000", cid) is None
    assert await rec.readable(bob, "unsent-blob-0000", cid) is None
    assert await rec.usable(bob, ["sent-blob-000000"]) == {"sent-blob-000000"}  # forwardable

    # an hour later nothing is garbage yet; a day later the pending and the unsent blob are
    assert await rec.collect(T0 - HOUR, T0 - HOUR, 100) == []
    got = await rec.collect(T0 + 25 * HOUR, T0 + 25 * HOUR, 100)
    assert sorted(got) == ["pending-blob-000", "unsent-blob-0000"]
    # "crash" before the objects were deleted: the marks survive a restart
    await stores.close()
    stores, rec = await _open(tmp_path)
    got = await rec.collect(T0 + 25 * HOUR, T0 + 25 * HOUR, 100)
    assert sorted(got) == ["pending-blob-000", "unsent-blob-0000"]
    for blob_id in got:
        await rec.forget(blob_id)
    assert await rec.collect(T0 + 25 * HOUR, T0 + 25 * HOUR, 100) == []
    assert await rec.get("pending-blob-000") is None
    assert (await rec.get("sent-blob-000000")) is not None  # a live message carries it
    assert await rec.used_bytes(alice) == 600
    await stores.close()
