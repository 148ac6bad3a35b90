"""WebSocket fuzzing against the real server: random bytes, mutated valid frames, deep nesting,
huge integers and wrong types. Every answer must be a documented error (or a reply), every
close a documented close code, and a healthy client must keep being served. Bounded in
examples (hypothesis), so it is a regular test, not a soak."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parley.protocol.codec import FrameError, decode_server, encode
from parley.protocol.errors import CloseCode, ErrorCode
from parley.protocol.frames import Error, Ping, Pong, Request
from parley.protocol.ops import ConvList, History, Send
from tests.support.accounts import Login, new_user
from tests.support.rawclient import RawClient, envelope_for, still_serves
from tests.support.server import ServerProcess

DOCUMENTED_CLOSES = {int(c) for c in CloseCode}
DOCUMENTED_ERRORS = {str(c) for c in ErrorCode}
CID = uuid.uuid4().bytes

VALID_FRAMES = [
    encode(Request(id=1, op=ConvList())),
    encode(Request(id=2, op=History(conversation_id=CID, after_seq=0, limit=10))),
    encode(
        Request(id=3, op=Send(conversation_id=CID, client_msg_id="m", envelope=envelope_for(CID)))
    ),
    encode(Ping(n=5)),
]

msgpack_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=True)
    | st.text(max_size=20)
    | st.binary(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

OP_TAGS = ["send", "history", "sync", "td_send", "group_create", "group_invite", "conv_list",
           "friend_request", "user_lookup", "read_mark", "typing", "nonsense"]  # fmt: skip


def _mutate(data: bytes, draw: st.DrawFn) -> bytes:
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "dup"]))
        pos = draw(st.integers(0, max(0, len(buf) - 1)))
        if kind == "flip" and buf:
            buf[pos] ^= draw(st.integers(1, 255))
        elif kind == "cut":
            del buf[pos:]
        elif kind == "insert":
            buf[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        else:
            buf += buf[pos:]
    return bytes(buf)


@st.composite
def hostile_frames(draw: st.DrawFn) -> bytes | str:
    kind = draw(st.sampled_from(["bytes", "mutated", "deep", "typed", "huge_id", "text"]))
    if kind == "bytes":
        return draw(st.binary(max_size=64))
    if kind == "mutated":
        return _mutate(draw(st.sampled_from(VALID_FRAMES)), draw)
    if kind == "deep":
        depth = draw(st.integers(200, 5000))
        opener = draw(st.sampled_from([b"\x91", b"\x81\xa1k"]))
        return bytes.fromhex("83a174a3726571a2696401a26f70") + opener * depth + b"\xc0"
    if kind == "huge_id":
        rid = draw(st.sampled_from([2**64 - 1, -(2**63), 2**53 + 1, -1]))
        return msgspec.msgpack.encode({"t": "req", "id": rid, "op": {"t": "conv_list"}})
    if kind == "text":
        return draw(st.text(max_size=32))
    # the right shape with wrong types or values in its fields
    op: dict[str, Any] = {"t": draw(st.sampled_from(OP_TAGS))}
    op.update(draw(st.dictionaries(st.sampled_from(
        ["conversation_id", "after_seq", "before_seq", "limit", "members", "meta", "user_id",
         "messages", "envelope", "client_msg_id", "username", "typing", "seq"]
    ), msgpack_values, max_size=4)))  # fmt: skip
    rid = draw(st.integers(min_value=0, max_value=2**53))
    frame = {"t": draw(st.sampled_from(["req", "req", "hello", "ping", "bye", "x"])), "id": rid}
    frame["op"] = op
    return msgspec.msgpack.encode(frame)


@pytest.fixture(scope="module")
def log_mark(server: ServerProcess) -> int:
    return len(server.log())


@pytest.fixture(scope="module")
def fuzz_user(server: ServerProcess, log_mark: int) -> Login:
    return new_user(server.http_url, "fuzz")[0]


async def _probe(server: ServerProcess, user: Login, frames: list[bytes | str]) -> None:
    client = await RawClient.login(server.ws_url, user.token)
    try:
        for n, data in enumerate(frames):
            await client.send_raw(data)
            marker = 1_000_000 + n
            await client.send(Ping(n=marker))
            while True:  # everything up to our pong must be a documented answer
                try:
                    raw = await asyncio.wait_for(client.ws.recv(), 15)
                except Exception as exc:
                    rcvd = getattr(exc, "rcvd", None)
                    code = rcvd.code if rcvd is not None else None
                    assert code in DOCUMENTED_CLOSES, f"undocumented close {code} after {data!r}"
                    return
                assert isinstance(raw, bytes)
                try:
                    frame = decode_server(raw)
                except FrameError:
                    raise AssertionError(
                        f"undecodable frame from the server after {data!r}"
                    ) from None
                if isinstance(frame, Pong) and frame.n == marker:
                    break
                if isinstance(frame, Error):
                    assert str(frame.code) in DOCUMENTED_ERRORS
                    assert frame.code != ErrorCode.INTERNAL, f"internal error after {data!r}"
                # anything else decoded: a Reply, a Pong, or a push; all documented frames
    finally:
        await client.close()


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)
@given(frames=st.lists(hostile_frames(), min_size=1, max_size=6))
def test_hostile_frames_get_documented_answers(
    server: ServerProcess, fuzz_user: Login, frames: list[bytes | str]
) -> None:
    asyncio.run(_probe(server, fuzz_user, frames))


def test_a_healthy_client_is_still_served_after_the_fuzzing(
    server: ServerProcess, fuzz_user: Login, log_mark: int
) -> None:
    asyncio.run(still_serves(server.ws_url, fuzz_user.token))
    logged = server.log()[log_mark:]
    for fault in ("Traceback", "frame_failed", "request_failed", "ws_handshake_failed"):
        assert fault not in logged
