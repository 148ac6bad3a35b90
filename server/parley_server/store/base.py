"""The ``Store`` interface: the core domains of what the server keeps durably, in one engine.

Laid out like Synapse's storage: one interface per domain (``accounts.py``,
``conversations.py``, ``events.py``, ``to_device.py``; and, built beside it by the same
composition root ``stores.open_stores``, ``social.py``, ``keydir.py``, ``provisioning.py``), one
module per domain per engine (``sqlite_<domain>.py``; another engine, such as the planned Redis
one, adds its own ``<engine>_<domain>.py``). ``Store`` is the
union of the core domains because some writes span them in one transaction (a membership change
appends entries and user events). Engines do storage only: authorization and fan-out live in
the service layer above. Each method is atomic. Nothing here ever sees plaintext message
content: envelopes and metadata are opaque bytes. The same contract suite
(tests/contract/test_store.py) runs against every engine.
"""

from __future__ import annotations

import abc

from parley.protocol.types import ConversationKind
from parley_server.store.accounts import AccountStore
from parley_server.store.conversations import ConversationStore
from parley_server.store.events import EventStore
from parley_server.store.records import (
    AppendResult,
    BadReference,
    DeviceRow,
    MemberChange,
    MembershipResult,
    NotFound,
    SessionRow,
    StoreError,
    ToDeviceOut,
    UsernameTaken,
    UserRow,
)
from parley_server.store.to_device import ToDeviceStore


class Store(AccountStore, EventStore, ConversationStore, ToDeviceStore, abc.ABC):
    """Durable state of one Parley service. All methods are coroutine-safe."""

    @abc.abstractmethod
    async def open(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None:
        """Flush pending writes and release resources."""


__all__ = [
    "AppendResult",
    "BadReference",
    "ConversationKind",
    "DeviceRow",
    "MemberChange",
    "MembershipResult",
    "NotFound",
    "SessionRow",
    "Store",
    "StoreError",
    "ToDeviceOut",
    "UserRow",
    "UsernameTaken",
]
