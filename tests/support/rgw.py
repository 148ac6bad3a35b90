"""Start a throw-away Ceph RADOS Gateway (S3) on loopback: one mon, one memstore OSD, radosgw.

RGW checks SigV4 signatures, expiry and ``x-amz-content-sha256`` like MinIO does (moto and
s3rver do not), so the S3 blob engine is tested against it. Needs Debian's ``radosgw ceph-mon
ceph-osd ceph-common`` (installed by scripts/test). Everything lives under one directory; the
three daemons are stopped by their PIDs. Cold start takes about 15 s on a quiet machine.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import free_port

ACCESS_KEY = "PARLEYTESTACCESSKEY0"
SECRET_KEY = "parley-test-secret-key-0123456789abcdefgh"
REGION = "us-east-1"


def available() -> bool:
    return all(shutil.which(b) for b in ("ceph-mon", "ceph-osd", "radosgw", "ceph"))


class Rgw:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.mon_port = free_port()
        self.port = free_port()
        self.conf = root / "ceph.conf"
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self, *args: str, timeout: float = 120.0) -> str:
        out = subprocess.run(
            [*args, "-c", str(self.conf)],
            check=True,
            capture_output=True,
            timeout=timeout,
            cwd=self.root,
        )
        return out.stdout.decode()

    def _spawn(self, *args: str) -> None:
        log = (self.root / f"{args[0]}.out").open("wb")
        self.procs.append(
            subprocess.Popen(
                [*args, "-c", str(self.conf), "-f"],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                start_new_session=True,
            )
        )

    def start(self, timeout: float = 180.0) -> None:
        r = self.root
        for d in ("mon/a", "osd/0", "run", "log", "rgw"):
            (r / d).mkdir(parents=True, exist_ok=True)
        fsid = str(uuid.uuid4())
        self.conf.write_text(
            f"""[global]
fsid = {fsid}
mon host = v2:127.0.0.1:{self.mon_port}
mon initial members = a
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc
ms client mode = crc
ms cluster mode = crc
ms service mode = crc
run dir = {r}/run
log file = {r}/log/$name.log
pid file = {r}/run/$name.pid
admin socket = {r}/run/$name.asok
osd objectstore = memstore
memstore device bytes = 2147483648
osd pool default size = 1
osd pool default min size = 1
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
osd data = {r}/osd/$id
mon data = {r}/mon/$id
keyring = {r}/keyring
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:{self.port}
rgw data = {r}/rgw
rgw dns name = 127.0.0.1
"""
        )
        keyring = r / "keyring"
        monmap = r / "monmap"
        subprocess.run(
            ["ceph-authtool", "--create-keyring", str(keyring), "--gen-key", "-n", "mon.",
             "--cap", "mon", "allow *"],
            check=True, capture_output=True,
        )  # fmt: skip
        subprocess.run(
            ["monmaptool", "--create", "--addv", "a", f"[v2:127.0.0.1:{self.mon_port}]",
             "--fsid", fsid, str(monmap)],
            check=True, capture_output=True,
        )  # fmt: skip
        self._run("ceph-mon", "--mkfs", "-i", "a", "--monmap", str(monmap), "--keyring",
                  str(keyring))  # fmt: skip
        self._spawn("ceph-mon", "-i", "a")
        osd_id = self._run("ceph", "osd", "create").strip()
        assert osd_id == "0", osd_id
        self._run("ceph-osd", "-i", "0", "--mkfs")
        self._spawn("ceph-osd", "-i", "0")
        deadline = time.monotonic() + timeout
        while "1 up" not in self._run("ceph", "osd", "stat"):
            self._check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError("ceph-osd did not come up")
            time.sleep(0.3)
        self._spawn("radosgw", "-n", "client.rgw.a")
        while True:
            self._check_alive()
            try:
                httpx.get(self.endpoint, timeout=2.0)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise TimeoutError("radosgw did not answer") from None
                time.sleep(0.3)
        self._run(
            "radosgw-admin", "user", "create", "--uid", "parley", "--display-name", "parley",
            "--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY,
        )  # fmt: skip

    def _check_alive(self) -> None:
        for p in self.procs:
            if p.poll() is not None:
                raise RuntimeError(f"{p.args[0]} exited with {p.returncode}; see {self.root}")

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                os.kill(p.pid, signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()
        self.procs.clear()


@pytest.fixture(scope="session")
def rgw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rgw]:
    """One RGW for the whole session (tests use fresh buckets or keys)."""
    if not available():
        pytest.fail(
            "Ceph RGW is not installed: apt-get install radosgw ceph-mon ceph-osd ceph-common"
        )
    server = Rgw(tmp_path_factory.mktemp("rgw"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


def s3_env(bucket: str, server: Rgw) -> tuple[str, dict[str, str]]:
    """The ``--blobs`` spec and environment for a Parley server on that bucket."""
    spec = f"s3://{bucket}?endpoint={server.endpoint}&region={REGION}"
    return spec, {"PARLEY_S3_ACCESS_KEY": ACCESS_KEY, "PARLEY_S3_SECRET_KEY": SECRET_KEY}
