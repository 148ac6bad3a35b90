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


class RefKind(StrEnum):
    """How a message relates to the earlier entry it references (``Message.ref_seq``)."""

    EDIT = "edit"  # replaces the content of the sender's own earlier message
    REACTION = "reaction"  # a reaction to it (the emoji is inside the encrypted envelope)
    REPLY = "reply"  # a reply quoting it


class Message(msgspec.Struct, tag="msg", tag_field="t"):
    """An end-to-end encrypted IMv1 GroupMessage; opaque to the server except its framing.

    ``ref_seq``/``ref_kind`` and ``mentions`` are clear routing metadata the sender chose to
    expose (the server checks them; content stays inside the envelope)."""

    envelope: bytes
    ref_seq: Seq | None = None
    ref_kind: RefKind | None = None
    mentions: list[UserId] = []


class Recalled(msgspec.Struct, tag="recalled", tag_field="t"):
    """The tombstone of a recalled message: the envelope bytes are gone from storage."""

    by: UserId
    recalled_ts: Timestamp
    ref_seq: Seq | None = None
    ref_kind: RefKind | None = None


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


EntryBody = Message | Membership | Recalled


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


class MessageRecalled(msgspec.Struct, tag="msg_recalled", tag_field="t"):
    """Entry ``seq`` (and the sender's edits of it, ``also``) became tombstones: purge any
    cached plaintext, even of a chat that is never opened."""

    conversation_id: ConversationId
    seq: Seq
    by: UserId
    also: list[Seq] = []


class Mentioned(msgspec.Struct, tag="mentioned", tag_field="t"):
    """The user was mentioned by the message at ``seq``."""

    conversation_id: ConversationId
    seq: Seq
    by: UserId


class ReadPosition(msgspec.Struct, tag="read", tag_field="t"):
    """The user (on any of their devices) has read the conversation up to ``seq``."""

    conversation_id: ConversationId
    seq: Seq


class FriendRequestOpened(msgspec.Struct, tag="friend_req", tag_field="t"):
    """A friend request between the user and ``user_id``: ``incoming`` when ``user_id`` sent it
    (the sender's own devices get it with ``incoming`` False)."""

    user_id: UserId
    incoming: bool
    note: str = ""


class FriendRequestOutcome(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    CANCELLED = "cancelled"  # withdrawn by its sender, or dropped by a block


class FriendRequestClosed(msgspec.Struct, tag="friend_req_closed", tag_field="t"):
    """The pending request between the user and ``user_id`` is over."""

    user_id: UserId
    incoming: bool
    outcome: FriendRequestOutcome


class ContactAdded(msgspec.Struct, tag="contact_added", tag_field="t"):
    user_id: UserId


class ContactRemoved(msgspec.Struct, tag="contact_removed", tag_field="t"):
    user_id: UserId


class BlockChanged(msgspec.Struct, tag="block", tag_field="t"):
    """The user blocked (or unblocked) ``user_id``; only the blocker's timeline gets this."""

    user_id: UserId
    blocked: bool


class GroupInvited(msgspec.Struct, tag="group_invited", tag_field="t"):
    """``by`` invited the user to a group (``group_invite_accept`` joins it); to the invitee."""

    conversation_id: ConversationId
    by: UserId


class GroupInviteClosed(msgspec.Struct, tag="group_invite_closed", tag_field="t"):
    """The user's invitation ended: ``accepted``, ``declined`` or ``withdrawn`` (the group was
    disbanded); to the invitee's devices."""

    conversation_id: ConversationId
    outcome: str


EventBody = (
    ConversationAdded
    | ConversationRemoved
    | ConversationChanged
    | MessageRecalled
    | Mentioned
    | ReadPosition
    | FriendRequestOpened
    | FriendRequestClosed
    | ContactAdded
    | ContactRemoved
    | BlockChanged
    | GroupInvited
    | GroupInviteClosed
)


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
