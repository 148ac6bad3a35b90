"""Recall: the sender, or a group's owner/admin, turns a message into a tombstone within
``recall_window_s``. The envelope bytes are deleted from storage (and those of the sender's
edits of it); every current member gets a MessageRecalled event so each device purges cached
plaintext, even for chats it never opens. Recalling a tombstone again is a no-op success.
"""

from __future__ import annotations

from parley.protocol.errors import ErrorCode
from parley.protocol.records import Message, Recalled
from parley.protocol.social import Recall, RecallDone
from parley.protocol.types import ConversationKind
from parley_server.service.context import Services, Session, now_ms
from parley_server.service.conversations import MANAGERS, Conversations
from parley_server.service.errors import ServiceError
from parley_server.service.push import push_events
from parley_server.store.base import NotFound
from parley_server.store.social import SocialStore


class Recalls:
    def __init__(self, services: Services, conversations: Conversations, store: SocialStore):
        self.s = services
        self.conversations = conversations
        self.store = store

    async def recall(self, session: Session, op: Recall) -> RecallDone:
        info = await self.conversations.member_info(session, op.conversation_id)
        entry = await self.store.get_entry(op.conversation_id, op.seq)
        if entry is None or not isinstance(entry.body, (Message, Recalled)):
            raise ServiceError(ErrorCode.NOT_FOUND, "no such message")
        role = next(m.role for m in info.members if m.user_id == session.user_id)
        manager = info.kind == ConversationKind.GROUP and role in MANAGERS
        if entry.sender != session.user_id and not manager:
            raise ServiceError(ErrorCode.FORBIDDEN, "only its sender or a group admin may")
        if isinstance(entry.body, Recalled):
            return RecallDone(seq=op.seq, also=[])
        now = now_ms()
        if now - entry.ts > self.s.settings.recall_window_s * 1000:
            raise ServiceError(ErrorCode.TOO_LATE, "the recall window of that message has passed")
        try:
            result = await self.store.recall(
                op.conversation_id, op.seq, session.user_id, [m.user_id for m in info.members], now
            )
        except NotFound:
            raise ServiceError(ErrorCode.NOT_FOUND, "no such message") from None
        await push_events(self.s.broker, result.events)
        return RecallDone(seq=op.seq, also=result.also)
