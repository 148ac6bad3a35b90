"""Server-side framing check of conversation envelopes (IMv1 GroupMessage, docs/imv1.md §7.3).

The server never decrypts. It checks only what it can without keys: the version byte, the
41-byte header, that the header's group_id is this conversation, room for a tag and the 64-byte
signature, and the size limit. Everything else is the clients' business.
"""

from __future__ import annotations

from parley.protocol.errors import ErrorCode

GROUP_MESSAGE_VERSION = 0x01
GROUP_HEADER_LEN = 41  # 0x01 || group_id(16) || distribution_id(16) || u32 chain || u32 iteration
AEAD_TAG_LEN = 16
SIGNATURE_LEN = 64
MIN_GROUP_MESSAGE_LEN = GROUP_HEADER_LEN + AEAD_TAG_LEN + SIGNATURE_LEN


class EnvelopeError(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def check_group_message(envelope: bytes, conversation_id: bytes, max_len: int) -> None:
    """Raise EnvelopeError unless ``envelope`` is framed as a GroupMessage of this conversation."""
    if len(envelope) > max_len:
        raise EnvelopeError(ErrorCode.TOO_LARGE, f"envelope is larger than {max_len} bytes")
    if len(envelope) < MIN_GROUP_MESSAGE_LEN:
        raise EnvelopeError(ErrorCode.BAD_ENVELOPE, "envelope too short for a GroupMessage")
    if envelope[0] != GROUP_MESSAGE_VERSION:
        raise EnvelopeError(ErrorCode.BAD_ENVELOPE, "unknown GroupMessage version")
    if envelope[1:17] != conversation_id:
        raise EnvelopeError(
            ErrorCode.WRONG_CONVERSATION, "envelope group_id is not this conversation"
        )
