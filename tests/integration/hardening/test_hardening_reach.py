"""Who may reach whom: to-device only between contacts, co-members and one's own devices, with a
cap per (sender, recipient); friend-request notes are dropped from the server once answered."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from parley.protocol import social as so
from parley.protocol.ops import (
    Conversation,
    DirectOpen,
    SyncReply,
    SyncRequest,
    ToDeviceAck,
    ToDeviceMessage,
    ToDeviceSend,
    ToDeviceSent,
)
from parley.protocol.records import FriendRequestOpened
from tests.support.accounts import new_user
from tests.support.rawclient import RawClient
from tests.support.server import ServerProcess

CAP = 5


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"PARLEY_TO_DEVICE_QUEUE_MAX": str(CAP), "PARLEY_DIRECT_OPEN_TO_ALL": "true"}
    server = ServerProcess(tmp_path_factory.mktemp("reach") / "data", env=env)
    server.start()
    yield server
    server.stop()


def _td(user_id: str, device_id: int, body: bytes = b"x") -> ToDeviceSend:
    return ToDeviceSend(messages=[ToDeviceMessage(user_id=user_id, device_id=device_id, body=body)])


async def test_strangers_cannot_queue_to_device_items(srv: ServerProcess) -> None:
    (mallory,) = new_user(srv.http_url, "mal")
    (victim,) = new_user(srv.http_url, "vic")
    m = await RawClient.login(srv.ws_url, mallory.token)
    for device_id in (1, 2, 3):  # device ids are small integers: guessing them is free
        err = await m.fail(_td(victim.user_id, device_id))
        assert err.code in ("forbidden", "unknown_device")
    v = await RawClient.login(srv.ws_url, victim.token)
    synced: SyncReply = await v.call(SyncRequest())
    assert synced.to_device == []
    for c in (m, v):
        await c.close()


async def test_contacts_co_members_and_own_devices_may(srv: ServerProcess) -> None:
    alice1, alice2 = new_user(srv.http_url, "al", devices=2)
    (bob,) = new_user(srv.http_url, "bo")
    (carol,) = new_user(srv.http_url, "ca")
    a = await RawClient.login(srv.ws_url, alice1.token)
    # own other device: always
    assert (await a.call(_td(alice1.user_id, alice2.device_id))).count == 1
    # a co-member (a direct conversation here)
    conv: Conversation = await a.call(DirectOpen(user_id=bob.user_id))
    assert conv.info.conversation_id
    sent: ToDeviceSent = await a.call(_td(bob.user_id, bob.device_id))
    assert sent.count == 1
    # a contact without any shared conversation
    c = await RawClient.login(srv.ws_url, carol.token)
    assert (await a.fail(_td(carol.user_id, carol.device_id))).code == "forbidden"
    await a.call(so.FriendRequest(user_id=carol.user_id))
    await c.call(so.FriendAccept(user_id=alice1.user_id))
    assert (await a.call(_td(carol.user_id, carol.device_id))).count == 1
    for x in (a, c):
        await x.close()


async def test_queued_items_are_capped_per_sender_and_recipient(srv: ServerProcess) -> None:
    (alice,) = new_user(srv.http_url, "cap")
    (bob,) = new_user(srv.http_url, "capb")
    a = await RawClient.login(srv.ws_url, alice.token)
    await a.call(DirectOpen(user_id=bob.user_id))
    for i in range(CAP):
        await a.call(_td(bob.user_id, bob.device_id, b"%d" % i))
    err = await a.fail(_td(bob.user_id, bob.device_id))
    assert err.code == "rate_limited"
    # Bob syncs and acks: the queue empties and Alice may send again.
    b = await RawClient.login(srv.ws_url, bob.token)
    synced: SyncReply = await b.call(SyncRequest())
    assert len(synced.to_device) == CAP
    await b.call(ToDeviceAck(upto_seq=synced.to_device[-1].seq))
    assert (await a.call(_td(bob.user_id, bob.device_id))).count == 1
    for x in (a, b):
        await x.close()


@pytest.mark.parametrize("answer", ["accept", "reject", "cancel"])
async def test_friend_request_notes_are_dropped_once_answered(
    srv: ServerProcess, answer: str
) -> None:
    (alice,) = new_user(srv.http_url, "na")
    (bob,) = new_user(srv.http_url, "nb")
    a = await RawClient.login(srv.ws_url, alice.token)
    b = await RawClient.login(srv.ws_url, bob.token)
    note = "hi bob, it is alice from the climbing gym"
    await a.call(so.FriendRequest(user_id=bob.user_id, note=note))
    pending: so.FriendRequestList = await b.call(so.FriendRequests())
    assert [r.note for r in pending.incoming] == [note]  # readable while pending
    if answer == "accept":
        await b.call(so.FriendAccept(user_id=alice.user_id))
    elif answer == "reject":
        await b.call(so.FriendReject(user_id=alice.user_id))
    else:
        await a.call(so.FriendCancel(user_id=bob.user_id))
    for client in (a, b):  # a fresh device of either user syncs the timeline: no note left
        synced: SyncReply = await client.call(SyncRequest())
        opened = [e.body for e in synced.events if isinstance(e.body, FriendRequestOpened)]
        assert opened and all(body.note == "" for body in opened)
    for client in (a, b):
        left: so.FriendRequestList = await client.call(so.FriendRequests())
        assert left.incoming == [] and left.outgoing == []
    for x in (a, b):
        await x.close()
