"""Read positions: a monotonic read seq per member and conversation, synced to the member's own
devices (ReadPosition event), shown to other members as receipts unless the reader turned
read receipts off, and turned into unread counts in sync.
"""

from __future__ import annotations

from parley.protocol import limits
from parley.protocol.codec import encode
from parley.protocol.errors import ErrorCode
from parley.protocol.frames import SignalPush
from parley.protocol.ops import ConvState
from parley.protocol.signals import ReceiptSignal
from parley.protocol.social import ReadMark, ReadMarked, ReadReceipt, ReceiptList, Receipts
from parley_server.service.context import Services, Session, now_ms
from parley_server.service.conversations import Conversations
from parley_server.service.errors import ServiceError, not_member
from parley_server.service.push import push_events
from parley_server.store.base import NotFound
from parley_server.store.social import SocialStore


class Reads:
    def __init__(self, services: Services, conversations: Conversations, store: SocialStore):
        self.s = services
        self.conversations = conversations
        self.store = store

    async def mark(self, session: Session, op: ReadMark) -> ReadMarked:
        info = await self.conversations.member_info(session, op.conversation_id)
        if op.seq > info.last_seq:
            raise ServiceError(ErrorCode.INVALID, "seq is past the conversation's last entry")
        try:
            seq, events = await self.store.set_read(
                op.conversation_id, session.user_id, op.seq, now_ms()
            )
        except NotFound:
            raise not_member() from None
        if events:
            await push_events(self.s.broker, events)
            if (await self.store.get_profile(session.user_id)).read_receipts:
                signal = ReceiptSignal(
                    conversation_id=op.conversation_id, user_id=session.user_id, seq=seq
                )
                others = [m.user_id for m in info.members if m.user_id != session.user_id]
                await self.s.broker.publish_to_users(others, encode(SignalPush(signal=signal)))
        return ReadMarked(seq=seq)

    async def receipts(self, session: Session, op: Receipts) -> ReceiptList:
        info = await self.conversations.member_info(session, op.conversation_id)
        marks = await self.store.read_marks(op.conversation_id)
        current = {m.user_id for m in info.members}
        reads = []
        for user_id, seq in sorted(marks.items()):
            if user_id == session.user_id or user_id not in current:
                continue
            if (await self.store.get_profile(user_id)).read_receipts:
                reads.append(ReadReceipt(user_id=user_id, seq=seq))
        return ReceiptList(reads=reads, own=marks.get(session.user_id, 0))

    async def annotate(self, user_id: str, states: list[ConvState]) -> None:
        """Fill ``read_seq`` and ``unread`` of the sync reply's conversation states."""
        if not states:
            return
        read = await self.store.read_seqs(user_id)
        for state in states:
            state.read_seq = read.get(state.conversation_id, 0)
            if state.last_seq > state.read_seq:
                state.unread = await self.store.unread_count(
                    state.conversation_id, user_id, state.read_seq, limits.UNREAD_CAP
                )
