"""The Redis engine of the ``Store``: the core domains on one ``RedisDatabase`` (one Redis or
a Redis Cluster). Each domain lives in its own module (``redis_accounts``,
``redis_conversations``, ``redis_events``, ``redis_to_device``); this class composes them on one
client. See ``redis_db.py`` for the key layout, the intent log and durability, and
docs/scale-out.md for the deployment.
"""

from __future__ import annotations

from typing import Any

from parley_server.store.base import Store
from parley_server.store.redis_accounts import RedisAccountStore
from parley_server.store.redis_conversations import RedisConversationStore
from parley_server.store.redis_to_device import RedisToDeviceStore


class RedisStore(RedisAccountStore, RedisConversationStore, RedisToDeviceStore, Store):
    """``Store`` on Redis: ``redis://HOST:PORT/DB`` or ``redis+cluster://HOST:PORT,...``."""

    def __init__(self, url: str, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self._init_events()
        self._init_conversations()
        self._init_to_device()


__all__ = ["RedisStore"]
