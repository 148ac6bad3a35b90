"""The single SQLite writer thread, with group commit.

SQLite allows one writer at a time, and a commit (a WAL append plus, with ``synchronous=NORMAL``,
no fsync) costs far more than the statements of one append. So one thread owns the write
connection; callers submit each write operation as one callable, and the thread runs every job
that is waiting (up to ``MAX_BATCH``) in one ``BEGIN IMMEDIATE`` transaction, each inside its own
SAVEPOINT so that one failing job (say ``UsernameTaken``) rolls back only its own changes. Only
after ``COMMIT`` succeeds are the futures resolved, so a caller never sees a result that is not
yet durable. If the COMMIT itself fails, every job of the batch fails with that error.

The hand-off costs at most one wake-up each way per batch, not per job (the profiles showed a
queue put and a ``call_soon_threadsafe`` per message taking ~40 % of the server's time): jobs
go into a deque and the thread is signalled only when it sleeps; a finished batch is handed
back to the event loop in one ``call_soon_threadsafe`` that resolves all its futures.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from parley_server.store.base import StoreError

T = TypeVar("T")

log = logging.getLogger(__name__)

MAX_BATCH = 512
"""Most jobs in one transaction: bounds the latency a big batch adds to its first job."""

Job = Callable[[sqlite3.Connection], Any]
After = Callable[[], None]
"""Runs in the event loop once the job's transaction ended (committed or not), before any
future of its batch is resolved, and even if the caller stopped waiting (cancelled)."""
_Item = tuple[Job, "asyncio.Future[Any] | None", "asyncio.AbstractEventLoop | None", After | None]
_Outcome = tuple["asyncio.Future[Any] | None", After | None, bool, Any]


class WriterClosed(StoreError):
    """A write was submitted after ``close()``."""


class Writer:
    """Owns the write connection in its own thread; runs submitted jobs with group commit."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], name: str = "sqlite-writer"):
        self._connect = connect
        self._pending: deque[_Item | None] = deque()  # None: stop after what is before it
        self._wake = threading.Event()
        self._sleeping = False  # the thread waits (or is about to) on _wake
        self._wake_due = False  # a wake-up is scheduled for the end of this loop iteration
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

    async def submit(self, job: Callable[[sqlite3.Connection], T], after: After | None = None) -> T:
        """Run ``job(conn)`` in the writer's next transaction; return its result after COMMIT.
        ``after`` (if any) runs in the loop when the transaction ended, even if cancelled."""
        if self._closed:
            raise WriterClosed("store is closed")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._put((job, fut, loop, after), loop)
        if self._failed is not None:  # nobody will run it: fail it (and anything else queued)
            self._fail_queued()
        return await fut

    def submit_nowait(self, job: Job) -> None:
        """Fire and forget (for coalesced bookkeeping such as last_seen); errors are logged."""
        if self._closed:
            raise WriterClosed("store is closed")
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        self._put((job, None, None, None), loop)

    def _put(self, item: _Item | None, loop: asyncio.AbstractEventLoop | None) -> None:
        # deque.append is atomic; the thread re-checks the deque after announcing that it
        # sleeps, so a wake-up is needed only when it may already be waiting. That wake-up is
        # deferred to the end of the current loop iteration (call_soon), so every job
        # submitted in the same iteration joins one batch: one wake-up per burst.
        self._pending.append(item)
        if item is None or loop is None:
            self._wake.set()
        elif self._sleeping and not self._wake_due:
            self._wake_due = True
            loop.call_soon(self._signal)

    def _signal(self) -> None:
        self._wake_due = False
        self._wake.set()

    async def close(self) -> None:
        """Run every job already submitted, commit, stop the thread and close the connection."""
        if self._closed:
            return
        self._closed = True
        if not self._thread.is_alive():
            return
        self._put(None, None)
        await asyncio.to_thread(self._thread.join)

    # --- the writer thread ----------------------------------------------------------------
    def _next_batch(self) -> tuple[list[_Item], bool]:
        """Wait for work; take up to MAX_BATCH jobs. Returns (batch, stop)."""
        pending = self._pending
        while not pending:
            self._wake.clear()
            self._sleeping = True
            if not pending:
                self._wake.wait()
            self._sleeping = False
        batch: list[_Item] = []
        while pending and len(batch) < MAX_BATCH:
            item = pending.popleft()
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

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
                batch, stop = self._next_batch()
                if batch:
                    self._run_batch(conn, batch)
                batch = []
        except BaseException as exc:  # a bug or a broken connection: fail loudly, never hang
            log.exception("sqlite writer thread died")
            self._failed = exc
            self._hand_back([(fut, after, False, exc) for _job, fut, _loop, after in batch], batch)
            self._fail_queued()
        finally:
            conn.close()

    def _fail_queued(self) -> None:
        error = WriterClosed(f"sqlite writer failed: {self._failed!r}")
        items: list[_Item] = []
        while True:
            try:
                item = self._pending.popleft()
            except IndexError:
                break
            if item is not None:
                items.append(item)
        self._hand_back([(fut, after, False, error) for _job, fut, _loop, after in items], items)

    @staticmethod
    def _hand_back(outcomes: list[_Outcome], batch: list[_Item]) -> None:
        """One ``call_soon_threadsafe`` per event loop (normally one) for the whole batch."""
        by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
        for outcome, (_job, _fut, loop, _after) in zip(outcomes, batch, strict=True):
            if loop is not None:
                by_loop.setdefault(loop, []).append(outcome)
        for loop, resolved in by_loop.items():
            # RuntimeError: the loop is closed, nobody is waiting any more
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve_all, resolved)

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Item]) -> None:
        outcomes: list[_Outcome] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job, fut, _loop, after in batch:
                conn.execute("SAVEPOINT job")
                try:
                    result = job(conn)
                except Exception as exc:
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                    outcomes.append((fut, after, False, exc))
                    if fut is None:
                        log.error("sqlite writer: background job failed: %r", exc)
                else:
                    conn.execute("RELEASE job")
                    outcomes.append((fut, after, True, result))
            conn.execute("COMMIT")
        except Exception as exc:  # BEGIN or COMMIT failed: nothing of this batch is durable
            log.exception("sqlite writer: transaction failed")
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            outcomes = [(fut, after, False, exc) for _job, fut, _loop, after in batch]
        self.batches += 1
        self.jobs += len(batch)
        self._hand_back(outcomes, batch)


def _resolve_all(outcomes: list[_Outcome]) -> None:
    """In the event loop: every ``after`` hook of the batch first, then the futures."""
    for _fut, after, _ok, _value in outcomes:
        if after is not None:
            try:
                after()
            except Exception:
                log.exception("sqlite writer: after-commit hook failed")
    for fut, _after, ok, value in outcomes:
        if fut is None or fut.done():  # done: the caller was cancelled; the write happened
            continue
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)
