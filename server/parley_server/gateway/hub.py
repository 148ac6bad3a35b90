"""Every live connection of this process, so a shutdown can say Bye to each of them."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from parley.protocol.codec import encode
from parley.protocol.errors import CloseCode
from parley.protocol.frames import Bye

if TYPE_CHECKING:
    from parley_server.gateway.connection import Connection


class Hub:
    def __init__(self) -> None:
        self.connections: set[Connection] = set()
        self.closing = False

    def add(self, conn: Connection) -> None:
        self.connections.add(conn)

    def discard(self, conn: Connection) -> None:
        self.connections.discard(conn)

    async def shutdown(self, grace_s: float) -> None:
        """Send every socket a Bye then close 1001 (GOING_AWAY); wait up to ``grace_s``."""
        if self.closing:
            return
        self.closing = True
        bye = encode(Bye(reason="server shutting down"))
        conns = list(self.connections)
        for conn in conns:
            conn.deliver(bye)
            conn.close(CloseCode.GOING_AWAY, "server shutting down")
        if conns:
            await asyncio.wait([c.done for c in conns], timeout=grace_s)
