"""A load-test device built on the real client engine: ``ClientEngine`` + ``Session`` over a
websockets ``Transport``, with the in-memory ``LocalStore`` (the sqlite store would measure
the load generator's disk, not the server).

Each envelope carries a message number right after its 41-byte header; the process that sent
it keeps the send time, so a receiving peer in the same process can compute end-to-end latency
on one monotonic clock.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable

from websockets.asyncio.client import connect

from parley.client import effects as fx
from parley.client.engine import ClientEngine
from parley.client.interfaces import Transport
from parley.client.memory_store import MemoryLocalStore
from parley.client.model import ConnectionState
from parley.client.session import Session
from parley.protocol.limits import MAX_FRAME_BYTES
from parley_client.transport import WebSocketTransport

ENVELOPE_LEN = 256
_HEADER = 41  # 0x01 || group_id(16) || distribution_id(16) || u32 chain || u32 iteration
_TAIL = ENVELOPE_LEN - _HEADER - 8


def envelope(conversation_id: bytes, number: int) -> bytes:
    """256 framing-valid bytes: version, group_id, random header rest, number, random rest."""
    return (
        b"\x01" + conversation_id + os.urandom(24) + number.to_bytes(8, "big") + os.urandom(_TAIL)
    )


def envelope_number(env: bytes) -> int:
    return int.from_bytes(env[_HEADER : _HEADER + 8], "big")


def make_connector(url: str, local_addr: str | None) -> Callable[[], object]:
    extra = {"local_addr": (local_addr, 0)} if local_addr else {}

    async def connect_once() -> Transport:
        ws = await connect(
            url,
            max_size=MAX_FRAME_BYTES,
            compression=None,
            ping_interval=None,
            open_timeout=30.0,
            close_timeout=2.0,
            **extra,  # type: ignore[arg-type]
        )
        return WebSocketTransport(ws)

    return connect_once


class Peer:
    """One device. ``on_delivery(peer, entry_envelope, sender)`` sees every stored entry
    authored by someone else; counters track acks, failures and connection drops."""

    def __init__(
        self,
        ws_url: str,
        token: str,
        *,
        local_addr: str | None = None,
        send_window: int = 64,
        on_delivery: Callable[[Peer, bytes], None] | None = None,
        on_sent: Callable[[Peer], None] | None = None,
    ) -> None:
        self.store = MemoryLocalStore()
        self.engine = ClientEngine(token, client_name="parley-load", send_window=send_window)
        self.session = Session(
            self.engine,
            make_connector(ws_url, local_addr),  # type: ignore[arg-type]
            self.store,
        )
        self.session.add_listener(self._on)
        self.on_delivery = on_delivery
        self.on_sent = on_sent
        self.room = asyncio.Event()
        self.acked = 0
        self.failed = 0
        self.onlines = 0
        self.drops = 0

    async def start(self) -> None:
        await self.session.start()

    async def wait_online(self, timeout: float) -> bool:
        try:
            await self.session.wait_state(ConnectionState.ONLINE, timeout)
        except (TimeoutError, Exception):
            return False
        return True

    @property
    def online(self) -> bool:
        return self.engine.state is ConnectionState.ONLINE

    def outbox_len(self) -> int:
        return len(self.engine.outbox)

    async def send(self, conversation_id: bytes, number: int) -> None:
        await self.session.send_message(
            conversation_id, envelope(conversation_id, number), track=False
        )

    async def stop(self) -> None:
        await self.session.stop(timeout=5.0)

    def _on(self, n: fx.Notification) -> None:
        if isinstance(n, fx.EntriesStored):
            held = self.store.messages.get(n.conversation_id)
            if held is None:
                return
            me = self.engine.user_id
            for seq in range(n.first, n.last + 1):
                e = held.pop(seq, None)  # keep memory flat during long runs
                if e is None or e.sender == me or self.on_delivery is None:
                    continue
                body = e.body
                env = getattr(body, "envelope", None)
                if env is not None:
                    self.on_delivery(self, env)
        elif isinstance(n, fx.MessageSent):
            self.acked += 1
            self.room.set()
            if self.on_sent is not None:
                self.on_sent(self)
        elif isinstance(n, fx.MessageFailed):
            self.failed += 1
            self.room.set()
        elif isinstance(n, fx.ConnectionChanged):
            if n.state is ConnectionState.ONLINE:
                self.onlines += 1
            elif n.state is ConnectionState.DISCONNECTED and self.onlines:
                self.drops += 1


def now() -> float:
    return time.monotonic()
