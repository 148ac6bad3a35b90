"""Co-members see each other's usernames (``member_names``), so a member list never shows ids:
also members who are not contacts and who hide from lookup; outsiders get ``not_member``."""

from __future__ import annotations

import os

from parley.protocol.ops import GroupCreate, GroupRemove
from parley.protocol.social import MemberCards, MemberNames, ProfileSet
from tests.integration.social_support import befriend, connect, users
from tests.support.server import ServerProcess


async def test_members_see_each_others_names(social_server: ServerProcess) -> None:
    alice, bob, carol, xavier = users(social_server, "alice", "bob", "carol", "xavier")
    a, b, c, x = [await connect(social_server, u) for u in (alice, bob, carol, xavier)]
    try:
        await c.call(ProfileSet(hidden=True))  # hidden from lookup, not from her groups
        # alice's contacts are added at once (others would be invited); bob and carol are
        # not contacts of each other
        await befriend(a, b, alice.user_id, bob.user_id)
        await befriend(a, c, alice.user_id, carol.user_id)
        conv = await a.call(GroupCreate(members=[bob.user_id, carol.user_id]))
        cid = conv.info.conversation_id
        want = {alice.user_id: alice.username, bob.user_id: bob.username,
                carol.user_id: carol.username}  # fmt: skip
        for client in (a, b, c):
            cards: MemberCards = await client.call(MemberNames(conversation_id=cid))
            assert {u.user_id: u.username for u in cards.users} == want
        # not a member: nothing about the conversation
        assert (await x.fail(MemberNames(conversation_id=cid))).code == "not_member"
        assert (await x.fail(MemberNames(conversation_id=os.urandom(16)))).code == "not_member"
        # removed: no longer a member
        await a.call(GroupRemove(conversation_id=cid, user_id=bob.user_id))
        assert (await b.fail(MemberNames(conversation_id=cid))).code == "not_member"
        cards = await a.call(MemberNames(conversation_id=cid))
        assert {u.user_id for u in cards.users} == {alice.user_id, carol.user_id}
        # malformed: a conversation id of the wrong size
        assert (await a.fail(MemberNames(conversation_id=b"short"))).code == "invalid"
    finally:
        for client in (a, b, c, x):
            await client.close()
