"""The local blob store's HTTP side: presigned PUT and GET under ``/api/v1/blobs/{key}``.

Only the signed URL authorizes (no session: the URL was handed to an authenticated client, as
an object store's presigned URL would be). A PUT is streamed to disk while counted and hashed
and stored only if it is exactly the signed size and SHA-256. With an S3 blob store these
routes answer 404: clients talk to the bucket directly. Also: the lifespan that opens the blob
store and runs its garbage collector.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from litestar import Litestar, Request, Response, get, put
from litestar.response import File

from parley.protocol.errors import ErrorCode
from parley_server.api.errors import error_response
from parley_server.blobs.local import LocalBlobStore, UploadRefused, UrlRefused
from parley_server.service.dispatch import Dispatcher


def _local(request: Request[Any, Any, Any]) -> LocalBlobStore | None:
    app: Dispatcher = request.app.state.parley
    store = app.attachments.blobs
    return store if isinstance(store, LocalBlobStore) else None


def _query(request: Request[Any, Any, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in request.query_params.items()}


@put("/api/v1/blobs/{key:str}", request_max_body_size=None, status_code=200)
async def blob_put(request: Request[Any, Any, Any], key: str) -> Response[Any]:
    store = _local(request)
    if store is None:
        return error_response(ErrorCode.NOT_FOUND, "no local blob store", 404)
    try:
        size, sha256 = store.check_url("PUT", key, _query(request), int(time.time()))
    except UrlRefused as exc:
        return error_response(ErrorCode.FORBIDDEN, f"blob URL refused: {exc}", 403)
    length = request.headers.get("content-length")
    try:
        await store.receive(
            key, size, sha256, request.stream(), int(length) if length is not None else None
        )
    except UploadRefused as exc:
        return error_response(ErrorCode.BLOB_MISMATCH, str(exc), 400)
    except ValueError:
        return error_response(ErrorCode.INVALID, "bad Content-Length", 400)
    return Response(None, status_code=200)


@get("/api/v1/blobs/{key:str}")
async def blob_get(request: Request[Any, Any, Any], key: str) -> Response[Any]:
    store = _local(request)
    if store is None:
        return error_response(ErrorCode.NOT_FOUND, "no local blob store", 404)
    try:
        store.check_url("GET", key, _query(request), int(time.time()))
    except UrlRefused as exc:
        return error_response(ErrorCode.FORBIDDEN, f"blob URL refused: {exc}", 403)
    path = store.path(key)
    if not await asyncio.to_thread(path.is_file):
        return error_response(ErrorCode.NOT_FOUND, "no such blob", 404)
    return File(
        path=path,
        media_type="application/octet-stream",
        content_disposition_type="attachment",
        filename="blob",
        headers={"Cache-Control": "private, max-age=300"},
    )


def blob_routes() -> list[Any]:
    return [blob_put, blob_get]


def blobs_lifespan(
    parley: Dispatcher,
) -> Callable[[Litestar], contextlib.AbstractAsyncContextManager[None]]:
    """Open the blob store after the stores, run GC while serving, close it first."""

    @contextlib.asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        att = parley.attachments
        await att.blobs.open()
        gc = asyncio.create_task(att.gc_loop())
        try:
            yield
        finally:
            gc.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await gc
            await att.blobs.close()

    return lifespan
