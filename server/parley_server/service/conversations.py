"""Conversations: direct and group lifecycle, with role checks and membership entries.

Every op first checks that the caller is a current member; a non-member (and a conversation
that does not exist) gets ``not_member`` and no data. Each change is one atomic
``Store.change_membership`` that appends a server-authored Membership entry and user events,
which are then pushed.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

from parley.protocol.errors import ErrorCode
from parley.protocol.ops import (
    Conversation,
    ConversationPage,
    ConvGet,
    ConvList,
    DirectOpen,
    GroupCreate,
    GroupDisband,
    GroupInvite,
    GroupLeave,
    GroupRemove,
    GroupRename,
    GroupSetRole,
    Ok,
)
from parley.protocol.records import (
    ConversationAdded,
    ConversationChanged,
    ConversationInfo,
    ConversationRemoved,
    EventBody,
    Membership,
    MembershipAction,
)
from parley.protocol.social import MemberCards, MemberNames, UserCard
from parley.protocol.types import ConversationKind, Role
from parley_server.service.context import Services, Session, now_ms
from parley_server.service.errors import ServiceError, not_member
from parley_server.service.push import push_membership
from parley_server.store.base import MemberChange, MembershipResult, NotFound
from parley_server.store.social import SocialStore

if TYPE_CHECKING:
    from parley_server.service.invites import Invitations

MANAGERS = (Role.OWNER, Role.ADMIN)


def _role_of(info: ConversationInfo, user_id: str) -> Role | None:
    for m in info.members:
        if m.user_id == user_id:
            return m.role
    return None


def _changed(info: ConversationInfo, skip: Sequence[str] = ()) -> list[tuple[str, EventBody]]:
    """ConversationChanged (seq filled in by the store) for members not in ``skip``."""
    return [
        (m.user_id, ConversationChanged(conversation_id=info.conversation_id, seq=0))
        for m in info.members
        if m.user_id not in skip
    ]


class Conversations:
    def __init__(self, services: Services, social: SocialStore | None = None) -> None:
        self.s = services
        self.social = social  # contacts and blocks; None: no social layer (store tests)
        self.invitations: Invitations | None = None
        """Set by the Dispatcher: who is added at once and who gets an invitation."""

    async def check_direct_peer(self, session: Session, info: ConversationInfo) -> None:
        """In a direct conversation: ``blocked`` when either side blocked the other, and
        ``not_contact`` when they are not contacts (unless ``direct_open_to_all``)."""
        if info.kind != ConversationKind.DIRECT or self.social is None:
            return
        peer = next((m.user_id for m in info.members if m.user_id != session.user_id), None)
        if peer is not None:
            await self._check_pair(session.user_id, peer)

    async def _check_pair(self, me: str, peer: str) -> None:
        if self.social is None:
            return
        if await self.social.blocked_between(me, peer):
            raise ServiceError(ErrorCode.BLOCKED, "one of you blocked the other")
        if not self.s.settings.direct_open_to_all and not await self.social.are_contacts(me, peer):
            raise ServiceError(ErrorCode.NOT_CONTACT, "direct chats are between contacts")

    async def _check_not_blocked_by(self, session: Session, user_ids: Sequence[str]) -> None:
        """Nobody can pull a user who blocked them into a group."""
        if self.social is not None and await self.social.blockers_of(session.user_id, user_ids):
            raise ServiceError(ErrorCode.BLOCKED, "a user you named blocked you")

    async def member_info(self, session: Session, conversation_id: bytes) -> ConversationInfo:
        """The conversation, if the caller is a current member; else ``not_member``."""
        info = await self.s.store.get_conversation(conversation_id)
        if info is None or _role_of(info, session.user_id) is None:
            raise not_member()
        return info

    async def member_names(self, session: Session, op: MemberNames) -> MemberCards:
        """Co-members see each other's usernames (whether contacts or hidden from lookup):
        a member list shows names, not ids. Only for current members (``not_member``)."""
        info = await self.member_info(session, op.conversation_id)
        cards = []
        for m in info.members:
            user = await self.s.store.get_user(m.user_id)
            if user is not None:
                cards.append(UserCard(user_id=user.user_id, username=user.username))
        return MemberCards(users=cards)

    async def member_view(self, session: Session, conversation_id: bytes) -> ConversationInfo:
        """``member_info`` for the hot paths (send, typing) that need only kind, members and
        ``disbanded``: served from the store's membership cache, so ``last_seq`` and ``meta``
        may be stale. Same ``not_member`` rule."""
        info = await self.s.store.get_membership(conversation_id)
        if info is None or _role_of(info, session.user_id) is None:
            raise not_member()
        return info

    async def _group_for(
        self, session: Session, conversation_id: bytes, roles: Sequence[Role]
    ) -> tuple[ConversationInfo, Role]:
        info = await self.member_info(session, conversation_id)
        role = _role_of(info, session.user_id)
        assert role is not None
        if info.kind != ConversationKind.GROUP:
            raise ServiceError(ErrorCode.FORBIDDEN, "not a group conversation")
        if info.disbanded:
            raise ServiceError(ErrorCode.DISBANDED, "the group was disbanded")
        if role not in roles:
            raise ServiceError(ErrorCode.FORBIDDEN, "your role does not allow that")
        return info, role

    async def _change(
        self,
        info: ConversationInfo,
        entry: Membership,
        changes: Sequence[MemberChange],
        events: Sequence[tuple[str, EventBody]],
        *,
        meta: bytes | None = None,
        disband: bool = False,
        removed: Sequence[str] = (),
    ) -> MembershipResult:
        try:
            result = await self.s.store.change_membership(
                info.conversation_id, entry, changes, events, now_ms(), meta=meta, disband=disband
            )
        except NotFound:
            raise not_member() from None
        await push_membership(self.s.broker, result, extra_users=removed)
        return result

    # --- ops -----------------------------------------------------------------------------------
    async def direct_open(self, session: Session, op: DirectOpen) -> Conversation:
        if op.user_id == session.user_id:
            raise ServiceError(
                ErrorCode.CONFLICT, "cannot open a direct conversation with yourself"
            )
        if not await self.s.store.users_exist([op.user_id]):
            raise ServiceError(ErrorCode.UNKNOWN_USER, "no such user")
        await self._check_pair(session.user_id, op.user_id)
        info, result = await self.s.store.open_direct(
            session.user_id, op.user_id, uuid.uuid4().bytes, now_ms()
        )
        if result is not None:
            await push_membership(self.s.broker, result)
            info = result.info
        return Conversation(info=info)

    async def group_create(self, session: Session, op: GroupCreate) -> Conversation:
        others = list(dict.fromkeys(u for u in op.members if u != session.user_id))
        self._check_meta(op.meta)
        if len(others) + 1 > self.s.settings.max_group_members:
            raise ServiceError(ErrorCode.TOO_LARGE, "too many members")
        await self._require_users(others)
        await self._check_not_blocked_by(session, others)
        invited: list[str] = []
        if self.invitations is not None:
            others, invited = await self.invitations.split(session, others)
        result = await self.s.store.create_group(
            session.user_id, others, op.meta, uuid.uuid4().bytes, now_ms()
        )
        await push_membership(self.s.broker, result)
        if self.invitations is not None:
            await self.invitations.invite(session, result.info.conversation_id, invited)
        return Conversation(info=result.info, invited=invited)

    async def group_invite(self, session: Session, op: GroupInvite) -> Conversation:
        info, _ = await self._group_for(session, op.conversation_id, MANAGERS)
        new = list(dict.fromkeys(op.user_ids))
        if not new:
            raise ServiceError(ErrorCode.INVALID, "nobody to invite")
        current = {m.user_id for m in info.members}
        if current.intersection(new):
            raise ServiceError(ErrorCode.ALREADY_MEMBER, "already a member")
        if len(current) + len(new) > self.s.settings.max_group_members:
            raise ServiceError(ErrorCode.TOO_LARGE, "the group would exceed its member limit")
        await self._require_users(new)
        await self._check_not_blocked_by(session, new)
        invited: list[str] = []
        if self.invitations is not None:
            new, invited = await self.invitations.split(session, new)
            await self.invitations.invite(session, info.conversation_id, invited)
            if not new:
                return Conversation(info=info, invited=invited)
        entry = Membership(
            action=MembershipAction.JOINED, actor=session.user_id, targets=new, role=Role.MEMBER
        )
        added: list[tuple[str, EventBody]] = [
            (
                u,
                ConversationAdded(
                    conversation_id=info.conversation_id,
                    kind=ConversationKind.GROUP,
                    by=session.user_id,
                ),
            )
            for u in new
        ]
        result = await self._change(
            info,
            entry,
            [MemberChange(user_id=u, role=Role.MEMBER) for u in new],
            [*_changed(info), *added],
        )
        return Conversation(info=result.info, invited=invited)

    async def join_invited(
        self, info: ConversationInfo, user_id: str, inviter: str
    ) -> MembershipResult:
        """An invitee accepted: it joins as a member (its own Membership entry)."""
        entry = Membership(
            action=MembershipAction.JOINED, actor=user_id, targets=[user_id], role=Role.MEMBER
        )
        added: tuple[str, EventBody] = (
            user_id,
            ConversationAdded(
                conversation_id=info.conversation_id, kind=ConversationKind.GROUP, by=inviter
            ),
        )
        return await self._change(
            info, entry, [MemberChange(user_id=user_id, role=Role.MEMBER)], [*_changed(info), added]
        )

    async def group_leave(self, session: Session, op: GroupLeave) -> Ok:
        info = await self.member_info(session, op.conversation_id)
        if info.kind != ConversationKind.GROUP:
            raise ServiceError(ErrorCode.FORBIDDEN, "cannot leave a direct conversation")
        me = session.user_id
        others = [m for m in info.members if m.user_id != me]
        removed_event: tuple[str, EventBody] = (
            me,
            ConversationRemoved(
                conversation_id=info.conversation_id, action=MembershipAction.LEFT, by=me
            ),
        )
        if _role_of(info, me) == Role.OWNER and not info.disbanded:
            if not others:  # the last member leaving ends the group
                entry = Membership(action=MembershipAction.DISBANDED, actor=me, targets=[me])
                await self._change(
                    info,
                    entry,
                    [MemberChange(user_id=me, role=None)],
                    [removed_event],
                    disband=True,
                    removed=[me],
                )
                return Ok()
            # Hand ownership over first: the first admin, else the first member, in the
            # store's member order (by user id), so the choice is deterministic.
            heir = next((m for m in others if m.role == Role.ADMIN), others[0])
            handover = Membership(
                action=MembershipAction.ROLE_CHANGED,
                actor=me,
                targets=[heir.user_id],
                role=Role.OWNER,
            )
            result = await self._change(
                info,
                handover,
                [MemberChange(user_id=heir.user_id, role=Role.OWNER)],
                _changed(info),
            )
            info = result.info
        entry = Membership(action=MembershipAction.LEFT, actor=me, targets=[me])
        await self._change(
            info,
            entry,
            [MemberChange(user_id=me, role=None)],
            [removed_event, *_changed(info, skip=[me])],
            removed=[me],
        )
        return Ok()

    async def group_remove(self, session: Session, op: GroupRemove) -> Conversation:
        info, role = await self._group_for(session, op.conversation_id, MANAGERS)
        if op.user_id == session.user_id:
            raise ServiceError(ErrorCode.CONFLICT, "use group_leave to leave a group")
        target_role = _role_of(info, op.user_id)
        if target_role is None:
            raise ServiceError(ErrorCode.NOT_FOUND, "that user is not a member")
        if role == Role.ADMIN and target_role != Role.MEMBER:
            raise ServiceError(ErrorCode.FORBIDDEN, "admins can remove members only")
        entry = Membership(
            action=MembershipAction.REMOVED, actor=session.user_id, targets=[op.user_id]
        )
        removed_event: tuple[str, EventBody] = (
            op.user_id,
            ConversationRemoved(
                conversation_id=info.conversation_id,
                action=MembershipAction.REMOVED,
                by=session.user_id,
            ),
        )
        result = await self._change(
            info,
            entry,
            [MemberChange(user_id=op.user_id, role=None)],
            [removed_event, *_changed(info, skip=[op.user_id])],
            removed=[op.user_id],
        )
        return Conversation(info=result.info)

    async def group_set_role(self, session: Session, op: GroupSetRole) -> Conversation:
        info, _ = await self._group_for(session, op.conversation_id, (Role.OWNER,))
        if op.user_id == session.user_id:
            raise ServiceError(ErrorCode.CONFLICT, "transfer ownership to change your own role")
        if _role_of(info, op.user_id) is None:
            raise ServiceError(ErrorCode.NOT_FOUND, "that user is not a member")
        changes = [MemberChange(user_id=op.user_id, role=op.role)]
        if op.role == Role.OWNER:  # ownership transfer: the old owner becomes an admin
            changes.append(MemberChange(user_id=session.user_id, role=Role.ADMIN))
        entry = Membership(
            action=MembershipAction.ROLE_CHANGED,
            actor=session.user_id,
            targets=[op.user_id],
            role=op.role,
        )
        result = await self._change(info, entry, changes, _changed(info))
        return Conversation(info=result.info)

    async def group_rename(self, session: Session, op: GroupRename) -> Conversation:
        info, _ = await self._group_for(session, op.conversation_id, MANAGERS)
        self._check_meta(op.meta)
        entry = Membership(action=MembershipAction.RENAMED, actor=session.user_id)
        result = await self._change(info, entry, [], _changed(info), meta=op.meta)
        return Conversation(info=result.info)

    async def group_disband(self, session: Session, op: GroupDisband) -> Ok:
        info, _ = await self._group_for(session, op.conversation_id, (Role.OWNER,))
        entry = Membership(action=MembershipAction.DISBANDED, actor=session.user_id)
        events: list[tuple[str, EventBody]] = [
            (
                m.user_id,
                ConversationRemoved(
                    conversation_id=info.conversation_id,
                    action=MembershipAction.DISBANDED,
                    by=session.user_id,
                ),
            )
            for m in info.members
        ]
        # Members stay members of a disbanded group: they keep its history (read-only).
        await self._change(info, entry, [], events, disband=True)
        if self.invitations is not None:
            await self.invitations.withdraw_all(info.conversation_id)
        return Ok()

    async def get(self, session: Session, op: ConvGet) -> Conversation:
        return Conversation(info=await self.member_info(session, op.conversation_id))

    async def list_page(self, session: Session, op: ConvList) -> ConversationPage:
        limit = min(op.limit, self.s.settings.sync_conversations_max)
        rows = await self.s.store.list_conversations(session.user_id, op.after, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return ConversationPage(
            conversations=rows, next=rows[-1].conversation_id if more and rows else None
        )

    # --- checks --------------------------------------------------------------------------------
    def _check_meta(self, meta: bytes) -> None:
        if len(meta) > self.s.settings.max_meta_bytes:
            raise ServiceError(ErrorCode.TOO_LARGE, "meta is too large")

    async def _require_users(self, user_ids: Sequence[str]) -> None:
        if not user_ids:
            return
        known = await self.s.store.users_exist(user_ids)
        if len(known) != len(set(user_ids)):
            raise ServiceError(ErrorCode.UNKNOWN_USER, "no such user")
