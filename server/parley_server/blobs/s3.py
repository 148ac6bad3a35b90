"""Blobs in an S3-compatible bucket (MinIO, Ceph RGW, AWS S3) through the ``minio`` SDK.

Clients upload and download straight to the bucket on presigned URLs; the bytes never pass
through Parley. Uploads are presigned by ``sigv4.presign`` with the SHA-256 signed in
``x-amz-content-sha256`` so the store refuses any other body. The SDK is blocking: every call
runs in a thread. The region is always given, or the SDK would look it up over the network.

Configured as ``s3://BUCKET?endpoint=http://host:9000&region=us-east-1[&prefix=att/]
[&public_endpoint=https://s3.example.org]``; the keys come from ``PARLEY_S3_ACCESS_KEY`` and
``PARLEY_S3_SECRET_KEY`` (or ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from minio import Minio
from minio.error import S3Error

from parley_server.blobs.base import BlobStat, BlobStore, PresignedRequest
from parley_server.blobs.sigv4 import presign
from parley_server.metrics import backend_roundtrip


@dataclass(frozen=True, slots=True)
class S3Config:
    bucket: str
    endpoint: str  # scheme://host[:port] the server talks to
    region: str
    access_key: str
    secret_key: str
    prefix: str = ""
    public_endpoint: str = ""  # what clients are given, if not ``endpoint``

    @classmethod
    def from_url(cls, url: str, environ: Mapping[str, str] | None = None) -> S3Config:
        env = os.environ if environ is None else environ
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError("blob store URL must look like s3://BUCKET?endpoint=...&region=...")
        q = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        endpoint = q.get("endpoint", "")
        region = q.get("region", "")
        if urlsplit(endpoint).scheme not in ("http", "https") or not region:
            raise ValueError("s3 blob store needs endpoint=http(s)://host:port and region=...")
        access = env.get("PARLEY_S3_ACCESS_KEY") or env.get("AWS_ACCESS_KEY_ID", "")
        secret = env.get("PARLEY_S3_SECRET_KEY") or env.get("AWS_SECRET_ACCESS_KEY", "")
        if not access or not secret:
            raise ValueError("s3 blob store needs PARLEY_S3_ACCESS_KEY and PARLEY_S3_SECRET_KEY")
        return cls(
            bucket=parts.netloc,
            endpoint=endpoint.rstrip("/"),
            region=region,
            access_key=access,
            secret_key=secret,
            prefix=q.get("prefix", ""),
            public_endpoint=q.get("public_endpoint", "").rstrip("/"),
        )


class S3BlobStore(BlobStore):
    name = "s3"

    def __init__(self, config: S3Config) -> None:
        self.config = config
        ep = urlsplit(config.endpoint)
        self.client = Minio(
            ep.netloc,
            access_key=config.access_key,
            secret_key=config.secret_key,
            secure=ep.scheme == "https",
            region=config.region,
        )

    async def open(self) -> None:
        def ensure_bucket() -> None:
            if not self.client.bucket_exists(self.config.bucket):
                self.client.make_bucket(self.config.bucket)

        with backend_roundtrip("s3", "ensure_bucket"):
            await asyncio.to_thread(ensure_bucket)

    def _object(self, key: str) -> str:
        return self.config.prefix + key

    def _presign(
        self, method: str, key: str, expires_s: int, now_s: int, sha: str | None
    ) -> PresignedRequest:
        c = self.config
        url, headers = presign(
            method=method,
            endpoint=c.public_endpoint or c.endpoint,
            bucket=c.bucket,
            key=self._object(key),
            region=c.region,
            access_key=c.access_key,
            secret_key=c.secret_key,
            expires_s=expires_s,
            now_s=now_s,
            content_sha256=sha,
        )
        return PresignedRequest(method, url, headers, now_s + expires_s)

    async def presign_put(
        self, key: str, size: int, sha256: bytes, expires_s: int, now_s: int
    ) -> PresignedRequest:
        return self._presign("PUT", key, expires_s, now_s, sha256.hex())

    async def presign_get(self, key: str, expires_s: int, now_s: int) -> PresignedRequest:
        return self._presign("GET", key, expires_s, now_s, None)

    async def stat(self, key: str) -> BlobStat | None:
        def run() -> BlobStat | None:
            try:
                obj = self.client.stat_object(self.config.bucket, self._object(key))
            except S3Error as exc:
                if exc.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
                    return None
                raise
            etag = (obj.etag or "").strip('"')
            md5 = None
            if len(etag) == 32 and "-" not in etag:  # single-part upload: ETag is the MD5
                md5 = bytes.fromhex(etag)
            return BlobStat(size=int(obj.size or 0), md5=md5)

        with backend_roundtrip("s3", "stat"):
            return await asyncio.to_thread(run)

    async def delete(self, key: str) -> None:
        with backend_roundtrip("s3", "delete"):
            await asyncio.to_thread(
                self.client.remove_object, self.config.bucket, self._object(key)
            )

    async def keys(self) -> list[str]:
        def run() -> list[str]:
            n = len(self.config.prefix)
            return [
                str(o.object_name)[n:]
                for o in self.client.list_objects(
                    self.config.bucket, prefix=self.config.prefix or None, recursive=True
                )
                if o.object_name
            ]

        with backend_roundtrip("s3", "list"):
            return await asyncio.to_thread(run)
