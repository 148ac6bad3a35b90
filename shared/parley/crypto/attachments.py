"""Attachments (docs/imv1.md §8): secretstream chunks, Padmé padding, digest check first."""

from __future__ import annotations

import hashlib

import msgspec

from parley.crypto import backend
from parley.crypto._secret import FrozenSecretStruct
from parley.crypto.constants import ATT_CHUNK, ATT_KEY_LEN, ATT_SS_ABYTES, ATT_SS_HEADER
from parley.crypto.errors import CryptoError, DecryptionFailed, MalformedMessage
from parley.crypto.kdf import ct_eq
from parley.crypto.keys import Rng, rng_or_default


def padme(length: int) -> int:
    """Padmé: pad to a length with few significant bits (leaks O(log log L))."""
    if length < 2:
        return length
    e = length.bit_length() - 1
    s = e.bit_length()
    mask = (1 << (e - s)) - 1
    return (length + mask) & ~mask


def blob_len(size: int) -> int:
    """|blob| for a plaintext of ``size`` bytes."""
    p = padme(size)
    return ATT_SS_HEADER + ATT_SS_ABYTES * max(1, -(-p // ATT_CHUNK)) + p


class AttachmentPointer(msgspec.Struct, frozen=True, omit_defaults=True):
    """Goes inside E2E content only (``att``); ``key`` is the attachment key, b64."""

    id: str
    key: str
    digest: str
    size: int
    blob_size: int
    mime: str
    chunk: int = ATT_CHUNK
    name: str | None = None
    thumb: str | None = None
    w: int | None = None
    h: int | None = None
    dur_ms: int | None = None
    preview: AttachmentPointer | None = None
    """An image's thumbnail (longest edge <= 320 px), encrypted as a blob of its own. ``thumb``
    is then the tiny blurred placeholder shown before anything is downloaded."""

    def __repr__(self) -> str:
        return f"AttachmentPointer(id={self.id!r}, size={self.size}, <key hidden>)"


class EncryptedAttachment(FrozenSecretStruct, frozen=True):
    blob: bytes
    key: bytes
    digest: bytes
    size: int

    _public = ("size",)

    @property
    def blob_size(self) -> int:
        return len(self.blob)


def encrypt(plaintext: bytes, *, rng: Rng | None = None) -> EncryptedAttachment:
    """Encrypt with a FRESH key (never reused; there is no way to pass one in)."""
    key = rng_or_default(rng)(ATT_KEY_LEN)
    size = len(plaintext)
    padded = plaintext + bytes(padme(size) - size)
    state, header = backend.ss_init_push(key)
    parts = [header]
    n = len(padded)
    if n == 0:
        parts.append(backend.ss_push(state, b"", backend.SS_TAG_FINAL))
    for off in range(0, n, ATT_CHUNK):
        end = off + ATT_CHUNK
        tag = backend.SS_TAG_FINAL if end >= n else backend.SS_TAG_MESSAGE
        parts.append(backend.ss_push(state, padded[off:end], tag))
    blob = b"".join(parts)
    return EncryptedAttachment(blob=blob, key=key, digest=hashlib.sha256(blob).digest(), size=size)


def decrypt(blob: bytes, *, key: bytes, digest: bytes, size: int, blob_size: int) -> bytes:
    """Check size and digest BEFORE decrypting, then decrypt chunk by chunk.

    Rejects truncation, extension, reordering, a missing or early TAG_FINAL, wrong padding.
    """
    if size < 0 or len(blob) != blob_size or blob_size != blob_len(size):
        raise MalformedMessage("attachment size mismatch")
    if len(digest) != 32 or not ct_eq(hashlib.sha256(blob).digest(), digest):
        raise DecryptionFailed("attachment digest mismatch")
    if len(key) != ATT_KEY_LEN:
        raise MalformedMessage("bad attachment key")
    try:
        state = backend.ss_init_pull(blob[:ATT_SS_HEADER], key)
        out = []
        pos = ATT_SS_HEADER
        end = len(blob)
        final = False
        while pos < end:
            if final:
                raise DecryptionFailed("data after the final chunk")
            clen = min(ATT_CHUNK + ATT_SS_ABYTES, end - pos)
            msg, tag = backend.ss_pull(state, blob[pos : pos + clen])
            pos += clen
            if tag == backend.SS_TAG_FINAL:
                final = True
            elif tag != backend.SS_TAG_MESSAGE:
                raise DecryptionFailed("unexpected secretstream tag")
            out.append(msg)
    except DecryptionFailed:
        raise
    except CryptoError:
        raise DecryptionFailed("attachment chunk failed to authenticate") from None
    if not final:
        raise DecryptionFailed("attachment is truncated (no final chunk)")
    padded = b"".join(out)
    if len(padded) != padme(size) or any(padded[size:]):
        raise DecryptionFailed("bad attachment padding")
    return padded[:size]
