"""Attachment I/O for the CPython client: encrypt and upload a file, send it, fetch and open one.

The protocol and crypto steps are ``parley.client.attachments`` (sans-IO); this module makes
the requests over the client's session and the HTTP transfers with httpx, straight to the blob
store (the Parley server itself for the local store, else the S3 bucket).
"""

from __future__ import annotations

import mimetypes
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx

from parley.client import attachments as sansio
from parley.client.session import Session
from parley.crypto.attachments import AttachmentPointer
from parley.protocol.blobs import (
    BlobDownload,
    BlobKind,
    BlobUrl,
    UploadAbort,
    UploadCommit,
    UploadGrant,
)

Progress = Callable[[int, int], None]
"""Called with (bytes done, bytes total) while a blob moves."""

CHUNK = 256 * 1024
TRANSFER_TIMEOUT_S = 300.0
OP_TIMEOUT_S = 30.0


class TransferError(Exception):
    """The blob store refused or failed a transfer (``status`` is the HTTP status, 0 if none)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


async def _chunks(data: bytes, progress: Progress | None) -> AsyncIterator[bytes]:
    for off in range(0, len(data), CHUNK):
        yield data[off : off + CHUNK]
        if progress is not None:
            progress(min(off + CHUNK, len(data)), len(data))


async def upload(
    session: Session,
    server_url: str,
    data: bytes,
    kind: BlobKind = BlobKind.FILE,
    progress: Progress | None = None,
) -> tuple[str, sansio.PreparedBlob]:
    """Encrypt ``data``, upload it on the granted URL and commit it; returns (blob id, blob)."""
    prepared = sansio.prepare(data, kind)
    grant = await session.request(prepared.begin, OP_TIMEOUT_S)
    assert isinstance(grant, UploadGrant)
    up = grant.upload
    headers = {**up.headers, "content-length": str(len(prepared.blob))}
    try:
        async with httpx.AsyncClient(timeout=TRANSFER_TIMEOUT_S) as http:
            r = await http.request(
                up.method,
                sansio.resolve_url(server_url, up.url),
                content=_chunks(prepared.blob, progress),
                headers=headers,
            )
        if r.status_code != 200:
            raise TransferError(f"upload refused: HTTP {r.status_code}", r.status_code)
    except (httpx.HTTPError, TransferError) as exc:
        await session.request(UploadAbort(blob_id=grant.blob_id), OP_TIMEOUT_S)
        if isinstance(exc, TransferError):
            raise
        raise TransferError(f"upload failed: {exc}") from exc
    await session.request(UploadCommit(blob_id=grant.blob_id), OP_TIMEOUT_S)
    return grant.blob_id, prepared


async def upload_file(
    session: Session, server_url: str, path: Path, progress: Progress | None = None
) -> AttachmentPointer:
    """Upload a file and return its pointer (name and type from the path; no thumbnail)."""
    data = path.read_bytes()
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    blob_id, prepared = await upload(session, server_url, data, BlobKind.FILE, progress)
    return sansio.pointer(blob_id, prepared, mime=mime, name=path.name)


async def fetch_blob(
    session: Session,
    server_url: str,
    conversation_id: bytes,
    pointer: AttachmentPointer,
    progress: Progress | None = None,
) -> bytes:
    """Download and open an attachment (size and digest checked before decrypting)."""
    got = await session.request(
        BlobUrl(blob_id=pointer.id, conversation_id=conversation_id), OP_TIMEOUT_S
    )
    assert isinstance(got, BlobDownload)
    d = got.download
    parts: list[bytes] = []
    done = 0
    async with (
        httpx.AsyncClient(timeout=TRANSFER_TIMEOUT_S) as http,
        http.stream(d.method, sansio.resolve_url(server_url, d.url), headers=d.headers) as r,
    ):
        if r.status_code != 200:
            raise TransferError(f"download refused: HTTP {r.status_code}", r.status_code)
        async for chunk in r.aiter_bytes(CHUNK):
            done += len(chunk)
            if done > pointer.blob_size:
                raise TransferError("the blob store sent more bytes than the attachment has")
            parts.append(chunk)
            if progress is not None:
                progress(done, pointer.blob_size)
    return sansio.open_blob(pointer, b"".join(parts))


def describe(pointer: AttachmentPointer) -> dict[str, Any]:
    return sansio.describe(pointer)
