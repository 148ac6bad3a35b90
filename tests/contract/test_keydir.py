"""The KeyDirectory contract: every engine must pass every test here (see ``KEYDIR_ENGINES``).

Engines hold only public keys, signed lists and sealed blobs, so plain random bytes stand in
for keys here; real signatures are exercised by tests/integration/e2ee/test_keys_api.py.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import msgspec
import pytest

from parley_server.store.keydir import (
    AccountKeyChanged,
    BackupRecordRow,
    BackupVersionMismatch,
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
from parley_server.store.redis import RedisStore
from parley_server.store.redis_keydir import RedisKeyDirectory
from parley_server.store.sqlite import SqliteStore
from parley_server.store.sqlite_keydir import SqliteKeyDirectory
from tests.contract.conftest import redis_prefix

NOW = 1_800_000_000_000
TIMEOUT_S = 30.0
U = "0b9f5d7e-1c1a-4a7e-9d55-7c1f2f3b9a10"


class _Sqlite:
    """A SqliteStore and the key directory sharing its file and writer."""

    def __init__(self, path: Path) -> None:
        self.store = SqliteStore(path)
        self.directory = SqliteKeyDirectory(self.store)

    async def open(self) -> KeyDirectory:
        await self.store.open()
        await self.directory.open()
        return self.directory

    async def close(self) -> None:
        await self.directory.close()
        await self.store.close()


class _Redis:
    """A RedisStore (one Redis or a cluster, under this test's key prefix) and its directory."""

    def __init__(self, url: str, prefix: str) -> None:
        self.store = RedisStore(url, prefix=prefix)
        self.directory = RedisKeyDirectory(self.store)

    async def open(self) -> KeyDirectory:
        await self.store.open()
        return self.directory

    async def close(self) -> None:
        await self.store.close()


Engine = _Sqlite | _Redis


def _redis_engine(fixture: str) -> Callable[[pytest.FixtureRequest, Path], Callable[[], Engine]]:
    def make(request: pytest.FixtureRequest, _tmp: Path) -> Callable[[], Engine]:
        url = request.getfixturevalue(fixture).url
        prefix = redis_prefix()
        return lambda: _Redis(url, prefix)

    return make


KEYDIR_ENGINES: dict[str, Callable[[pytest.FixtureRequest, Path], Callable[[], Engine]]] = {
    "sqlite": lambda _r, p: lambda: _Sqlite(p / "k.db"),
    "redis": _redis_engine("redis_server"),
    "redis_cluster": _redis_engine("redis_cluster"),
}


@pytest.fixture(params=sorted(KEYDIR_ENGINES))
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Engine]:
    return KEYDIR_ENGINES[request.param](request, tmp_path)


@pytest.fixture
async def kd(engine: Callable[[], Engine]) -> AsyncIterator[KeyDirectory]:
    e = engine()
    d = await asyncio.wait_for(e.open(), TIMEOUT_S)
    try:
        yield d
    finally:
        await asyncio.wait_for(e.close(), TIMEOUT_S)


def spk(i: int = 1) -> SignedPreKeyRow:
    return SignedPreKeyRow(i, os.urandom(32), os.urandom(64))


SPK1 = spk(1)


def opks(first: int, n: int) -> list[OneTimePreKeyRow]:
    return [OneTimePreKeyRow(i, os.urandom(32)) for i in range(first, first + n)]


async def upload(
    kd: KeyDirectory, device: int = 1, *, ik: bytes, keys: list[OneTimePreKeyRow], cap: int = 1000
) -> int:
    return await asyncio.wait_for(kd.upload_keys(U, device, ik, SPK1, keys, cap, NOW), TIMEOUT_S)


# --- device keys ---------------------------------------------------------------------------------


