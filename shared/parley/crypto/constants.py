"""IMv1 constants (docs/imv1.md §2 and §P.1). Durations are in milliseconds."""

from __future__ import annotations

from typing import Final

_HOUR: Final = 3_600_000
_DAY: Final = 24 * _HOUR

PROTOCOL_VERSION: Final = 0x01
KT_X25519: Final = 0x05
KT_ED25519: Final = 0xED
HASH_LEN: Final = 32

X3DH_INFO: Final = b"IMv1-X3DH"
X3DH_F: Final = b"\xff" * 32
X3DH_SALT: Final = bytes(32)
X3DH_SK_LEN: Final = 32
X3DH_AD_LEN: Final = 66

RK_INFO: Final = b"IMv1-DR-Root"
CK_MSG: Final = b"\x01"
CK_NEXT: Final = b"\x02"
MK_INFO: Final = b"IMv1-DR-Message"
MK_SALT: Final = bytes(32)
MK_OKM_LEN: Final = 56
GROUP_MK_INFO: Final = b"IMv1-SenderKey-Message"

AEAD_KEY_LEN: Final = 32
AEAD_NONCE_LEN: Final = 24
AEAD_TAG_LEN: Final = 16

DR_HEADER_LEN: Final = 41
PREKEY_PREFIX_LEN: Final = 73
MAX_SKIP: Final = 1000
MAX_STORED_SKIPPED: Final = 2000
SKIPPED_KEY_TTL: Final = 30 * _DAY
ARCHIVED_SESSIONS_MAX: Final = 5
MAX_UNACKED_SESSION_AGE: Final = 30 * _DAY
SPK_ROTATION: Final = 7 * _DAY
SPK_RETENTION: Final = 30 * _DAY
OPK_BATCH: Final = 100
OPK_LOW_WATER: Final = 25
MAX_U32: Final = 2**32 - 1
SERVER_QUEUE_TTL: Final = 30 * _DAY

PAD_BLOCK: Final = 160
MAX_CONTENT_LEN: Final = 65_536

DEVLIST_DOMAIN: Final = b"IMv1-DeviceList\x00"
MAX_DEVICES: Final = 10
MAX_DEVICE_ID: Final = 2**31 - 1

RESET_MIN_INTERVAL: Final = _HOUR
RESEND_CACHE_TTL: Final = 24 * _HOUR

GROUP_ID_LEN: Final = 16
DISTRIBUTION_ID_LEN: Final = 16
GROUP_HEADER_LEN: Final = 41
GROUP_SIG_LEN: Final = 64
GROUP_MIN_CT_LEN: Final = 16
SKDM_LEN: Final = 105
MAX_GROUP_SKIP: Final = 2000
MAX_GROUP_STORED_KEYS: Final = 2000
MAX_SENDER_KEY_STATES: Final = 5
SK_ROTATE_MSGS: Final = 1000
SK_ROTATE_AGE: Final = 7 * _DAY
SK_ROTATE_MSGS_DIRECT: Final = 100  # §P.1: 1:1 chats
SK_ROTATE_AGE_DIRECT: Final = 24 * _HOUR
GROUP_PENDING_TTL: Final = 24 * _HOUR

ATT_KEY_LEN: Final = 32
ATT_CHUNK: Final = 65_536
ATT_SS_HEADER: Final = 24
ATT_SS_ABYTES: Final = 17
ATT_TTL: Final = 30 * _DAY
THUMB_MAX: Final = 8192

SN_VERSION: Final = b"\x00\x00"
SN_ITERATIONS: Final = 5200
SN_DIGITS: Final = 30
SN_QR_VERSION: Final = 1
SN_QR_LEN: Final = 74

PROV_TTL: Final = 600_000
PROV_ID_LEN: Final = 16

BACKUP_ALGORITHM: Final = "IMv1-backup-1"
BACKUP_CHECK_PLAINTEXT: Final = b"IMv1-backup-check"
BACKUP_SALT_LEN: Final = 16
