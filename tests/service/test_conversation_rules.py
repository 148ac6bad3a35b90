"""Authorization rules of ``service/conversations.py``, in process (see conftest.py).

Who may do what to a conversation: members only (existence never leaks), roles for group
changes, contacts and blocks for direct chats, limits on size and metadata.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable

import pytest

from parley.protocol import social
from parley.protocol.errors import ErrorCode
from parley.protocol.ops import (
    ConvGet,
    ConvList,
    DirectOpen,
    GroupCreate,
    GroupDisband,
    GroupInvite,
    GroupLeave,
    GroupRemove,
    GroupRename,
    GroupSetRole,
)
from parley.protocol.types import Role
from parley_server.service.context import Session
from parley_server.service.errors import ServiceError

from .conftest import Harness


async def _fails(call: Awaitable[object], code: ErrorCode) -> None:
    with pytest.raises(ServiceError) as info:
        await call
    assert info.value.code == code


async def _group(h: Harness, owner: Session, *members: Session) -> bytes:
    """A group of ``owner`` and ``members``, added at once (they are the owner's contacts)."""
    for m in members:
        await h.befriend(owner, m)
    conv = await h.app.conversations.group_create(
        owner, GroupCreate(members=[m.user_id for m in members])
    )
    return conv.info.conversation_id


def _roles(conv: object) -> dict[str, Role]:
    info = conv.info  # type: ignore[attr-defined]
    return {m.user_id: m.role for m in info.members}


async def test_a_non_member_learns_nothing_and_a_missing_conversation_looks_the_same(
    harness: Harness,
) -> None:
    c = harness.app.conversations
    owner, member, outsider = [await harness.user() for _ in range(3)]
    cid = await _group(harness, owner, member)
    missing = uuid.uuid4().bytes
    for conversation_id in (cid, missing):
        await _fails(c.get(outsider, ConvGet(conversation_id)), ErrorCode.NOT_MEMBER)
        await _fails(c.group_leave(outsider, GroupLeave(conversation_id)), ErrorCode.NOT_MEMBER)
        await _fails(
            c.group_invite(outsider, GroupInvite(conversation_id, [outsider.user_id])),
            ErrorCode.NOT_MEMBER,
        )
        await _fails(c.group_disband(outsider, GroupDisband(conversation_id)), ErrorCode.NOT_MEMBER)
    assert (await c.get(member, ConvGet(cid))).info.conversation_id == cid
    page = await c.list_page(outsider, ConvList())
    assert page.conversations == []


async def test_only_owner_and_admins_invite_and_rename(harness: Harness) -> None:
    c = harness.app.conversations
    owner, member, guest = [await harness.user() for _ in range(3)]
    cid = await _group(harness, owner, member)
    await _fails(c.group_invite(member, GroupInvite(cid, [guest.user_id])), ErrorCode.FORBIDDEN)
    await _fails(c.group_rename(member, GroupRename(cid, b"name")), ErrorCode.FORBIDDEN)
    await c.group_set_role(owner, GroupSetRole(cid, member.user_id, Role.ADMIN))
    await harness.befriend(member, guest)
    conv = await c.group_invite(member, GroupInvite(cid, [guest.user_id]))  # now an admin
    assert _roles(conv)[guest.user_id] == Role.MEMBER
    await c.group_rename(member, GroupRename(cid, b"name"))
    await _fails(c.group_invite(owner, GroupInvite(cid, [guest.user_id])), ErrorCode.ALREADY_MEMBER)
    await _fails(c.group_invite(owner, GroupInvite(cid, [])), ErrorCode.INVALID)
    await _fails(
        c.group_invite(owner, GroupInvite(cid, [str(uuid.uuid4())])), ErrorCode.UNKNOWN_USER
    )


@pytest.mark.settings(max_group_members=3, max_meta_bytes=8)
async def test_group_size_and_metadata_limits(harness: Harness) -> None:
    c = harness.app.conversations
    a, b, d, e = [await harness.user() for _ in range(4)]
    await _fails(c.group_create(a, GroupCreate(members=[b.user_id, d.user_id, e.user_id])),
                 ErrorCode.TOO_LARGE)  # fmt: skip
    await _fails(c.group_create(a, GroupCreate(meta=b"x" * 9)), ErrorCode.TOO_LARGE)
    cid = await _group(harness, a, b, d)
    await _fails(c.group_invite(a, GroupInvite(cid, [e.user_id])), ErrorCode.TOO_LARGE)
    await _fails(c.group_rename(a, GroupRename(cid, b"x" * 9)), ErrorCode.TOO_LARGE)
    await c.group_rename(a, GroupRename(cid, b"x" * 8))


async def test_admins_remove_members_only_and_nobody_removes_themselves(
    harness: Harness,
) -> None:
    c = harness.app.conversations
    owner, admin, admin2, member = [await harness.user() for _ in range(4)]
    cid = await _group(harness, owner, admin, admin2, member)
    for who in (admin, admin2):
        await c.group_set_role(owner, GroupSetRole(cid, who.user_id, Role.ADMIN))
    await _fails(c.group_remove(admin, GroupRemove(cid, admin2.user_id)), ErrorCode.FORBIDDEN)
    await _fails(c.group_remove(admin, GroupRemove(cid, owner.user_id)), ErrorCode.FORBIDDEN)
    await _fails(c.group_remove(member, GroupRemove(cid, admin.user_id)), ErrorCode.FORBIDDEN)
    await _fails(c.group_remove(owner, GroupRemove(cid, owner.user_id)), ErrorCode.CONFLICT)
    removed = await harness.listen(member)
    conv = await c.group_remove(admin, GroupRemove(cid, member.user_id))
    assert member.user_id not in _roles(conv)
    assert removed.frames  # the removed member is told
    await _fails(c.group_remove(admin, GroupRemove(cid, member.user_id)), ErrorCode.NOT_FOUND)
    await _fails(c.get(member, ConvGet(cid)), ErrorCode.NOT_MEMBER)
    conv = await c.group_remove(owner, GroupRemove(cid, admin2.user_id))  # the owner may
    assert admin2.user_id not in _roles(conv)


async def test_only_the_owner_sets_roles_and_a_transfer_demotes_them_to_admin(
    harness: Harness,
) -> None:
    c = harness.app.conversations
    owner, admin, member = [await harness.user() for _ in range(3)]
    cid = await _group(harness, owner, admin, member)
    await c.group_set_role(owner, GroupSetRole(cid, admin.user_id, Role.ADMIN))
    await _fails(c.group_set_role(admin, GroupSetRole(cid, member.user_id, Role.ADMIN)),
                 ErrorCode.FORBIDDEN)  # fmt: skip
    await _fails(c.group_set_role(owner, GroupSetRole(cid, owner.user_id, Role.MEMBER)),
                 ErrorCode.CONFLICT)  # fmt: skip
    outsider = await harness.user()
    await _fails(c.group_set_role(owner, GroupSetRole(cid, outsider.user_id, Role.ADMIN)),
                 ErrorCode.NOT_FOUND)  # fmt: skip
    conv = await c.group_set_role(owner, GroupSetRole(cid, member.user_id, Role.OWNER))
    roles = _roles(conv)
    assert roles[member.user_id] == Role.OWNER and roles[owner.user_id] == Role.ADMIN
    await _fails(c.group_disband(owner, GroupDisband(cid)), ErrorCode.FORBIDDEN)


async def test_a_leaving_owner_hands_over_to_an_admin_else_to_a_member(harness: Harness) -> None:
    """The heir is the first admin, else the first member, in the store's member order (by
    user id): deterministic, so every member's view agrees."""
    c = harness.app.conversations
    owner, one, two, three = [await harness.user() for _ in range(4)]
    cid = await _group(harness, owner, one, two, three)
    admin = max(one, two, three, key=lambda s: s.user_id)  # not first by user id
    await c.group_set_role(owner, GroupSetRole(cid, admin.user_id, Role.ADMIN))
    await c.group_leave(owner, GroupLeave(cid))
    roles = _roles(await c.get(admin, ConvGet(cid)))
    assert owner.user_id not in roles and roles[admin.user_id] == Role.OWNER
    assert list(roles.values()).count(Role.OWNER) == 1

    cid2 = await _group(harness, owner, one, two, three)  # no admin: the first member
    await c.group_leave(owner, GroupLeave(cid2))
    roles = _roles(await c.get(one, ConvGet(cid2)))
    first = min(one, two, three, key=lambda s: s.user_id)
    assert roles[first.user_id] == Role.OWNER
    assert list(roles.values()).count(Role.OWNER) == 1


async def test_the_last_member_leaving_ends_the_group(harness: Harness) -> None:
    c = harness.app.conversations
    owner = await harness.user()
    cid = await _group(harness, owner)
    await c.group_leave(owner, GroupLeave(cid))
    await _fails(c.get(owner, ConvGet(cid)), ErrorCode.NOT_MEMBER)


async def test_a_disbanded_group_stays_readable_but_changes_nothing(harness: Harness) -> None:
    c = harness.app.conversations
    owner, admin, member = [await harness.user() for _ in range(3)]
    cid = await _group(harness, owner, admin, member)
    await c.group_set_role(owner, GroupSetRole(cid, admin.user_id, Role.ADMIN))
    await _fails(c.group_disband(admin, GroupDisband(cid)), ErrorCode.FORBIDDEN)
    await c.group_disband(owner, GroupDisband(cid))
    info = (await c.get(member, ConvGet(cid))).info
    assert info.disbanded
    guest = await harness.user()
    await _fails(c.group_invite(owner, GroupInvite(cid, [guest.user_id])), ErrorCode.DISBANDED)
    await _fails(c.group_rename(admin, GroupRename(cid, b"n")), ErrorCode.DISBANDED)
    await _fails(c.group_disband(owner, GroupDisband(cid)), ErrorCode.DISBANDED)


async def test_direct_chats_need_contacts_and_no_block(harness: Harness) -> None:
    c = harness.app.conversations
    a, b = await harness.user(), await harness.user()
    await _fails(c.direct_open(a, DirectOpen(a.user_id)), ErrorCode.CONFLICT)
    await _fails(c.direct_open(a, DirectOpen(str(uuid.uuid4()))), ErrorCode.UNKNOWN_USER)
    await _fails(c.direct_open(a, DirectOpen(b.user_id)), ErrorCode.NOT_CONTACT)
    await harness.befriend(a, b)
    cid = (await c.direct_open(a, DirectOpen(b.user_id))).info.conversation_id
    assert (await c.direct_open(b, DirectOpen(a.user_id))).info.conversation_id == cid  # one
    for op in (
        GroupInvite(cid, [a.user_id]),
        GroupRename(cid, b"n"),
        GroupDisband(cid),
    ):
        call = {
            GroupInvite: c.group_invite,
            GroupRename: c.group_rename,
            GroupDisband: c.group_disband,
        }[type(op)]
        await _fails(call(a, op), ErrorCode.FORBIDDEN)  # type: ignore[operator]
    await _fails(c.group_leave(a, GroupLeave(cid)), ErrorCode.FORBIDDEN)
    await harness.app.social.block(b, social.Block(user_id=a.user_id))
    await _fails(c.direct_open(a, DirectOpen(b.user_id)), ErrorCode.BLOCKED)
    info = (await c.get(a, ConvGet(cid))).info
    await _fails(c.check_direct_peer(a, info), ErrorCode.BLOCKED)


@pytest.mark.settings(direct_open_to_all=True)
async def test_direct_open_to_all_drops_the_contact_rule_but_not_blocks(
    harness: Harness,
) -> None:
    c = harness.app.conversations
    a, b = await harness.user(), await harness.user()
    await c.direct_open(a, DirectOpen(b.user_id))
    await harness.app.social.block(b, social.Block(user_id=a.user_id))
    await _fails(c.direct_open(a, DirectOpen(b.user_id)), ErrorCode.BLOCKED)


async def test_nobody_pulls_a_user_who_blocked_them_into_a_group(harness: Harness) -> None:
    c = harness.app.conversations
    a, b, d = [await harness.user() for _ in range(3)]
    await harness.app.social.block(b, social.Block(user_id=a.user_id))
    await _fails(c.group_create(a, GroupCreate(members=[b.user_id])), ErrorCode.BLOCKED)
    cid = await _group(harness, a, d)
    await _fails(c.group_invite(a, GroupInvite(cid, [b.user_id])), ErrorCode.BLOCKED)
    cid2 = await _group(harness, d, b)  # someone b did not block may add b
    assert b.user_id in _roles(await c.get(d, ConvGet(cid2)))


async def test_a_non_contact_is_invited_not_added(harness: Harness) -> None:
    """Default policy (``group_direct_add=contacts``): contacts join at once, anyone else gets
    an invitation and is not a member until they accept."""
    c = harness.app.conversations
    owner, friend, stranger, later = [await harness.user() for _ in range(4)]
    await harness.befriend(owner, friend)
    conv = await c.group_create(owner, GroupCreate(members=[friend.user_id, stranger.user_id]))
    assert set(_roles(conv)) == {owner.user_id, friend.user_id}
    assert conv.invited == [stranger.user_id]
    await _fails(c.get(stranger, ConvGet(conv.info.conversation_id)), ErrorCode.NOT_MEMBER)
    conv = await c.group_invite(owner, GroupInvite(conv.info.conversation_id, [later.user_id]))
    assert later.user_id not in _roles(conv) and conv.invited == [later.user_id]


@pytest.mark.settings(group_direct_add="none")
async def test_policy_none_invites_even_contacts(harness: Harness) -> None:
    c = harness.app.conversations
    owner, friend = await harness.user(), await harness.user()
    await harness.befriend(owner, friend)
    conv = await c.group_create(owner, GroupCreate(members=[friend.user_id]))
    assert set(_roles(conv)) == {owner.user_id} and conv.invited == [friend.user_id]


@pytest.mark.settings(group_direct_add="anyone")
async def test_policy_anyone_adds_strangers(harness: Harness) -> None:
    c = harness.app.conversations
    owner, stranger = await harness.user(), await harness.user()
    conv = await c.group_create(owner, GroupCreate(members=[stranger.user_id]))
    assert stranger.user_id in _roles(conv) and conv.invited == []
