"""Helpers for the client integration tests: real Clients on real servers, bounded waits."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

from parley.protocol.records import ConvEntry
from parley_client import Client
from tests.support.accounts import Login


def envelope(conversation_id: bytes) -> bytes:
    """Framing-valid IMv1 GroupMessage bytes (E2E comes later; the server checks framing)."""
    return (
        b"\x01" + conversation_id + os.urandom(16) + os.urandom(8) + os.urandom(32)
        + os.urandom(64)
    )  # fmt: skip


def make_client(ws_url: str, login: Login, tmp: Path, name: str) -> Client:
    return Client(ws_url, login.token, tmp / f"{name}.db")


async def wait_until(pred: Callable[[], bool], timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not pred():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def server_entries(client: Client, conversation_id: bytes) -> list[ConvEntry]:
    """The conversation's whole history, paged from the server."""
    out: list[ConvEntry] = []
    after = 0
    while True:
        page = await client.server_history(conversation_id, after_seq=after, limit=500)
        out.extend(page.entries)
        if not page.more or not page.entries:
            return out
        after = page.entries[-1].seq


async def assert_local_matches_server(
    client: Client, reference: Client, conversation_id: bytes, timeout: float = 15.0
) -> list[ConvEntry]:
    """Wait until ``client`` holds the whole history, then compare it entry by entry."""
    server = await server_entries(reference, conversation_id)
    n = server[-1].seq if server else 0
    await wait_until(lambda: client.cursor(conversation_id) >= n, timeout, f"cursor {n}")
    local = await client.local_entries(conversation_id)
    assert [e.seq for e in server] == list(range(1, n + 1)), "server seqs not gap-free"
    assert [e.seq for e in local] == [e.seq for e in server]
    for mine, theirs in zip(local, server, strict=True):
        assert (mine.seq, mine.sender, mine.sender_device, mine.body) == (
            theirs.seq, theirs.sender, theirs.sender_device, theirs.body,
        )  # fmt: skip
    return server
