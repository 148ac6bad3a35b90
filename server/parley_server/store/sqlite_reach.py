"""The SQLite engine of the ``ReachStore``: reads of ``contacts``, ``members`` and ``to_device``
(the last through ``to_device_by_sender``, schema v3)."""

from __future__ import annotations

import sqlite3

from parley_server.store.reach import ReachStore
from parley_server.store.sqlite import SqliteStore


class SqliteReachStore(ReachStore):
    def __init__(self, store: SqliteStore) -> None:
        self.store = store

    @property
    def _r(self) -> sqlite3.Connection:
        return self.store.read_connection()

    async def may_reach(self, sender: str, recipients: list[str]) -> set[str]:
        allowed = {sender} & set(recipients)
        for user_id in set(recipients) - allowed:
            row = self._r.execute(
                "SELECT 1 FROM contacts WHERE user_id = ? AND contact_id = ?"
                " UNION ALL SELECT 1 FROM members AS a JOIN members AS b"
                " ON b.conversation_id = a.conversation_id AND b.user_id = ?"
                " WHERE a.user_id = ? LIMIT 1",
                (sender, user_id, user_id, sender),
            ).fetchone()
            if row is not None:
                allowed.add(user_id)
        return allowed

    async def queued_from(self, sender: str, recipient: str) -> int:
        (n,) = self._r.execute(
            "SELECT count(*) FROM to_device WHERE user_id = ? AND sender = ?",
            (recipient, sender),
        ).fetchone()
        return int(n)


__all__ = ["SqliteReachStore"]
