"""Group invitations under the default policy: contacts are added at once, anyone else is
asked and joins only by accepting; declining, disbanding and blocks end an invitation."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from parley.protocol import invites as inv
from parley.protocol import social as so
from parley.protocol.ops import (
    Conversation,
    ConvGet,
    GroupCreate,
    GroupDisband,
    GroupInvite,
    History,
    HistoryPage,
    SyncReply,
    SyncRequest,
)
from parley.protocol.records import GroupInviteClosed, GroupInvited, Membership
from tests.support.accounts import Login, new_user
from tests.support.rawclient import RawClient
from tests.support.server import ServerProcess


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("invites") / "data")  # product defaults
    server.start()
    yield server
    server.stop()


async def _befriend(a: RawClient, b: RawClient, a_login: Login, b_login: Login) -> None:
    await a.call(so.FriendRequest(user_id=b_login.user_id))
    await b.call(so.FriendAccept(user_id=a_login.user_id))


async def test_strangers_are_invited_and_join_only_by_accepting(srv: ServerProcess) -> None:
    (ann,) = new_user(srv.http_url, "ann")
    (ben,) = new_user(srv.http_url, "ben")
    (cat,) = new_user(srv.http_url, "cat")
    a, b, c = [await RawClient.login(srv.ws_url, u.token) for u in (ann, ben, cat)]
    await _befriend(a, b, ann, ben)  # ben is a contact, cat is not
    conv: Conversation = await a.call(GroupCreate(members=[ben.user_id, cat.user_id]))
    cid = conv.info.conversation_id
    assert {m.user_id for m in conv.info.members} == {ann.user_id, ben.user_id}
    assert conv.invited == [cat.user_id]
    # cat is not a member yet: nothing readable, and the invitation is listed and pushed
    assert (await c.fail(History(conversation_id=cid))).code == "not_member"
    pending: inv.GroupInviteList = await c.call(inv.GroupInvites())
    assert [(p.conversation_id, p.inviter, p.inviter_name) for p in pending.invites] == [
        (cid, ann.user_id, ann.username)
    ]
    synced: SyncReply = await c.call(SyncRequest())
    assert any(isinstance(e.body, GroupInvited) and e.body.by == ann.user_id for e in synced.events)
    joined: Conversation = await c.call(inv.GroupInviteAccept(conversation_id=cid))
    assert cat.user_id in {m.user_id for m in joined.info.members}
    page: HistoryPage = await c.call(History(conversation_id=cid))
    last = page.entries[-1].body
    assert isinstance(last, Membership) and last.actor == cat.user_id
    assert (await c.call(inv.GroupInvites())).invites == []
    # accepting again (another device, a retry) changes nothing
    again: Conversation = await c.call(inv.GroupInviteAccept(conversation_id=cid))
    assert again.info.last_seq == joined.info.last_seq
    for x in (a, b, c):
        await x.close()


async def test_invite_decline_and_disband_end_an_invitation(srv: ServerProcess) -> None:
    (ann,) = new_user(srv.http_url, "ann")
    (dan,) = new_user(srv.http_url, "dan")
    (eve,) = new_user(srv.http_url, "eve")
    a, d, e = [await RawClient.login(srv.ws_url, u.token) for u in (ann, dan, eve)]
    conv: Conversation = await a.call(GroupCreate(members=[]))
    cid = conv.info.conversation_id
    invited: Conversation = await a.call(
        GroupInvite(conversation_id=cid, user_ids=[dan.user_id, eve.user_id])
    )
    assert sorted(invited.invited) == sorted([dan.user_id, eve.user_id])
    assert {m.user_id for m in invited.info.members} == {ann.user_id}
    await d.call(inv.GroupInviteDecline(conversation_id=cid))
    assert (await d.fail(inv.GroupInviteAccept(conversation_id=cid))).code == "not_found"
    await a.call(GroupDisband(conversation_id=cid))
    assert (await e.call(inv.GroupInvites())).invites == []
    synced: SyncReply = await e.call(SyncRequest())
    outcomes = [ev.body.outcome for ev in synced.events if isinstance(ev.body, GroupInviteClosed)]
    assert outcomes == ["withdrawn"]
    assert (await e.fail(ConvGet(conversation_id=cid))).code == "not_member"
    for x in (a, d, e):
        await x.close()


async def test_a_user_who_blocked_you_cannot_be_invited(srv: ServerProcess) -> None:
    (ann,) = new_user(srv.http_url, "ann")
    (fay,) = new_user(srv.http_url, "fay")
    a, f = [await RawClient.login(srv.ws_url, u.token) for u in (ann, fay)]
    await f.call(so.Block(user_id=ann.user_id))
    assert (await a.fail(GroupCreate(members=[fay.user_id]))).code == "blocked"
    assert (await f.call(inv.GroupInvites())).invites == []
    for x in (a, f):
        await x.close()
