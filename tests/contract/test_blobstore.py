"""The BlobStore contract, against the local-files engine (served by a real Parley server) and
against a real S3 server (Ceph RGW on loopback, which checks SigV4 like MinIO does).

An upload URL is bound to one key, the exact size and the SHA-256: the store itself refuses one
byte more, one byte less or one byte changed, and stores nothing. Expired or tampered URLs are
refused. (Commit checks and GC are service-level: tests/integration/conversations/test_attachments.py.)
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest

from parley_server.blobs.base import BlobStore, PresignedRequest
from parley_server.blobs.local import LocalBlobStore
from parley_server.blobs.s3 import S3BlobStore, S3Config
from tests.support.rgw import ACCESS_KEY, REGION, SECRET_KEY, Rgw, rgw  # noqa: F401
from tests.support.server import ServerProcess

TTL = 600


@dataclass
class Harness:
    store: BlobStore
    base_url: str  # resolves the local engine's server-relative URLs

    def absolute(self, url: str) -> str:
        return self.base_url + url if url.startswith("/") else url

    def put(
        self, req: PresignedRequest, body: bytes, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        h = dict(req.headers) if headers is None else headers
        return httpx.request(
            req.method, self.absolute(req.url), content=body, headers=h, timeout=60
        )

    def get(self, req: PresignedRequest) -> httpx.Response:
        return httpx.request(req.method, self.absolute(req.url), headers=req.headers, timeout=60)


@pytest.fixture(scope="module", params=["local", "s3"])
def harness(request: pytest.FixtureRequest, server: ServerProcess) -> Iterator[Harness]:
    if request.param == "local":
        root = server.data_dir / "blobs"
        store: BlobStore = LocalBlobStore(root, secret=(root / "url-signing.key").read_bytes())
        yield Harness(store, server.http_url)
        return
    s3: Rgw = request.getfixturevalue("rgw")
    cfg = S3Config(
        bucket=f"contract-{secrets.token_hex(4)}",
        endpoint=s3.endpoint,
        region=REGION,
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        prefix="att/",
    )
    store = S3BlobStore(cfg)
    asyncio.run(store.open())
    yield Harness(store, "")


def _key() -> str:
    return secrets.token_urlsafe(18)


def _blob(n: int = 70_001) -> bytes:
    return secrets.token_bytes(n)


def _now() -> int:
    return int(time.time())


async def _grant(h: Harness, body: bytes, key: str | None = None) -> tuple[str, PresignedRequest]:
    key = key or _key()
    req = await h.store.presign_put(key, len(body), hashlib.sha256(body).digest(), TTL, _now())
    return key, req


async def test_exact_bytes_are_stored_and_served(harness: Harness) -> None:
    body = _blob()
    key, req = await _grant(harness, body)
    assert harness.put(req, body).status_code == 200
    stat = await harness.store.stat(key)
    assert stat is not None and stat.size == len(body)
    if stat.sha256 is not None:
        assert stat.sha256 == hashlib.sha256(body).digest()
    if stat.md5 is not None:
        assert stat.md5 == hashlib.md5(body).digest()
    assert stat.sha256 is not None or stat.md5 is not None  # some digest to check at commit
    got = harness.get(await harness.store.presign_get(key, TTL, _now()))
    assert got.status_code == 200 and got.content == body
    assert key in await harness.store.keys()


@pytest.mark.parametrize("change", ["one_more", "one_less", "one_changed"])
async def test_other_bytes_are_refused_and_not_stored(harness: Harness, change: str) -> None:
    body = _blob()
    key, req = await _grant(harness, body)
    if change == "one_more":
        sent = body + b"\x00"
    elif change == "one_less":
        sent = body[:-1]
    else:
        sent = body[:1000] + bytes([body[1000] ^ 1]) + body[1001:]
    r = harness.put(req, sent)
    assert 400 <= r.status_code < 500, r.text
    assert await harness.store.stat(key) is None
    # and the right bytes still go through on the same URL
    assert harness.put(req, body).status_code == 200


async def test_expired_urls_are_refused(harness: Harness) -> None:
    body = _blob(1000)
    key = _key()
    long_ago = _now() - 3600
    put = await harness.store.presign_put(
        key, len(body), hashlib.sha256(body).digest(), 60, long_ago
    )
    assert harness.put(put, body).status_code == 403
    assert await harness.store.stat(key) is None
    _, ok = await _grant(harness, body, key)
    assert harness.put(ok, body).status_code == 200
    get = await harness.store.presign_get(key, 60, long_ago)
    assert harness.get(get).status_code == 403


def _tamper(url: str, name: str, value: str) -> str:
    parts = urlsplit(url)
    q = [(k, value if k == name else v) for k, v in parse_qsl(parts.query)]
    return urlunsplit(parts._replace(query=urlencode(q)))


async def test_tampered_urls_are_refused(harness: Harness) -> None:
    body = _blob(1000)
    key, req = await _grant(harness, body)
    sig = "sig" if isinstance(harness.store, LocalBlobStore) else "X-Amz-Signature"
    exp = "exp" if isinstance(harness.store, LocalBlobStore) else "X-Amz-Expires"
    q = dict(parse_qsl(urlsplit(req.url).query))
    flipped = q[sig][:-1] + ("0" if q[sig][-1] != "0" else "1")
    for url in (
        _tamper(req.url, sig, flipped),
        _tamper(req.url, exp, str(int(q[exp]) + 100_000)),
        req.url.replace(key, _key()),  # another object
    ):
        bad = PresignedRequest(req.method, url, req.headers, req.expires_at)
        assert harness.put(bad, body).status_code == 403, url
    assert await harness.store.stat(key) is None
    # a GET URL is not a PUT URL
    get = await harness.store.presign_get(key, TTL, _now())
    r = httpx.put(harness.absolute(get.url), content=body, timeout=60)
    assert r.status_code == 403
    assert await harness.store.stat(key) is None


async def test_signed_digest_header_is_required(harness: Harness) -> None:
    body = _blob(1000)
    key, req = await _grant(harness, body)
    if isinstance(harness.store, LocalBlobStore):
        # the local engine binds size and digest in the signed URL itself (tampering: above)
        assert req.headers == {}
        return
    assert harness.put(req, body, headers={}).status_code == 403
    wrong = {k: hashlib.sha256(b"other").hexdigest() for k in req.headers}
    assert harness.put(req, body, headers=wrong).status_code == 403
    assert await harness.store.stat(key) is None


async def test_delete_is_idempotent(harness: Harness) -> None:
    body = _blob(500)
    key, req = await _grant(harness, body)
    assert harness.put(req, body).status_code == 200
    await harness.store.delete(key)
    assert await harness.store.stat(key) is None
    await harness.store.delete(key)  # absent: not an error
    assert key not in await harness.store.keys()
    assert harness.get(await harness.store.presign_get(key, TTL, _now())).status_code == 404
