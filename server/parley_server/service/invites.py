"""Group invitations: who is added at once, who is asked first, and the invitee's answer.

Policy (``group_direct_add``): ``contacts`` (the default) adds a named user at once only when
they are the caller's contact, anyone else gets an invitation; ``none`` always invites;
``anyone`` adds everyone at once (the old behaviour, for closed installations). Blocks are
checked before either path (``blocked``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from parley.protocol import invites as inv
from parley.protocol.errors import ErrorCode
from parley.protocol.ops import Conversation, Ok
from parley.protocol.types import ConversationKind
from parley_server.logging import get_logger
from parley_server.service.context import Services, Session, now_ms
from parley_server.service.errors import ServiceError
from parley_server.service.push import push_events
from parley_server.store.invites import InviteStore

if TYPE_CHECKING:
    from parley_server.service.conversations import Conversations
    from parley_server.store.social import SocialStore
    from parley_server.store.stores import Stores

log = get_logger("parley.invites")

INVITES_PAGE_MAX = 200
POLICIES = ("contacts", "none", "anyone")


class Invitations:
    def __init__(
        self,
        services: Services,
        conversations: Conversations,
        store: InviteStore | None,
        social: SocialStore | None,
    ) -> None:
        self.s = services
        self.conversations = conversations
        self.store = store  # None: an engine without the invitation domain
        self.social = social
        policy = services.settings.group_direct_add
        self.policy = policy if policy in POLICIES else "contacts"

    async def split(self, session: Session, user_ids: list[str]) -> tuple[list[str], list[str]]:
        """(added at once, invited) under the policy."""
        if self.policy == "anyone" or not user_ids:
            return list(user_ids), []
        contacts: set[str] = set()
        if self.policy == "contacts" and self.social is not None:
            contacts = set(await self.social.contact_ids(session.user_id))
        direct = [u for u in user_ids if u in contacts]
        invited = [u for u in user_ids if u not in contacts]
        if invited and self.store is None:
            raise ServiceError(
                ErrorCode.NOT_CONTACT, "only contacts can be added (no invitations on this store)"
            )
        return direct, invited

    async def invite(self, session: Session, conversation_id: bytes, user_ids: list[str]) -> None:
        if not user_ids or self.store is None:
            return
        events = await self.store.add_invites(conversation_id, session.user_id, user_ids, now_ms())
        await push_events(self.s.broker, events)

    async def withdraw_all(self, conversation_id: bytes) -> None:
        if self.store is not None:
            await push_events(
                self.s.broker, await self.store.withdraw_all(conversation_id, now_ms())
            )

    # --- the invitee's ops ---------------------------------------------------------------------
    def _store(self) -> InviteStore:
        if self.store is None:
            raise ServiceError(ErrorCode.NOT_FOUND, "no pending invitation")
        return self.store

    async def list(self, session: Session, _: inv.GroupInvites) -> inv.GroupInviteList:
        rows, more = await self._store().list_invites(session.user_id, INVITES_PAGE_MAX)
        return inv.GroupInviteList(
            invites=[
                inv.PendingInvite(r.conversation_id, r.inviter, r.inviter_name, r.created)
                for r in rows
            ],
            more=more,
        )

    async def accept(self, session: Session, op: inv.GroupInviteAccept) -> Conversation:
        store = self._store()
        info = await self.s.store.get_conversation(op.conversation_id)
        if info is None or info.kind != ConversationKind.GROUP:
            raise ServiceError(ErrorCode.NOT_FOUND, "no pending invitation")
        if info.disbanded:  # (an invitation is normally withdrawn by the disband itself)
            inviter, events = await store.take_invite(
                op.conversation_id, session.user_id, "withdrawn", now_ms()
            )
            await push_events(self.s.broker, events)
            if inviter is None:  # not invited: nothing about the group leaks
                raise ServiceError(ErrorCode.NOT_FOUND, "no pending invitation")
            raise ServiceError(ErrorCode.DISBANDED, "the group was disbanded")
        if any(m.user_id == session.user_id for m in info.members):
            _, events = await store.take_invite(
                op.conversation_id, session.user_id, "accepted", now_ms()
            )
            await push_events(self.s.broker, events)
            return Conversation(info=info)
        inviter, events = await store.take_invite(
            op.conversation_id, session.user_id, "accepted", now_ms()
        )
        if inviter is None:
            raise ServiceError(ErrorCode.NOT_FOUND, "no pending invitation")
        if len(info.members) + 1 > self.s.settings.max_group_members:
            # keep the invitation for later (the group may shrink); nothing was pushed yet
            await store.add_invites(op.conversation_id, inviter, [session.user_id], now_ms())
            raise ServiceError(ErrorCode.TOO_LARGE, "the group is full")
        await push_events(self.s.broker, events)
        result = await self.conversations.join_invited(info, session.user_id, inviter)
        log.info("group_invite_accepted", user_id=session.user_id)
        return Conversation(info=result.info)

    async def decline(self, session: Session, op: inv.GroupInviteDecline) -> Ok:
        inviter, events = await self._store().take_invite(
            op.conversation_id, session.user_id, "declined", now_ms()
        )
        if inviter is None:
            raise ServiceError(ErrorCode.NOT_FOUND, "no pending invitation")
        await push_events(self.s.broker, events)
        return Ok()


def invite_store_of(stores: Stores) -> InviteStore | None:
    """The engine's invitation domain, or None when it has none (then only contacts are
    added, see ``Invitations.split``)."""
    try:
        return stores.get(InviteStore)  # type: ignore[type-abstract]
    except LookupError:
        return None
