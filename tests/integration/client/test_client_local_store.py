"""The LocalStore contract, run against every engine (sqlite3 and the in-memory reference)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from parley.client import LocalStore, OutboxItem
from parley.client.memory_store import MemoryLocalStore
from parley.protocol.records import (
    ConvEntry,
    ConversationAdded,
    Message,
    ToDeviceItem,
    UserEvent,
)
from parley.protocol.types import ConversationKind
from parley_client import SqliteLocalStore

C1, C2 = b"1" * 16, b"2" * 16


def entry(conv: bytes, seq: int) -> ConvEntry:
    return ConvEntry(conv, seq, seq * 10, "u", 1, Message(b"%d" % seq))


@pytest.fixture(params=["sqlite", "memory"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[LocalStore]:
    s: LocalStore = (
        SqliteLocalStore(tmp_path / "s.db") if request.param == "sqlite" else MemoryLocalStore()
    )
    yield s
    await s.close()


async def test_entries_insert_or_ignore_and_cursor_only_forward(store: LocalStore) -> None:
    await store.store_entries(C1, [entry(C1, s) for s in (1, 2, 3)], 3)
    await store.store_entries(C1, [entry(C1, 2)], 2)  # a re-pull: nothing changes
    await store.store_entries(C1, [entry(C1, s) for s in (7, 8)], None)  # an older page
    await store.store_entries(C2, [entry(C2, 1)], 1)
    cursors = await store.load_cursors()
    assert cursors.conversations == {C1: 3, C2: 1}
    assert [e.seq for e in await store.entries(C1)] == [1, 2, 3, 7, 8]
    assert [e.seq for e in await store.entries(C1, after=2, limit=2)] == [3, 7]
    assert [e.seq for e in await store.entries(C1, before=8, limit=2)] == [3, 7]
    assert [e.seq for e in await store.entries(C1, limit=2)] == [7, 8]
    assert (await store.entries(C1, after=1, limit=1))[0] == entry(C1, 2)


async def test_events_to_device_and_outbox(store: LocalStore) -> None:
    ev = UserEvent(4, 0, ConversationAdded(C1, ConversationKind.DIRECT, "u"))
    await store.store_events([ev], 4)
    await store.store_events([], 2)
    await store.store_to_device([ToDeviceItem(9, 0, "u", 1, b"x")], 9)
    c = await store.load_cursors()
    assert (c.events, c.to_device) == (4, 9)
    for i in (3, 1, 2):
        await store.outbox_put(OutboxItem(f"m{i}", C1, b"e", i))
    await store.outbox_put(OutboxItem("m3", C1, b"other", 0))  # same id: kept once, unchanged
    await store.outbox_delete("m1")
    assert [(i.client_msg_id, i.envelope) for i in await store.outbox_all()] == [
        ("m3", b"e"),
        ("m2", b"e"),
    ]


async def test_to_device_after_is_the_backlog_above_a_seq(store: LocalStore) -> None:
    items = [ToDeviceItem(s, s * 10, "u", 1, b"%d" % s) for s in (3, 5, 9)]
    await store.store_to_device(items[1:], 9)
    await store.store_to_device(items[:1], 3)  # arrives later, stored in seq order all the same
    await store.store_to_device(items[:1], 3)  # again: kept once
    assert await store.to_device_after(0) == items
    assert await store.to_device_after(3) == items[1:]
    assert [i.seq for i in await store.to_device_after(4)] == [5, 9]
    assert await store.to_device_after(9) == []


async def test_sqlite_state_survives_reopen(tmp_path: Path) -> None:
    s = SqliteLocalStore(tmp_path / "r.db")
    await s.store_entries(C1, [entry(C1, 1)], 1)
    await s.outbox_put(OutboxItem("keep", C1, b"e", 1))
    await s.close()
    s = SqliteLocalStore(tmp_path / "r.db")
    assert (await s.load_cursors()).conversations == {C1: 1}
    assert [i.client_msg_id for i in await s.outbox_all()] == ["keep"]
    await s.close()
