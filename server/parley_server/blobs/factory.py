"""Pick the blob store engine from the ``blobs`` setting: empty = local files in the data dir."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from parley_server.blobs.base import BlobStore
from parley_server.blobs.local import LocalBlobStore


def open_blob_store(
    spec: str, data_dir: Path, environ: Mapping[str, str] | None = None
) -> BlobStore:
    """``""`` or ``local`` or ``file:///path``: files; ``s3://BUCKET?...``: an S3 bucket."""
    if spec in ("", "local"):
        return LocalBlobStore(data_dir / "blobs")
    if spec.startswith("file://"):
        return LocalBlobStore(Path(spec[len("file://") :]))
    if spec.startswith("s3://"):
        from parley_server.blobs.s3 import S3BlobStore, S3Config

        return S3BlobStore(S3Config.from_url(spec, environ))
    raise ValueError(
        f"unknown blob store {spec!r} (expected local, file:///DIR or s3://BUCKET?...)"
    )
