"""Requests a client makes over the WebSocket (``Request.op``) and their typed results.

Every op is its own Struct tagged by ``t``; its result type is named in ``RESULT_OF``. Identity
is never a field here: the server takes the caller's user and device from the session.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from parley.protocol import blobs, invites, social
from parley.protocol.blobs import MAX_BLOBS_PER_MESSAGE, BlobId, BlobOp, BlobResult
from parley.protocol.invites import InviteOp, InviteResult
from parley.protocol.limits import MAX_MENTIONS
from parley.protocol.records import ConvEntry, ConversationInfo, RefKind, ToDeviceItem, UserEvent
from parley.protocol.social import SocialOp, SocialResult
from parley.protocol.types import (
    ClientMsgId,
    ConversationId,
    ConversationKind,
    DeviceId,
    Envelope,
    Limit,
    Meta_,
    Role,
    Seq,
    Timestamp,
    UserId,
)

# --- messages ------------------------------------------------------------------------------


class Send(msgspec.Struct, tag="send", tag_field="t"):
    """Append an envelope to a conversation. Idempotent per (device, client_msg_id).

    Optional clear metadata: ``ref_seq`` + ``ref_kind`` (both or neither) point at an earlier
    message of the same conversation (edit / reaction / reply); ``mentions`` are members to
    notify through their event timelines."""

    conversation_id: ConversationId
    client_msg_id: ClientMsgId
    envelope: Envelope
    ref_seq: Seq | None = None
    ref_kind: RefKind | None = None
    mentions: Annotated[list[UserId], msgspec.Meta(max_length=MAX_MENTIONS)] = []
    blobs: Annotated[list[BlobId], msgspec.Meta(max_length=MAX_BLOBS_PER_MESSAGE)] = []
    """Attachment blobs the envelope refers to (ids only; keys stay inside the envelope):
    each must be committed and the sender's own (or readable by the sender). Members of this
    conversation may then get download URLs for them (``blob_url``)."""


class Sent(msgspec.Struct, tag="sent", tag_field="t"):
    seq: Seq
    ts: Timestamp
    duplicate: bool = False  # True when a retry matched an earlier send


class History(msgspec.Struct, tag="history", tag_field="t"):
    """A range of a conversation's timeline: after ``after_seq`` ascending, or the ``limit``
    entries just before ``before_seq``. With neither: the latest ``limit`` entries."""

    conversation_id: ConversationId
    after_seq: Seq | None = None
    before_seq: Seq | None = None
    limit: Limit = 100


class HistoryPage(msgspec.Struct, tag="history_page", tag_field="t"):
    entries: list[ConvEntry]  # ascending by seq, gap-free within the range
    last_seq: Seq  # the conversation's newest seq now
    more: bool  # more entries exist in the requested direction


# --- sync ----------------------------------------------------------------------------------


class ConvCursor(msgspec.Struct, array_like=True):
    """What the client holds of one conversation: every entry up to ``seq``."""

    conversation_id: ConversationId
    seq: Seq


class SyncRequest(msgspec.Struct, tag="sync", tag_field="t"):
    """Ask what changed since the client's cursors. Page with ``conv_after`` (see SyncReply)."""

    events_after: Seq = 0
    to_device_after: Seq = 0
    conversations: list[ConvCursor] = []
    conv_after: ConversationId | None = None


class ConvState(msgspec.Struct, array_like=True):
    conversation_id: ConversationId
    kind: ConversationKind
    last_seq: Seq
    last_ts: Timestamp
    read_seq: Seq = 0  # the user's read position (ReadMark)
    unread: int = 0  # other members' live messages after read_seq (capped at UNREAD_CAP)


class SyncReply(msgspec.Struct, tag="synced", tag_field="t"):
    events: list[UserEvent]
    events_more: bool
    to_device: list[ToDeviceItem]
    to_device_more: bool
    conversations: list[ConvState]  # conversations whose last_seq is past the client's cursor
    conv_next: ConversationId | None  # not None: call again with conv_after=conv_next
    server_time: Timestamp


# --- to-device -----------------------------------------------------------------------------


class ToDeviceMessage(msgspec.Struct, array_like=True):
    user_id: UserId
    device_id: DeviceId
    body: bytes


class ToDeviceSend(msgspec.Struct, tag="td_send", tag_field="t"):
    """Queue pairwise envelopes for other devices (all-or-nothing)."""

    messages: list[ToDeviceMessage]


class ToDeviceSent(msgspec.Struct, tag="td_sent", tag_field="t"):
    count: int


class ToDeviceAck(msgspec.Struct, tag="td_ack", tag_field="t"):
    """The device has stored every to-device item up to ``upto_seq``: the server deletes them."""

    upto_seq: Seq


