"""The accounts domain: users, their devices and the sessions (hashed tokens) bound to them."""

from __future__ import annotations

import abc
from collections.abc import Sequence

from parley_server.store.records import DeviceRow, SessionRow, UserRow


class AccountStore(abc.ABC):
    """Users, devices and sessions. Device ids are never reused within a user."""

    # --- accounts and devices ----------------------------------------------------------------
    @abc.abstractmethod
    async def create_user(self, username: str, password_hash: bytes, now: int) -> UserRow:
        """Raise UsernameTaken if the (already normalized) username exists."""

    @abc.abstractmethod
    async def get_user(self, user_id: str) -> UserRow | None: ...

    @abc.abstractmethod
    async def get_user_by_name(self, username: str) -> UserRow | None: ...

    @abc.abstractmethod
    async def users_exist(self, user_ids: Sequence[str]) -> set[str]:
        """The subset of ``user_ids`` that are registered users."""

    @abc.abstractmethod
    async def create_device(
        self, user_id: str, name: str, token_hash: bytes, now: int
    ) -> DeviceRow:
        """New device with the next never-reused device id of that user, bound to a token.
        Raises NotFound if the user does not exist."""

    @abc.abstractmethod
    async def get_session(self, token_hash: bytes) -> SessionRow | None: ...

    @abc.abstractmethod
    async def touch_device(self, user_id: str, device_id: int, now: int) -> None:
        """Update last_seen (cheap; may be coalesced by the engine)."""

    @abc.abstractmethod
    async def list_devices(self, user_id: str) -> list[DeviceRow]:
        """Every device of the user that is not revoked, by device id."""

    @abc.abstractmethod
    async def revoke_device(self, user_id: str, device_id: int) -> bool:
        """Revoke the device and its token. False if it did not exist or was already revoked."""
