"""Attachment blobs through the real server, on the local-files engine and on S3 (Ceph RGW):
verified upload and commit, download authorization, limits and garbage collection."""

from __future__ import annotations

import asyncio
import hashlib
import io
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from minio import Minio

from parley.protocol.blobs import (
    BlobDownload,
    BlobKind,
    BlobUrl,
    UploadAbort,
    UploadBegin,
    UploadCommit,
    UploadCommitted,
    UploadGrant,
)
from parley.protocol.errors import ErrorCode
from parley.protocol.ops import Conversation, GroupCreate, GroupDisband, Send, Sent
from parley.protocol.social import Recall
from tests.conftest import OPEN_DIRECT
from tests.support.accounts import Login, new_user
from tests.support.rawclient import RawClient, envelope_for
from tests.support.rgw import ACCESS_KEY, REGION, SECRET_KEY, Rgw, rgw, s3_env  # noqa: F401
from tests.support.server import ServerProcess

MAX_BLOB = 4 * 1024 * 1024
QUOTA = 6 * 1024 * 1024


@dataclass
class Setup:
    server: ServerProcess
    engine: str
    bucket: str = ""
    rgw: Rgw | None = None

    def absolute(self, url: str) -> str:
        return self.server.http_url + url if url.startswith("/") else url

    def put_direct(self, blob_id: str, body: bytes) -> None:
        """Write an object behind the server's back (as a broken or malicious store would)."""
        if self.rgw is None:
            path = self.server.data_dir / "blobs" / blob_id[:2] / blob_id
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(body)
        else:
            self.minio().put_object(self.bucket, blob_id, io.BytesIO(body), len(body))

    def stored(self, blob_id: str) -> bool:
        if self.rgw is None:
            return (self.server.data_dir / "blobs" / blob_id[:2] / blob_id).exists()
        names = {o.object_name for o in self.minio().list_objects(self.bucket, recursive=True)}
        return blob_id in names

    def minio(self) -> Minio:
        assert self.rgw is not None
        host = self.rgw.endpoint.removeprefix("http://")
        return Minio(host, ACCESS_KEY, SECRET_KEY, secure=False, region=REGION)


def _start(tmp: pytest.TempPathFactory, engine: str, s3: Rgw | None, **env: str) -> Setup:
    settings = {
        **OPEN_DIRECT,
        "PARLEY_MAX_BLOB_BYTES": str(MAX_BLOB),
        "PARLEY_BLOB_QUOTA_BYTES": str(QUOTA),
        **env,
    }
    bucket = ""
    if s3 is not None:
        bucket = f"att-{secrets.token_hex(4)}"
        spec, keys = s3_env(bucket, s3)
        settings |= {"PARLEY_BLOBS": spec, **keys}
    srv = ServerProcess(tmp.mktemp(f"att-{engine}") / "data", env=settings)
    srv.start()
    return Setup(srv, engine, bucket, s3)


@pytest.fixture(scope="module", params=["local", "s3"])
def setup(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Setup]:
    s3 = request.getfixturevalue("rgw") if request.param == "s3" else None
    st = _start(tmp_path_factory, request.param, s3)
    yield st
    st.server.stop()


async def _login(st: Setup, who: Login) -> RawClient:
    return await RawClient.login(st.server.ws_url, who.token)


def _begin(body: bytes, kind: BlobKind = BlobKind.FILE) -> UploadBegin:
    return UploadBegin(
        size=len(body),
        sha256=hashlib.sha256(body).digest(),
        kind=kind,
        md5=hashlib.md5(body).digest(),
    )


async def _upload(st: Setup, c: RawClient, body: bytes) -> str:
    grant: UploadGrant = await c.call(_begin(body))
    up = grant.upload
    r = httpx.request(up.method, st.absolute(up.url), content=body, headers=up.headers, timeout=60)
    assert r.status_code == 200, r.text
    done: UploadCommitted = await c.call(UploadCommit(blob_id=grant.blob_id))
    assert done.size == len(body)
    return grant.blob_id


async def _fetch(st: Setup, c: RawClient, blob_id: str, cid: bytes) -> bytes:
    got: BlobDownload = await c.call(BlobUrl(blob_id=blob_id, conversation_id=cid))
    d = got.download
    r = httpx.request(d.method, st.absolute(d.url), headers=d.headers, timeout=60)
    assert r.status_code == 200
    return r.content


async def _group(c: RawClient, *members: Login) -> bytes:
    conv: Conversation = await c.call(GroupCreate(members=[m.user_id for m in members]))
    return conv.info.conversation_id


