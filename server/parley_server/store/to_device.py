"""The to-device domain: per-device queues of opaque end-to-end payloads."""

from __future__ import annotations

import abc
from collections.abc import Sequence

from parley.protocol.records import ToDeviceItem
from parley_server.store.records import ToDeviceOut


class ToDeviceStore(abc.ABC):
    """Per-device queues; each recipient device has its own gap-free seq."""

    # --- per-device to-device queue ----------------------------------------------------------
    @abc.abstractmethod
    async def enqueue_to_device(
        self, sender: str, sender_device: int, messages: Sequence[ToDeviceOut], now: int
    ) -> list[tuple[str, int, ToDeviceItem]]:
        """Queue all (all-or-nothing) with each recipient device's next seq;
        returns (user_id, device_id, item) for pushing. Raises NotFound (queuing nothing)
        if a recipient device does not exist or is revoked (a race with revoke_device)."""

    @abc.abstractmethod
    async def to_device_after(
        self, user_id: str, device_id: int, after: int, limit: int
    ) -> list[ToDeviceItem]: ...

    @abc.abstractmethod
    async def ack_to_device(self, user_id: str, device_id: int, upto_seq: int) -> int:
        """Delete the device's items with seq ≤ upto_seq; returns how many."""

    @abc.abstractmethod
    async def expire_to_device(self, older_than: int) -> int:
        """Delete items queued before ``older_than`` (ms); returns how many."""
