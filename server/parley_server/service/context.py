"""What every service call needs: the caller's session and the shared components."""

from __future__ import annotations

import time
from dataclasses import dataclass

from parley_server.config import Settings
from parley_server.fanout.base import Broker
from parley_server.store.base import Store
from parley_server.store.stores import Stores


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class Session:
    """The authenticated caller: taken from the token, never from a request body."""

    user_id: str
    device_id: int


@dataclass(frozen=True, slots=True)
class Services:
    stores: Stores
    broker: Broker
    settings: Settings

    @property
    def store(self) -> Store:
        """The core domains (accounts, conversations, events, to-device)."""
        return self.stores.main
