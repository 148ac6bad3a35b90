"""Typing indicators: ephemeral (never stored), pushed to the other members' connected devices.

Per (user, conversation): an unchanged ``typing: true`` is forwarded at most once per
``TYPING_REFRESH_S`` (clients refresh it every few seconds and expire it after
``TYPING_TTL_S``), a repeated ``false`` is never forwarded twice, and more than
``TYPING_BURST`` typing ops per ``TYPING_TTL_S`` answer ``rate_limited``.
"""

from __future__ import annotations

import time

from parley.protocol import limits
from parley.protocol.codec import encode
from parley.protocol.errors import ErrorCode
from parley.protocol.frames import SignalPush
from parley.protocol.signals import TypingSignal
from parley.protocol.social import Typing, TypingAck
from parley_server.service.context import Services, Session
from parley_server.service.conversations import Conversations
from parley_server.service.errors import ServiceError
from parley_server.service.ratelimit import SlidingWindow

_MAX_KEYS = 100_000


class TypingRelay:
    def __init__(self, services: Services, conversations: Conversations) -> None:
        self.s = services
        self.conversations = conversations
        self._window = SlidingWindow(limits.TYPING_BURST, limits.TYPING_TTL_S, _MAX_KEYS)
        self._last: dict[tuple[str, bytes], tuple[bool, float]] = {}

    async def typing(self, session: Session, op: Typing) -> TypingAck:
        info = await self.conversations.member_view(session, op.conversation_id)
        if info.disbanded:
            raise ServiceError(ErrorCode.DISBANDED, "the group was disbanded")
        await self.conversations.check_direct_peer(session, info)
        key = (session.user_id, op.conversation_id)
        text_key = f"{session.user_id}:{op.conversation_id.hex()}"
        wait = self._window.retry_after(text_key)
        if wait is not None:
            raise ServiceError(ErrorCode.RATE_LIMITED, "typing too often", wait)
        self._window.hit(text_key)
        now = time.monotonic()
        state, at = self._last.get(key, (False, float("-inf")))
        if state == op.typing and (not op.typing or now - at < limits.TYPING_REFRESH_S):
            return TypingAck(forwarded=False)
        if len(self._last) >= _MAX_KEYS:
            self._prune(now)
        self._last[key] = (op.typing, now)
        others = [m.user_id for m in info.members if m.user_id != session.user_id]
        signal = TypingSignal(
            conversation_id=op.conversation_id, user_id=session.user_id, typing=op.typing
        )
        await self.s.broker.publish_to_users(others, encode(SignalPush(signal=signal)))
        return TypingAck(forwarded=True)

    def _prune(self, now: float) -> None:
        for key, (_, at) in list(self._last.items()):
            if now - at > limits.TYPING_TTL_S:
                del self._last[key]
