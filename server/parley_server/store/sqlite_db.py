"""The SQLite database every SQLite domain engine shares: one file, one writer thread, one read
connection, and named write transactions.

Durability: WAL journal with ``synchronous=NORMAL``. A COMMIT is appended to the WAL file
before we acknowledge, so an application crash (even SIGKILL) loses nothing acknowledged; but
the WAL is fsynced only at checkpoints, so a power loss or kernel crash can lose the last
commits (never corrupt the database). We chose it because ``synchronous=FULL`` costs an fsync per
commit (about half the append rate) and a self-hosted chat server's usual failure is a process
restart, not a power cut; clients resend unacknowledged messages anyway and the server may still
lose only what it acknowledged in the last moments before a power cut.

Writes: one writer thread owns the write connection and commits in groups (see ``writer.py``);
every write method is one named job (``transaction(name, job)``), so it is atomic, costs one
thread hop, and is reported to ``transactions.observe`` under its name.

Reads: one read-only connection used directly on the event-loop thread. Every read is an
indexed point or range lookup (well under a millisecond, see bench/store_bench.py), cheaper than
the thread hop it would take to run it elsewhere. WAL readers never wait for the writer, and
each statement runs in its own implicit read transaction, so a read sees every acknowledged
write.

Foreign keys are enforced; a write naming a user, device or conversation that does not exist
raises ``NotFound`` and changes nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from parley_server.store.records import NotFound, StoreError
from parley_server.store.sqlite_schema import migrate
from parley_server.store.transactions import timed
from parley_server.store.writer import Writer

T = TypeVar("T")

IN_CHUNK = 500
"""Bound on bound parameters per ``IN (...)`` query."""


def connect(path: Path, readonly: bool) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
    else:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=True)
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=5000")
    if not readonly:  # truncate the WAL file after checkpoints instead of keeping its peak size
        conn.execute("PRAGMA journal_size_limit=67108864")
    return conn


def _fk_guard(job: Callable[[sqlite3.Connection], T]) -> Callable[[sqlite3.Connection], T]:
    """Turn a foreign-key violation into NotFound (the savepoint already undoes the job)."""

    def run(conn: sqlite3.Connection) -> T:
        try:
            return job(conn)
        except sqlite3.IntegrityError as exc:
            if "FOREIGN KEY" in str(exc):
                raise NotFound("a referenced user, device or conversation does not exist") from exc
            raise

    return run


class SqliteDatabase:
    """One SQLite file (plus its -wal and -shm companions): the writer thread and the reader.

    Domain engines (``sqlite_<domain>.py``) either subclass it (the core ``SqliteStore`` domains,
    which share transactions) or take an opened instance (social, key directory, provisioning).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._writer: Writer | None = None
        self._reader: sqlite3.Connection | None = None

    # --- lifecycle ---------------------------------------------------------------------------
    def _prepare(self, conn: sqlite3.Connection) -> None:
        """Runs on the write connection when opening, before anything else: the migrations.
        Domains extend it (cooperatively) with their own start-up housekeeping."""
        migrate(conn)

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)

        def connect_writer() -> sqlite3.Connection:
            conn = connect(self.path, readonly=False)
            self._prepare(conn)
            return conn

        writer = Writer(connect_writer, name=f"sqlite-writer:{self.path.name}")
        await writer.start()
        self._writer = writer
        self._reader = connect(self.path, readonly=True)

    async def close(self) -> None:
        if self._writer is not None:
            await self._writer.close()
            self._writer = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    # --- reads and named writes --------------------------------------------------------------
    @property
    def _r(self) -> sqlite3.Connection:
        if self._reader is None:
            raise StoreError("store is not open")
        return self._reader

    def read_connection(self) -> sqlite3.Connection:
        """The read-only connection (event-loop thread only)."""
        return self._r

    async def transaction(
        self,
        name: str,
        job: Callable[[sqlite3.Connection], T],
        after: Callable[[], None] | None = None,
    ) -> T:
        """Run ``job`` as one atomic write named ``name`` (in the writer's next group commit);
        return its result once committed. ``after`` runs in the loop when it ended."""
        if self._writer is None:
            raise StoreError("store is not open")
        return await timed("sqlite", name, self._writer.submit(_fk_guard(job), after))

    async def _write(
        self,
        name: str,
        job: Callable[[sqlite3.Connection], T],
        after: Callable[[], None] | None = None,
    ) -> T:
        return await self.transaction(name, job, after)

    async def write_job(self, job: Callable[[sqlite3.Connection], T], name: str = "") -> T:
        """``transaction`` under ``name`` (default: the job function's name)."""
        return await self.transaction(name or getattr(job, "__name__", "job"), job)


__all__ = ["IN_CHUNK", "SqliteDatabase", "connect"]
