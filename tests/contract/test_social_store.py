"""The SocialStore contract (every engine, on its core store's storage) and SQLite's v1 → v2
migration."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from parley.protocol.records import (
    ContactAdded,
    FriendRequestOpened,
    Message,
    MessageRecalled,
    ReadPosition,
    Recalled,
    RefKind,
)
from parley_server.store.base import BadReference, NotFound
from parley_server.store.redis_social import RedisSocialStore
from parley_server.store.social import (
    AlreadyContacts,
    Blocked,
    ProfileChange,
    SocialStore,
    TooManyPending,
)
from parley_server.store.sqlite import SqliteStore
from parley_server.store.sqlite_schema import _V1, SCHEMA_VERSION
from parley_server.store.sqlite_social import SqliteSocialStore
from tests.contract.conftest import ENGINES

NOW = 1_800_000_000_000


@pytest.fixture(params=sorted(ENGINES))
async def stores(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Any, SocialStore]]:
    """The core store and the social store of each engine, on one backing storage."""
    store: Any = ENGINES[request.param](request, tmp_path)()
    await store.open()
    social: SocialStore = (
        SqliteSocialStore(store) if request.param == "sqlite" else RedisSocialStore(store)
    )
    try:
        yield store, social
    finally:
        await store.close()


async def _users(store: Any, n: int) -> list[str]:
    return [
        (await store.create_user(f"u{i}_{uuid.uuid4().hex[:6]}", b"h", NOW)).user_id
        for i in range(n)
    ]


async def test_requests_contacts_blocks(stores: tuple[Any, SocialStore]) -> None:
    store, social = stores
    a, b, c = await _users(store, 3)
    opened = await social.send_request(a, b, "hi", 100, NOW)
    assert not opened.contact
    assert [(u, e.body) for u, e in opened.events] == [
        (a, FriendRequestOpened(user_id=b, incoming=False, note="hi")),
        (b, FriendRequestOpened(user_id=a, incoming=True, note="hi")),
    ]
    assert (await social.send_request(a, b, "again", 100, NOW)).events == []
    mutual = await social.send_request(b, a, "", 100, NOW)
    assert mutual.contact and await social.are_contacts(a, b) and await social.are_contacts(b, a)
    assert (a, ContactAdded(user_id=b)) in [(u, e.body) for u, e in mutual.events]
    with pytest.raises(AlreadyContacts):
        await social.send_request(a, b, "", 100, NOW)
    with pytest.raises(TooManyPending):
        await social.send_request(a, c, "", 0, NOW)
    with pytest.raises(NotFound):
        await social.send_request(a, "ghost", "", 100, NOW)
    with pytest.raises(NotFound):
        await social.close_request(c, a, "accepted", NOW)
    await social.send_request(c, a, "", 100, NOW)
    await social.block(a, c, NOW)
    assert await social.blocked_between(c, a) and await social.blockers_of(c, [a, b]) == {a}
    assert (await social.list_requests(a, 10))[0] == []  # the block dropped c's request
    with pytest.raises(Blocked):
        await social.send_request(c, a, "", 100, NOW)
    assert await social.block(a, c, NOW) == []  # idempotent
    await social.unblock(a, c, NOW)
    with pytest.raises(NotFound):
        await social.unblock(a, c, NOW)
    await social.remove_contact(b, a, NOW)
    assert not await social.are_contacts(a, b)


async def test_profile_lookup_and_read_marks(
    stores: tuple[Any, SocialStore],
) -> None:
    store, social = stores
    a, b = await _users(store, 2)
    assert (await social.get_profile(a)).read_receipts  # defaults without a row
    row = await social.set_profile(a, ProfileChange(email="a@x.io", phone="+15550100"))
    assert (row.email, row.phone, row.hidden) == ("a@x.io", "+15550100", False)
    assert [u for u, _ in await social.find_users("email", "a@x.io", 10)] == [a]
    await social.set_profile(a, ProfileChange(hidden=True, email=""))
    assert await social.find_users("phone", "+15550100", 10) == []
    cid = uuid.uuid4().bytes
    await store.create_group(a, [b], b"", cid, NOW)
    for i in range(3):
        await store.append_message(cid, b, 1, f"m{i}", b"env", NOW)
    seq, events = await social.set_read(cid, a, 3, NOW)
    assert seq == 3 and events[0][1].body == ReadPosition(conversation_id=cid, seq=3)
    assert await social.set_read(cid, a, 2, NOW) == (3, [])
    assert await social.read_seqs(a) == {cid: 3}
    # seq 1 is the group's creation entry, the messages are seqs 2..4
    assert await social.unread_count(cid, a, 1, 1000) == 3
    assert await social.unread_count(cid, a, 3, 1000) == 1
    assert await social.unread_count(cid, b, 1, 1000) == 0  # one's own messages
    assert await social.unread_count(cid, a, 1, 2) == 2  # capped


async def test_refs_and_recall(stores: tuple[Any, SocialStore]) -> None:
    store, social = stores
    a, b = await _users(store, 2)
    cid = uuid.uuid4().bytes
    await store.create_group(a, [b], b"", cid, NOW)
    m = (await store.append_message(cid, a, 1, "m", b"secret-envelope", NOW, mentions=[b])).entry
    edit = await store.append_message(cid, a, 1, "e", b"edit-envelope", NOW, m.seq, RefKind.EDIT)
    with pytest.raises(BadReference) as exc:
        await store.append_message(cid, b, 1, "x", b"env", NOW, m.seq, RefKind.EDIT)
    assert exc.value.forbidden
    with pytest.raises(BadReference):
        await store.append_message(cid, b, 1, "y", b"env", NOW, 1, RefKind.REPLY)  # membership
    result = await social.recall(cid, m.seq, a, [a, b], NOW + 5)
    assert result.also == [edit.entry.seq] and not result.duplicate
    assert result.events[1][1].body == MessageRecalled(
        conversation_id=cid, seq=m.seq, by=a, also=[edit.entry.seq]
    )
    assert (await social.recall(cid, m.seq, a, [a, b], NOW + 6)).duplicate
    entries, _ = await store.history(cid, 0, None, 10)
    bodies = {e.seq: e.body for e in entries}
    assert isinstance(bodies[m.seq], Recalled) and isinstance(bodies[edit.entry.seq], Recalled)
    with pytest.raises(BadReference):
        await store.append_message(cid, b, 1, "z", b"env", NOW, m.seq, RefKind.REACTION)
    # the bytes are gone from the stored entries
    if isinstance(store, SqliteStore):
        raw = [r[0] for r in store.read_connection().execute("SELECT body FROM entries")]
    else:
        raw = list(await store.r.hvals(f"{store.k.conv(cid)}:e"))
    assert raw and not any(b"secret-envelope" in r or b"edit-envelope" in r for r in raw)


async def test_v1_database_migrates_to_current(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in _V1.split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    cid = bytes(range(16))
    conn.execute("INSERT INTO users (user_id, username, password_hash, created) VALUES "
                 "('u1', 'old', x'00', 1)")  # fmt: skip
    conn.execute("INSERT INTO conversations (conversation_id, kind, created_ts, last_seq, last_ts)"
                 " VALUES (?, 'group', 1, 1, 1)", (cid,))  # fmt: skip
    conn.execute("INSERT INTO members VALUES (?, 'u1', 'owner')", (cid,))
    import msgspec

    body = msgspec.msgpack.encode({"t": "msg", "envelope": b"v1-envelope"})
    conn.execute("INSERT INTO entries VALUES (?, 1, 1, 'u1', 1, ?)", (cid, body))
    conn.close()
    store = SqliteStore(path)
    await store.open()
    try:
        entries, _ = await store.history(cid, 0, None, 10)
        assert entries[0].body == Message(envelope=b"v1-envelope")
        social = SqliteSocialStore(store)
        assert await social.unread_count(cid, "someone", 0, 10) == 1
        await social.recall(cid, 1, "u1", ["u1"], 2)
    finally:
        await store.close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        conn.close()
