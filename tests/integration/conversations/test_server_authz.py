"""Authorization: every conversation op refuses non-members (not_member, no data) and members
whose role does not allow it (forbidden). Identity comes only from the session."""

from __future__ import annotations

import uuid

import pytest

from parley.protocol.frames import Error
from parley.protocol.ops import (
    Conversation,
    ConvGet,
    DirectOpen,
    GroupCreate,
    GroupDisband,
    GroupInvite,
    GroupLeave,
    GroupRemove,
    GroupRename,
    GroupSetRole,
    History,
    Op,
    Send,
)
from parley.protocol.types import Role
from tests.support.accounts import Login, new_user
from tests.support.rawclient import RawClient, envelope_for
from tests.support.server import ServerProcess


def all_conversation_ops(cid: bytes, someone: str) -> list[Op]:
    return [
        Send(conversation_id=cid, client_msg_id="x", envelope=envelope_for(cid)),
        History(conversation_id=cid),
        History(conversation_id=cid, after_seq=0),
        GroupInvite(conversation_id=cid, user_ids=[someone]),
        GroupLeave(conversation_id=cid),
        GroupRemove(conversation_id=cid, user_id=someone),
        GroupSetRole(conversation_id=cid, user_id=someone, role=Role.ADMIN),
        GroupRename(conversation_id=cid, meta=b"name"),
        GroupDisband(conversation_id=cid),
        ConvGet(conversation_id=cid),
    ]


def assert_no_data(err: Error, *secrets: str) -> None:
    text = err.message
    for s in secrets:
        assert s not in text


class Trio:
    def __init__(self, server: ServerProcess) -> None:
        self.owner, self.member, self.outsider = (
            new_user(server.http_url, p)[0] for p in ("own", "mem", "out")
        )


@pytest.fixture
def trio(server: ServerProcess) -> Trio:
    return Trio(server)


async def _login(server: ServerProcess, who: Login) -> RawClient:
    return await RawClient.login(server.ws_url, who.token)


async def test_non_member_gets_not_member_for_every_op(server: ServerProcess, trio: Trio) -> None:
    owner = await _login(server, trio.owner)
    outsider = await _login(server, trio.outsider)
    group: Conversation = await owner.call(GroupCreate(members=[trio.member.user_id], meta=b"m"))
    direct: Conversation = await owner.call(DirectOpen(user_id=trio.member.user_id))
    missing = uuid.uuid4().bytes
    for cid in (group.info.conversation_id, direct.info.conversation_id, missing):
        for op in all_conversation_ops(cid, trio.member.user_id):
            err = await outsider.fail(op)
            assert err.code == "not_member", (type(op).__name__, err)
            assert_no_data(err, trio.owner.user_id, trio.member.user_id, cid.hex())
    # Nothing changed for the members: the group still has its two members and one entry.
    info: Conversation = await owner.call(ConvGet(conversation_id=group.info.conversation_id))
    assert {m.user_id for m in info.info.members} == {trio.owner.user_id, trio.member.user_id}
    assert info.info.last_seq == 1
    await owner.close()
    await outsider.close()


async def test_member_role_limits(server: ServerProcess, trio: Trio) -> None:
    (admin,) = new_user(server.http_url, "adm")
    owner = await _login(server, trio.owner)
    member = await _login(server, trio.member)
    admin_c = await _login(server, admin)
    group: Conversation = await owner.call(
        GroupCreate(members=[trio.member.user_id, admin.user_id])
    )
    cid = group.info.conversation_id
    await owner.call(GroupSetRole(conversation_id=cid, user_id=admin.user_id, role=Role.ADMIN))
    forbidden_for_member: list[Op] = [
        GroupInvite(conversation_id=cid, user_ids=[trio.outsider.user_id]),
        GroupRemove(conversation_id=cid, user_id=admin.user_id),
        GroupSetRole(conversation_id=cid, user_id=admin.user_id, role=Role.MEMBER),
        GroupRename(conversation_id=cid, meta=b"x"),
        GroupDisband(conversation_id=cid),
    ]
    for op in forbidden_for_member:
        err = await member.fail(op)
        assert err.code == "forbidden", (type(op).__name__, err)
    forbidden_for_admin: list[Op] = [
        GroupRemove(conversation_id=cid, user_id=trio.owner.user_id),
        GroupSetRole(conversation_id=cid, user_id=trio.member.user_id, role=Role.ADMIN),
        GroupDisband(conversation_id=cid),
    ]
    for op in forbidden_for_admin:
        err = await admin_c.fail(op)
        assert err.code == "forbidden", (type(op).__name__, err)
    # What an admin may do: rename, invite, remove a plain member.
    await admin_c.call(GroupRename(conversation_id=cid, meta=b"new"))
    await admin_c.call(GroupInvite(conversation_id=cid, user_ids=[trio.outsider.user_id]))
    after: Conversation = await admin_c.call(
        GroupRemove(conversation_id=cid, user_id=trio.member.user_id)
    )
    assert trio.member.user_id not in {m.user_id for m in after.info.members}
    # The removed member is now a non-member for everything.
    for op in all_conversation_ops(cid, trio.owner.user_id):
        assert (await member.fail(op)).code == "not_member"
    for c in (owner, member, admin_c):
        await c.close()


async def test_direct_refuses_group_ops(server: ServerProcess, trio: Trio) -> None:
    owner = await _login(server, trio.owner)
    direct: Conversation = await owner.call(DirectOpen(user_id=trio.member.user_id))
    cid = direct.info.conversation_id
    for op in all_conversation_ops(cid, trio.member.user_id)[3:9]:
        err = await owner.fail(op)
        assert err.code == "forbidden", (type(op).__name__, err)
    await owner.close()
