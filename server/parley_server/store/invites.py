"""The group-invitation domain: pending invitations (schema v3 ``group_invites``).

An invitation is a row until the invitee answers it; each change appends the invitee's user
event (``group_invited`` / ``group_invite_closed``) in the same transaction, so every device of
the invitee learns of it at its next sync.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

from parley.protocol.records import UserEvent


@dataclass(frozen=True)
class InviteRow:
    conversation_id: bytes
    inviter: str
    inviter_name: str
    created: int


class InviteStore(abc.ABC):
    @abc.abstractmethod
    async def add_invites(
        self, conversation_id: bytes, inviter: str, invitees: list[str], now: int
    ) -> list[tuple[str, UserEvent]]:
        """Record invitations (an existing one is kept as it is); returns the events of the new
        ones, to push."""

    @abc.abstractmethod
    async def list_invites(self, user_id: str, limit: int) -> tuple[list[InviteRow], bool]:
        """The user's pending invitations, oldest first, and whether there are more."""

    @abc.abstractmethod
    async def take_invite(
        self, conversation_id: bytes, invitee: str, outcome: str, now: int
    ) -> tuple[str | None, list[tuple[str, UserEvent]]]:
        """End one invitation: (its inviter, or None when there was none; the events)."""

    @abc.abstractmethod
    async def withdraw_all(self, conversation_id: bytes, now: int) -> list[tuple[str, UserEvent]]:
        """End every invitation to a group (it was disbanded)."""
