"""The Store contract: every engine must pass every test here (see conftest.ENGINES)."""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest

from parley.protocol.records import (
    ConvEntry,
    ConversationAdded,
    ConversationChanged,
    ConversationRemoved,
    Member,
    Membership,
    MembershipAction,
    Message,
)
from parley.protocol.types import ConversationKind, Role
from parley_server.store.base import (
    MemberChange,
    NotFound,
    Store,
    ToDeviceOut,
    UsernameTaken,
)
from tests.contract.conftest import StoreFactory

NOW = 1_800_000_000_000


def cid() -> bytes:
    return os.urandom(16)


def token(n: int | str) -> bytes:
    return hashlib.sha256(f"token-{n}".encode()).digest()


async def user(store: Store, name: str) -> str:
    return (await store.create_user(name, b"hash-" + name.encode(), NOW)).user_id


# --- accounts and devices --------------------------------------------------------------------


async def test_create_and_get_user(store: Store) -> None:
    row = await store.create_user("alice", b"pw-hash", NOW)
    assert row.username == "alice" and row.password_hash == b"pw-hash" and row.created == NOW
    assert await store.get_user(row.user_id) == row
    assert await store.get_user_by_name("alice") == row
    assert await store.get_user("no-such-user") is None
    assert await store.get_user_by_name("bob") is None


async def test_username_taken(store: Store) -> None:
    first = await store.create_user("alice", b"1", NOW)
    with pytest.raises(UsernameTaken):
        await store.create_user("alice", b"2", NOW)
    assert await store.get_user_by_name("alice") == first


async def test_username_taken_does_not_disturb_concurrent_writes(store: Store) -> None:
    await store.create_user("taken", b"x", NOW)
    results = await asyncio.gather(
        *(store.create_user(n, b"x", NOW) for n in ["u1", "taken", "u2", "taken", "u3"]),
        return_exceptions=True,
    )
    assert [isinstance(r, UsernameTaken) for r in results] == [False, True, False, True, False]
    for n in ["u1", "u2", "u3"]:
        assert await store.get_user_by_name(n) is not None


async def test_users_exist(store: Store) -> None:
    a, b = await user(store, "a"), await user(store, "b")
    assert await store.users_exist([a, "ghost", b, a]) == {a, b}
    assert await store.users_exist([]) == set()
    many = [f"ghost-{i}" for i in range(1200)] + [b]
    assert await store.users_exist(many) == {b}


async def test_device_ids_are_never_reused(store: Store) -> None:
    a, b = await user(store, "a"), await user(store, "b")
    d1 = await store.create_device(a, "laptop", token(1), NOW)
    d2 = await store.create_device(a, "phone", token(2), NOW + 1)
    assert (d1.device_id, d2.device_id) == (1, 2)
    assert d1.name == "laptop" and d1.created == NOW and d1.last_seen == NOW and not d1.revoked
    assert (await store.create_device(b, "b-phone", token(3), NOW)).device_id == 1
    assert await store.revoke_device(a, 2)
    d3 = await store.create_device(a, "tablet", token(4), NOW)
    assert d3.device_id == 3
    assert [d.device_id for d in await store.list_devices(a)] == [1, 3]


async def test_device_ids_under_concurrency(store: Store) -> None:
    a = await user(store, "a")
    rows = await asyncio.gather(
        *(store.create_device(a, f"d{i}", token(i), NOW) for i in range(30))
    )
    assert sorted(r.device_id for r in rows) == list(range(1, 31))


