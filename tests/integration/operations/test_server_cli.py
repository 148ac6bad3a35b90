"""The ``parley`` console script: banner, PARLEY_* environment overrides, clean SIGTERM."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.accounts import new_user
from tests.support.rawclient import RawClient
from tests.support.server import free_port


def _parley() -> str:
    exe = Path(sys.executable).with_name("parley")
    if not exe.exists():
        found = shutil.which("parley")
        if found is None:
            pytest.skip("console script `parley` is not installed")
        return found
    return str(exe)


async def test_console_script_banner_env_and_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PARLEY_HEARTBEAT_S": "7.5"}
    log = (tmp_path / "out.log").open("wb")
    proc = subprocess.Popen(
        [_parley(), "serve", "--port", str(port), "--data-dir", str(tmp_path / "data")],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        banner = f"Parley is running at http://127.0.0.1:{port}/"
        while banner not in (tmp_path / "out.log").read_text():
            assert proc.poll() is None, (tmp_path / "out.log").read_text()
            assert time.monotonic() < deadline, "no banner"
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/healthz").json()["status"] == "ok"
        assert (tmp_path / "data" / "parley.db").exists()
        (u,) = new_user(base, "cli")
        client = await RawClient.login(f"ws://127.0.0.1:{port}/ws", u.token)
        assert client.welcome is not None and client.welcome.limits.heartbeat_s == 7.5
        proc.send_signal(signal.SIGTERM)
        assert await client.wait_closed() == 1001
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        log.close()


def test_bad_setting_is_a_usage_error(tmp_path: Path) -> None:
    env = {**os.environ, "PARLEY_PORT": "not-a-port"}
    out = subprocess.run(
        [_parley(), "serve", "--data-dir", str(tmp_path / "d")],
        capture_output=True,
        env=env,
        timeout=30,
    )
    assert out.returncode == 2
    assert b"invalid setting" in out.stderr and b"port" in out.stderr
