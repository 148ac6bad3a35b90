"""Conversation messages: durable, idempotent append then push; history ranges."""

from __future__ import annotations

from parley.protocol.envelope import EnvelopeError, check_group_message
from parley.protocol.errors import ErrorCode
from parley.protocol.ops import History, HistoryPage, Send, Sent
from parley.protocol.records import ConvEntry
from parley_server import metrics
from parley_server.fanout.base import Subscriber
from parley_server.service.attachments import Attachments
from parley_server.service.context import Services, Session, now_ms
from parley_server.service.conversations import Conversations
from parley_server.service.errors import ServiceError, not_member
from parley_server.service.pages import backward_page, forward_page, reply_budget
from parley_server.service.push import push_entry, push_events
from parley_server.store.base import BadReference, NotFound


class Messages:
    attachments: Attachments | None = None
    """Checks and records ``Send.blobs`` (set by the Dispatcher)."""

    def __init__(self, services: Services, conversations: Conversations) -> None:
        self.s = services
        self.conversations = conversations

    async def send(self, session: Session, op: Send, origin: Subscriber | None = None) -> Sent:
        info = await self.conversations.member_view(session, op.conversation_id)
        try:
            check_group_message(op.envelope, op.conversation_id, self.s.settings.max_envelope_bytes)
        except EnvelopeError as exc:
            raise ServiceError(exc.code, exc.message) from None
        if info.disbanded:
            raise ServiceError(ErrorCode.DISBANDED, "the group was disbanded")
        if (op.ref_seq is None) != (op.ref_kind is None):
            raise ServiceError(ErrorCode.INVALID, "ref_seq and ref_kind go together")
        mentions = [u for u in dict.fromkeys(op.mentions) if u != session.user_id]
        if mentions and not {m.user_id for m in info.members}.issuperset(mentions):
            raise ServiceError(ErrorCode.INVALID, "mentioned users must be members")
        await self.conversations.check_direct_peer(session, info)
        if op.blobs and self.attachments is not None:
            await self.attachments.check_send(session, op.blobs)
        try:
            result = await self.s.store.append_message(
                op.conversation_id,
                session.user_id,
                session.device_id,
                op.client_msg_id,
                op.envelope,
                now_ms(),
                ref_seq=op.ref_seq,
                ref_kind=op.ref_kind,
                mentions=mentions,
            )
        except NotFound:
            raise not_member() from None
        except BadReference as exc:
            code = ErrorCode.FORBIDDEN if exc.forbidden else ErrorCode.NOT_FOUND
            raise ServiceError(code, str(exc)) from None
        if op.blobs and self.attachments is not None:
            await self.attachments.record_send(op.conversation_id, result.entry.seq, op.blobs)
        # The store returned: the entry is durable. Only now is it pushed (and acknowledged).
        if not result.duplicate:
            metrics.MESSAGES.inc()
            await push_entry(
                self.s.broker, result.entry, (m.user_id for m in info.members), exclude=origin
            )
            await push_events(self.s.broker, result.events)
        return Sent(seq=result.entry.seq, ts=result.entry.ts, duplicate=result.duplicate)

    async def history(self, session: Session, op: History) -> HistoryPage:
        info = await self.conversations.member_info(session, op.conversation_id)
        cfg = self.s.settings
        limit = min(op.limit, cfg.history_page_max)
        budget = reply_budget(cfg.max_frame_bytes)
        store = self.s.store
        cid = op.conversation_id
        if op.after_seq is not None:

            async def after(seq: int, n: int) -> list[ConvEntry]:
                return (await store.history(cid, seq, None, n))[0]

            entries, more, _ = await forward_page(after, op.after_seq, limit, budget)
        else:

            async def before(seq: int | None, n: int) -> tuple[list[ConvEntry], bool]:
                return await store.history(cid, None, seq, n)

            entries, more = await backward_page(before, op.before_seq, limit, budget)
        return HistoryPage(entries=entries, last_seq=info.last_seq, more=more)
