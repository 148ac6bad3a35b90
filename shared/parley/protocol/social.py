"""Social-layer ops and results: lookup, profile settings, friend requests, contacts, blocks,
recall, read positions and receipts, typing, presence.

Tagged like every op (``t``) and listed in ``ops.Op`` / ``ops.RESULT_OF``. As everywhere, the
caller's identity comes from the session; a ``user_id`` field names the *other* user.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from parley.protocol.limits import EMAIL_MAX, FRIEND_NOTE_MAX
from parley.protocol.signals import PresenceState
from parley.protocol.types import ConversationId, Seq, Timestamp, UserId

LookupText = Annotated[str, Meta(max_length=EMAIL_MAX)]
Note = Annotated[str, Meta(max_length=FRIEND_NOTE_MAX)]

# --- lookup and profile -------------------------------------------------------------------


class UserCard(msgspec.Struct):
    user_id: UserId
    username: str


class UserLookup(msgspec.Struct, tag="user_lookup", tag_field="t"):
    """Exact match on exactly one of the three (normalized as when stored). Users who hide
    from lookup are never returned, with the same answer as for nobody."""

    username: LookupText | None = None
    email: LookupText | None = None
    phone: LookupText | None = None


class UserMatches(msgspec.Struct, tag="user_matches", tag_field="t"):
    users: list[UserCard]


class MemberNames(msgspec.Struct, tag="member_names", tag_field="t"):
    """The usernames of a conversation's current members (the caller must be one): members
    who are not contacts show by name, never as ids, even when they hide from lookup."""

    conversation_id: ConversationId


class MemberCards(msgspec.Struct, tag="member_cards", tag_field="t"):
    users: list[UserCard]


class ProfileGet(msgspec.Struct, tag="profile_get", tag_field="t"):
    pass


class ProfileSet(msgspec.Struct, tag="profile_set", tag_field="t"):
    """Change only the fields given (None = unchanged); an empty email/phone clears it."""

    email: LookupText | None = None
    phone: LookupText | None = None
    hidden: bool | None = None
    read_receipts: bool | None = None
    last_seen_visible: bool | None = None


class Profile(msgspec.Struct, tag="profile", tag_field="t"):
    """The caller's own settings (email and phone as normalized and stored)."""

    email: str | None
    phone: str | None
    hidden: bool
    read_receipts: bool
    last_seen_visible: bool


# --- friend requests, contacts, blocks ----------------------------------------------------


class FriendRequest(msgspec.Struct, tag="friend_request", tag_field="t"):
    """Ask ``user_id`` to become contacts. If they already asked you, you become contacts."""

    user_id: UserId
    note: Note = ""


class FriendRequested(msgspec.Struct, tag="friend_requested", tag_field="t"):
    contact: bool  # True: it answered their pending request to you; you are contacts now


class FriendCancel(msgspec.Struct, tag="friend_cancel", tag_field="t"):
    user_id: UserId


class FriendAccept(msgspec.Struct, tag="friend_accept", tag_field="t"):
    user_id: UserId


class FriendReject(msgspec.Struct, tag="friend_reject", tag_field="t"):
    user_id: UserId


class FriendRequests(msgspec.Struct, tag="friend_requests", tag_field="t"):
    """Pending requests to and from the caller."""


class PendingRequest(msgspec.Struct):
    user_id: UserId
    username: str
    note: str
    created: Timestamp


class FriendRequestList(msgspec.Struct, tag="friend_request_list", tag_field="t"):
    incoming: list[PendingRequest]
    outgoing: list[PendingRequest]
    more: bool  # a list was cut at CONTACTS_PAGE_MAX


class ContactList(msgspec.Struct, tag="contact_list", tag_field="t"):
    pass


class ContactInfo(msgspec.Struct):
    user_id: UserId
    username: str
    since: Timestamp


class Contacts(msgspec.Struct, tag="contacts", tag_field="t"):
    contacts: list[ContactInfo]
    blocked: list[UserId]
    more: bool


class ContactRemove(msgspec.Struct, tag="contact_remove", tag_field="t"):
    user_id: UserId


class Block(msgspec.Struct, tag="block", tag_field="t"):
    """Block ``user_id``: drops the contact and pending requests both ways (idempotent)."""

    user_id: UserId


class Unblock(msgspec.Struct, tag="unblock", tag_field="t"):
    user_id: UserId


# --- recall, read positions, typing, presence ---------------------------------------------


class Recall(msgspec.Struct, tag="recall", tag_field="t"):
    """Turn message ``seq`` into a tombstone (its sender, or a group owner/admin)."""

    conversation_id: ConversationId
    seq: Seq


class RecallDone(msgspec.Struct, tag="recall_done", tag_field="t"):
    seq: Seq
    also: list[Seq]  # the sender's edits of it, recalled with it


class ReadMark(msgspec.Struct, tag="read_mark", tag_field="t"):
    """The caller has read up to ``seq`` (monotonic: a lower seq changes nothing)."""

    conversation_id: ConversationId
    seq: Seq


class ReadMarked(msgspec.Struct, tag="read_marked", tag_field="t"):
    seq: Seq  # the caller's read seq after the op


class Receipts(msgspec.Struct, tag="receipts", tag_field="t"):
    """Read positions of the other members who send read receipts."""

    conversation_id: ConversationId


class ReadReceipt(msgspec.Struct, array_like=True):
    user_id: UserId
    seq: Seq


class ReceiptList(msgspec.Struct, tag="receipt_list", tag_field="t"):
    reads: list[ReadReceipt]
    own: Seq  # the caller's own read seq


class Typing(msgspec.Struct, tag="typing", tag_field="t"):
    conversation_id: ConversationId
    typing: bool


class TypingAck(msgspec.Struct, tag="typing_ack", tag_field="t"):
    forwarded: bool  # False: an unchanged refresh within TYPING_REFRESH_S, coalesced


class PresenceGet(msgspec.Struct, tag="presence_get", tag_field="t"):
    """A snapshot of every contact's presence (pushes then carry the changes)."""


class PresenceList(msgspec.Struct, tag="presence_list", tag_field="t"):
    users: list[PresenceState]


SocialOp = (
    UserLookup
    | ProfileGet
    | ProfileSet
    | FriendRequest
    | FriendCancel
    | FriendAccept
    | FriendReject
    | FriendRequests
    | ContactList
    | ContactRemove
    | Block
    | Unblock
    | Recall
    | ReadMark
    | Receipts
    | Typing
    | PresenceGet
    | MemberNames
)

SocialResult = (
    UserMatches
    | Profile
    | FriendRequested
    | FriendRequestList
    | Contacts
    | RecallDone
    | ReadMarked
    | ReceiptList
    | TypingAck
    | PresenceList
    | MemberCards
)
