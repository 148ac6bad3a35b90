"""Lookup, profile settings, friend requests, contacts and blocks against the real server."""

from __future__ import annotations

import httpx
import msgspec

from parley.protocol.frames import Error
from parley.protocol.ops import DirectOpen, GroupCreate, Ok, Send, SyncReply, SyncRequest
from parley.protocol.records import (
    BlockChanged,
    ContactAdded,
    ContactRemoved,
    FriendRequestClosed,
    FriendRequestOpened,
    FriendRequestOutcome,
)
from parley.protocol.social import (
    Block,
    ContactList,
    ContactRemove,
    Contacts,
    FriendAccept,
    FriendCancel,
    FriendReject,
    FriendRequest,
    FriendRequested,
    FriendRequestList,
    FriendRequests,
    Profile,
    ProfileGet,
    ProfileSet,
    ReadMark,
    Recall,
    Receipts,
    Typing,
    Unblock,
    UserLookup,
    UserMatches,
)
from tests.integration.social_support import befriend, connect, direct, next_event, users
from tests.support.accounts import new_user
from tests.support.rawclient import envelope_for, still_serves
from tests.support.server import ServerProcess


async def test_lookup_by_username_email_phone_and_hiding(social_server: ServerProcess) -> None:
    alice, bob = users(social_server, "alice", "bob")
    a = await connect(social_server, alice)
    b = await connect(social_server, bob)
    try:
        found: UserMatches = await a.call(UserLookup(username=bob.username.upper()))
        assert [u.user_id for u in found.users] == [bob.user_id]
        email = f"{bob.username}@Example.ORG"
        prof: Profile = await b.call(ProfileSet(email=f"  {email} ", phone="+1 (555) 010-9999"))
        assert prof.email == email.lower() and prof.phone == "+15550109999"
        by_mail: UserMatches = await a.call(UserLookup(email=email.upper()))
        by_phone: UserMatches = await a.call(UserLookup(phone="001 555 010 9999"))
        assert [u.user_id for u in by_mail.users] == [bob.user_id]
        assert [u.user_id for u in by_phone.users] == [bob.user_id]
        # hidden: the same empty answer as for nobody, on every lookup path
        await b.call(ProfileSet(hidden=True))
        for q in (
            UserLookup(username=bob.username),
            UserLookup(email=email),
            UserLookup(phone="+15550109999"),
        ):
            assert (await a.call(q)).users == []
        assert (await a.call(UserLookup(username="nobody_" + bob.username))).users == []
        r = httpx.get(
            f"{social_server.http_url}/api/v1/users/{bob.username}",
            headers={"Authorization": f"Bearer {alice.token}"},
        )
        assert r.status_code == 404 and r.json()["code"] == "not_found"
        # settings read back; clearing email
        got: Profile = await b.call(ProfileGet())
        assert got.hidden and got.read_receipts and got.last_seen_visible
        assert (await b.call(ProfileSet(email=""))).email is None
        # bad input
        assert (await a.fail(UserLookup())).code == "invalid"
        assert (await a.fail(UserLookup(username="x", email="y@z.io"))).code == "invalid"
        assert (await a.fail(UserLookup(email="not-an-email"))).code == "invalid"
        assert (await a.fail(UserLookup(phone="12345"))).code == "invalid"
        assert (await b.fail(ProfileSet(phone="+12"))).code == "invalid"
        assert (await b.fail(ProfileSet(email="x" * 300))).code == "too_large"
    finally:
        await a.close()
        await b.close()
    await still_serves(social_server.ws_url, alice.token)


