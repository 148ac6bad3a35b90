"""Conversations: direct (idempotent), group lifecycle with membership entries and user events."""

from __future__ import annotations

import pytest

from parley.protocol.frames import EntryPush, EventPush
from parley.protocol.ops import (
    Conversation,
    ConversationPage,
    ConvList,
    DirectOpen,
    GroupCreate,
    GroupDisband,
    GroupInvite,
    GroupLeave,
    GroupRemove,
    GroupRename,
    GroupSetRole,
    History,
    HistoryPage,
    Ok,
    Send,
    SyncReply,
    SyncRequest,
)
from parley.protocol.records import (
    ConversationAdded,
    ConversationChanged,
    ConversationRemoved,
    Membership,
    MembershipAction,
)
from parley.protocol.types import ConversationKind, Role
from tests.support.accounts import Login, new_user
from tests.support.rawclient import RawClient, envelope_for
from tests.support.server import ServerProcess


async def _login(server: ServerProcess, who: Login) -> RawClient:
    return await RawClient.login(server.ws_url, who.token)


def _roles(conv: Conversation) -> dict[str, Role]:
    return {m.user_id: m.role for m in conv.info.members}


async def test_direct_open_is_idempotent_both_ways_and_pushed(server: ServerProcess) -> None:
    (alice,) = new_user(server.http_url, "alice")
    (bob,) = new_user(server.http_url, "bob")
    a = await _login(server, alice)
    b = await _login(server, bob)
    first: Conversation = await a.call(DirectOpen(user_id=bob.user_id))
    assert first.info.kind == ConversationKind.DIRECT
    assert set(_roles(first)) == {alice.user_id, bob.user_id}
    again: Conversation = await a.call(DirectOpen(user_id=bob.user_id))
    reverse: Conversation = await b.call(DirectOpen(user_id=alice.user_id))
    cid = first.info.conversation_id
    assert again.info.conversation_id == cid == reverse.info.conversation_id
    # Bob's connected device was told: the CREATED entry and a ConversationAdded event.
    entry: EntryPush = await b.next_push(EntryPush)
    assert entry.entry.conversation_id == cid and entry.entry.seq == 1
    assert isinstance(entry.entry.body, Membership)
    assert entry.entry.body.action == MembershipAction.CREATED
    event: EventPush = await b.next_push(EventPush)
    assert isinstance(event.event.body, ConversationAdded)
    assert event.event.body.conversation_id == cid and event.event.body.by == alice.user_id
    # Only one CREATED entry exists despite three opens.
    page: HistoryPage = await b.call(History(conversation_id=cid))
    assert [e.seq for e in page.entries] == [1] and page.last_seq == 1
    assert (await a.fail(DirectOpen(user_id=alice.user_id))).code == "conflict"
    assert (await a.fail(DirectOpen(user_id="no-such-user"))).code == "unknown_user"
    await a.close()
    await b.close()


