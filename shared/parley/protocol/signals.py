"""Ephemeral server → client signals: typing, read receipts, presence. Never stored.

They travel in a ``SignalPush`` frame to connected devices only; a client that was offline
learns the durable part elsewhere (read positions from ``receipts``, presence from
``presence_get``) and simply never sees past typing indicators.
"""

from __future__ import annotations

import msgspec

from parley.protocol.types import ConversationId, Seq, Timestamp, UserId


class PresenceState(msgspec.Struct):
    """``last_seen`` is None while online, or when the user hides it."""

    user_id: UserId
    online: bool
    last_seen: Timestamp | None = None


class TypingSignal(msgspec.Struct, tag="typing", tag_field="t"):
    """``user_id`` started (or stopped) typing; expire it after ``TYPING_TTL_S`` unrefreshed."""

    conversation_id: ConversationId
    user_id: UserId
    typing: bool


class ReceiptSignal(msgspec.Struct, tag="receipt", tag_field="t"):
    """``user_id`` has read the conversation up to ``seq``."""

    conversation_id: ConversationId
    user_id: UserId
    seq: Seq


class PresenceSignal(msgspec.Struct, tag="presence", tag_field="t"):
    """Presence changes of the watcher's contacts, batched (coalesced per watched user)."""

    users: list[PresenceState]


Signal = TypingSignal | ReceiptSignal | PresenceSignal
