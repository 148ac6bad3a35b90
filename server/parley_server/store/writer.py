"""The single SQLite writer thread, with group commit.

SQLite allows one writer at a time, and a commit (a WAL append plus, with ``synchronous=NORMAL``,
no fsync) costs far more than the statements of one append. So one thread owns the write
connection; callers submit each write operation as one callable (one thread hop per operation),
and the thread runs every job that is waiting (up to ``MAX_BATCH``) in one ``BEGIN IMMEDIATE``
transaction, each inside its own SAVEPOINT so that one failing job (say ``UsernameTaken``) rolls
back only its own changes. Only after ``COMMIT`` succeeds are the futures resolved, so a caller
never sees a result that is not yet durable. If the COMMIT itself fails, every job of the batch
fails with that error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from parley_server.store.base import StoreError

T = TypeVar("T")

log = logging.getLogger(__name__)

MAX_BATCH = 512
"""Most jobs in one transaction: bounds the latency a big batch adds to its first job."""

Job = Callable[[sqlite3.Connection], Any]
_Item = tuple[Job, "asyncio.Future[Any] | None", "asyncio.AbstractEventLoop | None"]


class WriterClosed(StoreError):
    """A write was submitted after ``close()``."""


class Writer:
    """Owns the write connection in its own thread; runs submitted jobs with group commit."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], name: str = "sqlite-writer"):
        self._connect = connect
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._closed = False
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._failed: BaseException | None = None  # the thread died of an unexpected error
        self.batches = 0  # statistics, for benchmarks
        self.jobs = 0

    # --- called from the event loop -------------------------------------------------------
    async def start(self) -> None:
        """Open the connection in the writer thread (running ``connect``) and wait for it."""
        self._thread.start()
        await asyncio.to_thread(self._started.wait)
        if self._start_error is not None:
            raise self._start_error

    async def submit(self, job: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``job(conn)`` in the writer's next transaction; return its result after COMMIT."""
        if self._closed:
            raise WriterClosed("store is closed")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._queue.put((job, fut, loop))
        if self._failed is not None:  # nobody will run it: fail it (and anything else queued)
            self._fail_queued()
        return await fut

    def submit_nowait(self, job: Job) -> None:
        """Fire and forget (for coalesced bookkeeping such as last_seen); errors are logged."""
        if self._closed:
            raise WriterClosed("store is closed")
        self._queue.put((job, None, None))

    async def close(self) -> None:
        """Run every job already submitted, commit, stop the thread and close the connection."""
        if self._closed:
            return
        self._closed = True
        if not self._thread.is_alive():
            return
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join)

    # --- the writer thread ----------------------------------------------------------------
    def _run(self) -> None:
        try:
            conn = self._connect()
        except BaseException as exc:
            self._start_error = exc
            self._started.set()
            return
        self._started.set()
        batch: list[_Item] = []
        try:
            stop = False
            while not stop:
                first = self._queue.get()
                if first is None:
                    break
                batch = [first]
                while len(batch) < MAX_BATCH:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        stop = True
                        break
                    batch.append(item)
                self._run_batch(conn, batch)
                batch = []
        except BaseException as exc:  # a bug or a broken connection: fail loudly, never hang
            log.exception("sqlite writer thread died")
            self._failed = exc
            for _job, fut, loop in batch:
                self._resolve_later(fut, loop, False, exc)
            self._fail_queued()
        finally:
            conn.close()

    def _fail_queued(self) -> None:
        error = WriterClosed(f"sqlite writer failed: {self._failed!r}")
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                self._resolve_later(item[1], item[2], False, error)

    @staticmethod
    def _resolve_later(
        fut: asyncio.Future[Any] | None,
        loop: asyncio.AbstractEventLoop | None,
        ok: bool,
        value: Any,
    ) -> None:
        if fut is None or loop is None:
            return
        # RuntimeError: the loop is closed, nobody is waiting any more
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_resolve, fut, ok, value)

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Item]) -> None:
        outcomes: list[tuple[bool, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job, _fut, _loop in batch:
                conn.execute("SAVEPOINT job")
                try:
                    result = job(conn)
                except Exception as exc:
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                    outcomes.append((False, exc))
                else:
                    conn.execute("RELEASE job")
                    outcomes.append((True, result))
            conn.execute("COMMIT")
        except Exception as exc:  # BEGIN or COMMIT failed: nothing of this batch is durable
            log.exception("sqlite writer: transaction failed")
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            outcomes = [(False, exc)] * len(batch)
        self.batches += 1
        self.jobs += len(batch)
        for (_job, fut, loop), (ok, value) in zip(batch, outcomes, strict=True):
            if fut is None or loop is None:
                if not ok:
                    log.error("sqlite writer: background job failed: %r", value)
                continue
            self._resolve_later(fut, loop, ok, value)


def _resolve(fut: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if fut.done():  # the caller was cancelled; the write happened anyway (idempotent retries)
        return
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(value)
