"""The SQLite engine of the to-device queues (``to_device``; the counter is
``devices.td_last_seq``, so a revoked device can get nothing new)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from parley.protocol.records import ToDeviceItem
from parley_server.store.records import NotFound, ToDeviceOut
from parley_server.store.sqlite_db import SqliteDatabase
from parley_server.store.to_device import ToDeviceStore


class SqliteToDeviceStore(SqliteDatabase, ToDeviceStore):
    async def enqueue_to_device(
        self, sender: str, sender_device: int, messages: Sequence[ToDeviceOut], now: int
    ) -> list[tuple[str, int, ToDeviceItem]]:
        """Raises NotFound (queuing nothing) if any recipient device is unknown or revoked."""
        messages = list(messages)

        def job(conn: sqlite3.Connection) -> list[tuple[str, int, ToDeviceItem]]:
            out: list[tuple[str, int, ToDeviceItem]] = []
            for m in messages:
                r = conn.execute(
                    "UPDATE devices SET td_last_seq = td_last_seq + 1"
                    " WHERE user_id = ? AND device_id = ? AND revoked = 0 RETURNING td_last_seq",
                    (m.user_id, m.device_id),
                ).fetchone()
                if r is None:
                    raise NotFound(f"device {m.user_id}/{m.device_id}")
                seq = int(r[0])
                conn.execute(
                    "INSERT INTO to_device"
                    " (user_id, device_id, seq, ts, sender, sender_device, body)"
                    " VALUES (?,?,?,?,?,?,?)",
                    (m.user_id, m.device_id, seq, now, sender, sender_device, m.body),
                )
                out.append(
                    (m.user_id, m.device_id, ToDeviceItem(seq, now, sender, sender_device, m.body))
                )
            return out

        return await self._write("to_device.enqueue_to_device", job)

    async def to_device_after(
        self, user_id: str, device_id: int, after: int, limit: int
    ) -> list[ToDeviceItem]:
        return [
            ToDeviceItem(seq, ts, sender, sender_device, body)
            for seq, ts, sender, sender_device, body in self._r.execute(
                "SELECT seq, ts, sender, sender_device, body FROM to_device"
                " WHERE user_id = ? AND device_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                (user_id, device_id, after, limit),
            )
        ]

    async def ack_to_device(self, user_id: str, device_id: int, upto_seq: int) -> int:
        def job(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "DELETE FROM to_device WHERE user_id = ? AND device_id = ? AND seq <= ?",
                (user_id, device_id, upto_seq),
            ).rowcount

        return await self._write("to_device.ack_to_device", job)

    async def expire_to_device(self, older_than: int) -> int:
        def job(conn: sqlite3.Connection) -> int:
            return conn.execute("DELETE FROM to_device WHERE ts < ?", (older_than,)).rowcount

        return await self._write("to_device.expire_to_device", job)


__all__ = ["SqliteToDeviceStore"]
