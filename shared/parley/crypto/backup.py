"""Key backup (docs/imv1.md §13, §P.4): recovery key / passphrase, version record with check,
per-record encryption of inbound sender-key states. Sessions are NEVER backed up (§4.2)."""

from __future__ import annotations

import base64
import binascii
import struct

import msgspec

from parley.crypto import backend
from parley.crypto._secret import FrozenSecretStruct
from parley.crypto.constants import (
    BACKUP_ALGORITHM,
    BACKUP_CHECK_PLAINTEXT,
    BACKUP_SALT_LEN,
)
from parley.crypto.errors import CryptoError, DecryptionFailed, MalformedMessage
from parley.crypto.kdf import ct_eq
from parley.crypto.keys import Rng, rng_or_default
from parley.crypto.sender_keys import InboundSenderKey

BK_LEN = 32
_NONCE = 24


def generate_backup_key(rng: Rng | None = None) -> bytes:
    return rng_or_default(rng)(BK_LEN)


def format_recovery_key(bk: bytes) -> str:
    """BK as base32 (RFC 4648, no padding) in space-separated groups of 4 characters."""
    if len(bk) != BK_LEN:
        raise MalformedMessage("backup key must be 32 bytes")
    s = base64.b32encode(bk).decode("ascii").rstrip("=")
    return " ".join(s[i : i + 4] for i in range(0, len(s), 4))


def parse_recovery_key(text: str) -> bytes:
    """Accepts any spacing/dashes and lower case; rejects a wrong length or characters."""
    s = "".join(ch for ch in text.upper() if ch not in " -\t\n")
    try:
        bk = base64.b32decode(s + "=" * (-len(s) % 8))
    except (binascii.Error, ValueError):
        raise MalformedMessage("invalid recovery key") from None
    if len(bk) != BK_LEN or format_recovery_key(bk).replace(" ", "") != s:
        raise MalformedMessage("invalid recovery key")
    return bk


def derive_backup_key(passphrase: str, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    """BK = Argon2id13(32, passphrase, salt16, opslimit, memlimit)."""
    if len(salt) != BACKUP_SALT_LEN:
        raise MalformedMessage("salt must be 16 bytes")
    return backend.pwhash_argon2id(BK_LEN, passphrase.encode("utf-8"), salt, opslimit, memlimit)


class BackupVersion(msgspec.Struct, frozen=True, omit_defaults=True):
    """The server-side version record (no secrets; ``check`` = nonce || AEAD(BK, const))."""

    version: int
    check: bytes
    algorithm: str = BACKUP_ALGORITHM
    salt: bytes | None = None
    opslimit: int | None = None
    memlimit: int | None = None


def make_version(
    bk: bytes,
    version: int,
    *,
    salt: bytes | None = None,
    opslimit: int | None = None,
    memlimit: int | None = None,
    rng: Rng | None = None,
) -> BackupVersion:
    nonce = rng_or_default(rng)(_NONCE)
    check = nonce + backend.aead_encrypt(BACKUP_CHECK_PLAINTEXT, b"", nonce, bk)
    return BackupVersion(
        version=version, check=check, salt=salt, opslimit=opslimit, memlimit=memlimit
    )


def key_matches(rec: BackupVersion, bk: bytes) -> bool:
    """True iff ``bk`` is the key of this backup (wrong recovery key/passphrase -> False)."""
    if rec.algorithm != BACKUP_ALGORITHM or len(rec.check) < _NONCE + 16 or len(bk) != BK_LEN:
        return False
    try:
        pt = backend.aead_decrypt(rec.check[_NONCE:], b"", rec.check[:_NONCE], bk)
    except CryptoError:
        return False
    return ct_eq(pt, BACKUP_CHECK_PLAINTEXT)


class RecordKey(msgspec.Struct, frozen=True):
    conversation_id: str
    sender_user_id: str
    sender_device_id: int
    distribution_id: bytes
    chain_id: int

    def encode(self) -> bytes:
        """Canonical key bytes (also the AEAD associated data of the record)."""
        c = self.conversation_id.encode("utf-8")
        u = self.sender_user_id.encode("utf-8")
        return (
            struct.pack(">H", len(c)) + c + struct.pack(">H", len(u)) + u
            + struct.pack(">I", self.sender_device_id) + self.distribution_id
            + struct.pack(">I", self.chain_id)
        )  # fmt: skip


class BackupRecord(msgspec.Struct, frozen=True):
    """What is uploaded: ``iteration`` is clear metadata for the server's lowest-wins rule;
    it is re-checked against the decrypted state on restore."""

    key: bytes
    iteration: int
    blob: bytes  # nonce(24) || AEAD(BK, nonce, msgpack(state), ad=key)

    def __repr__(self) -> str:
        return f"BackupRecord(iteration={self.iteration}, <encrypted>)"


class _BackedUpState(FrozenSecretStruct, frozen=True):
    group_id: bytes
    distribution_id: bytes
    chain_id: int
    iteration: int
    ck: bytes
    ssk_pub: bytes


_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder(_BackedUpState)


def encrypt_record(
    bk: bytes, key: RecordKey, state: InboundSenderKey, *, rng: Rng | None = None
) -> BackupRecord:
    """Back up ``state`` at its EARLIEST known iteration."""
    if state.distribution_id != key.distribution_id or state.chain_id != key.chain_id:
        raise MalformedMessage("record key does not match the state")
    snap = _BackedUpState(
        state.group_id, state.distribution_id, state.chain_id, state.first_iteration,
        state.first_ck, state.ssk_pub,
    )  # fmt: skip
    kb = key.encode()
    nonce = rng_or_default(rng)(_NONCE)
    blob = nonce + backend.aead_encrypt(_enc.encode(snap), kb, nonce, bk)
    return BackupRecord(key=kb, iteration=state.first_iteration, blob=blob)


def decrypt_record(bk: bytes, key: RecordKey, rec: BackupRecord) -> InboundSenderKey:
    """Restore an inbound state (import it with SenderKeyRecord.states.append or add_skdm)."""
    kb = key.encode()
    if not ct_eq(kb, rec.key) or len(rec.blob) < _NONCE + 16:
        raise MalformedMessage("record does not belong to this key")
    try:
        raw = backend.aead_decrypt(rec.blob[_NONCE:], kb, rec.blob[:_NONCE], bk)
    except CryptoError:
        raise DecryptionFailed("backup record failed to authenticate") from None
    try:
        s = _dec.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError):
        raise MalformedMessage("bad backup record") from None
    if s.iteration != rec.iteration or s.chain_id != key.chain_id:
        raise MalformedMessage("backup record metadata does not match its content")
    return InboundSenderKey(
        group_id=s.group_id, distribution_id=s.distribution_id, chain_id=s.chain_id,
        ck=s.ck, iteration=s.iteration, ssk_pub=s.ssk_pub, first_iteration=s.iteration,
        first_ck=s.ck,
    )  # fmt: skip


def lowest_iteration_wins(a: BackupRecord | None, b: BackupRecord) -> BackupRecord:
    """Server and client rule: of two records for the same key, keep the lower iteration
    (on a tie keep the existing one)."""
    if a is None:
        return b
    if a.key != b.key:
        raise ValueError("records for different keys")
    return b if b.iteration < a.iteration else a
