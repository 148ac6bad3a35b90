"""The provisioning domain: the device-linking relay's requests.

A request is registered under a random ``prov_id`` by a device that wants to be linked; an
existing device of some user binds it to that user with a one-time link token (stored only as
its SHA-256) and puts a sealed box (opaque to the server); the new device spends the token
exactly once. Every check-and-set method is atomic.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

KEEP_EXPIRED_MS = 24 * 3600 * 1000
"""An expired request is kept this long, so a late use gets ``link_expired``, not ``not_found``."""


@dataclass(frozen=True, slots=True)
class ProvRow:
    prov_id: bytes
    expires: int
    user_id: str | None
    sealed: bytes | None
    used: bool


class ProvExists(Exception):
    """That prov_id is already registered."""


class ProvClaimed(Exception):
    """That prov_id belongs to another user's link (or has its sealed box already)."""


class ProvisioningStore(abc.ABC):
    @abc.abstractmethod
    async def register(self, prov_id: bytes, now: int, expires: int) -> None:
        """A new request; ProvExists if the prov_id is taken. May drop long-expired requests."""

    @abc.abstractmethod
    async def get(self, prov_id: bytes) -> ProvRow | None: ...

    @abc.abstractmethod
    async def by_token(self, token_hash: bytes) -> ProvRow | None: ...

    @abc.abstractmethod
    async def set_token(self, prov_id: bytes, user_id: str, token_hash: bytes) -> None:
        """Bind the prov_id to ``user_id`` with a (new) token; ProvClaimed if another user
        holds it or the sealed box is already there."""

    @abc.abstractmethod
    async def put_sealed(self, prov_id: bytes, user_id: str, sealed: bytes) -> None:
        """Store the sealed box; ProvClaimed unless the request is ``user_id``'s, unused and
        without a box yet."""

    @abc.abstractmethod
    async def use_token(self, token_hash: bytes) -> ProvRow | None:
        """Mark the token's request used (and drop the sealed box) in one step; returns the row
        as it was before, so exactly one caller sees ``used`` False."""


__all__ = ["KEEP_EXPIRED_MS", "ProvClaimed", "ProvExists", "ProvRow", "ProvisioningStore"]
