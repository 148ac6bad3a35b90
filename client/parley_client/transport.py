"""``Transport`` over the ``websockets`` asyncio client: binary frames, no compression."""

from __future__ import annotations

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from parley.client.interfaces import Connector, TransportClosed
from parley.protocol.limits import MAX_FRAME_BYTES


class WebSocketTransport:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    @classmethod
    async def open(cls, url: str, *, open_timeout: float = 10.0) -> WebSocketTransport:
        ws = await connect(
            url,
            max_size=MAX_FRAME_BYTES,
            compression=None,
            ping_interval=None,  # the protocol's Ping/heartbeat does liveness
            open_timeout=open_timeout,
            close_timeout=2.0,
        )
        return cls(ws)

    async def send(self, data: bytes) -> None:
        try:
            await self.ws.send(data)
        except ConnectionClosed as exc:
            raise _closed(exc) from None

    async def recv(self) -> bytes:
        while True:
            try:
                msg = await self.ws.recv()
            except ConnectionClosed as exc:
                raise _closed(exc) from None
            if isinstance(msg, bytes):
                return msg
            # Text frames are not part of the protocol; ignore them.

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.ws.close(code, reason)


def _closed(exc: ConnectionClosed) -> TransportClosed:
    frame = exc.rcvd or exc.sent
    if frame is None:
        return TransportClosed(None, "connection lost")
    return TransportClosed(frame.code, frame.reason)


def connector(url: str) -> Connector:
    """A Connector for ``Session``: every call opens a new WebSocket to ``url``."""

    async def connect_once() -> WebSocketTransport:
        return await WebSocketTransport.open(url)

    return connect_once
