"""The ProvisioningStore contract (device-linking requests) on every engine."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from parley_server.store.provisioning import ProvClaimed, ProvExists, ProvisioningStore
from parley_server.store.redis_provisioning import RedisProvisioning
from parley_server.store.sqlite_provisioning import SqliteProvisioning
from tests.contract.conftest import ENGINES

NOW = 1_800_000_000_000


@pytest.fixture(params=sorted(ENGINES))
async def prov(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ProvisioningStore]:
    store: Any = ENGINES[request.param](request, tmp_path)()
    await store.open()
    engine: ProvisioningStore = (
        SqliteProvisioning(store) if request.param == "sqlite" else RedisProvisioning(store)
    )
    try:
        yield engine
    finally:
        await store.close()


def h(s: str) -> bytes:
    return hashlib.sha256(s.encode()).digest()


async def test_link_request_lifecycle(prov: ProvisioningStore) -> None:
    pid = os.urandom(16)
    await prov.register(pid, NOW, NOW + 600_000)
    with pytest.raises(ProvExists):
        await prov.register(pid, NOW, NOW + 600_000)
    row = await prov.get(pid)
    assert row is not None and row.user_id is None and row.sealed is None and not row.used
    assert await prov.get(os.urandom(16)) is None
    with pytest.raises(ProvClaimed):  # no token asked for yet
        await prov.put_sealed(pid, "alice", b"box")
    await prov.set_token(pid, "alice", h("t1"))
    await prov.set_token(pid, "alice", h("t2"))  # a new token replaces the old one
    assert await prov.by_token(h("t1")) is None
    with pytest.raises(ProvClaimed):
        await prov.set_token(pid, "bob", h("t3"))  # another user's request
    with pytest.raises(ProvClaimed):
        await prov.put_sealed(pid, "bob", b"box")
    await prov.put_sealed(pid, "alice", b"box")
    with pytest.raises(ProvClaimed):
        await prov.put_sealed(pid, "alice", b"box2")  # answered once
    row = await prov.by_token(h("t2"))
    assert row is not None and row.user_id == "alice" and row.sealed == b"box"
    first = await prov.use_token(h("t2"))
    second = await prov.use_token(h("t2"))
    assert first is not None and not first.used and first.sealed == b"box"
    assert second is not None and second.used  # exactly one caller sees it unused
    after = await prov.get(pid)
    assert after is not None and after.used and after.sealed is None  # the box is gone
    assert await prov.use_token(h("unknown")) is None
