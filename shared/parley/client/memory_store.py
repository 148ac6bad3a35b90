"""An in-memory ``LocalStore``: the reference semantics for real stores, and a store for
tests, benchmarks and throwaway bots. Nothing survives the process."""

from __future__ import annotations

from collections.abc import Sequence

from parley.client.model import Cursors, OutboxItem
from parley.protocol.records import ConvEntry, ToDeviceItem, UserEvent


class MemoryLocalStore:
    def __init__(self) -> None:
        self.cursors = Cursors()
        self.messages: dict[bytes, dict[int, ConvEntry]] = {}
        self.events: dict[int, UserEvent] = {}
        self.to_device: dict[int, ToDeviceItem] = {}
        self.outbox: dict[str, OutboxItem] = {}

    async def load_cursors(self) -> Cursors:
        c = self.cursors
        return Cursors(c.events, c.to_device, dict(c.conversations))

    async def store_entries(
        self, conversation_id: bytes, entries: Sequence[ConvEntry], cursor: int | None
    ) -> None:
        held = self.messages.setdefault(conversation_id, {})
        for e in entries:
            held.setdefault(e.seq, e)
        if cursor is not None:
            old = self.cursors.conversations.get(conversation_id, 0)
            self.cursors.conversations[conversation_id] = max(old, cursor)

    async def store_events(self, events: Sequence[UserEvent], cursor: int) -> None:
        for e in events:
            self.events.setdefault(e.seq, e)
        self.cursors.events = max(self.cursors.events, cursor)

    async def store_to_device(self, items: Sequence[ToDeviceItem], cursor: int) -> None:
        for i in items:
            self.to_device.setdefault(i.seq, i)
        self.cursors.to_device = max(self.cursors.to_device, cursor)

    async def to_device_after(self, seq: int) -> list[ToDeviceItem]:
        return [self.to_device[s] for s in sorted(self.to_device) if s > seq]

    async def outbox_put(self, item: OutboxItem) -> None:
        self.outbox.setdefault(item.client_msg_id, item)

    async def outbox_delete(self, client_msg_id: str) -> None:
        self.outbox.pop(client_msg_id, None)

    async def outbox_all(self) -> list[OutboxItem]:
        return list(self.outbox.values())

    async def entries(
        self,
        conversation_id: bytes,
        *,
        after: int | None = None,
        before: int | None = None,
        limit: int = 100,
    ) -> list[ConvEntry]:
        held = self.messages.get(conversation_id, {})
        seqs = sorted(held)
        if after is not None:
            chosen = [s for s in seqs if s > after][:limit]
        elif before is not None:
            chosen = [s for s in seqs if s < before][-limit:]
        else:
            chosen = seqs[-limit:]
        return [held[s] for s in chosen]

    async def close(self) -> None:
        return None
