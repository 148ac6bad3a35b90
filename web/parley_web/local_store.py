"""The browser's ``LocalStore`` (``parley.client.interfaces``) on IndexedDB, plus the sealed
records the UI and the E2E layer keep beside it.

One database per profile (account + device). Object stores:

* ``entries`` ``[cid hex, seq]`` → msgpack ``ConvEntry`` (envelopes are E2E ciphertext);
* ``events`` / ``to_device`` ``seq`` → msgpack records (to-device bodies are pairwise ciphertext);
* ``outbox`` ``client_msg_id`` → msgpack ``(n, OutboxItem)`` (n keeps the order);
* ``meta``: ``cursors`` (plain msgpack) and SEALED records (``Vault``): the E2E state (keys,
  sessions, the local send queue), the session token, user names;
* ``views`` ``[cid hex, seq]`` → SEALED decrypted message rows (plaintext never rests unsealed);
* ``convs`` ``cid hex`` → SEALED chat summaries (name, last message, unread count).

Each LocalStore method is ONE transaction and writes the cursor with the data it covers; the
in-memory copy of the cursors moves only after the transaction committed.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from parley.client.model import Cursors, OutboxItem
from parley.protocol.records import ConvEntry, ToDeviceItem, UserEvent
from parley_web import idb
from parley_web.vault import Vault

STORES = ["meta", "entries", "events", "to_device", "outbox", "views", "convs"]

_enc = msgspec.msgpack.Encoder()
_cursors = msgspec.msgpack.Decoder(Cursors)
_entry = msgspec.msgpack.Decoder(ConvEntry)
_td = msgspec.msgpack.Decoder(ToDeviceItem)
_outbox = msgspec.msgpack.Decoder(tuple[int, OutboxItem])


def db_name(user_id: str, device_id: int) -> str:
    return f"parley-{user_id}-{device_id}"


class WebStore:
    def __init__(self, db: idb.Db, vault: Vault) -> None:
        self.db = db
        self.vault = vault
        self.cursors = Cursors()
        self._outbox_n = 0

    @classmethod
    async def open(cls, name: str, vault: Vault) -> WebStore:
        return cls(await idb.Db.open(name, STORES), vault)

    # --- LocalStore ----------------------------------------------------------------------
    async def load_cursors(self) -> Cursors:
        raw = await self.db.get("meta", "cursors")
        if raw is not None:
            self.cursors = _cursors.decode(raw)
        c = self.cursors
        return Cursors(c.events, c.to_device, dict(c.conversations))

    def _put_cursors(self, tx: object, new: Cursors) -> None:
        tx.objectStore("meta").put(idb.u8(_enc.encode(new)), "cursors")  # type: ignore[attr-defined]

    def _next(self, **changes: object) -> Cursors:
        c = self.cursors
        new = Cursors(c.events, c.to_device, dict(c.conversations))
        for k, v in changes.items():
            setattr(new, k, v)
        return new

    async def store_entries(
        self, conversation_id: bytes, entries: Sequence[ConvEntry], cursor: int | None
    ) -> None:
        h = conversation_id.hex()
        tx = self.db.tx(["entries", "meta"], "readwrite")
        s = tx.objectStore("entries")
        for e in entries:
            idb.add_ignore(s, _enc.encode(e), idb.key(h, e.seq))
        new = None
        if cursor is not None:
            new = self._next()
            new.conversations[conversation_id] = max(
                new.conversations.get(conversation_id, 0), cursor
            )
            self._put_cursors(tx, new)
        await idb.done(tx)
        if new is not None:
            self.cursors = new

    async def store_events(self, events: Sequence[UserEvent], cursor: int) -> None:
        tx = self.db.tx(["events", "meta"], "readwrite")
        s = tx.objectStore("events")
        for e in events:
            idb.add_ignore(s, _enc.encode(e), e.seq)
        new = self._next(events=max(self.cursors.events, cursor))
        self._put_cursors(tx, new)
        await idb.done(tx)
        self.cursors = new

    async def store_to_device(self, items: Sequence[ToDeviceItem], cursor: int) -> None:
        tx = self.db.tx(["to_device", "meta"], "readwrite")
        s = tx.objectStore("to_device")
        for i in items:
            idb.add_ignore(s, _enc.encode(i), i.seq)
        new = self._next(to_device=max(self.cursors.to_device, cursor))
        self._put_cursors(tx, new)
        await idb.done(tx)
        self.cursors = new

    async def outbox_put(self, item: OutboxItem) -> None:
        self._outbox_n += 1
        tx = self.db.tx(["outbox"], "readwrite")
        idb.add_ignore(
            tx.objectStore("outbox"), _enc.encode((self._outbox_n, item)), item.client_msg_id
        )
        await idb.done(tx)

    async def outbox_delete(self, client_msg_id: str) -> None:
        await self.db.delete("outbox", client_msg_id)

    async def outbox_all(self) -> list[OutboxItem]:
        rows = sorted(_outbox.decode(r) for r in await self.db.get_all("outbox"))
        self._outbox_n = max([self._outbox_n, *(n for n, _ in rows)])
        return [item for _, item in rows]

    async def entries(
        self,
        conversation_id: bytes,
        *,
        after: int | None = None,
        before: int | None = None,
        limit: int = 100,
    ) -> list[ConvEntry]:
        h = conversation_id.hex()
        if after is not None:
            raw = await self.db.get_all("entries", idb.key_range(h, after + 1, float("inf")), limit)
        else:
            hi = float("inf") if before is None else before - 1
            raw = await self.db.get_all("entries", idb.key_range(h, 0, hi))
            raw = raw[-limit:]
        return [_entry.decode(r) for r in raw]

    async def to_device_after(self, seq: int) -> list[ToDeviceItem]:
        from js import IDBKeyRange  # type: ignore[import-not-found]

        raw = await self.db.get_all("to_device", IDBKeyRange.lowerBound(seq, True))
        return [_td.decode(r) for r in raw]

    async def close(self) -> None:
        self.db.close()

    # --- beyond the LocalStore: sealed records -------------------------------------------
    async def get_sealed(self, name: str) -> bytes | None:
        blob = await self.db.get("meta", name)
        return None if blob is None else self.vault.open(blob, b"meta/" + name.encode())

    async def put_sealed(self, name: str, data: bytes) -> None:
        await self.db.put("meta", name, self.vault.seal(data, b"meta/" + name.encode()))

    async def put_rows(self, conversation_id: bytes, rows: Sequence[tuple[int, bytes]]) -> None:
        """Sealed view rows (decrypted messages) in one transaction."""
        h = conversation_id.hex()
        sealed = [(seq, self.vault.seal(data, f"view/{h}/{seq}".encode())) for seq, data in rows]
        tx = self.db.tx(["views"], "readwrite")
        s = tx.objectStore("views")
        for seq, blob in sealed:
            s.put(idb.u8(blob), idb.key(h, seq))
        await idb.done(tx)

    async def row_seqs(self, conversation_id: bytes) -> list[int]:
        return await self.db.seqs("views", conversation_id.hex())

    async def rows(self, conversation_id: bytes, lo: int, hi: int) -> list[tuple[int, bytes]]:
        """Opened rows ``(seq, data)`` with ``lo <= seq <= hi``, ascending."""
        h = conversation_id.hex()
        pairs = await self.db.get_all_with_keys("views", idb.key_range(h, lo, hi))
        return [(int(k[1]), self.vault.open(v, f"view/{h}/{int(k[1])}".encode())) for k, v in pairs]

    async def put_conv(self, conversation_id: bytes, data: bytes) -> None:
        h = conversation_id.hex()
        await self.db.put("convs", h, self.vault.seal(data, f"conv/{h}".encode()))

    async def all_convs(self) -> list[bytes]:
        pairs = await self.db.get_all_with_keys("convs")
        return [self.vault.open(v, f"conv/{k}".encode()) for k, v in pairs]
