"""Attachment throughput: encryption in CPython, upload and download through the Parley server
(local blob store) and straight to Ceph RGW (S3 store), and the server's CPU per upload.

    .venv/bin/python bench/attachments.py [--sizes 1,50] [--rounds 3]

Starts its own Ceph RGW (tests/support/rgw.py; needs Debian's radosgw ceph-mon ceph-osd
ceph-common) and two ``parley serve`` processes on loopback (one per blob store), and stops all
of them by PID. Each round encrypts a fresh random file, runs upload_begin, the PUT,
upload_commit, blob_url and the GET, and decrypts. Server CPU is the process's user+system time
(/proc/PID/stat) across the round. Figures only, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from parley.client import attachments as sansio
from parley.protocol.blobs import BlobDownload, BlobUrl, UploadCommit, UploadGrant
from parley.protocol.ops import Conversation, GroupCreate
from tests.support.accounts import new_user
from tests.support.rawclient import RawClient
from tests.support.rgw import Rgw, s3_env
from tests.support.server import ServerProcess

MIB = 1024 * 1024
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rate(nbytes: int, seconds: float) -> str:
    return f"{nbytes / MIB / seconds:7.1f} MiB/s"


async def one_round(srv: ServerProcess, c: RawClient, cid: bytes, size: int) -> dict[str, float]:
    data = secrets.token_bytes(size)
    assert srv.proc is not None
    cpu0 = cpu_s(srv.proc.pid)
    t0 = time.perf_counter()
    prepared = sansio.prepare(data)
    t1 = time.perf_counter()
    grant: UploadGrant = await c.call(prepared.begin)
    up = grant.upload
    async with httpx.AsyncClient(timeout=600) as http:
        t2 = time.perf_counter()
        r = await http.request(
            up.method, sansio.resolve_url(srv.http_url, up.url), content=prepared.blob,
            headers=up.headers,
        )  # fmt: skip
        t3 = time.perf_counter()
        assert r.status_code == 200, r.text
        await c.call(UploadCommit(blob_id=grant.blob_id))
        t4 = time.perf_counter()
        got: BlobDownload = await c.call(BlobUrl(blob_id=grant.blob_id, conversation_id=cid))
        d = got.download
        t5 = time.perf_counter()
        r = await http.request(d.method, sansio.resolve_url(srv.http_url, d.url), headers=d.headers)
        t6 = time.perf_counter()
    pointer = sansio.pointer(grant.blob_id, prepared, mime="application/octet-stream")
    assert sansio.open_blob(pointer, r.content) == data
    t7 = time.perf_counter()
    cpu1 = cpu_s(srv.proc.pid)
    return {
        "encrypt": t1 - t0,
        "put": t3 - t2,
        "commit": t4 - t3,
        "get": t6 - t5,
        "decrypt": t7 - t6,
        "server_cpu": cpu1 - cpu0,
    }


async def bench_server(name: str, srv: ServerProcess, sizes: list[int], rounds: int) -> None:
    (me,) = new_user(srv.http_url, "bench")
    c = await RawClient.login(srv.ws_url, me.token)
    conv: Conversation = await c.call(GroupCreate())
    cid = conv.info.conversation_id
    for size in sizes:
        runs = [await one_round(srv, c, cid, size) for _ in range(rounds)]
        m = {k: median(r[k] for r in runs) for k in runs[0]}
        blob = sansio.att.blob_len(size)
        print(
            f"{name:6} {size // MIB:3} MiB  PUT {rate(blob, m['put'])}  GET {rate(blob, m['get'])}"
            f"  commit {m['commit'] * 1000:6.1f} ms  encrypt {rate(size, m['encrypt'])}"
            f"  decrypt {rate(size, m['decrypt'])}  server CPU {m['server_cpu'] * 1000:7.1f} ms"
        )
    await c.close()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="1,50", help="file sizes in MiB [1,50]")
    ap.add_argument("--rounds", type=int, default=3, help="rounds per size (median) [3]")
    args = ap.parse_args()
    sizes = [int(s) * MIB for s in args.sizes.split(",")]
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"median of {args.rounds} rounds; PUT/GET rates are of the encrypted blob")
    big = str(max(sizes) * 2)
    with tempfile.TemporaryDirectory(prefix="parley-att-bench-") as tmp:
        root = Path(tmp)
        (root / "rgw").mkdir()
        rgw = Rgw(root / "rgw")
        servers: list[ServerProcess] = []
        try:
            t = time.perf_counter()
            rgw.start()
            print(f"Ceph RGW up in {time.perf_counter() - t:.1f} s")
            env = {"PARLEY_MAX_BLOB_BYTES": big, "PARLEY_BLOB_QUOTA_BYTES": str(10**12),
                   "PARLEY_HTTP_HEADER_TIMEOUT_S": "600"}  # fmt: skip
            (root / "local").mkdir()
            local = ServerProcess(root / "local" / "data", env=env)
            servers.append(local)
            local.start()
            spec, keys = s3_env("bench", rgw)
            (root / "s3").mkdir()
            s3 = ServerProcess(root / "s3" / "data", env={**env, "PARLEY_BLOBS": spec, **keys})
            servers.append(s3)
            s3.start()
            await bench_server("local", local, sizes, args.rounds)
            await bench_server("s3", s3, sizes, args.rounds)
        finally:
            for srv in servers:
                srv.stop()
            rgw.stop()


if __name__ == "__main__":
    asyncio.run(main())
