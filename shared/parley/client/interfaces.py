"""The two edges a shell implements: ``Transport`` (one WebSocket connection) and
``LocalStore`` (durable device state).

Both are async Protocols so the browser (WebSocket + IndexedDB via Pyodide), the CPython CLI
(websockets + sqlite3) and the benchmarks can plug in. LocalStore methods are coarse-grained on
purpose: each is ONE transaction (an IndexedDB transaction or a sqlite commit), and cursors are
written in the same transaction as the data they cover, so a crash never leaves a cursor past
data that is not stored.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from parley.client.model import Cursors, OutboxItem
from parley.protocol.records import ConvEntry, ToDeviceItem, UserEvent


class TransportClosed(Exception):
    """Raised by ``Transport.recv``/``send`` once the connection is gone."""

    def __init__(self, code: int | None = None, reason: str = "") -> None:
        super().__init__(f"closed {code}: {reason}")
        self.code = code
        self.reason = reason


class Transport(Protocol):
    """One open connection carrying binary frames (one frame per WebSocket message)."""

    async def send(self, data: bytes) -> None: ...

    async def recv(self) -> bytes:
        """The next frame; raises TransportClosed (with the close code) when closed."""
        ...

    async def close(self, code: int = 1000, reason: str = "") -> None: ...


Connector = Callable[[], Awaitable[Transport]]
"""Opens a new connection to the server (raises on failure)."""


class LocalStore(Protocol):
    """Durable device state. Every method is one transaction."""

    async def load_cursors(self) -> Cursors: ...

    async def store_entries(
        self, conversation_id: bytes, entries: Sequence[ConvEntry], cursor: int | None
    ) -> None:
        """Insert-or-ignore by (conversation_id, seq); set the cursor to max(old, cursor)."""
        ...

    async def store_events(self, events: Sequence[UserEvent], cursor: int) -> None: ...

    async def store_to_device(self, items: Sequence[ToDeviceItem], cursor: int) -> None: ...

    async def to_device_after(self, seq: int) -> list[ToDeviceItem]:
        """Stored to-device items with a seq above ``seq``, ascending (the E2E driver's
        backlog: it remembers the last one it processed)."""
        ...

    async def outbox_put(self, item: OutboxItem) -> None: ...

    async def outbox_delete(self, client_msg_id: str) -> None: ...

    async def outbox_all(self) -> list[OutboxItem]:
        """Every queued item, oldest first."""
        ...

    async def entries(
        self,
        conversation_id: bytes,
        *,
        after: int | None = None,
        before: int | None = None,
        limit: int = 100,
    ) -> list[ConvEntry]:
        """Stored entries ascending: after ``after``, or the ``limit`` just before ``before``,
        or (neither) the latest ``limit``."""
        ...

    async def close(self) -> None: ...