async def test_create_device_for_unknown_user(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.create_device("ghost", "x", token(1), NOW)
    assert await store.get_session(token(1)) is None


async def test_sessions_and_revoke(store: Store) -> None:
    a = await user(store, "a")
    d = await store.create_device(a, "laptop", token("a1"), NOW)
    s = await store.get_session(token("a1"))
    assert s is not None and (s.user_id, s.device_id, s.revoked) == (a, d.device_id, False)
    assert await store.get_session(token("nope")) is None
    assert await store.revoke_device(a, d.device_id) is True
    s = await store.get_session(token("a1"))
    assert s is not None and s.revoked
    assert await store.revoke_device(a, d.device_id) is False  # already revoked
    assert await store.revoke_device(a, 99) is False  # never existed
    assert await store.list_devices(a) == []


async def test_touch_device(store: Store) -> None:
    a = await user(store, "a")
    await store.create_device(a, "laptop", token(1), NOW)
    await store.touch_device(a, 1, NOW + 5000)
    await store.touch_device(a, 1, NOW + 7000)
    await store.touch_device(a, 1, NOW + 6000)  # never moves backwards
    # Writes are ordered: once a later write is acknowledged, the touch is stored too.
    await store.create_user("barrier", b"x", NOW)
    [dev] = await store.list_devices(a)
    assert dev.last_seen == NOW + 7000


# --- conversations ---------------------------------------------------------------------------


async def test_open_direct_idempotent_both_orders(store: Store) -> None:
    a, b = await user(store, "a"), await user(store, "b")
    c1 = cid()
    info, created = await store.open_direct(a, b, c1, NOW)
    assert created is not None
    assert info.conversation_id == c1 and info.kind == ConversationKind.DIRECT
    assert {m.user_id for m in info.members} == {a, b}
    assert info.last_seq == 1 and created.entry.seq == 1
    assert isinstance(created.entry.body, Membership)
    assert created.entry.body.action == MembershipAction.CREATED
    assert created.entry.sender_device is None
    assert sorted(u for u, _ in created.events) == sorted([a, b])
    for _, ev in created.events:
        assert ev.body == ConversationAdded(c1, ConversationKind.DIRECT, a)

    again, none = await store.open_direct(b, a, cid(), NOW + 1)
    assert none is None and again.conversation_id == c1
    again, none = await store.open_direct(a, b, cid(), NOW + 2)
    assert none is None and again.conversation_id == c1
    assert [e.seq for e in await store.events_after(a, 0, 10)] == [1]  # no second event


async def test_open_direct_concurrent_creates_one(store: Store) -> None:
    a, b = await user(store, "a"), await user(store, "b")
    results = await asyncio.gather(
        *(store.open_direct(*((a, b) if i % 2 else (b, a)), cid(), NOW) for i in range(20))
    )
    assert len({info.conversation_id for info, _ in results}) == 1
    assert sum(created is not None for _, created in results) == 1
    assert len(await store.conversation_states(a)) == 1
    assert len(await store.events_after(b, 0, 100)) == 1


async def test_open_direct_with_unknown_user(store: Store) -> None:
    a = await user(store, "a")
    c = cid()
    with pytest.raises(NotFound):
        await store.open_direct(a, "ghost", c, NOW)
    assert await store.get_conversation(c) is None
    assert await store.conversation_states(a) == []


async def test_create_group(store: Store) -> None:
    o, m1, m2 = await user(store, "o"), await user(store, "m1"), await user(store, "m2")
    c = cid()
    res = await store.create_group(o, [m1, m2, o], b"meta", c, NOW)
    assert res.entry.seq == 1 and res.entry.ts == NOW and res.entry.sender == o
    assert isinstance(res.entry.body, Membership)
    assert res.entry.body.action == MembershipAction.CREATED
    roles = {m.user_id: m.role for m in res.info.members}
    assert roles == {o: Role.OWNER, m1: Role.MEMBER, m2: Role.MEMBER}
    assert res.info.kind == ConversationKind.GROUP and res.info.meta == b"meta"
    assert res.info.last_seq == 1 and res.info.created_ts == NOW and not res.info.disbanded
    assert sorted(u for u, _ in res.events) == sorted([o, m1, m2])
    for u in (o, m1, m2):
        [ev] = await store.events_after(u, 0, 10)
        assert ev.body == ConversationAdded(c, ConversationKind.GROUP, o)
    assert await store.get_conversation(c) == res.info
    assert await store.member_role(c, o) == Role.OWNER
    assert await store.member_role(c, m1) == Role.MEMBER
    assert await store.member_role(c, "ghost") is None
    assert sorted(await store.members(c), key=lambda m: m.user_id) == sorted(
        res.info.members, key=lambda m: m.user_id
    )
    [entry], more = await store.history(c, None, None, 10)
    assert entry == res.entry and not more


async def test_create_group_with_unknown_member(store: Store) -> None:
    o = await user(store, "o")
    c = cid()
    with pytest.raises(NotFound):
        await store.create_group(o, ["ghost"], b"", c, NOW)
    assert await store.get_conversation(c) is None
    assert await store.events_after(o, 0, 10) == []


async def test_get_conversation_missing(store: Store) -> None:
    assert await store.get_conversation(cid()) is None
    assert await store.members(cid()) == []
    assert await store.history(cid(), None, None, 10) == ([], False)


async def test_change_membership(store: Store) -> None:
    o, m1, m2 = await user(store, "o"), await user(store, "m1"), await user(store, "m2")
    c = cid()
    await store.create_group(o, [m1], b"", c, NOW)
    await store.append_message(c, o, 1, "x1", b"env", NOW + 1)  # seq 2

    entry = Membership(action=MembershipAction.JOINED, actor=o, targets=[m2])
    res = await store.change_membership(
        c,
        entry,
        [MemberChange(m2, Role.MEMBER), MemberChange(m1, Role.ADMIN)],
        [
            (m2, ConversationAdded(c, ConversationKind.GROUP, o)),
            (o, ConversationChanged(c, 0)),
            (m1, ConversationChanged(c, 0)),
        ],
        NOW + 2,
        meta=b"new-meta",
    )
    assert res.entry.seq == 3 and res.entry.body == entry and res.entry.sender == o
    assert res.entry.sender_device is None and res.entry.ts == NOW + 2
    assert {m.user_id: m.role for m in res.info.members} == {
        o: Role.OWNER,
        m1: Role.ADMIN,
        m2: Role.MEMBER,
    }
    assert res.info.meta == b"new-meta" and res.info.last_seq == 3
    bodies = {u: ev.body for u, ev in res.events}
    assert bodies[o] == ConversationChanged(c, 3)  # seq 0 filled in
    assert bodies[m1] == ConversationChanged(c, 3)
    assert bodies[m2] == ConversationAdded(c, ConversationKind.GROUP, o)
    assert [ev.body for ev in await store.events_after(o, 1, 10)] == [ConversationChanged(c, 3)]

    # removal + disband
    bye = Membership(action=MembershipAction.DISBANDED, actor=o)
    res = await store.change_membership(
        c,
        bye,
        [MemberChange(m1, None), MemberChange(m2, None), MemberChange(o, None)],
        [(u, ConversationRemoved(c, MembershipAction.DISBANDED, o)) for u in (o, m1, m2)],
        NOW + 3,
        disband=True,
    )
    assert res.entry.seq == 4 and res.info.disbanded and res.info.members == []
    assert res.info.meta == b"new-meta"  # unchanged when not given
    assert await store.member_role(c, m1) is None
    assert await store.conversation_states(m2) == []
    entries, _ = await store.history(c, None, None, 10)
    assert [e.seq for e in entries] == [1, 2, 3, 4]


async def test_change_membership_missing_conversation(store: Store) -> None:
    o = await user(store, "o")
    with pytest.raises(NotFound):
        await store.change_membership(
            cid(), Membership(action=MembershipAction.LEFT, actor=o), [], [], NOW
        )


async def test_change_membership_is_atomic(store: Store) -> None:
    o = await user(store, "o")
    c = cid()
    await store.create_group(o, [], b"", c, NOW)
    with pytest.raises(NotFound):  # the event's user does not exist: nothing may change
        await store.change_membership(
            c,
            Membership(action=MembershipAction.RENAMED, actor=o),
            [MemberChange(o, Role.ADMIN)],
            [(o, ConversationChanged(c, 0)), ("ghost", ConversationChanged(c, 0))],
            NOW,
            meta=b"renamed",
        )
    info = await store.get_conversation(c)
    assert info is not None
    assert info.last_seq == 1 and info.meta == b"" and info.members == [Member(o, Role.OWNER)]
    assert len(await store.events_after(o, 0, 10)) == 1


async def test_list_conversations_and_states(store: Store) -> None:
    a, b = await user(store, "a"), await user(store, "b")
    ids = sorted(cid() for _ in range(7))
    for i, c in enumerate(ids):
        await store.create_group(a, [b] if i % 2 else [], b"", c, NOW + i)
    await store.append_message(ids[3], a, 1, "m", b"e", NOW + 100)

    states = await store.conversation_states(a)
    assert [s.conversation_id for s in states] == ids
    s3 = states[3]
    assert (s3.kind, s3.last_seq, s3.last_ts) == (ConversationKind.GROUP, 2, NOW + 100)
    assert (states[0].last_seq, states[0].last_ts) == (1, NOW)
    assert [s.conversation_id for s in await store.conversation_states(b)] == ids[1::2]

    page1 = await store.list_conversations(a, None, 3)
    page2 = await store.list_conversations(a, page1[-1].conversation_id, 3)
    page3 = await store.list_conversations(a, page2[-1].conversation_id, 3)
    got = [i.conversation_id for i in page1 + page2 + page3]
    assert got == ids
    assert page1[0] == await store.get_conversation(ids[0])
    assert await store.list_conversations(a, ids[-1], 3) == []


# --- timeline --------------------------------------------------------------------------------


async def test_append_message(store: Store) -> None:
    a = await user(store, "a")
    c = cid()
    await store.create_group(a, [], b"", c, NOW)
    res = await store.append_message(c, a, 1, "m1", b"ciphertext", NOW + 1)
    assert not res.duplicate
    e = res.entry
    assert (e.conversation_id, e.seq, e.ts, e.sender, e.sender_device) == (c, 2, NOW + 1, a, 1)
    assert e.body == Message(b"ciphertext")
    entries, more = await store.history(c, 1, None, 10)
    assert entries == [e] and not more


async def test_append_to_missing_conversation(store: Store) -> None:
    a = await user(store, "a")
    with pytest.raises(NotFound):
        await store.append_message(cid(), a, 1, "m1", b"x", NOW)


async def test_append_idempotent_retry_returns_original(store: Store) -> None:
    a = await user(store, "a")
    c = cid()
    await store.create_group(a, [], b"", c, NOW)
    first = await store.append_message(c, a, 1, "same", b"v1", NOW)
    await store.append_message(c, a, 1, "other", b"v2", NOW)
    retry = await store.append_message(c, a, 1, "same", b"v1", NOW + 99)
    assert retry.duplicate and retry.entry == first.entry and retry.entry.seq == 2
    # the key is (sender, device, client_msg_id): another device may reuse the id
    dev2 = await store.append_message(c, a, 2, "same", b"v3", NOW)
    assert not dev2.duplicate and dev2.entry.seq == 4
    entries, _ = await store.history(c, None, None, 100)
    assert [e.seq for e in entries] == [1, 2, 3, 4]


async def test_concurrent_idempotent_retries_append_once(store: Store) -> None:
    a = await user(store, "a")
    c = cid()
    await store.create_group(a, [], b"", c, NOW)
    results = await asyncio.gather(
        *(store.append_message(c, a, 1, "dup", b"x", NOW) for _ in range(10))
    )
    assert sum(not r.duplicate for r in results) == 1
    assert {r.entry.seq for r in results} == {2}
    info = await store.get_conversation(c)
    assert info is not None and info.last_seq == 2


async def test_appends_gap_free_under_concurrency(store: Store) -> None:
    senders = [await user(store, f"s{i}") for i in range(4)]
    c, other = cid(), cid()
    await store.create_group(senders[0], senders[1:], b"", c, NOW)
    await store.create_group(senders[0], [], b"", other, NOW)
    n = 200
    results = await asyncio.gather(
        *(
            store.append_message(c, senders[i % 4], 1 + i % 3, f"m{i}", f"e{i}".encode(), NOW + i)
            for i in range(n)
        ),
        *(store.append_message(other, senders[0], 9, f"o{i}", b"o", NOW) for i in range(20)),
    )
    seqs = sorted(r.entry.seq for r in results[:n])
    assert seqs == list(range(2, n + 2))  # seq 1 is the CREATED entry
    assert sorted(r.entry.seq for r in results[n:]) == list(range(2, 22))
    entries, more = await store.history(c, 0, None, 500)
    assert [e.seq for e in entries] == list(range(1, n + 2)) and not more
    by_seq = {r.entry.seq: r.entry for r in results[:n]}
    for e in entries[1:]:
        assert by_seq[e.seq] == e
    info = await store.get_conversation(c)
    assert info is not None and info.last_seq == n + 1


async def test_history_paging(store: Store) -> None:
    a = await user(store, "a")
    c = cid()
    await store.create_group(a, [], b"", c, NOW)
    for i in range(24):
        await store.append_message(c, a, 1, f"m{i}", b"x", NOW + i)  # seqs 2..25

    def seqs(r: tuple[list[ConvEntry], bool]) -> tuple[list[int], bool]:
        return [e.seq for e in r[0]], r[1]

    assert seqs(await store.history(c, None, None, 5)) == ([21, 22, 23, 24, 25], True)
    assert seqs(await store.history(c, None, None, 25)) == (list(range(1, 26)), False)
    assert seqs(await store.history(c, None, None, 30)) == (list(range(1, 26)), False)
    assert seqs(await store.history(c, 0, None, 5)) == ([1, 2, 3, 4, 5], True)
    assert seqs(await store.history(c, 20, None, 5)) == ([21, 22, 23, 24, 25], False)
    assert seqs(await store.history(c, 25, None, 5)) == ([], False)
    assert seqs(await store.history(c, None, 21, 5)) == ([16, 17, 18, 19, 20], True)
    assert seqs(await store.history(c, None, 6, 5)) == ([1, 2, 3, 4, 5], False)
    assert seqs(await store.history(c, None, 3, 5)) == ([1, 2], False)
    assert seqs(await store.history(c, None, 1, 5)) == ([], False)


# --- per-user events -------------------------------------------------------------------------


async def test_events_append_and_paging(store: Store) -> None:
    a, b = await user(store, "a"), await user(store, "b")
    c = cid()
    out = await store.append_events(
        [(a, ConversationChanged(c, i)) for i in range(1, 8)] + [(b, ConversationChanged(c, 9))],
        NOW,
    )
    assert [(u, ev.seq) for u, ev in out] == [(a, i) for i in range(1, 8)] + [(b, 1)]
    page1 = await store.events_after(a, 0, 3)
    page2 = await store.events_after(a, 3, 3)
    page3 = await store.events_after(a, 6, 3)
    assert [e.seq for e in page1 + page2 + page3] == list(range(1, 8))
    assert [e.body for e in page1] == [ConversationChanged(c, i) for i in (1, 2, 3)]
    assert page1[0].ts == NOW
    assert await store.events_after(a, 7, 3) == []
    assert [e.seq for e in await store.events_after(b, 0, 10)] == [1]


async def test_events_concurrent_seqs(store: Store) -> None:
    a = await user(store, "a")
    c = cid()
    await asyncio.gather(
        *(store.append_events([(a, ConversationChanged(c, i))], NOW) for i in range(50))
    )
    assert [e.seq for e in await store.events_after(a, 0, 100)] == list(range(1, 51))


async def test_events_for_unknown_user_append_nothing(store: Store) -> None:
    a = await user(store, "a")
    c = cid()
    with pytest.raises(NotFound):
        await store.append_events(
            [(a, ConversationChanged(c, 1)), ("ghost", ConversationChanged(c, 1))], NOW
        )
    assert await store.events_after(a, 0, 10) == []


# --- to-device -------------------------------------------------------------------------------


async def test_to_device_queue(store: Store) -> None:
    a, b = await user(store, "a"), await user(store, "b")
    await store.create_device(a, "a1", token("a1"), NOW)
    await store.create_device(b, "b1", token("b1"), NOW)
    await store.create_device(b, "b2", token("b2"), NOW)
    out = await store.enqueue_to_device(
        a, 1, [ToDeviceOut(b, 1, b"k1"), ToDeviceOut(b, 2, b"k2"), ToDeviceOut(b, 1, b"k3")], NOW
    )
    assert [(u, d, it.seq, it.body) for u, d, it in out] == [
        (b, 1, 1, b"k1"),
        (b, 2, 1, b"k2"),
        (b, 1, 2, b"k3"),
    ]
    items = await store.to_device_after(b, 1, 0, 10)
    assert [(i.seq, i.sender, i.sender_device, i.body, i.ts) for i in items] == [
        (1, a, 1, b"k1", NOW),
        (2, a, 1, b"k3", NOW),
    ]
    assert [i.seq for i in await store.to_device_after(b, 1, 1, 10)] == [2]
    assert [i.seq for i in await store.to_device_after(b, 1, 0, 1)] == [1]

    assert await store.ack_to_device(b, 1, 1) == 1
    assert [i.seq for i in await store.to_device_after(b, 1, 0, 10)] == [2]
    assert await store.ack_to_device(b, 1, 5) == 1
    assert await store.to_device_after(b, 1, 0, 10) == []
    # seq never goes backwards, even with an empty queue
    [(_, _, item)] = await store.enqueue_to_device(a, 1, [ToDeviceOut(b, 1, b"k4")], NOW)
    assert item.seq == 3
    assert [i.body for i in await store.to_device_after(b, 2, 0, 10)] == [b"k2"]  # untouched


async def test_to_device_survives_reopen_monotonic(make_store: StoreFactory) -> None:
    s = make_store()
    await s.open()
    a = await user(s, "a")
    await s.create_device(a, "a1", token(1), NOW)
    await s.enqueue_to_device(a, 1, [ToDeviceOut(a, 1, b"x")] * 3, NOW)
    assert await s.ack_to_device(a, 1, 3) == 3
    await s.close()
    s = make_store()
    await s.open()
    try:
        [(_, _, item)] = await s.enqueue_to_device(a, 1, [ToDeviceOut(a, 1, b"y")], NOW)
        assert item.seq == 4
    finally:
        await s.close()


async def test_to_device_all_or_nothing(store: Store) -> None:
    a, b = await user(store, "a"), await user(store, "b")
    await store.create_device(a, "a1", token("a1"), NOW)
    await store.create_device(b, "b1", token("b1"), NOW)
    await store.create_device(b, "b2", token("b2"), NOW)
    await store.enqueue_to_device(a, 1, [ToDeviceOut(b, 2, b"before-revoke")], NOW)
    assert await store.revoke_device(b, 2)
    assert await store.to_device_after(b, 2, 0, 10) == []  # a revoked device's queue is dropped
    for bad in (ToDeviceOut(b, 7, b"x"), ToDeviceOut("ghost", 1, b"x"), ToDeviceOut(b, 2, b"x")):
        with pytest.raises(NotFound):
            await store.enqueue_to_device(a, 1, [ToDeviceOut(b, 1, b"ok"), bad], NOW)
    assert await store.to_device_after(b, 1, 0, 10) == []
    [(_, _, item)] = await store.enqueue_to_device(a, 1, [ToDeviceOut(b, 1, b"ok")], NOW)
    assert item.seq == 1  # the failed batches consumed no seq


async def test_to_device_concurrent_seqs(store: Store) -> None:
    a = await user(store, "a")
    await store.create_device(a, "a1", token(1), NOW)
    await asyncio.gather(
        *(store.enqueue_to_device(a, 1, [ToDeviceOut(a, 1, bytes([i]))], NOW) for i in range(40))
    )
    assert [i.seq for i in await store.to_device_after(a, 1, 0, 100)] == list(range(1, 41))


async def test_to_device_expire(store: Store) -> None:
    a = await user(store, "a")
    await store.create_device(a, "a1", token(1), NOW)
    await store.enqueue_to_device(a, 1, [ToDeviceOut(a, 1, b"old")], NOW - 1000)
    await store.enqueue_to_device(a, 1, [ToDeviceOut(a, 1, b"new")], NOW)
    assert await store.expire_to_device(NOW) == 1
    assert [i.body for i in await store.to_device_after(a, 1, 0, 10)] == [b"new"]
    assert await store.expire_to_device(NOW) == 0


# --- durability ------------------------------------------------------------------------------


async def test_everything_acknowledged_survives_reopen(make_store: StoreFactory) -> None:
    s = make_store()
    await s.open()
    a, b = await user(s, "a"), await user(s, "b")
    dev = await s.create_device(a, "laptop", token("a"), NOW)
    await s.create_device(b, "phone", token("b"), NOW)
    direct, _ = await s.open_direct(a, b, cid(), NOW)
    g = cid()
    await s.create_group(a, [b], b"meta", g, NOW)
    appended = await asyncio.gather(
        *(s.append_message(g, a, 1, f"m{i}", bytes([i]), NOW) for i in range(50))
    )
    await s.enqueue_to_device(a, 1, [ToDeviceOut(b, 1, b"td")], NOW)
    await s.revoke_device(b, 1)
    await s.create_device(b, "phone2", token("b2"), NOW)
    await s.enqueue_to_device(a, 1, [ToDeviceOut(b, 2, b"td2")], NOW)
    events_a = await s.events_after(a, 0, 100)
    states_a = await s.conversation_states(a)
    history, _ = await s.history(g, None, None, 100)
    await s.close()

    s = make_store()
    await s.open()
    try:
        assert await s.get_user_by_name("a") == await s.get_user(a)
        assert [d.device_id for d in await s.list_devices(a)] == [dev.device_id]
        assert [d.device_id for d in await s.list_devices(b)] == [2]
        sess = await s.get_session(token("b"))
        assert sess is not None and sess.revoked
        assert await s.events_after(a, 0, 100) == events_a
        assert await s.conversation_states(a) == states_a
        assert (await s.history(g, None, None, 100))[0] == history
        assert {r.entry.seq for r in appended} <= {e.seq for e in history}
        again, created = await s.open_direct(b, a, cid(), NOW)
        assert created is None and again.conversation_id == direct.conversation_id
        retry = await s.append_message(g, a, 1, "m7", b"\x07", NOW)
        assert retry.duplicate and retry.entry == appended[7].entry
        assert [i.body for i in await s.to_device_after(b, 2, 0, 10)] == [b"td2"]
        assert (await s.create_device(b, "phone3", token("b3"), NOW)).device_id == 3
    finally:
        await s.close()


async def test_close_drains_pending_writes(make_store: StoreFactory) -> None:
    s = make_store()
    await s.open()
    a = await user(s, "a")
    g = cid()
    await s.create_group(a, [], b"", g, NOW)
    pending = [
        asyncio.ensure_future(s.append_message(g, a, 1, f"m{i}", b"x", NOW)) for i in range(100)
    ]
    for _ in range(10):  # let every append reach the writer's queue
        await asyncio.sleep(0)
    await s.close()
    results = await asyncio.gather(*pending)  # all were queued before close: none may fail
    s = make_store()
    await s.open()
    try:
        entries, _ = await s.history(g, 1, None, 500)
        assert sorted(e.seq for e in entries) == sorted(r.entry.seq for r in results)
        assert len(entries) == 100
    finally:
        await s.close()
