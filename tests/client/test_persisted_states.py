"""String states became enums (``MessageState``, ``SendStage``); what is already stored on
devices (msgpack, sealed at rest) must still decode, and what is written stays the plain word."""

from __future__ import annotations

import msgspec
import pytest

from parley.client.e2e.state import PendingSend, SendStage
from parley.client.message_state import MessageState


class _OldRow(msgspec.Struct):
    seq: int
    state: str


class _Row(msgspec.Struct):
    seq: int
    state: MessageState


@pytest.mark.parametrize(
    "word",
    ["decrypted", "waiting", "failed", "sending", "waiting_for_keys", "system", "recalled"],
)
def test_a_stored_message_state_word_decodes_to_the_enum_and_back(word: str) -> None:
    old = msgspec.msgpack.encode(_OldRow(1, word))
    row = msgspec.msgpack.decode(old, type=_Row)
    assert row.state is MessageState(word)
    assert msgspec.msgpack.encode(row) == old


def test_an_unknown_message_state_is_refused() -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.msgpack.decode(msgspec.msgpack.encode(_OldRow(1, "exploded")), type=_Row)


class _OldPending(msgspec.Struct):
    local_id: str
    conversation_id: bytes
    content: bytes
    created_ms: int
    stage: str


@pytest.mark.parametrize("word", ["waiting", "encrypted", "skdm_sent", "queued"])
def test_a_stored_send_stage_decodes_to_the_enum_and_back(word: str) -> None:
    old = msgspec.msgpack.encode(_OldPending("l", b"c" * 16, b"{}", 1, word))
    p = msgspec.msgpack.decode(old, type=PendingSend)
    assert p.stage is SendStage(word)
    again = msgspec.msgpack.decode(msgspec.msgpack.encode(p), type=_OldPending)
    assert again.stage == word


def test_a_new_pending_send_waits() -> None:
    assert PendingSend("l", b"c" * 16, b"{}", 1).stage is SendStage.WAITING
