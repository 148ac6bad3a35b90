"""HTTP bodies (JSON) of the key directory: device keys, signed device lists, bundles, backup.

Binary fields are RFC 4648 §5 base64url strings without padding (docs/imv1.md §0 ``b64``), as in
the §3.4 bundle; msgspec checks their alphabet and length, the server additionally decodes them
strictly (canonical form) before use. The server only stores and relays public keys, signed
lists and opaque backup blobs: nothing here is secret (docs/imv1.md §10).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from parley.protocol.types import DeviceId, UserId

OPK_BATCH = 100
"""Most one-time prekeys in one upload (= docs/imv1.md §2 ``OPK_BATCH``)."""

OPK_LOW_WATER = 25
"""Below this many stored one-time prekeys a device should upload more (``OPK_LOW_WATER``)."""

OPK_MAX_STORED = 1000
"""Most one-time prekeys the server keeps per device; an upload beyond it is ``too_large``."""

MAX_DEVICES = 10
"""Most devices in a signed device list (= docs/imv1.md §2 ``MAX_DEVICES``)."""

BACKUP_ALGORITHM = "IMv1-backup-1"
BACKUP_RECORDS_MAX = 256
"""Most backup records in one PUT."""

BACKUP_BLOB_MAX = 2048
"""Largest sealed backup record (decoded bytes); a sender-key state seals to about 200 B."""

BACKUP_CONVERSATIONS_MAX = 100
"""Most conversation ids in one backup records GET."""

BACKUP_RECORDS_PER_USER_MAX = 100_000
"""Most backup records the server keeps per user; a PUT beyond it is ``too_large``."""


B64URL = r"^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])?$"
"""Canonical unpadded base64url (the unused low bits of the last character are zero), the
only form ``parley.crypto.b64.b64d`` accepts: stated here so that the schema says it too."""

Key32 = Annotated[
    str, Meta(min_length=43, max_length=43, pattern=r"^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$")
]
"""A 32-byte public key (Ed25519 or X25519)."""

Sig64 = Annotated[str, Meta(min_length=86, max_length=86, pattern=r"^[A-Za-z0-9_-]{85}[AQgw]$")]
"""A 64-byte Ed25519 signature."""

Id16 = Annotated[str, Meta(min_length=22, max_length=22, pattern=r"^[A-Za-z0-9_-]{21}[AQgw]$")]
"""A 16-byte id (conversation_id, distribution_id)."""

DevListB64 = Annotated[str, Meta(min_length=2, max_length=1024, pattern=B64URL)]
"""An encoded device list (docs/imv1.md §3.3; at most 10 devices -> well under 1 KiB)."""

BackupBlob = Annotated[str, Meta(min_length=2, max_length=8192, pattern=B64URL)]
"""A sealed backup record. The server checks the decoded size against ``BACKUP_BLOB_MAX`` and
answers ``too_large``; the looser bound here only stops absurd bodies early (``invalid``)."""

BackupCheck = Annotated[str, Meta(min_length=54, max_length=171, pattern=B64URL)]
"""The backup key check value: 40..128 bytes."""
PreKeyId = Annotated[int, Meta(ge=1, le=2**32 - 1)]
U32 = Annotated[int, Meta(ge=0, le=2**32 - 1)]
DevListVersion = Annotated[int, Meta(ge=1, le=2**63 - 1)]
BackupVersionNo = Annotated[int, Meta(ge=1, le=2**63 - 1)]


# --- device keys -----------------------------------------------------------------------------


class SignedPreKeyBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: PreKeyId
    pub: Key32
    sig: Sig64  # Ed25519(IK, EncX(pub))


class OneTimePreKeyBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: PreKeyId
    pub: Key32


class UploadKeysBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Keys of the caller's own device (always the session's device: there is no device field).

    ``ik`` is pinned at the first upload; a different one is refused (a new IK is a new device,
    docs/imv1.md §3.2). ``spk`` replaces the stored one unless its id is lower. ``opks`` are added.
    """

    ik: Key32
    spk: SignedPreKeyBody
    opks: Annotated[list[OneTimePreKeyBody], Meta(max_length=OPK_BATCH)] = []


class OpkCountReply(msgspec.Struct, frozen=True):
    """Remaining one-time prekeys of the caller's device; ``low`` = below ``OPK_LOW_WATER``."""

    count: int
    low: bool


# --- signed device lists ---------------------------------------------------------------------


class PutDeviceListBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The caller's user's signed device list. ``aik`` must equal the AIK pinned by the first
    accepted list; ``version`` inside ``devlist`` must be higher than the stored one."""

    aik: Key32
    devlist: DevListB64
    devlist_sig: Sig64


class DeviceListReply(msgspec.Struct, frozen=True):
    user_id: UserId
    aik: str
    devlist: str
    devlist_sig: str
    version: int


# --- bundles (docs/imv1.md §3.4, field for field; parley.crypto.bundle checks them) ------------


class BundleSpk(msgspec.Struct, frozen=True):
    id: int
    pub: str
    sig: str


class BundleOpk(msgspec.Struct, frozen=True):
    id: int
    pub: str


class Bundle(msgspec.Struct, frozen=True):
    user_id: UserId
    device_id: DeviceId
    aik: str
    devlist: str
    devlist_sig: str
    ik: str
    spk: BundleSpk
    opk: BundleOpk | None  # null once the device's one-time prekeys are exhausted


class BundlesReply(msgspec.Struct, frozen=True):
    """One bundle per device that is in the user's current device list, not revoked, and has
    uploaded keys. Empty when the user has not published a device list."""

    bundles: list[Bundle]


# --- key backup (docs/imv1.md §13) --------------------------------------------------------------


class BackupLimits(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Argon2id parameters of a passphrase-derived backup key."""

    opslimit: Annotated[int, Meta(ge=1, le=2**32 - 1)]
    memlimit: Annotated[int, Meta(ge=8192, le=2**40)]


class CreateBackupBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A new backup version (the previous version and its records are dropped)."""

    check: BackupCheck  # nonce(24) || XChaCha20-Poly1305(BK, nonce, "IMv1-backup-check")
    algorithm: Literal["IMv1-backup-1"] = "IMv1-backup-1"
    salt: Id16 | None = None  # 16 B Argon2id salt, with ``limits``, for a passphrase key
    limits: BackupLimits | None = None


class BackupVersionReply(msgspec.Struct, frozen=True):
    version: int
    algorithm: str
    check: str
    salt: str | None
    limits: BackupLimits | None
    count: int  # records stored under this version


class BackupRecordBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One inbound sender-key state, sealed by the client. The key fields and ``iteration``
    are clear metadata: the server keeps, per key, the record with the LOWEST iteration."""

    conversation_id: Id16
    sender_user_id: UserId
    sender_device_id: DeviceId
    distribution_id: Id16
    chain_id: U32
    iteration: U32
    blob: BackupBlob  # nonce(24) || AEAD(BK, nonce, msgpack(state), ad = key bytes)


class PutBackupRecordsBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    version: BackupVersionNo  # must be the current version (else ``backup_version_mismatch``)
    records: Annotated[list[BackupRecordBody], Meta(max_length=BACKUP_RECORDS_MAX)]


class PutBackupRecordsReply(msgspec.Struct, frozen=True):
    stored: int  # new, or replacing a record with a higher iteration
    kept: int  # an existing record with a lower or equal iteration was kept
    count: int  # records now stored under this version


class BackupRecordsReply(msgspec.Struct, frozen=True):
    version: int
    records: list[BackupRecordBody]