async def test_upload_counts_and_ik_pinning(kd: KeyDirectory) -> None:
    ik = os.urandom(32)
    assert await kd.opk_count(U, 1) == 0
    assert await kd.device_keys(U, 1) is None
    first = opks(1, 10)
    assert await upload(kd, ik=ik, keys=first) == 10
    assert await upload(kd, ik=ik, keys=first) == 10  # a retried upload adds nothing
    assert await upload(kd, ik=ik, keys=opks(11, 5)) == 15
    assert await kd.opk_count(U, 1) == 15
    row = await kd.device_keys(U, 1)
    assert row is not None and row.ik == ik and row.opk_count == 15
    with pytest.raises(IdentityKeyChanged):
        await upload(kd, ik=os.urandom(32), keys=opks(100, 1))
    assert await kd.opk_count(U, 1) == 15  # the refused upload changed nothing
    with pytest.raises(PreKeyConflict):  # same id, another key
        await upload(kd, ik=ik, keys=[OneTimePreKeyRow(3, os.urandom(32))])
    with pytest.raises(TooManyPreKeys):
        await upload(kd, ik=ik, keys=opks(200, 10), cap=20)
    assert await kd.opk_count(U, 1) == 15
    assert await kd.opk_count(U, 2) == 0  # other devices are separate


async def test_signed_prekey_only_moves_forward(kd: KeyDirectory) -> None:
    ik = os.urandom(32)
    s5 = spk(5)
    await kd.upload_keys(U, 1, ik, s5, [], 100, NOW)
    await kd.upload_keys(U, 1, ik, s5, [], 100, NOW)  # same key again: fine
    with pytest.raises(StaleSignedPreKey):
        await kd.upload_keys(U, 1, ik, spk(4), [], 100, NOW)
    with pytest.raises(StaleSignedPreKey):
        await kd.upload_keys(U, 1, ik, spk(5), [], 100, NOW)
    s6 = spk(6)
    await kd.upload_keys(U, 1, ik, s6, [], 100, NOW)
    row = await kd.device_keys(U, 1)
    assert row is not None and row.spk == s6


async def test_bundles_pop_one_opk_each_then_none(kd: KeyDirectory) -> None:
    ik1, ik2 = os.urandom(32), os.urandom(32)
    k1 = opks(1, 2)
    await upload(kd, 1, ik=ik1, keys=k1)
    await upload(kd, 2, ik=ik2, keys=[])
    got = await kd.take_bundles(U, [2, 1, 3])  # device 3 never uploaded: left out
    assert [b.device_id for b in got] == [1, 2]
    assert got[0].ik == ik1 and got[0].opk == k1[0]
    assert got[1].ik == ik2 and got[1].opk is None
    assert (await kd.take_bundles(U, [1]))[0].opk == k1[1]
    assert await kd.opk_count(U, 1) == 0
    again = await kd.take_bundles(U, [1])
    assert len(again) == 1 and again[0].opk is None and again[0].spk.id == 1
    assert await kd.take_bundles(U, []) == []


async def test_opk_handed_out_at_most_once_under_50_concurrent_fetches(kd: KeyDirectory) -> None:
    uploaded = opks(1, 30)
    await upload(kd, ik=os.urandom(32), keys=uploaded)
    results = await asyncio.wait_for(
        asyncio.gather(*(kd.take_bundles(U, [1]) for _ in range(50))), TIMEOUT_S
    )
    handed = [r[0].opk for r in results if r[0].opk is not None]
    assert len(handed) == 30  # every key went out, and 20 fetches got none
    assert len({o.id for o in handed}) == 30  # never the same key twice
    assert sorted(handed, key=lambda o: o.id) == uploaded
    assert await kd.opk_count(U, 1) == 0


async def test_keys_survive_reopen(engine: Callable[[], Engine]) -> None:
    e = engine()
    d = await e.open()
    ik = os.urandom(32)
    await d.upload_keys(U, 1, ik, spk(), opks(1, 3), 100, NOW)
    await d.take_bundles(U, [1])
    await e.close()
    e2 = engine()
    d2 = await e2.open()
    try:
        assert await d2.opk_count(U, 1) == 2
        row = await d2.device_keys(U, 1)
        assert row is not None and row.ik == ik
    finally:
        await e2.close()


# --- device lists --------------------------------------------------------------------------------


def dl(version: int, aik: bytes, tag: bytes = b"") -> DeviceListRow:
    return DeviceListRow(U, aik, version, b"list-%d" % version + tag, os.urandom(64))


