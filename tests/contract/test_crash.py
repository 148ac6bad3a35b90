"""Store-level crash safety: SIGKILL a writer mid-stream, reopen, nothing acknowledged is lost."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.contract.conftest import ENGINES, REDIS_FIXTURES, bounded, factory_for, redis_prefix

REPO = Path(__file__).resolve().parents[2]
ACKS_BEFORE_KILL = 400
READ_TIMEOUT_S = 30.0


def _read_until(proc: subprocess.Popen[bytes], acks_wanted: int) -> list[bytes]:
    """Lines from the child's stdout until ``acks_wanted`` acks were seen (bounded in time)."""
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    buf = b""
    deadline = time.monotonic() + READ_TIMEOUT_S
    try:
        # Count only complete lines: the newest may still be half-written.
        while buf[: buf.rfind(b"\n") + 1].count(b"\nack ") < acks_wanted:
            left = deadline - time.monotonic()
            if left <= 0 or proc.poll() is not None:
                raise AssertionError(f"child stalled or exited; output so far: {buf[-500:]!r}")
            if sel.select(timeout=left):
                buf += proc.stdout.read() or b""
    finally:
        sel.close()
    return buf.split(b"\n")


@pytest.mark.parametrize("engine", sorted(ENGINES))
async def test_sigkill_loses_nothing_acknowledged(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = prefix = ""
    if engine in REDIS_FIXTURES:  # the writer dies; the Redis it wrote to (AOF, always) lives
        url, prefix = request.getfixturevalue(REDIS_FIXTURES[engine]).url, redis_prefix()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.contract.crash_appender", engine, str(tmp_path), url, prefix],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        lines = _read_until(proc, ACKS_BEFORE_KILL)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL  # killed mid-stream, not finished
        assert proc.stdout is not None
        os.set_blocking(proc.stdout.fileno(), True)
        rest = proc.stdout.read()  # acks printed between our last read and the kill
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    text = b"\n".join(lines) + rest
    complete = text.split(b"\n")[:-1]  # the last piece may be a line cut by the kill
    conversation_id = bytes.fromhex(complete[0].split()[1].decode())
    acked = {int(line.split()[1]) for line in complete[1:] if line.startswith(b"ack ")}
    assert len(acked) >= ACKS_BEFORE_KILL

    store = bounded(factory_for(engine, tmp_path, url, prefix))()
    await store.open()
    try:
        info = await store.get_conversation(conversation_id)
        assert info is not None
        entries, more = await store.history(conversation_id, 0, None, info.last_seq + 10)
        seqs = [e.seq for e in entries]
        assert not more
        assert seqs == list(range(1, info.last_seq + 1))  # gap-free, nothing torn
        assert acked <= set(seqs)  # every acknowledged append survived
        # the store is writable after recovery and continues the sequence
        res = await store.append_message(conversation_id, entries[1].sender, 2, "after", b"x", 1)
        assert res.entry.seq == info.last_seq + 1
    finally:
        await store.close()
