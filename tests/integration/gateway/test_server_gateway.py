"""The WebSocket gateway under bad input: each case gets its documented error or close code,
and the server keeps serving other clients afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from parley.protocol.codec import encode
from parley.protocol.frames import Bye, Error, Hello, Ping, Pong, Reply, Request, Welcome
from parley.protocol.limits import MAX_ENVELOPE_BYTES, MAX_FRAME_BYTES, PROTOCOL_VERSION
from parley.protocol.ops import (
    Conversation,
    ConvList,
    GroupCreate,
    History,
    HistoryPage,
    Send,
    Sent,
)
from tests.support.accounts import Login, new_user
from tests.support.rawclient import RawClient, envelope_for, still_serves
from tests.support.server import ServerProcess


@pytest.fixture(scope="module")
def tight_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with a 1 s Hello timeout so the timeout test is quick."""
    srv = ServerProcess(tmp_path_factory.mktemp("tight") / "data", None, "--hello-timeout", "1")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def user(server: ServerProcess) -> Login:
    return new_user(server.http_url, "gw")[0]


async def test_welcome(server: ServerProcess, user: Login) -> None:
    client = await RawClient.connect(server.ws_url)
    welcome = await client.hello(user.token)
    assert isinstance(welcome, Welcome)
    assert welcome.user_id == user.user_id and welcome.device_id == user.device_id
    assert welcome.v == PROTOCOL_VERSION
    assert welcome.limits.max_frame == MAX_FRAME_BYTES
    assert welcome.limits.max_envelope == MAX_ENVELOPE_BYTES
    await client.send(Ping(n=7))
    assert await client.recv() == Pong(n=7)
    await client.close()


async def test_not_msgpack_is_bad_frame_and_connection_stays_open(
    server: ServerProcess, user: Login
) -> None:
    client = await RawClient.login(server.ws_url, user.token)
    for junk in (b"\xc1\xc1\xc1", b"\x93\x01\x02\x03", "a text frame", encode(Pong())):
        await client.send_raw(junk)
        err = await client.recv()
        assert isinstance(err, Error) and err.code == "bad_frame" and err.id is None, err
    # Same connection still answers requests.
    assert isinstance(await client.call(ConvList()), msgspec.Struct)
    await client.close()
    await still_serves(server.ws_url, user.token)


async def test_unknown_op_and_missing_fields(server: ServerProcess, user: Login) -> None:
    client = await RawClient.login(server.ws_url, user.token)
    await client.send_raw(msgspec.msgpack.encode({"t": "req", "id": 41, "op": {"t": "launch"}}))
    err = await client.next_reply(41)
    assert isinstance(err, Error) and err.code == "unknown_op"
    await client.send_raw(msgspec.msgpack.encode({"t": "req", "id": 42, "op": {"t": "send"}}))
    err = await client.next_reply(42)
    assert isinstance(err, Error) and err.code == "invalid"
    await client.send_raw(
        msgspec.msgpack.encode(
            {"t": "req", "id": 43, "op": {"t": "history", "conversation_id": b"x"}}
        )
    )
    err = await client.next_reply(43)
    assert isinstance(err, Error) and err.code == "invalid"
    await client.send_raw(msgspec.msgpack.encode({"t": "req", "op": {"t": "conv_list"}}))
    err = await client.next_reply(None)
    assert isinstance(err, Error) and err.code == "invalid"
    # A second Hello on an authenticated connection is invalid, not fatal.
    await client.send(Hello(token=user.token))
    err = await client.next_reply(None)
    assert isinstance(err, Error) and err.code == "invalid"
    assert isinstance(await client.request(ConvList()), Reply)
    await client.close()
    await still_serves(server.ws_url, user.token)


async def test_oversized_frame_closes_1009(server: ServerProcess, user: Login) -> None:
    client = await RawClient.login(server.ws_url, user.token)
    await client.send_raw(b"\x00" * (MAX_FRAME_BYTES + 1))
    assert await client.wait_closed() == 1009
    await still_serves(server.ws_url, user.token)


async def test_envelope_framing_errors(server: ServerProcess, user: Login) -> None:
    client = await RawClient.login(server.ws_url, user.token)
    conv: Conversation = await client.call(GroupCreate())
    cid = conv.info.conversation_id
    good = envelope_for(cid)
    cases = {
        "bad_envelope": [good[:100], b"\x02" + good[1:]],
        "wrong_conversation": [envelope_for(uuid.uuid4().bytes)],
        "too_large": [envelope_for(cid, MAX_ENVELOPE_BYTES)],
    }
    for code, envelopes in cases.items():
        for i, env in enumerate(envelopes):
            err = await client.fail(
                Send(conversation_id=cid, client_msg_id=f"{code}{i}", envelope=env)
            )
            assert err.code == code, (code, err)
    # Nothing was appended: only the CREATED entry is there. A good one then works.
    page: HistoryPage = await client.call(History(conversation_id=cid))
    assert [e.seq for e in page.entries] == [1]
    sent: Sent = await client.call(Send(conversation_id=cid, client_msg_id="ok", envelope=good))
    assert sent.seq == 2
    await client.close()
    await still_serves(server.ws_url, user.token)


