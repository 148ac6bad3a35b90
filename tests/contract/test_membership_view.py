"""``Store.get_membership`` (the send path's members, cached by the SQLite engine) follows
every membership change, including one whose caller stopped waiting."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from parley.protocol.records import ConversationInfo, Membership, MembershipAction
from parley.protocol.types import ConversationKind, Role
from parley_server.store.base import MemberChange, Store
from parley_server.store.sqlite import SqliteStore
from tests.contract.test_store import NOW, user


def roles(info: ConversationInfo | None) -> dict[str, Role]:
    assert info is not None
    return {m.user_id: m.role for m in info.members}


async def test_membership_view_follows_every_change(store: Store) -> None:
    o, m1, m2 = await user(store, "o"), await user(store, "m1"), await user(store, "m2")
    c = os.urandom(16)
    assert await store.get_membership(c) is None  # unknown: nothing cached either
    await store.create_group(o, [m1], b"", c, NOW)
    assert roles(await store.get_membership(c)) == {o: Role.OWNER, m1: Role.MEMBER}

    joined = Membership(action=MembershipAction.JOINED, actor=o, targets=[m2])
    await store.change_membership(
        c, joined, [MemberChange(m2, Role.MEMBER), MemberChange(m1, Role.ADMIN)], [], NOW + 1
    )
    assert roles(await store.get_membership(c)) == {o: Role.OWNER, m1: Role.ADMIN, m2: Role.MEMBER}

    removed = Membership(action=MembershipAction.REMOVED, actor=o, targets=[m1])
    await store.change_membership(c, removed, [MemberChange(m1, None)], [], NOW + 2)
    assert roles(await store.get_membership(c)) == {o: Role.OWNER, m2: Role.MEMBER}

    disband = Membership(action=MembershipAction.DISBANDED, actor=o)
    await store.change_membership(c, disband, [], [], NOW + 3, disband=True)
    info = await store.get_membership(c)
    assert info is not None and info.disbanded and info.kind == ConversationKind.GROUP


async def test_membership_view_dropped_when_the_caller_was_cancelled(tmp_path: Path) -> None:
    """The write still commits after its caller is cancelled; the cached members must not
    outlive it (the writer's after-commit hook runs regardless of the caller)."""
    store = SqliteStore(tmp_path / "p.db")
    await store.open()
    try:
        o, m1 = await user(store, "o"), await user(store, "m1")
        c = os.urandom(16)
        await store.create_group(o, [m1], b"", c, NOW)
        assert roles(await store.get_membership(c)) == {o: Role.OWNER, m1: Role.MEMBER}
        removed = Membership(action=MembershipAction.REMOVED, actor=o, targets=[m1])
        task = asyncio.ensure_future(
            store.change_membership(c, removed, [MemberChange(m1, None)], [], NOW + 1)
        )
        await asyncio.sleep(0)  # submitted to the writer
        task.cancel()
        # any later write commits after the cancelled one (one writer, in order)
        await asyncio.wait_for(store.append_message(c, o, 1, "m", b"env", NOW + 2), 10)
        assert roles(await store.get_membership(c)) == {o: Role.OWNER}
    finally:
        await store.close()
