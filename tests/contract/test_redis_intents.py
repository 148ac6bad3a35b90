"""Cross-slot operations on Redis when the node dies halfway: the intent log lets another node
finish them, and every step runs at most once (no duplicate entries or events)."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from parley.protocol.records import ConversationAdded, ConversationChanged, Membership
from parley.protocol.records import MembershipAction as Action
from parley.protocol.types import Role
from parley_server.store.base import MemberChange
from parley_server.store.redis import RedisStore
from tests.contract.conftest import redis_prefix

NOW = 1_800_000_000_000


class Died(Exception):
    """Stands for the node's process dying at this point."""


@pytest.fixture(params=["redis_server", "redis_cluster"])
async def two_nodes(request: pytest.FixtureRequest) -> AsyncIterator[tuple[RedisStore, RedisStore]]:
    url = request.getfixturevalue(request.param).url
    prefix = redis_prefix()
    a, b = RedisStore(url, prefix=prefix, sweep_every_s=0), RedisStore(url, prefix=prefix)
    await a.open()
    await b.open()
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


def die_at(store: RedisStore, method: str) -> Callable[[], None]:
    """Make ``store.<method>`` raise once; returns the undo."""
    original = getattr(store, method)

    async def dying(*args: Any, **kwargs: Any) -> Any:
        setattr(store, method, original)
        raise Died

    setattr(store, method, dying)
    return lambda: setattr(store, method, original)


async def test_group_creation_finished_by_another_node(
    two_nodes: tuple[RedisStore, RedisStore],
) -> None:
    a, b = two_nodes
    owner, m1, m2 = [(await a.create_user(f"u{i}", b"h", NOW)).user_id for i in range(3)]
    cid = os.urandom(16)
    die_at(a, "user_events")  # after the conversation and the indexes, before the events
    with pytest.raises(Died):
        await a.create_group(owner, [m1, m2], b"meta", cid, NOW)
    assert await b.events_after(m1, 0, 10) == []  # half done
    assert await b.sweep(time.time() + 60) == 1
    for u in (owner, m1, m2):
        events = await b.events_after(u, 0, 10)
        assert [e.body for e in events] == [
            ConversationAdded(conversation_id=cid, kind=events[0].body.kind, by=owner)  # type: ignore[union-attr]
        ]
        assert [s.conversation_id for s in await b.conversation_states(u)] == [cid]
    entries, _ = await b.history(cid, 0, None, 10)
    assert [e.seq for e in entries] == [1]
    assert await b.sweep(time.time() + 120) == 0  # nothing left; a replay changed nothing


async def test_membership_change_finished_by_another_node(
    two_nodes: tuple[RedisStore, RedisStore],
) -> None:
    a, b = two_nodes
    owner, m1, new = [(await a.create_user(f"v{i}", b"h", NOW)).user_id for i in range(3)]
    cid = os.urandom(16)
    await a.create_group(owner, [m1], b"", cid, NOW)
    die_at(a, "_reindex")  # after the conversation's entry, before indexes and events
    entry = Membership(action=Action.JOINED, actor=owner, targets=[new])
    changed = ConversationChanged(conversation_id=cid, seq=0)
    with pytest.raises(Died):
        await a.change_membership(
            cid,
            entry,
            [MemberChange(new, Role.MEMBER)],
            [(u, changed) for u in (owner, m1, new)],
            NOW,
        )
    info = await b.get_conversation(cid)
    assert info is not None and info.last_seq == 2  # the entry is in; the rest is not
    assert await b.conversation_states(new) == []
    assert await b.sweep(time.time() + 60) == 1
    assert [s.conversation_id for s in await b.conversation_states(new)] == [cid]
    for u in (owner, m1, new):
        bodies = [e.body for e in await b.events_after(u, 0, 10)]
        assert bodies.count(ConversationChanged(conversation_id=cid, seq=2)) == 1
    entries, _ = await b.history(cid, 0, None, 10)
    assert [e.seq for e in entries] == [1, 2]  # the entry was not appended twice
