"""The SQLite engine's writer thread: failure isolation, and no hang when it dies."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from parley_server.store.writer import Writer, WriterClosed

TIMEOUT_S = 10.0


class Boom(BaseException):
    """Not an Exception: escapes the per-job savepoint handling, as a bug in the writer would."""


@pytest.fixture
async def writer(tmp_path: Path) -> AsyncIterator[Writer]:
    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(tmp_path / "w.db", isolation_level=None)
        conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY)")
        return conn

    w = Writer(connect)
    await w.start()
    yield w
    await asyncio.wait_for(w.close(), TIMEOUT_S)


def insert(k: str) -> Callable[[sqlite3.Connection], int]:
    return lambda conn: conn.execute("INSERT INTO t VALUES (?)", (k,)).rowcount


def count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM t").fetchone()[0])


async def test_failing_job_rolls_back_only_itself(writer: Writer) -> None:
    def half_then_fail(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t VALUES ('partial')")
        conn.execute("INSERT INTO t VALUES ('a')")  # duplicate of a job queued before

    results = await asyncio.wait_for(
        asyncio.gather(
            writer.submit(insert("a")),
            writer.submit(half_then_fail),
            writer.submit(insert("b")),
            return_exceptions=True,
        ),
        TIMEOUT_S,
    )
    assert results[0] == 1 and results[2] == 1
    assert isinstance(results[1], sqlite3.IntegrityError)
    assert await asyncio.wait_for(writer.submit(count), TIMEOUT_S) == 2  # no 'partial'


async def test_dead_writer_fails_callers_instead_of_hanging(writer: Writer) -> None:
    def boom(conn: sqlite3.Connection) -> None:
        raise Boom

    with pytest.raises((Boom, WriterClosed)):
        await asyncio.wait_for(writer.submit(boom), TIMEOUT_S)
    with pytest.raises(WriterClosed):
        await asyncio.wait_for(writer.submit(count), TIMEOUT_S)


async def test_submit_after_close(writer: Writer) -> None:
    await asyncio.wait_for(writer.close(), TIMEOUT_S)
    with pytest.raises(WriterClosed):
        await writer.submit(count)


async def test_a_burst_is_committed_and_resolved_in_few_batches(writer: Writer) -> None:
    n = 300
    results = await asyncio.wait_for(
        asyncio.gather(*(writer.submit(insert(f"k{i}")) for i in range(n))), TIMEOUT_S
    )
    assert results == [1] * n
    assert writer.jobs == n and writer.batches < n  # group commit: not one batch per job
    assert await asyncio.wait_for(writer.submit(count), TIMEOUT_S) == n


async def test_after_hook_runs_before_the_caller_resumes_even_if_cancelled(
    writer: Writer,
) -> None:
    seen: list[str] = []
    first = asyncio.ensure_future(writer.submit(insert("a"), after=lambda: seen.append("a")))
    await asyncio.sleep(0)
    first.cancel()

    async def second() -> None:
        await writer.submit(insert("b"), after=lambda: seen.append("b"))
        seen.append("resumed")

    await asyncio.wait_for(second(), TIMEOUT_S)
    assert seen == ["a", "b", "resumed"]
    assert await asyncio.wait_for(writer.submit(count), TIMEOUT_S) == 2
