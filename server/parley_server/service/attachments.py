"""Attachment blobs: verified uploads, download authorization and garbage collection.

The server never sees plaintext, keys or file names: only the size and SHA-256 (and optionally
MD5) of the encrypted blob, its kind (file/image/thumb), who uploaded it and which messages
list it in ``Send.blobs``. An upload is reserved (``upload_begin``, quota checked atomically),
PUT by the client straight to the blob store on a URL bound to exactly those bytes, then checked
again (``upload_commit``: size, and SHA-256 or MD5 where the store reports one); anything else
is deleted. Garbage (uncommitted after ``blob_pending_ttl_s``, or carried by no live message)
is deleted in two crash-safe steps (see ``store.blob_records``).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence

from parley.protocol.blobs import (
    BlobDownload,
    BlobUrl,
    PresignedHttp,
    UploadAbort,
    UploadBegin,
    UploadCommit,
    UploadCommitted,
    UploadGrant,
)
from parley.protocol.errors import ErrorCode
from parley.protocol.ops import Ok
from parley_server.blobs.base import BlobStore, PresignedRequest
from parley_server.logging import get_logger
from parley_server.service.context import Services, Session, now_ms
from parley_server.service.errors import ServiceError
from parley_server.store.blob_records import BlobRecords, BlobRow, BlobState, QuotaExceeded

log = get_logger("parley.attachments")

GC_BATCH = 500


def _http(req: PresignedRequest) -> PresignedHttp:
    return PresignedHttp(
        method=req.method, url=req.url, headers=dict(req.headers), expires=req.expires_at * 1000
    )


def _not_found() -> ServiceError:
    """One answer for unknown, someone else's and not-readable blobs: nothing leaks."""
    return ServiceError(ErrorCode.NOT_FOUND, "no such blob")


class Attachments:
    def __init__(self, services: Services, blobs: BlobStore, records: BlobRecords) -> None:
        self.s = services
        self.blobs = blobs
        self.records = records

    # --- upload ------------------------------------------------------------------------------
    async def begin(self, session: Session, op: UploadBegin) -> UploadGrant:
        st = self.s.settings
        if op.size > st.max_blob_bytes:
            raise ServiceError(
                ErrorCode.TOO_LARGE, f"blob of {op.size} bytes > limit {st.max_blob_bytes}"
            )
        now = now_ms()
        blob_id = secrets.token_urlsafe(18)  # 24 characters of [A-Za-z0-9_-]
        row = BlobRow(
            blob_id=blob_id,
            owner=session.user_id,
            size=op.size,
            sha256=op.sha256,
            md5=op.md5,
            kind=op.kind.value,
            state=BlobState.PENDING,
            created=now,
        )
        try:
            await self.records.create(row, st.blob_quota_bytes)
        except QuotaExceeded:
            raise ServiceError(
                ErrorCode.QUOTA_EXCEEDED, f"storage quota of {st.blob_quota_bytes} bytes reached"
            ) from None
        put = await self.blobs.presign_put(
            blob_id, op.size, op.sha256, st.blob_put_ttl_s, now // 1000
        )
        return UploadGrant(blob_id=blob_id, upload=_http(put))

    async def commit(self, session: Session, op: UploadCommit) -> UploadCommitted:
        row = await self.records.get(op.blob_id)
        if row is None or row.owner != session.user_id or row.state == BlobState.DELETING:
            raise _not_found()
        if row.state == BlobState.COMMITTED:
            return UploadCommitted(blob_id=row.blob_id, size=row.size)
        stat = await self.blobs.stat(row.blob_id)
        if stat is None:
            raise ServiceError(ErrorCode.BLOB_MISSING, "the blob was not uploaded (yet)")
        bad = (
            stat.size != row.size
            or (stat.sha256 is not None and stat.sha256 != row.sha256)
            or (stat.md5 is not None and row.md5 is not None and stat.md5 != row.md5)
        )
        if bad:
            await self.delete(row.blob_id, owner=session.user_id)
            raise ServiceError(
                ErrorCode.BLOB_MISMATCH, "the stored blob is not the announced one; deleted"
            )
        if not await self.records.commit(row.blob_id, session.user_id, now_ms()):
            raise _not_found()  # GC or an abort got there first
        return UploadCommitted(blob_id=row.blob_id, size=row.size)

    async def abort(self, session: Session, op: UploadAbort) -> Ok:
        row = await self.records.get(op.blob_id)
        if row is None or row.owner != session.user_id or row.state != BlobState.PENDING:
            raise _not_found()
        await self.delete(row.blob_id, owner=session.user_id)
        return Ok()

    # --- messages and downloads --------------------------------------------------------------
    async def check_send(self, session: Session, blob_ids: Sequence[str]) -> None:
        """Before a send that lists blobs: each must be usable by the sender."""
        if not blob_ids:
            return
        usable = await self.records.usable(session.user_id, blob_ids)
        if len(usable) != len(set(blob_ids)):
            raise ServiceError(ErrorCode.NOT_FOUND, "a listed blob is unknown or not committed")

    async def record_send(self, conversation_id: bytes, seq: int, blob_ids: Sequence[str]) -> None:
        """After the append (also for a retried duplicate): the entry carries these blobs."""
        if blob_ids:
            await self.records.add_refs(conversation_id, seq, blob_ids)

    async def url(self, session: Session, op: BlobUrl) -> BlobDownload:
        row = await self.records.readable(session.user_id, op.blob_id, op.conversation_id)
        if row is None:
            raise _not_found()
        get = await self.blobs.presign_get(
            row.blob_id, self.s.settings.blob_get_ttl_s, now_ms() // 1000
        )
        return BlobDownload(blob_id=row.blob_id, size=row.size, download=_http(get))

    # --- deletion and GC ---------------------------------------------------------------------
    async def delete(self, blob_id: str, owner: str | None = None) -> None:
        """Mark, delete the object, forget: a crash at any point is finished by ``gc``."""
        if await self.records.mark_deleting(blob_id, owner):
            await self.blobs.delete(blob_id)
            await self.records.forget(blob_id)

    async def gc(self, now: int | None = None) -> int:
        """Delete uncommitted and orphaned blobs (and finish interrupted deletions)."""
        now = now_ms() if now is None else now
        st = self.s.settings
        pending_before = now - int(st.blob_pending_ttl_s * 1000)
        unsent_before = now - int(st.blob_unsent_ttl_s * 1000)
        total = 0
        while True:
            ids = await self.records.collect(pending_before, unsent_before, GC_BATCH)
            for blob_id in ids:
                await self.blobs.delete(blob_id)
                await self.records.forget(blob_id)
            total += len(ids)
            if len(ids) < GC_BATCH:
                return total

    async def gc_loop(self) -> None:
        while True:
            try:
                n = await self.gc()
                if n:
                    log.info("blobs_collected", count=n)
            except Exception:
                log.exception("blob_gc_failed")
            await asyncio.sleep(self.s.settings.blob_gc_every_s)


def make_attachments(services: Services) -> Attachments:
    """The attachment service on the blob store named by ``settings.blobs``."""
    from parley_server.blobs.factory import open_blob_store

    st = services.settings
    return Attachments(
        services,
        open_blob_store(st.blobs, st.data_path),
        services.stores.get(BlobRecords),  # type: ignore[type-abstract]
    )
