"""The E2E client across a stop between "stored" and "decrypted", and a bounded close().

The local store saves an entry (and moves its cursor) before the E2E layer decrypts it; a
process that ends in between must decrypt it at its next start. ``close()`` must end even when
its worker lost a cancellation (it once hung forever)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from parley.protocol.records import Message
from parley_client.e2e_storage import SqliteE2EStorage
from tests.integration.e2e_support import T, has_texts, make
from tests.support.accounts import new_user
from tests.support.server import ServerProcess


async def test_entries_stored_but_not_decrypted_decrypt_after_restart(
    server: ServerProcess, tmp_path: Path
) -> None:
    (al,) = new_user(server.http_url, "rsa")
    (bl,) = new_user(server.http_url, "rsb")
    a, b = make(server, al, tmp_path, "a"), make(server, bl, tmp_path, "b")
    b2 = None
    try:
        for c in (a, b):
            await c.start()
            await c.wait_online(T)
        cid = await a.open_direct(bl.user_id)
        await a.wait_sent(await a.send_text(cid, "first"), T)
        await b.wait_for(has_texts("first"), cid, T)
        # b's E2E layer is busy (its lock held): entries get stored but not decrypted; then
        # b stops, as a process that exits between the two would
        async with b.driver.lock:
            for text in ("second", "third"):
                await a.wait_sent(await a.send_text(cid, text), T)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + T
            while len([e for e in await b.client.local_entries(cid)
                       if isinstance(e.body, Message)]) < 3:  # fmt: skip
                assert loop.time() < deadline, "b never stored the new entries"
                await asyncio.sleep(0.05)
            await asyncio.wait_for(b.close(), T)
        stored = [e.seq for e in await _entries(tmp_path / "b.db", cid)]
        views = SqliteE2EStorage(tmp_path / "b.db.e2e")
        try:
            handled = views.view_seqs(cid)
        finally:
            views.close()
        assert len(stored) == 3 and len(set(stored) - handled) == 2  # the gap is real
        b2 = make(server, bl, tmp_path, "b")  # the same files: a restart
        await b2.start()
        await b2.wait_for(has_texts("first", "second", "third"), cid, T)
    finally:
        for c in (a, b2):
            if c is not None:
                await c.close()


async def _entries(path: Path, cid: bytes) -> list:  # type: ignore[type-arg]
    from parley_client.store import SqliteLocalStore

    store = SqliteLocalStore(path)
    try:
        page = await store.entries(cid, after=0, limit=100)
        return [e for e in page if isinstance(e.body, Message)]
    finally:
        await store.close()


async def test_close_ends_even_if_the_worker_swallows_its_cancellation(
    server: ServerProcess, tmp_path: Path
) -> None:
    (al,) = new_user(server.http_url, "cls")
    a = make(server, al, tmp_path, "a")
    await a.start()
    await a.wait_online(T)
    entered = asyncio.Event()
    forever = asyncio.Event()

    async def stuck_handler(_n: object) -> None:  # fault injection: the bug being guarded
        entered.set()
        with contextlib.suppress(asyncio.CancelledError):  # swallowed
            await forever.wait()
        await forever.wait()  # ...and stuck awaiting something else

    a.driver._handle = stuck_handler  # type: ignore[method-assign]
    a.driver._inbox.put_nowait(None)
    await asyncio.wait_for(entered.wait(), T)
    await asyncio.wait_for(a.close(), T)  # returns (bounded) instead of hanging
    assert a.client.session.stopped