async def test_group_lifecycle(server: ServerProcess) -> None:
    owner, bob, carol, dave = (
        new_user(server.http_url, p)[0] for p in ("own", "bob", "carol", "dave")
    )
    o = await _login(server, owner)
    b = await _login(server, bob)
    c = await _login(server, carol)

    created: Conversation = await o.call(GroupCreate(members=[bob.user_id], meta=b"\x00enc-name"))
    cid = created.info.conversation_id
    assert created.info.kind == ConversationKind.GROUP and created.info.meta == b"\x00enc-name"
    assert _roles(created) == {owner.user_id: Role.OWNER, bob.user_id: Role.MEMBER}

    err = await o.fail(GroupInvite(conversation_id=cid, user_ids=[bob.user_id]))
    assert err.code == "already_member"
    err = await o.fail(GroupInvite(conversation_id=cid, user_ids=["nobody-at-all"]))
    assert err.code == "unknown_user"

    invited: Conversation = await o.call(
        GroupInvite(conversation_id=cid, user_ids=[carol.user_id, dave.user_id])
    )
    assert set(_roles(invited)) == {owner.user_id, bob.user_id, carol.user_id, dave.user_id}
    pushed: EntryPush = await c.next_push(EntryPush)  # carol's device sees the JOINED entry
    assert (
        isinstance(pushed.entry.body, Membership)
        and pushed.entry.body.action == MembershipAction.JOINED
    )

    promoted: Conversation = await o.call(
        GroupSetRole(conversation_id=cid, user_id=carol.user_id, role=Role.ADMIN)
    )
    assert _roles(promoted)[carol.user_id] == Role.ADMIN
    renamed: Conversation = await c.call(GroupRename(conversation_id=cid, meta=b"\x00new-name"))
    assert renamed.info.meta == b"\x00new-name"
    removed: Conversation = await c.call(GroupRemove(conversation_id=cid, user_id=dave.user_id))
    assert dave.user_id not in _roles(removed)
    assert isinstance(await b.call(GroupLeave(conversation_id=cid)), Ok)

    # Ownership transfer: carol becomes owner, the old owner becomes admin.
    transferred: Conversation = await o.call(
        GroupSetRole(conversation_id=cid, user_id=carol.user_id, role=Role.OWNER)
    )
    assert _roles(transferred) == {carol.user_id: Role.OWNER, owner.user_id: Role.ADMIN}
    # Carol (owner) leaves: ownership passes to the remaining admin.
    await c.call(GroupLeave(conversation_id=cid))
    page: HistoryPage = await o.call(History(conversation_id=cid))
    actions = [
        (e.body.action, list(e.body.targets))
        for e in page.entries
        if isinstance(e.body, Membership)
    ]
    assert [e.seq for e in page.entries] == list(range(1, len(page.entries) + 1))  # gap-free
    assert actions == [
        (MembershipAction.CREATED, actions[0][1]),
        (MembershipAction.JOINED, [carol.user_id, dave.user_id]),
        (MembershipAction.ROLE_CHANGED, [carol.user_id]),
        (MembershipAction.RENAMED, []),
        (MembershipAction.REMOVED, [dave.user_id]),
        (MembershipAction.LEFT, [bob.user_id]),
        (MembershipAction.ROLE_CHANGED, [carol.user_id]),
        (MembershipAction.ROLE_CHANGED, [owner.user_id]),
        (MembershipAction.LEFT, [carol.user_id]),
    ]
    now: Conversation = await o.call(GroupRename(conversation_id=cid, meta=b"x"))
    assert _roles(now) == {owner.user_id: Role.OWNER}

    # Sync of the events: bob saw added, changes, then his own removal (left).
    bob_sync: SyncReply = await b.call(SyncRequest())
    bob_events = [
        e.body for e in bob_sync.events if getattr(e.body, "conversation_id", None) == cid
    ]
    assert isinstance(bob_events[0], ConversationAdded)
    assert (
        isinstance(bob_events[-1], ConversationRemoved)
        and bob_events[-1].action == MembershipAction.LEFT
    )
    assert any(isinstance(ev, ConversationChanged) for ev in bob_events)
    assert [e.seq for e in bob_sync.events] == sorted(e.seq for e in bob_sync.events)

    # Disband; sends then answer "disbanded", and members keep read access.
    assert isinstance(await o.call(GroupDisband(conversation_id=cid)), Ok)
    err = await o.fail(Send(conversation_id=cid, client_msg_id="late", envelope=envelope_for(cid)))
    assert err.code == "disbanded"
    assert (await o.fail(GroupRename(conversation_id=cid, meta=b"y"))).code == "disbanded"
    final: HistoryPage = await o.call(History(conversation_id=cid))
    last = final.entries[-1].body
    assert isinstance(last, Membership) and last.action == MembershipAction.DISBANDED
    for client in (o, b, c):
        await client.close()


async def test_last_member_leaving_disbands(server: ServerProcess) -> None:
    (solo,) = new_user(server.http_url, "solo")
    s = await _login(server, solo)
    conv: Conversation = await s.call(GroupCreate())
    cid = conv.info.conversation_id
    await s.call(GroupLeave(conversation_id=cid))
    assert (await s.fail(History(conversation_id=cid))).code == "not_member"
    event: EventPush = await s.next_push(EventPush)
    while not isinstance(event.event.body, ConversationRemoved):
        event = await s.next_push(EventPush)
    assert event.event.body.conversation_id == cid
    await s.close()


async def test_conv_list_pages(server: ServerProcess) -> None:
    (u,) = new_user(server.http_url, "list")
    c = await _login(server, u)
    made = sorted([(await c.call(GroupCreate())).info.conversation_id for _ in range(5)])
    seen: list[bytes] = []
    after = None
    for _ in range(10):
        page: ConversationPage = await c.call(ConvList(after=after, limit=2))
        seen += [i.conversation_id for i in page.conversations]
        if page.next is None:
            break
        after = page.next
    assert seen == made
    await c.close()


@pytest.mark.parametrize("n", [0, 1])
async def test_group_create_refuses_unknown_members(server: ServerProcess, n: int) -> None:
    (u,) = new_user(server.http_url, "gc")
    c = await _login(server, u)
    members = ["ghost"] if n else ["ghost", u.user_id]
    assert (await c.fail(GroupCreate(members=members))).code == "unknown_user"
    page: ConversationPage = await c.call(ConvList())
    assert page.conversations == []
    await c.close()
