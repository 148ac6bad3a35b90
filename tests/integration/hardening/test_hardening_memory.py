"""Memory per socket is bounded in bytes: pages stop early in bytes (and say where to go on),
a socket that never reads is closed 4009 with the server's memory bounded, and the CPython
client syncs a group whose messages are near the envelope limit."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from parley.protocol.codec import decode_server, encode
from parley.protocol.frames import Hello, Reply, Request, Welcome
from parley.protocol.limits import MAX_ENVELOPE_BYTES, MAX_FRAME_BYTES
from parley.protocol.ops import Conversation, GroupCreate, History, HistoryPage, Send
from tests.support.accounts import Login, new_user
from tests.support.rawclient import RawClient, envelope_for
from tests.support.server import ServerProcess

BIG = MAX_ENVELOPE_BYTES - 1024
"""An envelope body near the limit: two fit in one frame, three do not."""


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"PARLEY_GROUP_DIRECT_ADD": "anyone"}  # strangers in one group, no invitation
    server = ServerProcess(tmp_path_factory.mktemp("mem") / "data", env=env)
    server.start()
    yield server
    server.stop()


async def _group_with_big_messages(srv: ServerProcess, n: int) -> tuple[Login, Login, bytes]:
    alice, bob = new_user(srv.http_url, "big")[0], new_user(srv.http_url, "reader")[0]
    a = await RawClient.login(srv.ws_url, alice.token)
    conv: Conversation = await a.call(GroupCreate(members=[bob.user_id]))
    cid = conv.info.conversation_id
    for i in range(n):
        await a.call(
            Send(conversation_id=cid, client_msg_id=f"b{i}", envelope=envelope_for(cid, BIG - 200))
        )
    await a.close()
    return alice, bob, cid


async def test_history_pages_stop_early_in_bytes_both_ways(srv: ServerProcess) -> None:
    _, bob, cid = await _group_with_big_messages(srv, 7)  # seq 1 = the group's creation
    b = await RawClient.login(srv.ws_url, bob.token)
    seen: list[int] = []
    after = 0
    pages = 0
    while True:  # forward: continue after the last seq received
        rid = 1000 + len(seen)
        await b.send(Request(id=rid, op=History(conversation_id=cid, after_seq=after, limit=500)))
        raw = await b.ws.recv()
        assert isinstance(raw, bytes) and len(raw) <= MAX_FRAME_BYTES
        page = decode_server(raw)
        assert isinstance(page, Reply) and isinstance(page.result, HistoryPage)
        got = [e.seq for e in page.result.entries]
        assert got and got[0] == after + 1  # gap-free from the cursor
        seen += got
        after = got[-1]
        pages += 1
        if not page.result.more:
            break
    assert seen == list(range(1, 9))
    assert pages >= 4  # 500 asked each time: the byte bound, not the count, ended each page
    back: list[int] = []
    before: int | None = None
    while True:  # backward: continue before the first seq received
        result: HistoryPage = await b.call(
            History(conversation_id=cid, before_seq=before, limit=500)
        )
        got = [e.seq for e in result.entries]
        assert got == sorted(got) and 1 <= len(got) <= 3
        back = got + back
        before = got[0]
        if not result.more:
            break
    assert back == list(range(1, 9))
    await b.close()


async def test_a_socket_that_never_reads_is_closed_4009_with_memory_bounded(
    srv: ServerProcess,
) -> None:
    _, bob, cid = await _group_with_big_messages(srv, 20)
    pid = srv.proc.pid if srv.proc else 0
    # max_queue=1: the client library stops reading the TCP socket after one frame.
    ws = await connect(srv.ws_url, max_size=None, compression=None, max_queue=1)
    await ws.send(encode(Hello(token=bob.token)))
    assert isinstance(decode_server(await ws.recv()), Welcome)
    base = rss_kib(pid)
    for i in range(64):  # ~11 MB of replies if nothing bounded them; 48 MB each before
        await ws.send(
            encode(Request(id=i + 1, op=History(conversation_id=cid, after_seq=0, limit=500)))
        )
    # The server stops queueing for us: its log says 4009 while we still have not read.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while '"code": 4009' not in srv.log() and "code=4009" not in srv.log():
        assert loop.time() < deadline, "no 4009 close logged"
        await asyncio.sleep(0.1)
    grown = rss_kib(pid) - base
    assert grown < 48 * 1024, f"server grew {grown} KiB for one non-reading socket"
    # Reading now drains what was in flight, then the documented close code.
    code = None
    try:
        while True:
            await asyncio.wait_for(ws.recv(), 30)
    except ConnectionClosed as exc:
        code = exc.rcvd.code if exc.rcvd else None
    assert code == 4009


async def test_cpython_client_syncs_a_group_of_near_limit_messages(
    srv: ServerProcess, tmp_path: Path
) -> None:
    """Regression: three 90 KiB messages made the client reconnect 82 times in 30 s (the
    server's page was above the client's frame limit) and its cursor never moved."""
    from parley.client import ConnectionState
    from parley.client import effects as fx
    from tests.integration.client_support import make_client, wait_until

    _, bob, cid = await _group_with_big_messages(srv, 3)
    client = make_client(srv.ws_url, bob, tmp_path, "bob")
    events = client.subscribe()
    async with client:
        await wait_until(lambda: client.cursor(cid) >= 4, 60, "cursor at the last message")
        local = await client.local_entries(cid)
    assert [e.seq for e in local] == [1, 2, 3, 4]
    states = []
    while not events.empty():
        note = events.get_nowait()
        if isinstance(note, fx.ConnectionChanged):
            states.append(note.state)
    assert states.count(ConnectionState.SYNCING) == 1, states  # one connection, no storm
