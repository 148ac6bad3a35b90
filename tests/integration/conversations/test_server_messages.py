"""Messages, history, sync and to-device over the real server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from parley.protocol.frames import EntryPush, ToDevicePush
from parley.protocol.ops import (
    ConvCursor,
    Conversation,
    DirectOpen,
    GroupCreate,
    History,
    HistoryPage,
    Ok,
    Send,
    Sent,
    SyncReply,
    SyncRequest,
    ToDeviceAck,
    ToDeviceMessage,
    ToDeviceSend,
    ToDeviceSent,
)
from parley.protocol.records import Message
from tests.support.accounts import Login, new_user
from tests.support.rawclient import RawClient, envelope_for
from tests.support.server import ServerProcess


async def _login(server: ServerProcess, who: Login) -> RawClient:
    return await RawClient.login(server.ws_url, who.token)


async def _no_push(client: RawClient, kind: type, wait: float = 0.3) -> None:
    """Bounded check that no push of ``kind`` arrives (the server pushes before it replies to
    the next request, so a round trip first makes this meaningful)."""
    try:
        frame = await client.next_push(kind, timeout=wait)
    except TimeoutError:
        return
    raise AssertionError(f"unexpected push {frame}")


async def test_send_pushes_to_other_devices_and_retry_is_idempotent(server: ServerProcess) -> None:
    alice1, alice2 = new_user(server.http_url, "alice", devices=2)
    bob1, bob2 = new_user(server.http_url, "bob", devices=2)
    a1, a2, b1, b2 = [await _login(server, x) for x in (alice1, alice2, bob1, bob2)]
    conv: Conversation = await a1.call(GroupCreate(members=[bob1.user_id]))
    cid = conv.info.conversation_id
    env = envelope_for(cid, 200)
    sent: Sent = await a1.call(Send(conversation_id=cid, client_msg_id="m-1", envelope=env))
    assert sent.seq == 2 and not sent.duplicate
    for other in (a2, b1, b2):
        push: EntryPush = await other.next_push(EntryPush)
        while push.entry.seq != sent.seq:
            push = await other.next_push(EntryPush)
        assert push.entry.sender == alice1.user_id and push.entry.sender_device == alice1.device_id
        assert push.entry.body == Message(envelope=env) and push.entry.ts == sent.ts
    # The sending connection gets no push of its own message.
    a1.pushes = [p for p in a1.pushes if not (isinstance(p, EntryPush) and p.entry.seq == 1)]
    await _no_push(a1, EntryPush)
    # A retry (e.g. after a reconnect) returns the same seq and pushes nothing new.
    retry: Sent = await a1.call(Send(conversation_id=cid, client_msg_id="m-1", envelope=env))
    assert (retry.seq, retry.ts, retry.duplicate) == (sent.seq, sent.ts, True)
    await b1.call(History(conversation_id=cid))  # round trip
    await _no_push(b1, EntryPush)
    page: HistoryPage = await b1.call(History(conversation_id=cid))
    assert [e.seq for e in page.entries] == [1, 2] and page.last_seq == 2
    for c in (a1, a2, b1, b2):
        await c.close()


async def test_history_ranges(server: ServerProcess) -> None:
    (u,) = new_user(server.http_url, "hist")
    c = await _login(server, u)
    conv: Conversation = await c.call(GroupCreate())
    cid = conv.info.conversation_id
    for i in range(11):  # seqs 2..12
        await c.call(Send(conversation_id=cid, client_msg_id=f"h{i}", envelope=envelope_for(cid)))
    latest: HistoryPage = await c.call(History(conversation_id=cid, limit=4))
    assert [e.seq for e in latest.entries] == [9, 10, 11, 12] and latest.more
    assert latest.last_seq == 12
    before: HistoryPage = await c.call(History(conversation_id=cid, before_seq=9, limit=4))
    assert [e.seq for e in before.entries] == [5, 6, 7, 8] and before.more
    first: HistoryPage = await c.call(History(conversation_id=cid, before_seq=3, limit=4))
    assert [e.seq for e in first.entries] == [1, 2] and not first.more
    after: HistoryPage = await c.call(History(conversation_id=cid, after_seq=8, limit=3))
    assert [e.seq for e in after.entries] == [9, 10, 11] and after.more
    tail: HistoryPage = await c.call(History(conversation_id=cid, after_seq=10))
    assert [e.seq for e in tail.entries] == [11, 12] and not tail.more
    await c.close()


@pytest.fixture(scope="module")
def paging_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Small sync pages so paging is exercised with a handful of rows."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PARLEY_SYNC_CONVERSATIONS_MAX", "2")
        mp.setenv("PARLEY_SYNC_EVENTS_MAX", "3")
        mp.setenv("PARLEY_HISTORY_PAGE_MAX", "3")
        srv = ServerProcess(tmp_path_factory.mktemp("paging") / "data")
        srv.start()
    yield srv
    srv.stop()


async def test_sync_cursors_and_paging(paging_server: ServerProcess) -> None:
    (u,) = new_user(paging_server.http_url, "sync")
    c = await _login(paging_server, u)
    cids = sorted([(await c.call(GroupCreate())).info.conversation_id for _ in range(5)])
    # Events page (max 3) with a more flag, then the rest.
    s1: SyncReply = await c.call(SyncRequest())
    assert len(s1.events) == 3 and s1.events_more
    s2: SyncReply = await c.call(SyncRequest(events_after=s1.events[-1].seq))
    assert len(s2.events) == 2 and not s2.events_more
    # Conversations: unknown to the client -> all 5, two per page, by id.
    seen: list[bytes] = []
    after = None
    for _ in range(10):
        page: SyncReply = await c.call(SyncRequest(events_after=10**6, conv_after=after))
        assert len(page.conversations) <= 2
        seen += [s.conversation_id for s in page.conversations]
        if page.conv_next is None:
            break
        after = page.conv_next
    assert seen == cids
    # With cursors at each last_seq, only a conversation with something new is returned.
    await c.call(Send(conversation_id=cids[3], client_msg_id="n", envelope=envelope_for(cids[3])))
    held = [ConvCursor(conversation_id=cid, seq=1) for cid in cids]
    fresh: SyncReply = await c.call(SyncRequest(events_after=10**6, conversations=held))
    assert [(s.conversation_id, s.last_seq) for s in fresh.conversations] == [(cids[3], 2)]
    assert fresh.conv_next is None
    # History is clamped to the server's page max.
    page3: HistoryPage = await c.call(History(conversation_id=cids[3], after_seq=0, limit=100))
    assert [e.seq for e in page3.entries] == [1, 2]
    await c.close()


async def test_to_device_send_push_sync_ack(server: ServerProcess) -> None:
    (alice,) = new_user(server.http_url, "tda")
    bob1, bob2 = new_user(server.http_url, "tdb", devices=2)
    a = await _login(server, alice)
    b1 = await _login(server, bob1)
    await a.call(DirectOpen(user_id=bob1.user_id))  # to-device needs a shared conversation
    sent: ToDeviceSent = await a.call(
        ToDeviceSend(
            messages=[
                ToDeviceMessage(user_id=bob1.user_id, device_id=bob1.device_id, body=b"k1"),
                ToDeviceMessage(user_id=bob2.user_id, device_id=bob2.device_id, body=b"k2"),
            ]
        )
    )
    assert sent.count == 2
    push: ToDevicePush = await b1.next_push(ToDevicePush)
    assert push.item.body == b"k1" and push.item.sender == alice.user_id
    assert push.item.sender_device == alice.device_id
    # bob2 was offline: it finds its item in sync, acks, and it is gone.
    b2 = await _login(server, bob2)
    s: SyncReply = await b2.call(SyncRequest())
    assert [i.body for i in s.to_device] == [b"k2"] and not s.to_device_more
    assert isinstance(await b2.call(ToDeviceAck(upto_seq=s.to_device[-1].seq)), Ok)
    s2: SyncReply = await b2.call(SyncRequest())
    assert s2.to_device == []
    # bob1's own queue still holds k1 (acks are per device).
    s3: SyncReply = await b1.call(SyncRequest())
    assert [i.body for i in s3.to_device] == [b"k1"]
    # All-or-nothing: one unknown device fails the batch; nothing is queued.
    err = await a.fail(
        ToDeviceSend(
            messages=[
                ToDeviceMessage(user_id=bob1.user_id, device_id=bob1.device_id, body=b"k3"),
                ToDeviceMessage(user_id=bob1.user_id, device_id=999, body=b"k4"),
            ]
        )
    )
    assert err.code == "unknown_device"
    s4: SyncReply = await b1.call(SyncRequest(to_device_after=s3.to_device[-1].seq))
    assert s4.to_device == []
    big = b"\x00" * (64 * 1024 + 1)
    err = await a.fail(
        ToDeviceSend(
            messages=[ToDeviceMessage(user_id=bob1.user_id, device_id=bob1.device_id, body=big)]
        )
    )
    assert err.code == "too_large"
    assert (await a.fail(ToDeviceSend(messages=[]))).code == "invalid"
    for c in (a, b1, b2):
        await c.close()
