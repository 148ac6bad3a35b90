"""The InviteStore and ReachStore contracts on every engine."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from parley.protocol.records import GroupInviteClosed, GroupInvited, ToDeviceItem
from parley_server.store.base import ToDeviceOut
from parley_server.store.invites import InviteStore
from parley_server.store.reach import ReachStore
from parley_server.store.redis_invites import RedisInviteStore
from parley_server.store.redis_reach import RedisReachStore
from parley_server.store.redis_social import RedisSocialStore
from parley_server.store.social import SocialStore
from parley_server.store.sqlite_invites import SqliteInviteStore
from parley_server.store.sqlite_reach import SqliteReachStore
from parley_server.store.sqlite_social import SqliteSocialStore
from tests.contract.conftest import ENGINES

NOW = 1_800_000_000_000

Engines = tuple[Any, SocialStore, InviteStore, ReachStore]


@pytest.fixture(params=sorted(ENGINES))
async def engines(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Engines]:
    store: Any = ENGINES[request.param](request, tmp_path)()
    await store.open()
    sqlite = request.param == "sqlite"
    social: SocialStore = SqliteSocialStore(store) if sqlite else RedisSocialStore(store)
    invites: InviteStore = SqliteInviteStore(store) if sqlite else RedisInviteStore(store)
    reach: ReachStore = SqliteReachStore(store) if sqlite else RedisReachStore(store)
    try:
        yield store, social, invites, reach
    finally:
        await store.close()


async def _users(store: Any, *names: str) -> list[str]:
    return [(await store.create_user(n, b"h", NOW)).user_id for n in names]


async def test_invitations(engines: Engines) -> None:
    store, _social, invites, _reach = engines
    owner, ann, ben = await _users(store, "owner", "ann", "ben")
    cid = os.urandom(16)
    await store.create_group(owner, [], b"", cid, NOW)
    added = await invites.add_invites(cid, owner, [ann, ben], NOW + 1)
    assert [(u, e.body) for u, e in added] == [
        (ann, GroupInvited(conversation_id=cid, by=owner)),
        (ben, GroupInvited(conversation_id=cid, by=owner)),
    ]
    assert await invites.add_invites(cid, owner, [ann], NOW + 2) == []  # kept as it is
    rows, more = await invites.list_invites(ann, 10)
    assert [(r.conversation_id, r.inviter, r.inviter_name, r.created) for r in rows] == [
        (cid, owner, "owner", NOW + 1)
    ] and not more
    inviter, events = await invites.take_invite(cid, ann, "declined", NOW + 3)
    assert inviter == owner
    assert [e.body for _u, e in events] == [
        GroupInviteClosed(conversation_id=cid, outcome="declined")
    ]
    assert await invites.take_invite(cid, ann, "declined", NOW + 4) == (None, [])
    withdrawn = await invites.withdraw_all(cid, NOW + 5)
    assert [(u, e.body) for u, e in withdrawn] == [
        (ben, GroupInviteClosed(conversation_id=cid, outcome="withdrawn"))
    ]
    assert await invites.list_invites(ben, 10) == ([], False)
    # the events are in the invitees' timelines, numbered after what they had
    assert [e.body for e in await store.events_after(ann, 0, 10)][-2:] == [
        GroupInvited(conversation_id=cid, by=owner),
        GroupInviteClosed(conversation_id=cid, outcome="declined"),
    ]


async def test_reach(engines: Engines) -> None:
    store, social, _invites, reach = engines
    me, friend, member, stranger = await _users(store, "me", "friend", "member", "stranger")
    await social.send_request(me, friend, "", 100, NOW)
    await social.send_request(friend, me, "", 100, NOW)  # contacts now
    await store.create_group(me, [member], b"", os.urandom(16), NOW)
    everyone = [me, friend, member, stranger]
    assert await reach.may_reach(me, everyone) == {me, friend, member}
    dev = await store.create_device(friend, "d", os.urandom(32), NOW)
    assert await reach.queued_from(me, friend) == 0
    out = [ToDeviceOut(friend, dev.device_id, b"x"), ToDeviceOut(friend, dev.device_id, b"y")]
    queued = await store.enqueue_to_device(me, 1, out, NOW)
    assert all(isinstance(item, ToDeviceItem) for _u, _d, item in queued)
    assert await reach.queued_from(me, friend) == 2
    assert await reach.queued_from(member, friend) == 0
