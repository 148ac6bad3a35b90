"""Rows and expected failures shared by every store domain and engine.

Engines do storage only: authorization and fan-out live in the service layer above. Nothing
here ever sees plaintext message content: envelopes and metadata are opaque bytes.
"""

from __future__ import annotations

import msgspec

from parley.protocol.records import ConvEntry, ConversationInfo, UserEvent
from parley.protocol.types import Role


class StoreError(Exception):
    """Base of the store's expected failures."""


class StoreUnavailable(StoreError):
    """The storage engine cannot be reached (Redis down, cluster failing over): the request
    fails with a typed ``unavailable`` error and may be retried."""


class UsernameTaken(StoreError):
    pass


class NotFound(StoreError):
    pass


class BadReference(StoreError):
    """A message's ``ref_seq`` names no live message it may reference. ``forbidden`` when the
    target exists but this kind of reference to it is not allowed (editing another's message)."""

    def __init__(self, message: str, forbidden: bool = False) -> None:
        super().__init__(message)
        self.forbidden = forbidden


class UserRow(msgspec.Struct):
    user_id: str
    username: str
    password_hash: bytes
    created: int


class DeviceRow(msgspec.Struct):
    user_id: str
    device_id: int
    name: str
    created: int
    last_seen: int
    revoked: bool


class SessionRow(msgspec.Struct):
    """What a session token (stored only as its SHA-256) resolves to."""

    user_id: str
    device_id: int
    revoked: bool


class AppendResult(msgspec.Struct):
    entry: ConvEntry
    duplicate: bool  # the (device, client_msg_id) was seen before: ``entry`` is the original
    events: list[tuple[str, UserEvent]] = []  # Mentioned events appended with the entry


class MembershipResult(msgspec.Struct):
    entry: ConvEntry  # the server-authored Membership entry, with its seq
    events: list[tuple[str, UserEvent]]  # (user_id, event) appended to user timelines
    info: ConversationInfo  # the conversation after the change


class MemberChange(msgspec.Struct):
    """Set ``user_id``'s role, or remove them when ``role`` is None."""

    user_id: str
    role: Role | None


class ToDeviceOut(msgspec.Struct):
    user_id: str
    device_id: int
    body: bytes


__all__ = [
    "AppendResult",
    "BadReference",
    "DeviceRow",
    "MemberChange",
    "MembershipResult",
    "NotFound",
    "SessionRow",
    "StoreError",
    "StoreUnavailable",
    "ToDeviceOut",
    "UserRow",
    "UsernameTaken",
]
