"""The ``SocialStore`` interface: profiles, contacts, friend requests, blocks, read marks and
recall. Engines share the ``Store``'s database (SQLite: ``sqlite_social.py``).

Like ``Store``, engines do storage only and each method is atomic; the rules (who may, which
error) live in ``service/social.py``, ``service/reads.py`` and ``service/recall.py``. Methods that
change a relation append the matching user events in the same transaction and return them
for pushing, so an offline device sees every change at its next sync.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

import msgspec

from parley.protocol.records import ConvEntry, UserEvent
from parley_server.store.base import StoreError

Events = list[tuple[str, UserEvent]]


class Blocked(StoreError):
    """One of the two users blocked the other."""


class AlreadyContacts(StoreError):
    pass


class TooManyPending(StoreError):
    pass


class ProfileRow(msgspec.Struct):
    email: str | None = None
    phone: str | None = None
    hidden: bool = False
    read_receipts: bool = True
    last_seen_visible: bool = True


class ProfileChange(msgspec.Struct):
    """None leaves a field as it is; an empty email/phone clears it."""

    email: str | None = None
    phone: str | None = None
    hidden: bool | None = None
    read_receipts: bool | None = None
    last_seen_visible: bool | None = None


class RequestRow(msgspec.Struct):
    user_id: str  # the other side
    username: str
    note: str
    created: int


class ContactRow(msgspec.Struct):
    user_id: str
    username: str
    since: int


class RequestResult(msgspec.Struct):
    contact: bool  # a reverse request was pending: the two are contacts now
    events: Events


class RecallResult(msgspec.Struct):
    entry: ConvEntry  # the tombstone
    also: list[int]  # edits of it by its sender, tombstoned too
    events: Events
    duplicate: bool  # it was already recalled: nothing changed


class SocialStore(abc.ABC):
    # --- profile and lookup ------------------------------------------------------------------
    @abc.abstractmethod
    async def get_profile(self, user_id: str) -> ProfileRow: ...

    @abc.abstractmethod
    async def set_profile(self, user_id: str, change: ProfileChange) -> ProfileRow: ...

    @abc.abstractmethod
    async def find_users(self, field: str, value: str, limit: int) -> list[tuple[str, str]]:
        """(user_id, username) of users whose ``field`` ('username' | 'email' | 'phone')
        equals ``value`` exactly, leaving out users who hide from lookup."""

    # --- contacts, requests, blocks ------------------------------------------------------------
    @abc.abstractmethod
    async def are_contacts(self, a: str, b: str) -> bool: ...

    @abc.abstractmethod
    async def blocked_between(self, a: str, b: str) -> bool:
        """True when either user blocked the other."""

    @abc.abstractmethod
    async def blockers_of(self, user_id: str, others: Sequence[str]) -> set[str]:
        """The users among ``others`` who blocked ``user_id``."""

    @abc.abstractmethod
    async def contact_ids(self, user_id: str) -> list[str]: ...

    @abc.abstractmethod
    async def send_request(
        self, sender: str, target: str, note: str, max_pending: int, now: int
    ) -> RequestResult:
        """Raise Blocked, AlreadyContacts, TooManyPending or NotFound (unknown target). A
        repeated request changes nothing (no events); a pending reverse request is accepted."""

    @abc.abstractmethod
    async def close_request(self, sender: str, target: str, outcome: str, now: int) -> Events:
        """End the pending request sender → target: 'accepted' (they become contacts),
        'rejected' or 'cancelled'. Raise NotFound if there is none."""

    @abc.abstractmethod
    async def list_requests(
        self, user_id: str, limit: int
    ) -> tuple[list[RequestRow], list[RequestRow], bool]:
        """(incoming, outgoing, more), oldest first."""

    @abc.abstractmethod
    async def list_contacts(
        self, user_id: str, limit: int
    ) -> tuple[list[ContactRow], list[str], bool]:
        """(contacts, blocked user ids, more)."""

    @abc.abstractmethod
    async def remove_contact(self, user_id: str, other: str, now: int) -> Events:
        """Raise NotFound if they are not contacts."""

    @abc.abstractmethod
    async def block(self, user_id: str, other: str, now: int) -> Events:
        """Block, dropping the contact and pending requests both ways. Idempotent (no events
        when already blocked); NotFound for an unknown user."""

    @abc.abstractmethod
    async def unblock(self, user_id: str, other: str, now: int) -> Events:
        """Raise NotFound if ``other`` is not blocked."""

    # --- read marks ------------------------------------------------------------------------------
    @abc.abstractmethod
    async def set_read(
        self, conversation_id: bytes, user_id: str, seq: int, now: int
    ) -> tuple[int, Events]:
        """Raise the user's read seq to ``seq`` (never lowers it); returns the read seq after
        and, when it moved, a ReadPosition event on the user's own timeline."""

    @abc.abstractmethod
    async def read_marks(self, conversation_id: bytes) -> dict[str, int]:
        """Every member's read seq (members who never marked are absent)."""

    @abc.abstractmethod
    async def read_seqs(self, user_id: str) -> dict[bytes, int]:
        """The user's read seq per conversation."""

    @abc.abstractmethod
    async def unread_count(self, conversation_id: bytes, user_id: str, after: int, cap: int) -> int:
        """Live messages by others after seq ``after`` (edits and reactions not counted),
        counting at most ``cap``."""

    # --- recall ----------------------------------------------------------------------------------
    @abc.abstractmethod
    async def get_entry(self, conversation_id: bytes, seq: int) -> ConvEntry | None: ...

    @abc.abstractmethod
    async def recall(
        self,
        conversation_id: bytes,
        seq: int,
        by: str,
        notify: Sequence[str],
        now: int,
    ) -> RecallResult:
        """Replace message ``seq`` (and its sender's edits of it) by tombstones, deleting the
        envelope bytes, and append a MessageRecalled event for each user in ``notify``.
        NotFound if ``seq`` is not a message of that conversation."""


__all__ = [
    "AlreadyContacts",
    "Blocked",
    "ContactRow",
    "Events",
    "ProfileChange",
    "ProfileRow",
    "RecallResult",
    "RequestResult",
    "RequestRow",
    "SocialStore",
    "TooManyPending",
]