async def _send(c: RawClient, cid: bytes, *blob_ids: str) -> Sent:
    op = Send(
        conversation_id=cid,
        client_msg_id=secrets.token_hex(8),
        envelope=envelope_for(cid, 100),
        blobs=list(blob_ids),
    )
    sent: Sent = await c.call(op)
    return sent


async def test_upload_send_and_download_by_members_only(setup: Setup) -> None:
    (alice,), (bob,), (carol,) = (new_user(setup.server.http_url, n) for n in "abc")
    a, b, c = [await _login(setup, x) for x in (alice, bob, carol)]
    body = secrets.token_bytes(300_000)
    blob_id = await _upload(setup, a, body)
    cid = await _group(a, bob)
    # before any message lists it, only its uploader may fetch it
    assert (await b.fail(BlobUrl(blob_id=blob_id, conversation_id=cid))).code == ErrorCode.NOT_FOUND
    await _send(a, cid, blob_id)
    assert await _fetch(setup, b, blob_id, cid) == body
    assert await _fetch(setup, a, blob_id, cid) == body
    # carol is no member: not with this conversation, nor with one of her own
    err = await c.fail(BlobUrl(blob_id=blob_id, conversation_id=cid))
    assert err.code == ErrorCode.NOT_FOUND
    own = await _group(c)
    err = await c.fail(BlobUrl(blob_id=blob_id, conversation_id=own))
    assert err.code == ErrorCode.NOT_FOUND
    # nor may she put alice's blob into a message of her own conversation
    bad = Send(
        conversation_id=own, client_msg_id="x", envelope=envelope_for(own, 100), blobs=[blob_id]
    )
    assert (await c.fail(bad)).code == ErrorCode.NOT_FOUND
    # bob, a reader, may forward it into another conversation he is in with carol
    fwd = await _group(b, carol)
    await _send(b, fwd, blob_id)
    assert await _fetch(setup, c, blob_id, fwd) == body
    for x in (a, b, c):
        await x.close()


async def test_commit_and_abort_only_by_the_uploader(setup: Setup) -> None:
    (alice,), (bob,) = (new_user(setup.server.http_url, n) for n in "ab")
    a, b = await _login(setup, alice), await _login(setup, bob)
    body = secrets.token_bytes(2000)
    grant: UploadGrant = await a.call(_begin(body))
    up = grant.upload
    httpx.request(up.method, setup.absolute(up.url), content=body, headers=up.headers)
    assert (await b.fail(UploadCommit(blob_id=grant.blob_id))).code == ErrorCode.NOT_FOUND
    assert (await b.fail(UploadAbort(blob_id=grant.blob_id))).code == ErrorCode.NOT_FOUND
    assert setup.stored(grant.blob_id)
    await a.call(UploadCommit(blob_id=grant.blob_id))
    await a.call(UploadCommit(blob_id=grant.blob_id))  # idempotent
    # abort of a pending upload deletes its object
    other: UploadGrant = await a.call(_begin(body))
    up = other.upload
    httpx.request(up.method, setup.absolute(up.url), content=body, headers=up.headers)
    assert setup.stored(other.blob_id)
    await a.call(UploadAbort(blob_id=other.blob_id))
    assert not setup.stored(other.blob_id)
    assert (await a.fail(UploadCommit(blob_id=other.blob_id))).code == ErrorCode.NOT_FOUND
    await a.close()
    await b.close()


@pytest.mark.parametrize("stored", ["one_more", "one_less", "one_changed", "nothing"])
async def test_commit_of_other_bytes_deletes_them(setup: Setup, stored: str) -> None:
    (alice,) = new_user(setup.server.http_url, "a")
    a = await _login(setup, alice)
    body = secrets.token_bytes(5000)
    grant: UploadGrant = await a.call(_begin(body))
    if stored == "nothing":
        err = await a.fail(UploadCommit(blob_id=grant.blob_id))
        assert err.code == ErrorCode.BLOB_MISSING
        await a.close()
        return
    wrong = {
        "one_more": body + b"!",
        "one_less": body[:-1],
        "one_changed": body[:-1] + bytes([body[-1] ^ 0x80]),
    }[stored]
    setup.put_direct(grant.blob_id, wrong)
    err = await a.fail(UploadCommit(blob_id=grant.blob_id))
    assert err.code == ErrorCode.BLOB_MISMATCH
    assert not setup.stored(grant.blob_id)
    assert (await a.fail(UploadCommit(blob_id=grant.blob_id))).code == ErrorCode.NOT_FOUND
    await a.close()


