"""Plain data the engine and the shells share: cursors and outbox items.

Both are msgspec Structs so a shell can persist them as msgpack (IndexedDB, sqlite) without
writing its own schema for them.
"""

from __future__ import annotations

from enum import Enum

import msgspec

from parley.protocol.records import RefKind


class OutboxItem(msgspec.Struct):
    """A message waiting for its ``Sent`` reply. ``client_msg_id`` is chosen once, persisted
    with the item and reused on every retry: the server deduplicates by it."""

    client_msg_id: str
    conversation_id: bytes
    envelope: bytes
    created_ms: int = 0
    ref_seq: int | None = None  # edit / reaction / reply target (parley.client.social)
    ref_kind: RefKind | None = None
    mentions: list[str] = msgspec.field(default_factory=list)
    blobs: list[str] = msgspec.field(default_factory=list)  # attachment blob ids (Send.blobs)


class Cursors(msgspec.Struct):
    """What the device holds: every stored event/to-device item up to these seqs, and per
    conversation the cursor of its head range (see parley.sync)."""

    events: int = 0
    to_device: int = 0
    conversations: dict[bytes, int] = msgspec.field(default_factory=dict)


class ConnectionState(Enum):
    DISCONNECTED = "disconnected"  # not connected; a reconnect may be scheduled
    CONNECTING = "connecting"  # the shell is opening the transport
    AUTHENTICATING = "authenticating"  # Hello sent, waiting for Welcome
    SYNCING = "syncing"  # authenticated, catching up with Sync
    ONLINE = "online"  # caught up; pushes flow
    STOPPED = "stopped"  # given up for good (auth failed, revoked, stop())
