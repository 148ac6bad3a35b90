"""``parley admin migrate``: a populated SQLite data dir moved to Redis; the same clients (same
tokens, same cursors) then sync from a node on Redis with nothing missing; a second run changes
nothing."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

from parley.protocol.ops import (
    ConvCursor,
    Conversation,
    DirectOpen,
    GroupCreate,
    History,
    HistoryPage,
    Send,
    SyncReply,
    SyncRequest,
    ToDeviceMessage,
    ToDeviceSend,
)
from parley.protocol.social import FriendAccept, FriendRequest
from tests.support.accounts import new_user
from tests.support.rawclient import RawClient, envelope_for
from tests.support.redis_servers import RedisServer, cli
from tests.support.server import ServerProcess


def _migrate(data: Path, url: str, prefix: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "parley_client.cli.main", "admin", "migrate",
           "--from", f"sqlite:{data}", "--to", url, "--prefix", prefix]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)


def _sync_view(reply: SyncReply) -> tuple[object, ...]:
    return (
        [(e.seq, e.body) for e in reply.events],
        [(t.seq, t.body) for t in reply.to_device],
        sorted((c.conversation_id, c.last_seq) for c in reply.conversations),
    )


async def test_sqlite_installation_moves_to_redis(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    old = ServerProcess(tmp_path / "old", env={"PARLEY_DIRECT_OPEN_TO_ALL": "true"})
    old.start()
    [alice] = new_user(old.http_url, "alice")
    [bob, bob2] = new_user(old.http_url, "bob", devices=2)
    a, b = (
        await RawClient.login(old.ws_url, alice.token),
        await RawClient.login(old.ws_url, bob.token),
    )
    await a.call(FriendRequest(user_id=bob.user_id))
    await b.call(FriendAccept(user_id=alice.user_id))
    direct: Conversation = await a.call(DirectOpen(user_id=bob.user_id))
    group: Conversation = await a.call(GroupCreate(members=[bob.user_id]))
    cids = [direct.info.conversation_id, group.info.conversation_id]
    for i in range(5):
        for j, cid in enumerate(cids):
            await a.call(
                Send(conversation_id=cid, client_msg_id=f"m{i}.{j}", envelope=envelope_for(cid))
            )
    # bob's cursors, taken halfway; then more happens
    mid: SyncReply = await b.call(SyncRequest())
    cursor = mid.events[-1].seq if mid.events else 0
    convs = [ConvCursor(c.conversation_id, c.last_seq) for c in mid.conversations]
    for i in range(5, 8):
        await b.call(
            Send(conversation_id=cids[1], client_msg_id=f"b{i}", envelope=envelope_for(cids[1]))
        )
    await a.call(ToDeviceSend(messages=[ToDeviceMessage(bob.user_id, bob2.device_id, b"td-1")]))
    want: SyncReply = await b.call(SyncRequest(events_after=cursor, conversations=convs))
    want_history: HistoryPage = await b.call(History(conversation_id=cids[1], after_seq=0))
    await a.close()
    await b.close()

    prefix = f"mig{uuid.uuid4().hex[:8]}:"
    first = _migrate(old.data_dir, redis_server.url, prefix)  # while the old server runs
    assert first.returncode == 0, first.stdout + first.stderr
    assert "ok: Redis holds everything" in first.stdout
    keys_after_first = int(cli(redis_server.port, "dbsize"))
    old.stop()
    second = _migrate(old.data_dir, redis_server.url, prefix)
    assert second.returncode == 0, second.stdout + second.stderr
    assert int(cli(redis_server.port, "dbsize")) == keys_after_first  # nothing new

    new = ServerProcess(
        tmp_path / "new",
        None,
        "--store",
        redis_server.url,
        env={"PARLEY_REDIS_PREFIX": prefix, "PARLEY_DIRECT_OPEN_TO_ALL": "true"},
    )
    new.start()
    try:
        b = await RawClient.login(new.ws_url, bob.token)  # the same session token
        got: SyncReply = await b.call(SyncRequest(events_after=cursor, conversations=convs))
        assert _sync_view(got) == _sync_view(want)
        history: HistoryPage = await b.call(History(conversation_id=cids[1], after_seq=0))
        assert history.entries == want_history.entries
        # and life goes on: the next message gets the next seq
        a = await RawClient.login(new.ws_url, alice.token)
        again = await a.call(
            Send(conversation_id=cids[1], client_msg_id="m0.1", envelope=envelope_for(cids[1]))
        )
        assert again.duplicate  # idempotency keys came along
        nxt = await a.call(
            Send(conversation_id=cids[1], client_msg_id="new", envelope=envelope_for(cids[1]))
        )
        assert nxt.seq == want_history.entries[-1].seq + 1
        await a.close()
        await b.close()
    finally:
        new.stop()
