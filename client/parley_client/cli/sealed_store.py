"""The client's stores sealed at rest: ``SqliteLocalStore`` and ``SqliteE2EStorage`` on
in-memory databases whose images are re-sealed into the profile (``store.bin``, ``e2e.bin``)
when what they hold must be durable.

Why not a sqlite file: the profile must hold nothing readable without the profile key, and
sqlite has no page encryption in the stdlib. A CLI's store is small (its own chats), so
sealing the whole image per transaction is cheap and keeps the LocalStore contract: when a
method returns, what it stored (and its cursor) is durable.
"""

from __future__ import annotations

from collections.abc import Sequence

from parley.client.model import OutboxItem
from parley.protocol.records import ConvEntry, ToDeviceItem, UserEvent
from parley_client.cli.profile import E2E, STORE, Profile
from parley_client.e2e_storage import SqliteE2EStorage
from parley_client.store import SqliteLocalStore


class SealedLocalStore(SqliteLocalStore):
    def __init__(self, profile: Profile) -> None:
        super().__init__(":memory:")
        self.profile = profile
        image = profile.unseal(STORE)
        if image is not None:
            self.db.deserialize(image)

    def flush(self) -> None:
        self.profile.seal(STORE, self.db.serialize())

    async def store_entries(
        self, conversation_id: bytes, entries: Sequence[ConvEntry], cursor: int | None
    ) -> None:
        await super().store_entries(conversation_id, entries, cursor)
        self.flush()

    async def store_events(self, events: Sequence[UserEvent], cursor: int) -> None:
        await super().store_events(events, cursor)
        self.flush()

    async def store_to_device(self, items: Sequence[ToDeviceItem], cursor: int) -> None:
        await super().store_to_device(items, cursor)
        self.flush()

    async def outbox_put(self, item: OutboxItem) -> None:
        await super().outbox_put(item)
        self.flush()

    async def outbox_delete(self, client_msg_id: str) -> None:
        await super().outbox_delete(client_msg_id)
        self.flush()

    async def events(self) -> list[UserEvent]:
        """Every stored user event, ascending (for read positions and social state)."""
        from msgspec.msgpack import Decoder

        dec = Decoder(UserEvent)
        rows = self.db.execute("SELECT data FROM events ORDER BY seq").fetchall()
        return [dec.decode(r[0]) for r in rows]


class SealedE2EStorage(SqliteE2EStorage):
    """The E2E state and decrypted timeline, in memory, sealed into the profile (``e2e.bin``).

    ``save_state`` re-seals at once (it must be durable when it returns); views are sealed by
    the next ``sync`` (``E2EClient.save`` calls it after every state save)."""

    def __init__(self, profile: Profile) -> None:
        super().__init__(":memory:")
        self.profile = profile
        image = profile.unseal(E2E)
        if image is not None:
            self.db.deserialize(image)
        self._sealed_at = self.db.total_changes

    def save_state(self, blob: bytes) -> None:
        super().save_state(blob)
        self.sync()

    def sync(self) -> None:
        if self.db.total_changes != self._sealed_at:  # the state or a view changed
            self.profile.seal(E2E, self.db.serialize())
            self._sealed_at = self.db.total_changes
