"""The ``Store`` interface: everything the server keeps durably.

One interface, several engines (SQLite embedded default; Redis for scale-out). The same
contract suite (tests/contract/test_store.py) runs against every engine. Engines do storage
only: authorization and fan-out live in the service layer above. Each method is atomic.
Nothing here ever sees plaintext message content: envelopes and metadata are opaque bytes.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

import msgspec

from parley.protocol.ops import ConvState
from parley.protocol.records import (
    ConvEntry,
    ConversationInfo,
    EventBody,
    Member,
    Membership,
    RefKind,
    ToDeviceItem,
    UserEvent,
)
from parley.protocol.types import ConversationKind, Role


class StoreError(Exception):
    """Base of the store's expected failures."""


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


class Store(abc.ABC):
    """Durable state of one Parley service. All methods are coroutine-safe."""

    # --- lifecycle ---------------------------------------------------------------------------
    @abc.abstractmethod
    async def open(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None:
        """Flush pending writes and release resources."""

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

    # --- conversations -----------------------------------------------------------------------
    @abc.abstractmethod
    async def open_direct(
        self, user_a: str, user_b: str, conversation_id: bytes, now: int
    ) -> tuple[ConversationInfo, MembershipResult | None]:
        """The one direct conversation of the unordered pair {a, b}, creating it with
        ``conversation_id`` (and a CREATED entry and ConversationAdded events for both)
        if it does not exist. The second value is None when it already existed.
        Raises NotFound (creating nothing) if either user does not exist."""

    @abc.abstractmethod
    async def create_group(
        self, owner: str, members: Sequence[str], meta: bytes, conversation_id: bytes, now: int
    ) -> MembershipResult:
        """Create a group; ``owner`` gets Role.OWNER, the others Role.MEMBER; appends a CREATED
        entry (seq 1) and a ConversationAdded event to every member's timeline.
        Raises NotFound (creating nothing) if a member is not a registered user."""

    @abc.abstractmethod
    async def get_conversation(self, conversation_id: bytes) -> ConversationInfo | None: ...

    async def get_membership(self, conversation_id: bytes) -> ConversationInfo | None:
        """Like ``get_conversation`` for the send path, which needs only kind, members (with
        roles) and ``disbanded``: those are current, while ``last_seq``/``meta`` may be stale
        (an engine may cache it; it must drop the copy when a membership change commits)."""
        return await self.get_conversation(conversation_id)

    @abc.abstractmethod
    async def member_role(self, conversation_id: bytes, user_id: str) -> Role | None:
        """The user's role, or None when not a (current) member. Hot path: keep it cheap."""

    @abc.abstractmethod
    async def members(self, conversation_id: bytes) -> list[Member]: ...

    @abc.abstractmethod
    async def change_membership(
        self,
        conversation_id: bytes,
        entry: Membership,
        changes: Sequence[MemberChange],
        events: Sequence[tuple[str, EventBody]],
        now: int,
        meta: bytes | None = None,
        disband: bool = False,
    ) -> MembershipResult:
        """Atomically: append ``entry`` with the next seq, apply the member ``changes``, set
        ``meta`` when given, mark disbanded when asked, and append ``events`` to those users'
        timelines. Events whose body is a ConversationChanged with seq 0 get the new entry's
        seq filled in. Raises NotFound (changing nothing) if the conversation, or a user
        named in ``changes`` or ``events``, does not exist."""

    @abc.abstractmethod
    async def list_conversations(
        self, user_id: str, after: bytes | None, limit: int
    ) -> list[ConversationInfo]:
        """The user's current conversations ordered by conversation id, after ``after``."""

    @abc.abstractmethod
    async def conversation_states(self, user_id: str) -> list[ConvState]:
        """(id, kind, last_seq, last_ts) of every current conversation of the user, by id.
        Must stay cheap for a user in 1,000 conversations."""

    # --- timeline ----------------------------------------------------------------------------
    @abc.abstractmethod
    async def append_message(
        self,
        conversation_id: bytes,
        sender: str,
        sender_device: int,
        client_msg_id: str,
        envelope: bytes,
        now: int,
        ref_seq: int | None = None,
        ref_kind: RefKind | None = None,
        mentions: Sequence[str] = (),
    ) -> AppendResult:
        """Append with the next gap-free seq, atomically with an idempotency check on
        (sender, sender_device, client_msg_id). Returns only after the write is durable.
        Raises NotFound if the conversation does not exist.

        With ``ref_seq``: in the same transaction, check that it names a live (not recalled)
        message of this conversation that this kind may reference (an edit: the sender's own
        original message; a reaction: not a reaction), else raise BadReference. Each user in
        ``mentions`` (already checked to be members) gets a Mentioned event."""

    @abc.abstractmethod
    async def history(
        self,
        conversation_id: bytes,
        after_seq: int | None,
        before_seq: int | None,
        limit: int,
    ) -> tuple[list[ConvEntry], bool]:
        """Entries ascending by seq: after ``after_seq``; or the last ``limit`` before
        ``before_seq``; or the latest ``limit``. The bool tells whether more exist in that
        direction."""

    # --- per-user event timeline -------------------------------------------------------------
    @abc.abstractmethod
    async def append_events(
        self, events: Sequence[tuple[str, EventBody]], now: int
    ) -> list[tuple[str, UserEvent]]:
        """Append events to users' timelines, each with that user's next seq (all or nothing;
        NotFound if a user does not exist)."""

    @abc.abstractmethod
    async def events_after(self, user_id: str, after: int, limit: int) -> list[UserEvent]: ...

    # --- per-device to-device queue ----------------------------------------------------------
    @abc.abstractmethod
    async def enqueue_to_device(
        self, sender: str, sender_device: int, messages: Sequence[ToDeviceOut], now: int
    ) -> list[tuple[str, int, ToDeviceItem]]:
        """Queue all (all-or-nothing) with each recipient device's next seq;
        returns (user_id, device_id, item) for pushing. Raises NotFound (queuing nothing)
        if a recipient device does not exist or is revoked (a race with revoke_device)."""

    @abc.abstractmethod
    async def to_device_after(
        self, user_id: str, device_id: int, after: int, limit: int
    ) -> list[ToDeviceItem]: ...

    @abc.abstractmethod
    async def ack_to_device(self, user_id: str, device_id: int, upto_seq: int) -> int:
        """Delete the device's items with seq ≤ upto_seq; returns how many."""

    @abc.abstractmethod
    async def expire_to_device(self, older_than: int) -> int:
        """Delete items queued before ``older_than`` (ms); returns how many."""


__all__ = [
    "AppendResult",
    "BadReference",
    "ConversationKind",
    "DeviceRow",
    "MemberChange",
    "MembershipResult",
    "NotFound",
    "SessionRow",
    "Store",
    "StoreError",
    "ToDeviceOut",
    "UserRow",
    "UsernameTaken",
]
