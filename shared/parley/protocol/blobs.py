"""Attachment blob ops: a verified upload (begin, PUT straight to the store, commit) and a
short-lived download URL. The server only ever sees opaque ciphertext sizes and digests.

Flow: ``upload_begin`` announces the size and SHA-256 of the *encrypted* blob and gets a
presigned PUT bound to exactly those bytes; the client PUTs the blob; ``upload_commit`` makes
the server check the stored object and mark it committed. A ``send`` lists the blob ids its
envelope refers to (``Send.blobs``); members of that conversation may then ask ``blob_url`` for
a presigned GET. The key, digest check and file metadata travel inside the E2E envelope only.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import msgspec

from parley.protocol.types import ConversationId, Timestamp

BLOB_ID_PATTERN = "^[A-Za-z0-9_-]{16,64}$"
BlobId = Annotated[str, msgspec.Meta(pattern=BLOB_ID_PATTERN)]
Sha256 = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
Md5 = Annotated[bytes, msgspec.Meta(min_length=16, max_length=16)]
MAX_BLOBS_PER_MESSAGE = 16
"""Blob ids one ``send`` may list (a file plus its thumbnail, an album...)."""


class BlobKind(StrEnum):
    """What the blob is, as far as the server may know (for limits and metrics only)."""

    FILE = "file"
    IMAGE = "image"
    THUMB = "thumb"


class UploadBegin(msgspec.Struct, tag="upload_begin", tag_field="t", kw_only=True):
    """Reserve a blob of exactly ``size`` bytes whose SHA-256 is ``sha256`` (of the ciphertext).

    ``md5`` (optional, also of the ciphertext) lets the server check S3 ETags at commit."""

    size: Annotated[int, msgspec.Meta(ge=1)]
    sha256: Sha256
    kind: BlobKind = BlobKind.FILE
    md5: Md5 | None = None


class PresignedHttp(msgspec.Struct, kw_only=True):
    """One HTTP request to make as given: every header is part of the signature.

    A ``url`` beginning with ``/`` is a path on the Parley server (the local blob store)."""

    method: str
    url: str
    headers: dict[str, str] = {}
    expires: Timestamp  # ms


class UploadGrant(msgspec.Struct, tag="upload_grant", tag_field="t", kw_only=True):
    blob_id: BlobId
    upload: PresignedHttp


class UploadCommit(msgspec.Struct, tag="upload_commit", tag_field="t"):
    """The client finished its PUT: the server checks the object and marks it committed.
    Idempotent. A stored object of another size or digest is deleted (``blob_mismatch``)."""

    blob_id: BlobId


class UploadCommitted(msgspec.Struct, tag="upload_committed", tag_field="t"):
    blob_id: BlobId
    size: int


class UploadAbort(msgspec.Struct, tag="upload_abort", tag_field="t"):
    """Give up an upload that was not committed (a cancelled send): its object is deleted."""

    blob_id: BlobId


class BlobUrl(msgspec.Struct, tag="blob_url", tag_field="t"):
    """A download URL for a blob referenced by a message of ``conversation_id`` (the caller
    must be a member). The uploader may always fetch its own committed blobs."""

    blob_id: BlobId
    conversation_id: ConversationId


class BlobDownload(msgspec.Struct, tag="blob_download", tag_field="t", kw_only=True):
    blob_id: BlobId
    size: int
    download: PresignedHttp


BlobOp = UploadBegin | UploadCommit | UploadAbort | BlobUrl
BlobResult = UploadGrant | UploadCommitted | BlobDownload
