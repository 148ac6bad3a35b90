"""The ``AdminStore`` interface: what operators change (``parley admin``) and the server obeys.

Account status (disabled or deleted), the registration mode and one-time invites. Engines share
the ``Store``'s database (SQLite: ``sqlite_admin.py``), so ``parley admin`` and every running
server node see one truth: the admin command writes here, and each node reads the statuses
every ``admin_poll_s`` to close the sockets of accounts that were just disabled or deleted.

As everywhere in the store, engines do storage only; the rules live in ``service/admin.py``.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Sequence
from typing import TYPE_CHECKING

import msgspec

from parley_server.store.base import StoreError

if TYPE_CHECKING:
    from parley_server.store.stores import Stores


class AccountStatus(enum.StrEnum):
    DISABLED = "disabled"
    DELETED = "deleted"


class RegistrationMode(enum.StrEnum):
    OPEN = "open"
    INVITE = "invite"
    CLOSED = "closed"


class InviteRefused(StoreError):
    """The invite code is unknown, already used or expired."""


class AdminUserRow(msgspec.Struct):
    user_id: str
    username: str
    created: int
    status: str | None  # an AccountStatus value, or None for an ordinary account
    devices: int  # devices not revoked
    last_seen: int  # the latest last_seen of those devices (0: never)


class StoreStats(msgspec.Struct):
    users: int
    disabled: int
    deleted: int
    devices: int
    conversations: int
    entries: int
    to_device_queued: int
    invites_open: int


class PurgeReport(msgspec.Struct):
    devices: int
    to_device: int
    messages_tombstoned: int


def admin_store_of(stores: Stores) -> AdminStore:
    """The engine ``stores.open_stores`` registered for this domain."""
    return stores.get(AdminStore)  # type: ignore[type-abstract]


class AdminStore(abc.ABC):
    # --- account status ----------------------------------------------------------------------
    @abc.abstractmethod
    async def statuses(self) -> dict[str, AccountStatus]:
        """Every account with a status (few: read by each node every ``admin_poll_s``)."""

    @abc.abstractmethod
    async def status(self, user_id: str) -> AccountStatus | None: ...

    @abc.abstractmethod
    async def set_status(self, user_id: str, status: AccountStatus | None, now: int) -> bool:
        """Set or clear (None) the status. A deleted account stays deleted (returns False);
        raises NotFound for an unknown user."""

    @abc.abstractmethod
    async def list_users(self, after: str, limit: int) -> list[AdminUserRow]:
        """Accounts by username, after ``after``."""

    @abc.abstractmethod
    async def set_password(self, user_id: str, password_hash: bytes, revoke: bool) -> int:
        """Replace the password hash; with ``revoke`` also revoke every device (returns how
        many were revoked). Raises NotFound for an unknown user."""

    @abc.abstractmethod
    async def purge_user(self, user_id: str, tombstone: bytes, now: int) -> PurgeReport:
        """The storage part of deleting an account, in one transaction: revoke and forget its
        devices, sessions, keys and queued to-device items; replace the body of each of its
        messages with ``tombstone`` (an encoded ``Recalled``); drop its profile, contacts,
        requests, blocks, read marks and event timeline; free the username. Conversation
        entries of others, and the conversations themselves, are kept."""

    # --- registration ------------------------------------------------------------------------
    @abc.abstractmethod
    async def registration_mode(self) -> RegistrationMode | None:
        """The mode an operator set, or None (then the server's setting applies)."""

    @abc.abstractmethod
    async def set_registration_mode(self, mode: RegistrationMode) -> None: ...

    @abc.abstractmethod
    async def create_invite(self, code_hash: bytes, now: int, expires: int) -> None: ...

    @abc.abstractmethod
    async def claim_invite(self, code_hash: bytes, now: int) -> None:
        """Mark the invite used (atomically: one claim wins); raises InviteRefused."""

    @abc.abstractmethod
    async def release_invite(self, code_hash: bytes) -> None:
        """Undo a claim whose registration then failed (e.g. the username was taken)."""

    @abc.abstractmethod
    async def bind_invite(self, code_hash: bytes, user_id: str) -> None:
        """Record which account a claimed invite made."""

    # --- housekeeping ------------------------------------------------------------------------
    @abc.abstractmethod
    async def stats(self) -> StoreStats: ...

    @abc.abstractmethod
    async def expire_invites(self, now: int) -> int:
        """Delete expired unused invites; returns how many."""


__all__: Sequence[str] = [
    "AccountStatus",
    "AdminStore",
    "AdminUserRow",
    "InviteRefused",
    "PurgeReport",
    "RegistrationMode",
    "StoreStats",
    "admin_store_of",
]
