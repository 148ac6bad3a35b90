"""The shared async Session over the real server with the in-memory LocalStore (what the
benchmarks and bots use), and its refusal to carry on after a LocalStore failure."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from parley.client import ClientEngine, ConnectionState
from parley.client.memory_store import MemoryLocalStore
from parley.client.session import RequestError, Session
from parley.protocol.ops import Conversation, DirectOpen
from parley.protocol.records import ConvEntry
from parley_client import Client
from parley_client.transport import connector
from tests.integration.client_support import envelope, make_client, wait_until
from tests.support.accounts import new_user
from tests.support.server import ServerProcess

T = 15.0


class BrokenStore(MemoryLocalStore):
    """A LocalStore whose disk is full from the second entry write on."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    async def store_entries(
        self, conversation_id: bytes, entries: Sequence[ConvEntry], cursor: int | None
    ) -> None:
        self.writes += 1
        if self.writes > 1:
            raise OSError("disk full")
        await super().store_entries(conversation_id, entries, cursor)


async def test_memory_store_session_receives_and_a_store_failure_stops_it(
    server: ServerProcess, tmp_path: Path
) -> None:
    (alice,) = new_user(server.http_url, "ms_a")
    (bob,) = new_user(server.http_url, "ms_b")
    store = MemoryLocalStore()
    broken = BrokenStore()
    bob_session = Session(ClientEngine(bob.token), connector(server.ws_url), store)
    bob_broken = Session(ClientEngine(new_user(server.http_url, "ms_c")[0].token),
                         connector(server.ws_url), broken)  # fmt: skip
    a: Client = make_client(server.ws_url, alice, tmp_path, "ms_a")
    try:
        await a.start()
        await bob_session.start()
        await bob_session.wait_state(ConnectionState.ONLINE, T)
        await a.wait_online(T)
        conv = (await a.open_direct(bob.user_id)).conversation_id
        for _ in range(3):
            await a.wait_sent(await a.send(conv, envelope(conv)), T)
        await wait_until(lambda: store.cursors.conversations.get(conv) == 4, T, "bob stores 1..4")
        assert sorted(store.messages[conv]) == [1, 2, 3, 4]

        await bob_broken.start()
        await bob_broken.wait_state(ConnectionState.ONLINE, T)
        result = await bob_broken.request(DirectOpen(user_id=alice.user_id), T)
        assert isinstance(result, Conversation)
        conv2 = result.info.conversation_id  # CREATED entry: write 1 succeeds
        await wait_until(lambda: broken.writes >= 1, T, "first write")
        await a.wait_sent(await a.send(conv2, envelope(conv2)), T)  # write 2 fails
        await wait_until(lambda: bob_broken.stopped, T, "session stops on store failure")
        assert isinstance(bob_broken.error, OSError)
        assert bob_broken.stop_reason is not None
        assert bob_broken.stop_reason.code == "client_error"
        assert bob_broken.state is ConnectionState.STOPPED
        assert broken.cursors.conversations.get(conv2) == 1  # never past what was stored
        with pytest.raises(RequestError):
            await bob_broken.request(DirectOpen(user_id=alice.user_id), T)
    finally:
        await a.close()
        await bob_session.stop()
        await bob_broken.stop()