async def test_request_accept_events_reach_offline_user_then_direct_chat(
    social_server: ServerProcess,
) -> None:
    alice, bob = users(social_server, "alice", "bob")
    a = await connect(social_server, alice)
    try:
        # not contacts: the default policy refuses a direct chat
        assert (await a.fail(DirectOpen(user_id=bob.user_id))).code == "not_contact"
        sent: FriendRequested = await a.call(FriendRequest(user_id=bob.user_id, note="it's me"))
        assert sent.contact is False
        again: FriendRequested = await a.call(FriendRequest(user_id=bob.user_id))
        assert again.contact is False  # idempotent
        # Bob was offline: he sees the request at his next sync
        b = await connect(social_server, bob)
        synced: SyncReply = await b.call(SyncRequest())
        opened = [e.body for e in synced.events if isinstance(e.body, FriendRequestOpened)]
        assert opened == [FriendRequestOpened(user_id=alice.user_id, incoming=True, note="it's me")]
        pending: FriendRequestList = await b.call(FriendRequests())
        assert [(p.user_id, p.note) for p in pending.incoming] == [(alice.user_id, "it's me")]
        assert pending.outgoing == []
        mine: FriendRequestList = await a.call(FriendRequests())
        assert [p.user_id for p in mine.outgoing] == [bob.user_id]
        assert isinstance(await b.call(FriendAccept(user_id=alice.user_id)), Ok)
        closed = await next_event(a, FriendRequestClosed)
        assert closed == FriendRequestClosed(
            user_id=bob.user_id, incoming=False, outcome=FriendRequestOutcome.ACCEPTED
        )
        assert await next_event(a, ContactAdded) == ContactAdded(user_id=bob.user_id)
        contacts: Contacts = await a.call(ContactList())
        assert [c.user_id for c in contacts.contacts] == [bob.user_id]
        cid = await direct(a, bob.user_id)
        assert await direct(b, alice.user_id) == cid
        # answered: nothing pending; answering again is not_found
        assert (await b.fail(FriendAccept(user_id=alice.user_id))).code == "not_found"
        assert (await a.fail(FriendRequest(user_id=bob.user_id))).code == "conflict"
        # removing the contact closes the direct chat for new messages
        assert isinstance(await b.call(ContactRemove(user_id=alice.user_id)), Ok)
        env = envelope_for(cid)
        assert (await a.fail(Send(conversation_id=cid, client_msg_id="m1", envelope=env))).code == (
            "not_contact"
        )
        assert (await a.fail(ContactRemove(user_id=bob.user_id))).code == "not_found"
        assert await next_event(a, ContactRemoved) == ContactRemoved(user_id=bob.user_id)
        await b.close()
    finally:
        await a.close()


async def test_reject_cancel_and_mutual_requests(social_server: ServerProcess) -> None:
    alice, bob, carol = users(social_server, "alice", "bob", "carol")
    a, b, c = [await connect(social_server, u) for u in (alice, bob, carol)]
    try:
        await a.call(FriendRequest(user_id=bob.user_id))
        assert isinstance(await b.call(FriendReject(user_id=alice.user_id)), Ok)
        rejected = await next_event(a, FriendRequestClosed)
        assert rejected.outcome == FriendRequestOutcome.REJECTED
        await a.call(FriendRequest(user_id=carol.user_id))
        assert isinstance(await a.call(FriendCancel(user_id=carol.user_id)), Ok)
        assert (await c.call(FriendRequests())).incoming == []
        assert (await a.fail(FriendCancel(user_id=carol.user_id))).code == "not_found"
        # both ask: the second request makes them contacts
        await b.call(FriendRequest(user_id=carol.user_id))
        mutual: FriendRequested = await c.call(FriendRequest(user_id=bob.user_id))
        assert mutual.contact is True
        assert [x.user_id for x in (await b.call(ContactList())).contacts] == [carol.user_id]
        # bad input: yourself, unknown users, missing fields, a note too long
        assert (await a.fail(FriendRequest(user_id=alice.user_id))).code == "conflict"
        assert (await a.fail(FriendRequest(user_id="no-such-user"))).code == "unknown_user"
        assert (await a.fail(FriendRequest(user_id=bob.user_id, note="x" * 281))).code == (
            "too_large"
        )
        assert (await a.fail(FriendAccept(user_id="no-such-user"))).code == "not_found"
        assert (await a.fail(Unblock(user_id=bob.user_id))).code == "not_found"
        assert (await a.fail(Block(user_id="no-such-user"))).code == "unknown_user"
        # a friend_request without its user_id
        await a.send_raw(
            msgspec.msgpack.encode({"t": "req", "id": 99, "op": {"t": "friend_request"}})
        )
        err = await a.next_reply(99)
        assert isinstance(err, Error) and err.code == "invalid"
    finally:
        for x in (a, b, c):
            await x.close()
    await still_serves(social_server.ws_url, alice.token)


