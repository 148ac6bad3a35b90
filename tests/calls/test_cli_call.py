"""``parley call`` end to end (real console entry in subprocesses, real server parley_server,
real coturn): bob runs the echo bot (``parley call --answer --echo``), alice calls him through
the TURN relay for a few seconds; both print the call's states; the bot keeps running after the
call and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.client.test_cli_client import cli, new_user
from tests.support.server import ServerProcess

pytest.importorskip("aiortc")


def test_cli_call_to_an_echo_bot(turn_server: ServerProcess, tmp_path: Path) -> None:
    alice = new_user(turn_server, tmp_path, "clia")
    bob = new_user(turn_server, tmp_path, "clib")
    assert cli(alice.env, "request", bob.name).code == 0
    assert cli(bob.env, "accept", alice.name).code == 0
    log = tmp_path / "bot.out"
    with log.open("w") as out:
        bot = subprocess.Popen(
            [sys.executable, "-m", "parley_client.cli.main", "call", "--answer", "--echo",
             "--relay"],
            env=bob.env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while "Waiting for calls" not in log.read_text():
            assert bot.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        r = subprocess.run(
            [sys.executable, "-m", "parley_client.cli.main", "call", bob.name, "--relay",
             "--duration", "4"],
            env=alice.env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert r.returncode == 0, r.stdout + r.stderr
        assert "call outgoing" in r.stdout
        assert "call connected" in r.stdout, r.stdout
        assert "call ended (hung_up)" in r.stdout, r.stdout
        deadline = time.monotonic() + 30
        while "call ended (hung_up)" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert "incoming voice call" in log.read_text()
        assert "call connected" in log.read_text()
    finally:
        os.kill(bot.pid, signal.SIGTERM)
        bot.wait(30)
    assert bot.returncode == 0, log.read_text()
