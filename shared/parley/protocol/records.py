"""Records the server stores and hands out: conversation entries, user events, to-device items.

Tagged unions use the field ``t``. Adding a variant or a field with a default is compatible;
renaming or removing one needs a protocol version bump.
"""

from __future__ import annotations

from enum import StrEnum

import msgspec

from parley.protocol.types import (
    ConversationId,
    ConversationKind,
    DeviceId,
    Meta_,
    Role,
    Seq,
    Timestamp,
    UserId,
)


class Member(msgspec.Struct, frozen=True):
    user_id: UserId
    role: Role


class ConversationInfo(msgspec.Struct):
    conversation_id: ConversationId
    kind: ConversationKind
    members: list[Member]
    last_seq: Seq
    created_ts: Timestamp
    meta: Meta_ = b""
    disbanded: bool = False


# --- conversation timeline entries ---------------------------------------------------------


class Message(msgspec.Struct, tag="msg", tag_field="t"):
    """An end-to-end encrypted IMv1 GroupMessage; opaque to the server except its framing."""

    envelope: bytes


class MembershipAction(StrEnum):
    CREATED = "created"
    JOINED = "joined"  # invited by actor
    LEFT = "left"
    REMOVED = "removed"
    ROLE_CHANGED = "role_changed"
    RENAMED = "renamed"  # meta changed (the new meta is in ConversationInfo)
    DISBANDED = "disbanded"


class Membership(msgspec.Struct, tag="member", tag_field="t"):
    """A server-authored entry: who changed the membership, and how."""

    action: MembershipAction
    actor: UserId
    targets: list[UserId] = []
    role: Role | None = None


EntryBody = Message | Membership


class ConvEntry(msgspec.Struct):
    conversation_id: ConversationId
    seq: Seq
    ts: Timestamp
    sender: UserId  # the author; for Membership entries, the actor
    sender_device: DeviceId | None  # None for server-authored entries
    body: EntryBody


# --- per-user event timeline --------------------------------------------------------------


class ConversationAdded(msgspec.Struct, tag="conv_added", tag_field="t"):
    """The user joined (created, was invited to, or opened) a conversation."""

    conversation_id: ConversationId
    kind: ConversationKind
    by: UserId


class ConversationRemoved(msgspec.Struct, tag="conv_removed", tag_field="t"):
    """The user left, was removed, or the conversation was disbanded."""

    conversation_id: ConversationId
    action: MembershipAction
    by: UserId


class ConversationChanged(msgspec.Struct, tag="conv_changed", tag_field="t"):
    """Membership or metadata changed; the timeline entry at ``seq`` says how."""

    conversation_id: ConversationId
    seq: Seq


EventBody = ConversationAdded | ConversationRemoved | ConversationChanged


class UserEvent(msgspec.Struct):
    seq: Seq
    ts: Timestamp
    body: EventBody


# --- per-device to-device queue ------------------------------------------------------------


class ToDeviceItem(msgspec.Struct):
    seq: Seq
    ts: Timestamp
    sender: UserId
    sender_device: DeviceId
    body: bytes  # pairwise-encrypted IMv1 envelope, opaque to the server
