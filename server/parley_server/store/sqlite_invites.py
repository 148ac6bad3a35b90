"""The SQLite engine of the ``InviteStore`` (``group_invites``, schema v3), in the main store's
file; writes go through its writer thread, each with its events in one transaction."""

from __future__ import annotations

import sqlite3

from parley.protocol.records import EventBody, GroupInviteClosed, GroupInvited, UserEvent
from parley_server.store.invites import InviteRow, InviteStore
from parley_server.store.sqlite import SqliteStore
from parley_server.store.sqlite_events import append_events_txn


class SqliteInviteStore(InviteStore):
    def __init__(self, store: SqliteStore) -> None:
        self.store = store

    @property
    def _r(self) -> sqlite3.Connection:
        return self.store.read_connection()

    async def add_invites(
        self, conversation_id: bytes, inviter: str, invitees: list[str], now: int
    ) -> list[tuple[str, UserEvent]]:
        def job(conn: sqlite3.Connection) -> list[tuple[str, UserEvent]]:
            events: list[tuple[str, EventBody]] = []
            for user_id in invitees:
                if conn.execute(
                    "INSERT OR IGNORE INTO group_invites (conversation_id, invitee, inviter,"
                    " created) VALUES (?,?,?,?)",
                    (conversation_id, user_id, inviter, now),
                ).rowcount:
                    events.append(
                        (user_id, GroupInvited(conversation_id=conversation_id, by=inviter))
                    )
            return append_events_txn(conn, events, now)

        return await self.store.transaction("invites.add_invites", job)

    async def list_invites(self, user_id: str, limit: int) -> tuple[list[InviteRow], bool]:
        rows = [
            InviteRow(bytes(cid), inviter, name, created)
            for cid, inviter, name, created in self._r.execute(
                "SELECT i.conversation_id, i.inviter, u.username, i.created FROM group_invites AS i"
                " JOIN users AS u ON u.user_id = i.inviter WHERE i.invitee = ?"
                " ORDER BY i.created, i.conversation_id LIMIT ?",
                (user_id, limit + 1),
            )
        ]
        return rows[:limit], len(rows) > limit

    async def take_invite(
        self, conversation_id: bytes, invitee: str, outcome: str, now: int
    ) -> tuple[str | None, list[tuple[str, UserEvent]]]:
        def job(conn: sqlite3.Connection) -> tuple[str | None, list[tuple[str, UserEvent]]]:
            row = conn.execute(
                "DELETE FROM group_invites WHERE conversation_id = ? AND invitee = ?"
                " RETURNING inviter",
                (conversation_id, invitee),
            ).fetchone()
            if row is None:
                return None, []
            closed: list[tuple[str, EventBody]] = [
                (invitee, GroupInviteClosed(conversation_id=conversation_id, outcome=outcome))
            ]
            return str(row[0]), append_events_txn(conn, closed, now)

        return await self.store.transaction("invites.take_invite", job)

    async def withdraw_all(self, conversation_id: bytes, now: int) -> list[tuple[str, UserEvent]]:
        def job(conn: sqlite3.Connection) -> list[tuple[str, UserEvent]]:
            invitees = [
                r[0]
                for r in conn.execute(
                    "DELETE FROM group_invites WHERE conversation_id = ? RETURNING invitee",
                    (conversation_id,),
                )
            ]
            closed: list[tuple[str, EventBody]] = [
                (u, GroupInviteClosed(conversation_id=conversation_id, outcome="withdrawn"))
                for u in invitees
            ]
            return append_events_txn(conn, closed, now)

        return await self.store.transaction("invites.withdraw_all", job)


__all__ = ["SqliteInviteStore"]
