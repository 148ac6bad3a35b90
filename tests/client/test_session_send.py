"""``Session.send_message`` with a caller-chosen client_msg_id (the E2E send queue's local id):
persisted in the outbox before anything is sent, and idempotent when queued again."""

from __future__ import annotations

from parley.client import ClientEngine
from parley.client.interfaces import Transport
from parley.client.memory_store import MemoryLocalStore
from parley.client.session import Session

CID = bytes(range(16))


async def _unreachable() -> Transport:
    raise OSError("no network in this test")


async def test_send_message_keeps_the_callers_id_and_is_idempotent() -> None:
    store = MemoryLocalStore()
    session = Session(ClientEngine("token"), _unreachable, store, wall_ms=lambda: 999)
    await session.start()
    try:
        cmid = await session.send_message(CID, b"env-1", client_msg_id="local-1",
                                          created_ms=1234, track=False)  # fmt: skip
        assert cmid == "local-1"
        item = store.outbox["local-1"]  # durable before it could have been sent
        assert (item.conversation_id, item.envelope, item.created_ms) == (CID, b"env-1", 1234)
        # the same id again (a resend after a crash): still one outbox item, the first one
        again = await session.send_message(CID, b"env-2", client_msg_id="local-1", track=False)
        assert again == "local-1" and list(store.outbox) == ["local-1"]
        assert store.outbox["local-1"].envelope == b"env-1"
        # without an id the engine makes one; created_ms defaults to the wall clock
        other = await session.send_message(CID, b"env-3", track=False)
        assert other != "local-1" and store.outbox[other].created_ms == 999
    finally:
        await session.stop()
