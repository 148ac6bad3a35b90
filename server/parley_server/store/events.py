"""The per-user event timeline domain: what a user's devices learn at sync besides entries."""

from __future__ import annotations

import abc
from collections.abc import Sequence

from parley.protocol.records import EventBody, UserEvent


class EventStore(abc.ABC):
    """Per-user event timelines, each with its own gap-free seq."""

    # --- per-user event timeline -------------------------------------------------------------
    @abc.abstractmethod
    async def append_events(
        self, events: Sequence[tuple[str, EventBody]], now: int
    ) -> list[tuple[str, UserEvent]]:
        """Append events to users' timelines, each with that user's next seq (all or nothing;
        NotFound if a user does not exist)."""

    @abc.abstractmethod
    async def events_after(self, user_id: str, after: int, limit: int) -> list[UserEvent]: ...