# --- conversations -------------------------------------------------------------------------


class DirectOpen(msgspec.Struct, tag="direct_open", tag_field="t"):
    """Open (or get) the one direct conversation between the caller and ``user_id``."""

    user_id: UserId


class GroupCreate(msgspec.Struct, tag="group_create", tag_field="t"):
    members: list[UserId] = []
    meta: Meta_ = b""


class GroupInvite(msgspec.Struct, tag="group_invite", tag_field="t"):
    conversation_id: ConversationId
    user_ids: list[UserId]


class GroupLeave(msgspec.Struct, tag="group_leave", tag_field="t"):
    conversation_id: ConversationId


class GroupRemove(msgspec.Struct, tag="group_remove", tag_field="t"):
    conversation_id: ConversationId
    user_id: UserId


class GroupSetRole(msgspec.Struct, tag="group_set_role", tag_field="t"):
    conversation_id: ConversationId
    user_id: UserId
    role: Role


class GroupRename(msgspec.Struct, tag="group_rename", tag_field="t"):
    """Replace the opaque, client-encrypted metadata blob (name, avatar...)."""

    conversation_id: ConversationId
    meta: Meta_


class GroupDisband(msgspec.Struct, tag="group_disband", tag_field="t"):
    conversation_id: ConversationId


class ConvGet(msgspec.Struct, tag="conv_get", tag_field="t"):
    conversation_id: ConversationId


class ConvList(msgspec.Struct, tag="conv_list", tag_field="t"):
    after: ConversationId | None = None
    limit: Limit = 200


class Conversation(msgspec.Struct, tag="conversation", tag_field="t"):
    info: ConversationInfo
    invited: list[UserId] = []
    """group_create / group_invite: the users who got an invitation instead of being added."""


class ConversationPage(msgspec.Struct, tag="conversation_page", tag_field="t"):
    conversations: list[ConversationInfo]
    next: ConversationId | None


class Ok(msgspec.Struct, tag="ok", tag_field="t"):
    pass


Op = (
    Send
    | History
    | SyncRequest
    | ToDeviceSend
    | ToDeviceAck
    | DirectOpen
    | GroupCreate
    | GroupInvite
    | GroupLeave
    | GroupRemove
    | GroupSetRole
    | GroupRename
    | GroupDisband
    | ConvGet
    | ConvList
    | SocialOp
    | BlobOp
    | InviteOp
)

Result = (
    Sent
    | HistoryPage
    | SyncReply
    | ToDeviceSent
    | Conversation
    | ConversationPage
    | Ok
    | SocialResult
    | BlobResult
    | InviteResult
)

RESULT_OF: dict[type[msgspec.Struct], type[msgspec.Struct]] = {
    Send: Sent,
    History: HistoryPage,
    SyncRequest: SyncReply,
    ToDeviceSend: ToDeviceSent,
    ToDeviceAck: Ok,
    DirectOpen: Conversation,
    GroupCreate: Conversation,
    GroupInvite: Conversation,
    GroupLeave: Ok,
    GroupRemove: Conversation,
    GroupSetRole: Conversation,
    GroupRename: Conversation,
    GroupDisband: Ok,
    ConvGet: Conversation,
    ConvList: ConversationPage,
    social.UserLookup: social.UserMatches,
    social.ProfileGet: social.Profile,
    social.ProfileSet: social.Profile,
    social.FriendRequest: social.FriendRequested,
    social.FriendCancel: Ok,
    social.FriendAccept: Ok,
    social.FriendReject: Ok,
    social.FriendRequests: social.FriendRequestList,
    social.ContactList: social.Contacts,
    social.ContactRemove: Ok,
    social.Block: Ok,
    social.Unblock: Ok,
    social.Recall: social.RecallDone,
    social.ReadMark: social.ReadMarked,
    social.Receipts: social.ReceiptList,
    social.Typing: social.TypingAck,
    social.PresenceGet: social.PresenceList,
    social.MemberNames: social.MemberCards,
    blobs.UploadBegin: blobs.UploadGrant,
    blobs.UploadCommit: blobs.UploadCommitted,
    blobs.UploadAbort: Ok,
    blobs.BlobUrl: blobs.BlobDownload,
    invites.GroupInvites: invites.GroupInviteList,
    invites.GroupInviteAccept: Conversation,
    invites.GroupInviteDecline: Ok,
}
"""The result type each op's Reply carries (documented in docs/protocol.md)."""

OP_TAGS: frozenset[str] = frozenset(str(op.__struct_config__.tag) for op in RESULT_OF)
"""The ``t`` values of every known op; anything else is answered with ``unknown_op``."""
