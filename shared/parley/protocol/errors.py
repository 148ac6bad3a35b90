"""Stable error codes and WebSocket close codes. Never renumber or rename: clients match on them."""

from __future__ import annotations

from enum import IntEnum, StrEnum


class ErrorCode(StrEnum):
    """Codes carried in ``Error.code`` (WebSocket) and in HTTP error bodies."""

    # Malformed input
    BAD_FRAME = "bad_frame"  # not msgpack, or not a known frame type
    UNKNOWN_OP = "unknown_op"  # Request.op names an operation the server does not know
    INVALID = "invalid"  # a field is missing, of the wrong type, or out of range
    TOO_LARGE = "too_large"  # a payload exceeds its announced limit
    BAD_ENVELOPE = "bad_envelope"  # not a well-formed IMv1 GroupMessage
    WRONG_CONVERSATION = "wrong_conversation"  # envelope group_id differs from conversation_id
    UNSUPPORTED_VERSION = "unsupported_version"
    # Authorization
    UNAUTHORIZED = "unauthorized"  # no valid session
    DEVICE_REVOKED = "device_revoked"
    NOT_MEMBER = "not_member"  # caller is not a member of that conversation (no data leaks)
    FORBIDDEN = "forbidden"  # a member, but the role does not allow it
    # State
    NOT_FOUND = "not_found"
    UNKNOWN_USER = "unknown_user"
    UNKNOWN_DEVICE = "unknown_device"
    ALREADY_MEMBER = "already_member"
    CONFLICT = "conflict"
    DISBANDED = "disbanded"
    RATE_LIMITED = "rate_limited"
    # Accounts (HTTP)
    USERNAME_TAKEN = "username_taken"
    WEAK_PASSWORD = "weak_password"
    BAD_CREDENTIALS = "bad_credentials"
    # Operations (an operator's decisions: parley admin)
    ACCOUNT_DISABLED = "account_disabled"  # an operator disabled (or deleted) this account
    REGISTRATION_CLOSED = "registration_closed"  # the server takes no new accounts
    INVITE_REQUIRED = "invite_required"  # registration is by invite only: none was given
    INVITE_INVALID = "invite_invalid"  # the invite is unknown, already used or expired
    # Key directory (HTTP /api/v1/keys)
    BAD_SIGNATURE = "bad_signature"  # a signed prekey or device list signature does not verify
    IDENTITY_KEY_CHANGED = "identity_key_changed"  # another IK for a device (= a new device)
    ACCOUNT_KEY_CHANGED = "account_key_changed"  # AIK differs from the one pinned for the user
    DEVLIST_ROLLBACK = "devlist_rollback"  # device list version not above the stored one
    TOO_MANY_DEVICES = "too_many_devices"  # device list with more than MAX_DEVICES entries
    BACKUP_VERSION_MISMATCH = "backup_version_mismatch"  # records for a non-current backup
    # Device linking (HTTP /api/v1/provisioning)
    LINK_EXPIRED = "link_expired"  # the prov_id / link token is older than PROV_TTL
    LINK_USED = "link_used"  # the one-time link token (or its prov_id) was already used
    # Social layer (contacts, blocks, recall)
    NOT_CONTACT = "not_contact"  # a direct conversation needs mutual contacts (server policy)
    BLOCKED = "blocked"  # one of the two users blocked the other
    TOO_LATE = "too_late"  # the recall window of that message has passed
    # Attachments (blob uploads)
    QUOTA_EXCEEDED = "quota_exceeded"  # the user's stored blobs would exceed their quota
    BLOB_MISSING = "blob_missing"  # upload_commit before the object was stored: upload again
    BLOB_MISMATCH = "blob_mismatch"  # the stored object is not the announced size/digest; deleted
    # Server
    INTERNAL = "internal"
    UNAVAILABLE = "unavailable"


class CloseCode(IntEnum):
    """WebSocket close codes the server uses."""

    NORMAL = 1000  # after a Bye from either side
    GOING_AWAY = 1001  # server shutting down; reconnect with backoff
    MESSAGE_TOO_BIG = 1009  # a frame above MAX_FRAME_BYTES
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012  # this node lost its cross-node subscription: reconnect and sync
    TRY_AGAIN_LATER = 1013  # the storage is unreachable during the handshake: reconnect later
    PROTOCOL_ERROR = 4000  # first frame was not a valid Hello
    UNAUTHORIZED = 4001  # Hello token unknown, expired or logged out
    DEVICE_REVOKED = 4003  # the device of this token was revoked
    ACCOUNT_DISABLED = 4004  # an operator disabled or deleted the account; do not reconnect
    HELLO_TIMEOUT = 4008  # no Hello within HELLO_TIMEOUT_S
    SLOW_CONSUMER = 4009  # the send queue overflowed; reconnect and resync by seq
    UNSUPPORTED_VERSION = 4010  # Hello.v is not a protocol version this server speaks
    IDLE_TIMEOUT = 4011  # no frame for 3 heartbeat intervals