async def test_block_refuses_requests_direct_chats_and_messages(
    social_server: ServerProcess,
) -> None:
    alice, bob, carol = users(social_server, "alice", "bob", "carol")
    a, b, c = [await connect(social_server, u) for u in (alice, bob, carol)]
    try:
        await befriend(a, b, alice.user_id, bob.user_id)
        cid = await direct(a, bob.user_id)
        await b.call(FriendRequest(user_id=carol.user_id))
        assert isinstance(await c.call(Block(user_id=bob.user_id)), Ok)
        assert isinstance(await c.call(Block(user_id=bob.user_id)), Ok)  # idempotent
        # Carol's pending request from Bob is dropped; Bob cannot ask again
        assert (await c.call(FriendRequests())).incoming == []
        assert (await b.fail(FriendRequest(user_id=carol.user_id))).code == "blocked"
        assert (await b.fail(DirectOpen(user_id=carol.user_id))).code == "blocked"
        # nor pull Carol into a group (groups are otherwise open)
        g = await b.fail(GroupCreate(members=[carol.user_id, alice.user_id]))
        assert g.code == "blocked"
        blocked: Contacts = await c.call(ContactList())
        assert blocked.blocked == [bob.user_id]
        # Alice blocks Bob: the contact goes, his messages in their direct chat are refused
        await a.call(Block(user_id=bob.user_id))
        env = envelope_for(cid)
        refused = await b.fail(Send(conversation_id=cid, client_msg_id="x", envelope=env))
        assert refused.code == "blocked"
        assert (await a.call(ContactList())).contacts == []
        assert await next_event(a, BlockChanged) == BlockChanged(user_id=bob.user_id, blocked=True)
        # unblocking does not restore the contact: a new request is needed
        await a.call(Unblock(user_id=bob.user_id))
        still = await b.fail(Send(conversation_id=cid, client_msg_id="y", envelope=env))
        assert still.code == "not_contact"
    finally:
        for x in (a, b, c):
            await x.close()


async def test_strangers_in_open_policy_server(server: ServerProcess) -> None:
    """With direct_open_to_all (the spine's test server) blocks still apply."""
    (alice,) = new_user(server.http_url, "alice")
    (bob,) = new_user(server.http_url, "bob")
    a = await connect(server, alice)
    b = await connect(server, bob)
    try:
        cid = await direct(a, bob.user_id)
        await b.call(Block(user_id=alice.user_id))
        err = await a.fail(Send(conversation_id=cid, client_msg_id="1", envelope=envelope_for(cid)))
        assert err.code == "blocked"
        assert (await a.fail(DirectOpen(user_id=bob.user_id))).code == "blocked"
    finally:
        await a.close()
        await b.close()


async def test_only_the_parties_can_answer_and_unknown_ids(social_server: ServerProcess) -> None:
    """Identity comes from the session: a third user cannot touch a request between two
    others, nobody can accept their own request, and unknown conversations leak nothing."""
    alice, bob, mallory = users(social_server, "alice", "bob", "mallory")
    a, b, m = [await connect(social_server, u) for u in (alice, bob, mallory)]
    try:
        await a.call(FriendRequest(user_id=bob.user_id, note="private"))
        for op in (
            FriendAccept(user_id=alice.user_id),
            FriendReject(user_id=alice.user_id),
            FriendCancel(user_id=bob.user_id),
        ):
            assert (await m.fail(op)).code == "not_found"
        assert (await a.fail(FriendAccept(user_id=bob.user_id))).code == "not_found"
        assert (await b.fail(FriendCancel(user_id=alice.user_id))).code == "not_found"
        seen: FriendRequestList = await m.call(FriendRequests())
        assert seen.incoming == [] and seen.outgoing == []
        assert (await m.call(ContactList())).contacts == []
        assert (await m.fail(Block(user_id=mallory.user_id))).code == "conflict"
        # the request is untouched and still answerable by Bob
        assert isinstance(await b.call(FriendReject(user_id=alice.user_id)), Ok)
        ghost = bytes(16)
        for op in (
            Recall(conversation_id=ghost, seq=1),
            ReadMark(conversation_id=ghost, seq=1),
            Receipts(conversation_id=ghost),
            Typing(conversation_id=ghost, typing=True),
        ):
            assert (await m.fail(op)).code == "not_member"
        # a malformed conversation id is invalid, not a lookup
        await m.send_raw(
            msgspec.msgpack.encode(
                {"t": "req", "id": 7, "op": {"t": "recall", "conversation_id": b"x", "seq": 1}}
            )
        )
        err = await m.next_reply(7)
        assert isinstance(err, Error) and err.code == "invalid"
    finally:
        for x in (a, b, m):
            await x.close()
    await still_serves(social_server.ws_url, mallory.token)
