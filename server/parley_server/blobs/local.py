"""Blobs as files in the data dir, uploaded to and downloaded from the Parley server itself.

The server hands out the same kind of presigned URL an object store would: a path under
``/api/v1/blobs/`` whose query carries the operation, the exact size and SHA-256 (uploads) and
an expiry, signed with HMAC-SHA-256 under a key kept in the data dir. ``receive`` streams an
upload to a temporary file while counting and hashing it, and moves it into place only when
both match; anything else is refused and nothing is stored. Files are named by their key only.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlencode

from parley_server.blobs.base import BlobStat, BlobStore, PresignedRequest

URL_PREFIX = "/api/v1/blobs/"
KEY_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_FLUSH_BYTES = 1 << 20


class UrlRefused(Exception):
    """A blob URL that is malformed, expired or not signed by this server (HTTP 403)."""


class UploadRefused(Exception):
    """Bytes that are not the announced ones (HTTP 400); nothing was stored."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class LocalBlobStore(BlobStore):
    name = "local"

    def __init__(self, root: Path, secret: bytes | None = None) -> None:
        self.root = Path(root)
        self._secret = secret

    # --- lifecycle ---------------------------------------------------------------------------
    async def open(self) -> None:
        await asyncio.to_thread(self._open_sync)

    def _open_sync(self) -> None:
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)
        for stale in (self.root / "tmp").iterdir():  # uploads cut off by a crash or restart
            stale.unlink(missing_ok=True)
        if self._secret is None:
            key_file = self.root / "url-signing.key"
            if not key_file.exists():
                fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(secrets.token_bytes(32))
            self._secret = key_file.read_bytes()

    # --- signing -----------------------------------------------------------------------------
    def _sign(self, fields: list[str]) -> str:
        if self._secret is None:
            raise RuntimeError("blob store is not open")
        msg = "\n".join(fields).encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()

    def _url(self, key: str, query: dict[str, str]) -> str:
        return URL_PREFIX + key + "?" + urlencode(query)

    async def presign_put(
        self, key: str, size: int, sha256: bytes, expires_s: int, now_s: int
    ) -> PresignedRequest:
        exp = now_s + expires_s
        query = {"op": "put", "size": str(size), "sha256": sha256.hex(), "exp": str(exp)}
        query["sig"] = self._sign(["put", key, query["size"], query["sha256"], query["exp"]])
        return PresignedRequest("PUT", self._url(key, query), {}, exp)

    async def presign_get(self, key: str, expires_s: int, now_s: int) -> PresignedRequest:
        exp = now_s + expires_s
        query = {"op": "get", "exp": str(exp)}
        query["sig"] = self._sign(["get", key, query["exp"]])
        return PresignedRequest("GET", self._url(key, query), {}, exp)

    def check_url(
        self, method: str, key: str, query: Mapping[str, str], now_s: int
    ) -> tuple[int, bytes]:
        """Verify a presigned URL; returns (size, sha256) for a PUT, (0, b"") for a GET."""
        if not KEY_RE.match(key):
            raise UrlRefused("bad key")
        op = "put" if method == "PUT" else "get"
        try:
            if query.get("op") != op:
                raise UrlRefused("wrong operation")
            exp = int(query["exp"])
            if op == "put":
                size = int(query["size"])
                sha256 = bytes.fromhex(query["sha256"])
                fields = ["put", key, query["size"], query["sha256"], query["exp"]]
            else:
                size, sha256 = 0, b""
                fields = ["get", key, query["exp"]]
            sig = query["sig"]
        except (KeyError, ValueError):
            raise UrlRefused("malformed blob URL") from None
        if not hmac.compare_digest(self._sign(fields), sig):
            raise UrlRefused("bad signature")
        if now_s > exp:
            raise UrlRefused("expired")
        if size < 0 or len(sha256) not in (0, 32):
            raise UrlRefused("malformed blob URL")
        return size, sha256

    # --- files -------------------------------------------------------------------------------
    def path(self, key: str) -> Path:
        if not KEY_RE.match(key):
            raise ValueError("bad blob key")
        return self.root / key[:2] / key

    async def receive(
        self,
        key: str,
        size: int,
        sha256: bytes,
        chunks: AsyncIterator[bytes],
        content_length: int | None,
    ) -> None:
        """Store exactly ``size`` bytes hashing to ``sha256`` under ``key``, or nothing."""
        if content_length is not None and content_length != size:
            raise UploadRefused("size_mismatch", "Content-Length is not the announced size")
        final = self.path(key)
        tmp = self.root / "tmp" / f"{key}.{secrets.token_hex(4)}"
        h = hashlib.sha256()
        got = 0
        f = await asyncio.to_thread(open, tmp, "wb")
        try:
            buf = bytearray()
            async for chunk in chunks:
                got += len(chunk)
                if got > size:
                    raise UploadRefused("size_mismatch", "more bytes than announced")
                h.update(chunk)
                buf += chunk
                if len(buf) >= _FLUSH_BYTES:
                    await asyncio.to_thread(f.write, bytes(buf))
                    buf.clear()
            if buf:
                await asyncio.to_thread(f.write, bytes(buf))
            if got != size:
                raise UploadRefused("size_mismatch", "fewer bytes than announced")
            if not hmac.compare_digest(h.digest(), sha256):
                raise UploadRefused("digest_mismatch", "SHA-256 is not the announced one")
            await asyncio.to_thread(_finish, f, tmp, final)
        except BaseException:
            await asyncio.to_thread(_discard, f, tmp)
            raise

    async def stat(self, key: str) -> BlobStat | None:
        return await asyncio.to_thread(self._stat_sync, key)

    def _stat_sync(self, key: str) -> BlobStat | None:
        p = self.path(key)
        try:
            with p.open("rb") as f:
                digest = hashlib.file_digest(f, "sha256").digest()
                return BlobStat(size=f.tell(), sha256=digest)
        except FileNotFoundError:
            return None

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.path(key).unlink, True)

    async def keys(self) -> list[str]:
        def scan() -> list[str]:
            out: list[str] = []
            for d in self.root.iterdir():
                if d.is_dir() and d.name != "tmp":
                    out.extend(p.name for p in d.iterdir() if KEY_RE.match(p.name))
            return out

        return await asyncio.to_thread(scan)


def _finish(f: BinaryIO, tmp: Path, final: Path) -> None:
    f.flush()
    os.fsync(f.fileno())
    f.close()
    final.parent.mkdir(exist_ok=True)
    os.replace(tmp, final)


def _discard(f: BinaryIO, tmp: Path) -> None:
    with contextlib.suppress(Exception):
        f.close()
    tmp.unlink(missing_ok=True)
