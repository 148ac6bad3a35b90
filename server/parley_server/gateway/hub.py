"""Every live connection of this process: the idle sweep, and a Bye to each on shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING

from parley.protocol.codec import encode
from parley.protocol.errors import CloseCode
from parley.protocol.frames import Bye
from parley_server import metrics

if TYPE_CHECKING:
    from parley_server.gateway.connection import Connection

SWEEP_MAX_S = 5.0
"""The sweep runs every quarter of the idle timeout, at most this far apart."""


class Hub:
    def __init__(self) -> None:
        self.connections: set[Connection] = set()
        self.closing = False
        self.draining = False
        """Set at SIGTERM: /readyz fails; sockets are closed once the drain delay is over."""
        self._sweeper: asyncio.Task[None] | None = None

    def add(self, conn: Connection) -> None:
        self.connections.add(conn)
        metrics.CONNECTIONS.set(len(self.connections))
        if self._sweeper is None and not self.closing:
            every = min(SWEEP_MAX_S, max(0.05, conn.idle_s / 4))
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep(every))

    def discard(self, conn: Connection) -> None:
        self.connections.discard(conn)
        metrics.CONNECTIONS.set(len(self.connections))

    async def _sweep(self, every: float) -> None:
        """One timer for all sockets instead of a timeout around every receive: close (4011)
        whatever received nothing for longer than its ``idle_s`` (3 heartbeats)."""
        while True:
            await asyncio.sleep(every)
            now = time.monotonic()
            for conn in [c for c in self.connections if c.idle_for(now)]:
                conn.close(CloseCode.IDLE_TIMEOUT, "idle timeout")

    async def shutdown(self, grace_s: float) -> None:
        """Send every socket a Bye then close 1001 (GOING_AWAY); wait up to ``grace_s``."""
        if self.closing:
            return
        self.closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        bye = encode(Bye(reason="server shutting down"))
        conns = list(self.connections)
        for conn in conns:
            conn.deliver(bye)
            conn.close(CloseCode.GOING_AWAY, "server shutting down")
        if conns:
            await asyncio.wait([c.done for c in conns], timeout=grace_s)
