"""The wire codec: every frame round-trips, and malformed input maps to stable error codes.

Runs in CPython and inside Pyodide (tests/pyodide/run.mjs).
"""

from __future__ import annotations

import os

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parley.protocol import decode_client, decode_server, encode
from parley.protocol.codec import FrameError
from parley.protocol.envelope import EnvelopeError, check_group_message
from parley.protocol.errors import ErrorCode
from parley.protocol.frames import (
    Bye,
    EntryPush,
    Error,
    Hello,
    Limits,
    Ping,
    Reply,
    Request,
    Welcome,
)
from parley.protocol.ops import OP_TAGS, RESULT_OF, History, Send, Sent
from parley.protocol.records import ConvEntry, Membership, MembershipAction, Message

CID = bytes(range(16))


def envelope(cid: bytes = CID, ct_len: int = 32) -> bytes:
    return b"\x01" + cid + os.urandom(24) + os.urandom(ct_len) + os.urandom(64)


def test_client_frames_round_trip() -> None:
    frames = [
        Hello(token="t" * 43, client="test/1"),
        Request(id=7, op=Send(conversation_id=CID, client_msg_id="m1", envelope=envelope())),
        Request(id=8, op=History(conversation_id=CID, before_seq=10, limit=5)),
        Ping(n=3),
        Bye(reason="done"),
    ]
    for frame in frames:
        assert decode_client(encode(frame)) == frame


def test_server_frames_round_trip() -> None:
    entry = ConvEntry(CID, 3, 1000, "u1", None, Membership(MembershipAction.JOINED, "u1", ["u2"]))
    frames = [
        Welcome("u1", 1, 123, Limits(1, 2, 3, 4, 5.0)),
        Reply(id=1, result=Sent(seq=4, ts=99)),
        Error(id=None, code=ErrorCode.BAD_FRAME, message="x"),
        EntryPush(entry=entry),
        EntryPush(entry=ConvEntry(CID, 4, 1001, "u2", 2, Message(envelope=envelope()))),
    ]
    for frame in frames:
        assert decode_server(encode(frame)) == frame


def test_every_op_has_a_result_type_and_a_unique_tag() -> None:
    tags = [op.__struct_config__.tag for op in RESULT_OF]
    assert len(tags) == len(set(tags)) == len(OP_TAGS)


@pytest.mark.parametrize(
    ("raw", "code", "rid"),
    [
        (b"\xc1", ErrorCode.BAD_FRAME, None),
        (msgspec.msgpack.encode([1, 2]), ErrorCode.BAD_FRAME, None),
        (msgspec.msgpack.encode({"t": "nope"}), ErrorCode.BAD_FRAME, None),
        (
            msgspec.msgpack.encode({"t": "req", "id": 5, "op": {"t": "nope"}}),
            ErrorCode.UNKNOWN_OP,
            5,
        ),
        (msgspec.msgpack.encode({"t": "req", "id": 6, "op": {"t": "send"}}), ErrorCode.INVALID, 6),
        (msgspec.msgpack.encode({"t": "req", "op": {"t": "sync"}}), ErrorCode.INVALID, None),
        (msgspec.msgpack.encode({"t": "hello"}), ErrorCode.INVALID, None),
        (
            msgspec.msgpack.encode(
                {"t": "req", "id": 9, "op": {"t": "history", "conversation_id": b"short"}}
            ),
            ErrorCode.INVALID,
            9,
        ),
    ],
)
def test_malformed_frames_get_stable_codes(raw: bytes, code: ErrorCode, rid: int | None) -> None:
    with pytest.raises(FrameError) as info:
        decode_client(raw)
    assert info.value.code is code
    assert info.value.request_id == rid


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=256))
def test_arbitrary_bytes_never_escape_as_other_exceptions(raw: bytes) -> None:
    try:
        decode_client(raw)
    except FrameError as exc:
        assert exc.code in {ErrorCode.BAD_FRAME, ErrorCode.INVALID, ErrorCode.UNKNOWN_OP}


def test_group_message_framing() -> None:
    check_group_message(envelope(), CID, 1024)
    cases = [
        (envelope(ct_len=2000), ErrorCode.TOO_LARGE),
        (envelope()[:100], ErrorCode.BAD_ENVELOPE),
        (b"\x02" + envelope()[1:], ErrorCode.BAD_ENVELOPE),
        (envelope(cid=bytes(16)), ErrorCode.WRONG_CONVERSATION),
    ]
    for env, code in cases:
        with pytest.raises(EnvelopeError) as info:
            check_group_message(env, CID, 1024)
        assert info.value.code is code


# --- deep nesting (msgspec raises RecursionError about 1,000 levels down) -------------------

DEEP_REQUEST = bytes.fromhex("83a174a3726571a2696401a26f70") + b"\x91" * 1000 + b"\xc0"
DEEP_HELLO = bytes.fromhex("82a174a568656c6c6fa5746f6b656e") + b"\x91" * 1000 + b"\xc0"


@pytest.mark.parametrize("data", [DEEP_REQUEST, DEEP_HELLO])
def test_the_reported_deep_frames_are_frame_errors(data: bytes) -> None:
    """msgspec's depth limit depends on the platform (about 1,000 in CPython, more inside
    Pyodide): either way the result is a FrameError with a documented code, never a crash."""
    for decode in (decode_client, decode_server):
        with pytest.raises(FrameError) as err:
            decode(data)
        assert err.value.code in (ErrorCode.BAD_FRAME, ErrorCode.INVALID, ErrorCode.UNKNOWN_OP)


def test_nesting_beyond_the_decoder_limit_is_bad_frame_on_both_sides() -> None:
    data = b"\x91" * 200_000 + b"\xc0"
    for decode in (decode_client, decode_server):
        with pytest.raises(FrameError) as err:
            decode(data)
        assert err.value.code == ErrorCode.BAD_FRAME


def test_a_field_above_its_length_limit_is_too_large_from_the_codec() -> None:
    frame = Request(id=9, op=Send(conversation_id=CID, client_msg_id="m", envelope=b"x" * 8))
    raw = msgspec.msgpack.decode(encode(frame))
    raw["op"]["envelope"] = b"x" * (200 * 1024)
    with pytest.raises(FrameError) as err:
        decode_client(msgspec.msgpack.encode(raw))
    assert err.value.code == ErrorCode.TOO_LARGE and err.value.request_id == 9


def test_a_tag_that_is_not_utf8_is_bad_frame() -> None:
    """Found by the WebSocket fuzz test: msgspec raises UnicodeDecodeError, not DecodeError."""
    data = (
        b"\x83\xa1t\xa3\xf2eq\xa2id\x01\xa2op\x83\xa1t\xa9conv_list\xa5after\xc0\xa5limit\xcc\xc8"
    )
    for decode in (decode_client, decode_server):
        with pytest.raises(FrameError) as err:
            decode(data)
        assert err.value.code == ErrorCode.BAD_FRAME