async def test_device_list_pins_aik_and_refuses_rollback(kd: KeyDirectory) -> None:
    aik = os.urandom(32)
    assert await kd.device_list(U) is None
    v1 = dl(1, aik)
    assert await kd.put_device_list(v1, NOW) == v1
    assert await kd.put_device_list(v1, NOW) == v1  # identical retry: no-op
    v3 = dl(3, aik)
    await kd.put_device_list(v3, NOW)
    for stale in (dl(2, aik), dl(3, aik, b"other"), dl(1, aik)):
        with pytest.raises(DeviceListRollback):
            await kd.put_device_list(stale, NOW)
    with pytest.raises(AccountKeyChanged):
        await kd.put_device_list(dl(4, os.urandom(32)), NOW)
    assert await kd.device_list(U) == v3


async def test_concurrent_device_lists_one_version_wins(kd: KeyDirectory) -> None:
    aik = os.urandom(32)
    await kd.put_device_list(dl(1, aik), NOW)
    rivals = [dl(2, aik, bytes([i])) for i in range(10)]
    outcomes = await asyncio.gather(
        *(kd.put_device_list(r, NOW) for r in rivals), return_exceptions=True
    )
    ok = [o for o in outcomes if isinstance(o, DeviceListRow)]
    assert len(ok) == 1
    assert all(isinstance(o, DeviceListRollback) for o in outcomes if o not in ok)
    assert await kd.device_list(U) == ok[0]


# --- key backup ----------------------------------------------------------------------------------


def rec(conv: bytes, iteration: int, chain: int = 7, blob: bytes | None = None) -> BackupRecordRow:
    return BackupRecordRow(conv, U, 3, b"d" * 16, chain, iteration, blob or os.urandom(100))


async def test_backup_versions(kd: KeyDirectory) -> None:
    assert await kd.backup_version(U) is None
    with pytest.raises(NoBackup):
        await kd.put_backup_records(U, 1, [rec(b"c" * 16, 1)], 100)
    v1 = await kd.create_backup(U, "IMv1-backup-1", b"check1", None, None, None, NOW)
    assert v1.version == 1 and v1.count == 0
    await kd.put_backup_records(U, 1, [rec(b"c" * 16, 1)], 100)
    assert (await kd.backup_version(U)) == msgspec.structs.replace(v1, count=1)
    v2 = await kd.create_backup(U, "IMv1-backup-1", b"check2", b"s" * 16, 3, 8192, NOW)
    assert v2.version == 2 and v2.salt == b"s" * 16 and v2.opslimit == 3
    assert await kd.backup_version(U) == v2
    with pytest.raises(BackupVersionMismatch):
        await kd.put_backup_records(U, 1, [rec(b"c" * 16, 1)], 100)
    with pytest.raises(BackupVersionMismatch):
        await kd.backup_records(U, 1, [b"c" * 16])
    assert await kd.backup_records(U, 2, [b"c" * 16]) == []  # the old version's records went


async def test_backup_lowest_iteration_wins(kd: KeyDirectory) -> None:
    await kd.create_backup(U, "IMv1-backup-1", b"check", None, None, None, NOW)
    a, b = b"a" * 16, b"b" * 16
    r50 = rec(a, 50)
    res = await kd.put_backup_records(U, 1, [r50, rec(b, 9)], 100)
    assert (res.stored, res.kept, res.count) == (2, 0, 2)
    r20 = rec(a, 20)
    res = await kd.put_backup_records(U, 1, [rec(a, 80), r20, rec(a, 20)], 100)
    assert (res.stored, res.kept, res.count) == (1, 2, 2)  # 80 kept 50 out, 20 won, 20 tied
    got = await kd.backup_records(U, 1, [a])
    assert got == [r20]
    other_chain = rec(a, 99, chain=8)  # another chain is another key
    await kd.put_backup_records(U, 1, [other_chain], 100)
    assert await kd.backup_records(U, 1, [a, b, b"z" * 16]) == sorted(
        [r20, other_chain, *await kd.backup_records(U, 1, [b])],
        key=lambda r: (r.conversation_id, r.chain_id),
    )
    with pytest.raises(TooManyBackupRecords):
        await kd.put_backup_records(U, 1, [rec(b"x" * 16, 1), rec(b"y" * 16, 1)], 4)
    assert (await kd.backup_version(U)) is not None
    assert await kd.backup_records(U, 1, [b"x" * 16]) == []  # the refused batch left nothing
