"""Helpers for the E2E integration tests: real E2EClients (real crypto, real sockets) on the
real server; every wait is bounded."""

from __future__ import annotations

import asyncio
from pathlib import Path

from parley_client.e2e_client import E2EClient, MessageView
from tests.support.accounts import Login
from tests.support.server import ServerProcess

T = 20.0


def make(server: ServerProcess, who: Login, tmp: Path, name: str, **kw: bool) -> E2EClient:
    return E2EClient(server.http_url, who.user_id, who.device_id, who.token, tmp / f"{name}.db",
                     **kw)  # fmt: skip


async def start_link(
    server: ServerProcess, tmp: Path, name: str, **kw: bool
) -> tuple[str, asyncio.Task[E2EClient]]:
    """A new device asks to be linked through the server's relay: returns its ``imlink:1:``
    code and the task that finishes (logged in, account key adopted, not started) once an
    existing device accepted the code."""
    codes: asyncio.Queue[str] = asyncio.Queue()
    task = asyncio.ensure_future(E2EClient.link_new_device(
        server.http_url, name, codes.put_nowait, db_path=tmp / f"{name}.db", timeout=T, **kw))  # fmt: skip
    get = asyncio.ensure_future(codes.get())
    await asyncio.wait({get, task}, timeout=T, return_when=asyncio.FIRST_COMPLETED)
    if not get.done():
        get.cancel()
        if task.done():
            task.result()  # raises what went wrong
        raise AssertionError("the new device showed no link code in time")
    return get.result(), task


async def link(server: ServerProcess, first: E2EClient, tmp: Path, name: str,
               **kw: bool) -> E2EClient:  # fmt: skip
    """Link a new device of ``first``'s user through the relay (``first`` accepts), start it."""
    code, task = await start_link(server, tmp, name, **kw)
    await first.accept_link(code)
    new = await asyncio.wait_for(task, T)
    await new.start()
    await new.wait_online(T)
    return new


def has_texts(*want: str):  # type: ignore[no-untyped-def]
    def pred(msgs: list[MessageView]) -> bool:
        got = [m.content.body for m in msgs if m.state == "decrypted" and m.content is not None
               and hasattr(m.content, "body")]  # fmt: skip
        return all(w in got for w in want)

    return pred
