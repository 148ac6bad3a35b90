"""``parley send USER --file PATH`` and ``parley download MSG`` round trip, byte for byte, through
the real server and its local blob store; ``history --json`` carries the attachment metadata
(never the key), and the marker in the file's content and name reaches no server file, log
or (with the S3 store, on Ceph RGW) object."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
from minio import Minio

from tests.conftest import OPEN_DIRECT
from tests.integration.client.test_cli_client import cli, new_user, parley
from tests.support.rgw import ACCESS_KEY, REGION, SECRET_KEY, Rgw, rgw, s3_env  # noqa: F401
from tests.support.server import ServerProcess


def _server_files_hold(root: Path, marker: bytes) -> list[Path]:
    found = []
    for p in root.rglob("*"):
        try:
            if p.is_file() and marker in p.read_bytes():
                found.append(p)
        except FileNotFoundError:  # a temporary file of the running server went away
            continue
    return found


def test_send_file_and_download_round_trip(server: ServerProcess, tmp_path: Path) -> None:
    alice = new_user(server, tmp_path, "cli_fa")
    bob = new_user(server, tmp_path, "cli_fb")
    marker = f"MARKER{secrets.token_hex(8)}".encode()
    src = tmp_path / f"{marker.decode()}-report.bin"
    data = secrets.token_bytes(300_000) + marker + secrets.token_bytes(70_000)
    src.write_bytes(data)
    r = parley(alice.env, "send", bob.name, "--file", str(src), "the report")
    assert r.code == 0, r.err
    chat = r.out.split("chat ")[1].split(",")[0]
    seq = int(r.out.split("seq ")[1].split(")")[0])

    r = parley(bob.env, "history", alice.name, "--json")
    assert r.code == 0, r.err
    (row,) = [json.loads(line) for line in r.out.splitlines()]
    assert row["type"] == "attachment" and row["seq"] == seq and row["caption"] == "the report"
    meta = row["attachment"]
    assert meta["name"] == src.name and meta["size"] == len(data)
    assert meta["mime"] == "application/octet-stream" and len(meta["blob_id"]) >= 16
    assert "key" not in meta and "digest" not in meta

    out = tmp_path / "downloaded.bin"
    r = cli(bob.env, "download", f"{chat}:{seq}", "-o", str(out))
    assert r.code == 0, r.err
    assert out.read_bytes() == data
    # the sender too, by user name; and an existing file is not overwritten without --force
    r = cli(alice.env, "download", f"{bob.name}:{seq}", "-o", str(out))
    assert r.code == 1 and "exists" in r.err
    r = cli(alice.env, "download", f"{bob.name}:{seq}", "-o", str(out), "--force")
    assert r.code == 0, r.err
    assert out.read_bytes() == data

    # not an attachment / no such message: one line, exit 1
    assert cli(alice.env, "send", bob.name, "plain text").code == 0
    r = cli(bob.env, "download", f"{chat}:{seq + 1}", "-o", str(tmp_path / "x"))
    assert r.code == 1 and "not an attachment" in r.err
    r = cli(bob.env, "download", f"{chat}:9999", "-o", str(tmp_path / "x"))
    assert r.code == 1

    # server blindness: neither the content marker nor the file name is on the server's disk
    # (database, blob files) or in its log
    assert _server_files_hold(server.data_dir, marker) == []
    assert marker.decode() not in server.log()


def test_round_trip_through_s3_leaves_no_marker_in_the_object_store(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    s3: Rgw = request.getfixturevalue("rgw")
    bucket = f"cli-{secrets.token_hex(4)}"
    spec, keys = s3_env(bucket, s3)
    (tmp_path / "srv").mkdir()
    srv = ServerProcess(
        tmp_path / "srv" / "data", env={**OPEN_DIRECT, "PARLEY_BLOBS": spec, **keys}
    )
    srv.start()
    try:
        alice = new_user(srv, tmp_path, "cli_sa")
        bob = new_user(srv, tmp_path, "cli_sb")
        marker = f"MARKER{secrets.token_hex(8)}".encode()
        src = tmp_path / f"{marker.decode()}.txt"
        data = marker * 1000
        src.write_bytes(data)
        r = parley(alice.env, "send", bob.name, "--file", str(src))
        assert r.code == 0, r.err
        chat = r.out.split("chat ")[1].split(",")[0]
        seq = int(r.out.split("seq ")[1].split(")")[0])
        out = tmp_path / "got.txt"
        r = cli(bob.env, "download", f"{chat}:{seq}", "-o", str(out))
        assert r.code == 0, r.err
        assert out.read_bytes() == data
        client = Minio(
            s3.endpoint.removeprefix("http://"),
            ACCESS_KEY,
            SECRET_KEY,
            secure=False,
            region=REGION,
        )
        objects = list(client.list_objects(bucket, recursive=True))
        assert len(objects) == 1
        for o in objects:
            assert marker.decode() not in str(o.object_name)
            resp = client.get_object(bucket, str(o.object_name))
            try:
                assert marker not in resp.read()
            finally:
                resp.close()
                resp.release_conn()
        assert _server_files_hold(srv.data_dir, marker) == []
        assert marker.decode() not in srv.log()
    finally:
        srv.stop()
