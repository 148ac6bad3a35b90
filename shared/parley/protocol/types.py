"""Constrained scalar types used in frames. msgspec enforces them while decoding."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from msgspec import Meta

from parley.protocol.limits import CONVERSATION_ID_LEN, MAX_ENVELOPE_BYTES, MAX_META_BYTES

ConversationId = Annotated[
    bytes, Meta(min_length=CONVERSATION_ID_LEN, max_length=CONVERSATION_ID_LEN)
]
"""16 random bytes; the IMv1 group_id of every envelope in that conversation."""

UserId = Annotated[str, Meta(min_length=1, max_length=64)]
"""Server-assigned, immutable, canonical lowercase UUIDv4 text."""

DeviceId = Annotated[int, Meta(ge=1, le=2**31 - 1)]
"""Server-assigned per user, never reused."""

Seq = Annotated[int, Meta(ge=0, le=2**63 - 1)]
RequestId = Annotated[int, Meta(ge=0, le=2**53)]
ClientMsgId = Annotated[str, Meta(min_length=1, max_length=64)]
Envelope = Annotated[bytes, Meta(max_length=MAX_ENVELOPE_BYTES)]
Meta_ = Annotated[bytes, Meta(max_length=MAX_META_BYTES)]
"""Opaque group metadata (name, avatar...), encrypted by clients; the server never reads it."""
Timestamp = int
"""Milliseconds since the Unix epoch, server clock."""
Limit = Annotated[int, Meta(ge=1, le=1000)]


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"


class ConversationKind(StrEnum):
    DIRECT = "direct"
    GROUP = "group"
