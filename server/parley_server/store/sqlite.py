"""The embedded SQLite engine of the ``Store``: the core domains on one ``SqliteDatabase``.

Each domain lives in its own module (``sqlite_accounts``, ``sqlite_conversations``,
``sqlite_events``, ``sqlite_to_device``); this class only composes them on one file, one writer
thread and one read connection, so a write that spans domains (a membership change appending
user events) is still one transaction. See ``sqlite_db.py`` for durability and the threading
model. The other SQLite domains (social, key directory, provisioning) take this instance and
share its file and writer; ``stores.open_stores`` builds them all.
"""

from __future__ import annotations

from parley_server.store.base import Store
from parley_server.store.sqlite_accounts import SqliteAccountStore
from parley_server.store.sqlite_conversations import IDEMPOTENCY_TTL_MS, SqliteConversationStore
from parley_server.store.sqlite_events import SqliteEventStore, append_events_txn
from parley_server.store.sqlite_to_device import SqliteToDeviceStore


class SqliteStore(
    SqliteAccountStore,
    SqliteConversationStore,
    SqliteEventStore,
    SqliteToDeviceStore,
    Store,
):
    """``Store`` on one SQLite file (plus its -wal and -shm companions)."""

    # In-transaction helper kept under its old name for engines of other domains.
    _append_events = staticmethod(append_events_txn)


__all__ = ["IDEMPOTENCY_TTL_MS", "SqliteStore"]
