"""Sync: what changed since the client's cursors, in bounded pages.

The reply carries (1) user events after ``events_after``, (2) this device's to-device items
after ``to_device_after``, (3) the states of conversations whose ``last_seq`` is past the
client's cursor or that the client does not know, ordered by conversation id and paged with
``conv_after``/``conv_next``. Messages themselves are pulled with History, lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from parley.protocol.ops import ConvState, SyncReply, SyncRequest
from parley.protocol.records import ToDeviceItem, UserEvent
from parley_server.service.context import Services, Session, now_ms
from parley_server.service.pages import forward_page, reply_budget, wire_size

if TYPE_CHECKING:
    from parley_server.service.reads import Reads


class Sync:
    def __init__(self, services: Services, reads: Reads | None = None) -> None:
        self.s = services
        self.reads = reads  # fills read_seq / unread of each ConvState

    async def sync(self, session: Session, op: SyncRequest) -> SyncReply:
        cfg = self.s.settings
        store = self.s.store
        held = {c.conversation_id: c.seq for c in op.conversations}
        changed: list[ConvState] = []
        conv_next: bytes | None = None
        for state in await store.conversation_states(session.user_id):
            if op.conv_after is not None and state.conversation_id <= op.conv_after:
                continue
            cursor = held.get(state.conversation_id)
            if cursor is not None and state.last_seq <= cursor:
                continue
            if len(changed) == cfg.sync_conversations_max:
                conv_next = changed[-1].conversation_id
                break
            changed.append(state)
        if self.reads is not None:
            await self.reads.annotate(session.user_id, changed)
        # Everything shares one frame. The conversation states (at most 1000 small rows) go
        # first; events (small) may take half of what is left, to-device items the rest, so
        # each list makes progress on every call (one item is at most 64 KiB).
        budget = reply_budget(cfg.max_frame_bytes) - sum(wire_size(c) for c in changed)

        async def events_after(after: int, n: int) -> list[UserEvent]:
            return await store.events_after(session.user_id, after, n)

        async def items_after(after: int, n: int) -> list[ToDeviceItem]:
            return await store.to_device_after(session.user_id, session.device_id, after, n)

        events, events_more, used = await forward_page(
            events_after, op.events_after, cfg.sync_events_max, budget // 2
        )
        items, items_more, _ = await forward_page(
            items_after, op.to_device_after, cfg.sync_to_device_max, budget - used
        )
        return SyncReply(
            events=events,
            events_more=events_more,
            to_device=items,
            to_device_more=items_more,
            conversations=changed,
            conv_next=conv_next,
            server_time=now_ms(),
        )
