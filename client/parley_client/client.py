"""The CPython client façade: one device's session over WebSockets with a sqlite LocalStore.

This is what the CLI and ``bench/`` drive::

    accounts = HttpAccounts("http://127.0.0.1:8080")
    login = await accounts.login("alice", "pw", "laptop")
    async with Client(accounts.ws_url, login.token, "alice.db") as c:
        await c.wait_online(10)
        conv = await c.open_direct(bob_user_id)
        cmid = await c.send(conv.conversation_id, envelope)
        sent = await c.wait_sent(cmid, 10)

It connects, reconnects by itself with jittered exponential backoff (resuming from the stored
cursors), and flushes the persisted outbox after each reconnect with the same client_msg_ids.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from parley.client import effects as fx
from parley.client.engine import ClientEngine
from parley.client.model import ConnectionState
from parley.client.session import RequestError, Session
from parley.protocol.limits import HISTORY_PAGE_MAX
from parley.protocol.ops import (
    Conversation,
    DirectOpen,
    GroupCreate,
    History,
    HistoryPage,
    Op,
    Result,
)
from parley.protocol.records import ConvEntry, ConversationInfo
from parley_client.store import SqliteLocalStore
from parley_client.transport import connector

__all__ = ["Client", "RequestError"]


class Client:
    def __init__(
        self,
        ws_url: str,
        token: str,
        db_path: str | Path | None,
        *,
        store: SqliteLocalStore | None = None,
        eager: bool = True,
        page: int = HISTORY_PAGE_MAX,
        client_name: str = "parley-cpython",
        rng: Callable[[], float] | None = None,
    ) -> None:
        self.ws_url = ws_url
        if store is None:
            if db_path is None:
                raise ValueError("a db_path or a store is needed")
            store = SqliteLocalStore(db_path)
        self.store = store  # e.g. the CLI's sealed (encrypted-at-rest) store
        self.engine = ClientEngine(
            token, client_name=client_name, eager=eager, page=page, random=rng or random.random
        )
        self.session = Session(self.engine, connector(ws_url), self.store)

    async def __aenter__(self) -> Client:
        await self.start()
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def start(self) -> None:
        await self.session.start()

    async def close(self) -> None:
        """Stop the session (Bye) and close the local store."""
        await self.session.stop()
        await self.store.close()

    # --- state ---------------------------------------------------------------------------
    @property
    def state(self) -> ConnectionState:
        return self.engine.state

    @property
    def user_id(self) -> str:
        return self.engine.user_id

    @property
    def device_id(self) -> int:
        return self.engine.device_id

    async def wait_online(self, timeout: float) -> None:
        await self.session.wait_state(ConnectionState.ONLINE, timeout)

    def subscribe(self) -> asyncio.Queue[fx.Notification]:
        return self.session.subscribe()

    # --- messaging -----------------------------------------------------------------------
    async def send(self, conversation_id: bytes, envelope: bytes, *, track: bool = True) -> str:
        """Queue an envelope (persisted first); returns its client_msg_id. ``track=False``:
        no ``wait_sent`` for it (for bulk senders; watch MessageSent notifications instead)."""
        return await self.session.send_message(conversation_id, envelope, track=track)

    async def wait_sent(self, client_msg_id: str, timeout: float) -> fx.MessageSent:
        return await self.session.wait_sent(client_msg_id, timeout)

    async def request(self, op: Op, timeout: float = 30.0) -> Result:
        return await self.session.request(op, timeout)

    async def open_direct(self, user_id: str, timeout: float = 30.0) -> ConversationInfo:
        result = await self.request(DirectOpen(user_id=user_id), timeout)
        assert isinstance(result, Conversation)
        return result.info

    async def create_group(
        self, members: list[str], meta: bytes = b"", timeout: float = 30.0
    ) -> ConversationInfo:
        result = await self.request(GroupCreate(members=members, meta=meta), timeout)
        assert isinstance(result, Conversation)
        return result.info

    async def server_history(
        self, conversation_id: bytes, after_seq: int = 0, limit: int = 500, timeout: float = 30.0
    ) -> HistoryPage:
        """One page straight from the server (not stored locally)."""
        op = History(conversation_id=conversation_id, after_seq=after_seq, limit=limit)
        result = await self.request(op, timeout)
        assert isinstance(result, HistoryPage)
        return result

    async def local_entries(self, conversation_id: bytes) -> list[ConvEntry]:
        """Every locally stored entry of the conversation, ascending."""
        out: list[ConvEntry] = []
        after = 0
        while page := await self.store.entries(conversation_id, after=after, limit=1000):
            out.extend(page)
            after = page[-1].seq
        return out

    async def set_in_view(self, conversation_id: bytes, in_view: bool = True) -> None:
        """Lazy clients (``eager=False``): pull this chat's recent page when it is behind."""
        await self.session.set_in_view(conversation_id, in_view)

    async def load_older(self, conversation_id: bytes, before_seq: int) -> None:
        """Pull the page just before ``before_seq`` into the local store (scroll-back)."""
        await self.session.load_older(conversation_id, before_seq)

    def cursor(self, conversation_id: bytes) -> int:
        conv = self.engine.conversations.get(conversation_id)
        return conv.cursor if conv is not None else 0

    def outbox_size(self) -> int:
        return len(self.engine.outbox)

    async def drop_connection(self) -> None:
        """Abort the socket (as a network failure would); the client reconnects by itself."""
        await self.session.drop_connection()