async def test_size_limit_and_quota(setup: Setup) -> None:
    (alice,) = new_user(setup.server.http_url, "a")
    a = await _login(setup, alice)
    digest = hashlib.sha256(b"x").digest()
    err = await a.fail(UploadBegin(size=MAX_BLOB + 1, sha256=digest))
    assert err.code == ErrorCode.TOO_LARGE
    await a.call(UploadBegin(size=MAX_BLOB, sha256=digest))
    err = await a.fail(UploadBegin(size=QUOTA - MAX_BLOB + 1, sha256=digest))
    assert err.code == ErrorCode.QUOTA_EXCEEDED
    await a.call(UploadBegin(size=QUOTA - MAX_BLOB, sha256=digest))  # exactly the quota
    await a.close()


async def test_malformed_blob_ops_are_invalid(setup: Setup) -> None:
    (alice,) = new_user(setup.server.http_url, "a")
    a = await _login(setup, alice)
    cid = await _group(a)
    for op in (
        UploadBegin(size=0, sha256=bytes(32)),
        UploadBegin(size=10, sha256=bytes(31)),
        UploadCommit(blob_id="../../etc/passwd"),
        BlobUrl(blob_id="short", conversation_id=cid),
    ):
        assert (await a.fail(op)).code == ErrorCode.INVALID, op
    unknown = Send(
        conversation_id=cid,
        client_msg_id="u",
        envelope=envelope_for(cid, 100),
        blobs=[secrets.token_urlsafe(18)],
    )
    assert (await a.fail(unknown)).code == ErrorCode.NOT_FOUND
    await a.close()


async def _eventually(check: object, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("engine", ["local", "s3"])
async def test_gc_removes_uncommitted_recalled_and_disbanded(
    engine: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> None:
    s3 = request.getfixturevalue("rgw") if engine == "s3" else None
    st = _start(
        tmp_path_factory,
        engine,
        s3,
        PARLEY_BLOB_PENDING_TTL_S="1",
        PARLEY_BLOB_GC_EVERY_S="0.2",
    )
    try:
        (alice,), (bob,) = (new_user(st.server.http_url, n) for n in "ab")
        a = await _login(st, alice)
        body = secrets.token_bytes(3000)
        kept = await _upload(st, a, body)
        recalled = await _upload(st, a, body)
        disbanded = await _upload(st, a, body)
        pending: UploadGrant = await a.call(_begin(body))
        up = pending.upload
        httpx.request(up.method, st.absolute(up.url), content=body, headers=up.headers)
        direct = await _group(a, bob)
        await _send(a, direct, kept)
        sent = await _send(a, direct, recalled)
        group = await _group(a, bob)
        await _send(a, group, disbanded)
        await a.call(Recall(conversation_id=direct, seq=sent.seq))
        await a.call(GroupDisband(conversation_id=group))
        for gone in (pending.blob_id, recalled, disbanded):
            await _eventually(lambda g=gone: not st.stored(g), f"GC of {gone}")
        err = await a.fail(UploadCommit(blob_id=pending.blob_id))
        assert err.code == ErrorCode.NOT_FOUND
        err = await a.fail(BlobUrl(blob_id=recalled, conversation_id=direct))
        assert err.code == ErrorCode.NOT_FOUND
        # the blob of a live message stays (a GC pass ran after the others went)
        assert st.stored(kept)
        b = await _login(st, bob)
        assert await _fetch(st, b, kept, direct) == body
        await a.close()
        await b.close()
    finally:
        st.server.stop()


async def test_a_slow_upload_outlives_the_http_read_timeout(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The HTTP read timeout (1 s here) bounds request heads and ordinary bodies; a presigned
    blob PUT gets ``upload_timeout_s`` for its body: a client trickling it over about 3 s (a
    deliberately slow sender, not a wait) is stored."""
    st = _start(tmp_path_factory, "local", None, PARLEY_HTTP_HEADER_TIMEOUT_S="1")
    try:
        (alice,) = new_user(st.server.http_url, "a")
        a = await _login(st, alice)
        body = secrets.token_bytes(60_000)
        grant: UploadGrant = await a.call(_begin(body))
        reader, writer = await asyncio.open_connection("127.0.0.1", st.server.port)
        writer.write(
            f"PUT {grant.upload.url} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
        )
        for off in range(0, len(body), 10_000):
            writer.write(body[off : off + 10_000])
            await writer.drain()
            await asyncio.sleep(0.5)
        status = await asyncio.wait_for(reader.readline(), 30)
        writer.close()
        assert status.startswith(b"HTTP/1.1 200"), status
        done: UploadCommitted = await a.call(UploadCommit(blob_id=grant.blob_id))
        assert done.size == len(body)
        await a.close()
    finally:
        st.server.stop()
