"""Attachments, sans-IO: encrypt a file into a blob, describe the upload the server must grant,
build the pointer that travels inside the E2E envelope, and open a downloaded blob.

The shells do the I/O (the CPython client with httpx in ``parley_client.attachments``, the
browser with fetch/XHR in ``web/parley_web/attachments.py``):

1. ``prepare(data)`` -> a ``PreparedBlob``: the encrypted blob and its ``upload_begin`` op;
2. request ``upload_begin``; PUT ``blob`` to ``resolve_url(server, grant.upload.url)`` with
   ``grant.upload.headers``; request ``upload_commit``;
3. ``pointer(...)`` -> the ``AttachmentPointer`` for an ``Att`` content (key, digest, name,
   mime, size; for images width, height, an inline blurred placeholder and the thumbnail as
   a blob of its own in ``preview``); the send lists ``blob_ids(content)`` in ``Send.blobs``;
4. a receiver requests ``blob_url{blob_id, conversation_id}``, GETs the blob and calls
   ``open_blob`` (size and digest are checked before anything is decrypted).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import msgspec

from parley.crypto import attachments as att
from parley.crypto import content as content_mod
from parley.crypto.attachments import AttachmentPointer, EncryptedAttachment
from parley.crypto.b64 import b64d, b64e
from parley.crypto.keys import Rng
from parley.protocol.blobs import BlobKind, UploadBegin

THUMB_EDGE = 320
"""Longest edge of an image's thumbnail blob, in pixels."""
PLACEHOLDER_EDGE = 16
"""Longest edge of the tiny blurred placeholder carried inline (``AttachmentPointer.thumb``)."""


_b64 = b64e
_unb64 = b64d


@dataclass(frozen=True, slots=True)
class PreparedBlob:
    """An encrypted blob ready to upload (``begin`` is the op announcing it)."""

    enc: EncryptedAttachment
    begin: UploadBegin

    @property
    def blob(self) -> bytes:
        return self.enc.blob


def prepare(data: bytes, kind: BlobKind = BlobKind.FILE, *, rng: Rng | None = None) -> PreparedBlob:
    """Encrypt ``data`` under a fresh key; announce size, SHA-256 and MD5 of the ciphertext."""
    enc = att.encrypt(data, rng=rng)
    begin = UploadBegin(
        size=enc.blob_size,
        sha256=enc.digest,
        kind=kind,
        md5=hashlib.md5(enc.blob).digest(),
    )
    return PreparedBlob(enc, begin)


def pointer(
    blob_id: str,
    prepared: PreparedBlob,
    *,
    mime: str,
    name: str | None = None,
    width: int | None = None,
    height: int | None = None,
    placeholder: bytes | None = None,
    preview: AttachmentPointer | None = None,
) -> AttachmentPointer:
    """The pointer an ``Att`` content carries (its key never leaves the envelope)."""
    enc = prepared.enc
    return AttachmentPointer(
        id=blob_id,
        key=_b64(enc.key),
        digest=_b64(enc.digest),
        size=enc.size,
        blob_size=enc.blob_size,
        mime=mime,
        name=name,
        thumb=None if placeholder is None else _b64(placeholder),
        w=width,
        h=height,
        preview=preview,
    )


def blob_ids(c: content_mod.Content) -> list[str]:
    """The blob ids a content refers to: what its ``send`` lists in ``Send.blobs``."""
    if isinstance(c, content_mod.Sync):
        return blob_ids(c.content)
    if not isinstance(c, content_mod.Att):
        return []
    ids = [c.att.id]
    if c.att.preview is not None:
        ids.append(c.att.preview.id)
    return ids


def blob_ids_of_json(content_json: bytes) -> list[str]:
    """``blob_ids`` of a content as the E2E state keeps it (JSON); [] if it is not one."""
    try:
        c = msgspec.json.decode(content_json, type=content_mod.Content)
    except msgspec.DecodeError:
        return []
    return blob_ids(c)


def open_blob(p: AttachmentPointer, blob: bytes) -> bytes:
    """Check size and digest, then decrypt (raises a CryptoError on any mismatch)."""
    return att.decrypt(
        blob, key=_unb64(p.key), digest=_unb64(p.digest), size=p.size, blob_size=p.blob_size
    )


def placeholder_bytes(p: AttachmentPointer) -> bytes | None:
    """The inline blurred placeholder image (tiny, shown at once), if any."""
    return None if p.thumb is None else _unb64(p.thumb)


def resolve_url(server_url: str, url: str) -> str:
    """A presigned URL from the server: server-relative (local blob store) or absolute."""
    return server_url.rstrip("/") + url if url.startswith("/") else url


def describe(p: AttachmentPointer) -> dict[str, Any]:
    """What a UI or bot may show of an attachment (never the key or digest)."""
    d: dict[str, Any] = {"blob_id": p.id, "name": p.name or "", "mime": p.mime, "size": p.size}
    if p.w is not None and p.h is not None:
        d.update(width=p.w, height=p.h)
    if p.preview is not None:
        d["thumbnail_blob_id"] = p.preview.id
    return d


def fit(width: int, height: int, edge: int) -> tuple[int, int]:
    """The size of an image scaled down (never up) so its longest edge is at most ``edge``."""
    if width <= edge and height <= edge:
        return width, height
    if width >= height:
        return edge, max(1, round(height * edge / width))
    return max(1, round(width * edge / height)), edge