async def test_no_hello_closes_4008(tight_server: ServerProcess) -> None:
    (u,) = new_user(tight_server.http_url, "slow")
    client = await RawClient.connect(tight_server.ws_url)
    assert await client.wait_closed(timeout=10) == 4008
    await still_serves(tight_server.ws_url, u.token)


@pytest.mark.parametrize(
    "first",
    [
        encode(Ping()),
        encode(Request(id=1, op=ConvList())),
        b"\xc1garbage",
        msgspec.msgpack.encode({"t": "hello"}),
    ],
)
async def test_first_frame_not_hello_closes_4000(tight_server: ServerProcess, first: bytes) -> None:
    (u,) = new_user(tight_server.http_url, "first")
    client = await RawClient.connect(tight_server.ws_url)
    await client.send_raw(first)
    assert await client.wait_closed() == 4000
    await still_serves(tight_server.ws_url, u.token)


async def test_bad_token_4001_and_wrong_version_4010(server: ServerProcess, user: Login) -> None:
    client = await RawClient.connect(server.ws_url)
    await client.send(Hello(token="not-a-token"))
    assert await client.wait_closed() == 4001
    client = await RawClient.connect(server.ws_url)
    await client.send(Hello(token=user.token, v=PROTOCOL_VERSION + 1))
    assert await client.wait_closed() == 4010
    await still_serves(server.ws_url, user.token)


async def test_bye_closes_1000(server: ServerProcess, user: Login) -> None:
    client = await RawClient.login(server.ws_url, user.token)
    await client.send(Bye(reason="done"))
    assert await client.wait_closed() == 1000


async def test_idle_timeout_closes_4011(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "data", None, "--heartbeat", "0.3")
    srv.start()
    try:
        (u,) = new_user(srv.http_url, "idle")
        client = await RawClient.login(srv.ws_url, u.token)
        assert client.welcome is not None and client.welcome.limits.heartbeat_s == 0.3
        assert await client.wait_closed(timeout=10) == 4011
    finally:
        srv.stop()


async def test_sigterm_says_bye_then_1001_and_keeps_data(fresh_server: ServerProcess) -> None:
    (u,) = new_user(fresh_server.http_url, "term")
    client = await RawClient.login(fresh_server.ws_url, u.token)
    conv: Conversation = await client.call(GroupCreate())
    cid = conv.info.conversation_id
    sent: Sent = await client.call(
        Send(conversation_id=cid, client_msg_id="m1", envelope=envelope_for(cid))
    )
    assert fresh_server.stop() == 0
    assert await client.wait_closed() == 1001
    assert any(isinstance(f, Bye) for f in client.pushes)
    fresh_server.start()
    again = await RawClient.login(fresh_server.ws_url, u.token)
    page: HistoryPage = await again.call(History(conversation_id=cid))
    assert [e.seq for e in page.entries] == [1, sent.seq]
    await again.close()


async def test_slow_consumer_closes_4009_and_resyncs(tmp_path: Path) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PARLEY_SEND_QUEUE_MAX", "4")
        mp.setenv("PARLEY_GROUP_DIRECT_ADD", "anyone")  # strangers in one group, no invitation
        srv = ServerProcess(tmp_path / "data")
        srv.start()
    try:
        (alice,) = new_user(srv.http_url, "fast")
        (bob,) = new_user(srv.http_url, "slow")
        a = await RawClient.login(srv.ws_url, alice.token)
        b = await RawClient.login(srv.ws_url, bob.token)  # ...and then never reads
        conv: Conversation = await a.call(GroupCreate(members=[bob.user_id]))
        cid = conv.info.conversation_id
        last = 0
        for i in range(400):  # bounded: ~25 MB, far beyond socket buffers + 4 queued frames
            sent: Sent = await a.call(
                Send(conversation_id=cid, client_msg_id=f"s{i}", envelope=envelope_for(cid, 60_000))
            )
            last = sent.seq
        assert await b.wait_closed(timeout=30) == 4009
        # Bob reconnects and resyncs by seq: everything is there.
        b2 = await RawClient.login(srv.ws_url, bob.token)
        page: HistoryPage = await b2.call(History(conversation_id=cid, limit=1))
        assert page.last_seq == last == 401
        await a.close()
        await b2.close()
    finally:
        srv.stop()
