"""Group invitations: a member invites, the invitee accepts (or declines) before joining.

``group_create`` and ``group_invite`` add a named user at once only when the server's policy
allows it (by default: when the two are contacts); anyone else gets an invitation, sees it in
``group_invites`` and in a ``group_invited`` event, and becomes a member only by
``group_invite_accept``. So nobody is put in a group without being asked.
"""

from __future__ import annotations

import msgspec

from parley.protocol.types import ConversationId, Timestamp, UserId


class GroupInvites(msgspec.Struct, tag="group_invites", tag_field="t"):
    """The caller's pending invitations, oldest first."""


class GroupInviteAccept(msgspec.Struct, tag="group_invite_accept", tag_field="t"):
    conversation_id: ConversationId


class GroupInviteDecline(msgspec.Struct, tag="group_invite_decline", tag_field="t"):
    conversation_id: ConversationId


class PendingInvite(msgspec.Struct, array_like=True):
    conversation_id: ConversationId
    inviter: UserId
    inviter_name: str
    created: Timestamp


class GroupInviteList(msgspec.Struct, tag="group_invite_list", tag_field="t"):
    invites: list[PendingInvite]
    more: bool = False


InviteOp = GroupInvites | GroupInviteAccept | GroupInviteDecline
InviteResult = GroupInviteList
