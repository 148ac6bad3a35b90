"""WebSocket transport for the browser: bytes in, bytes out, over ``js.WebSocket``.

Implements ``parley.client.interfaces.Transport`` (docs/browser.md): ``binaryType = "arraybuffer"``,
every incoming message goes onto an ``asyncio.Queue`` as ``bytes``, outgoing frames are copied
into a ``Uint8Array``. Reconnection policy belongs to the engine (``parley.client.session``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import js  # type: ignore[import-not-found]
from pyodide.ffi import create_proxy, to_js  # type: ignore[import-not-found]

from parley.client.interfaces import TransportClosed
from parley.protocol.limits import MAX_FRAME_BYTES


def ws_url(path: str = "/ws") -> str:
    """The same-origin WebSocket URL (``wss:`` under https)."""
    scheme = "wss:" if js.location.protocol == "https:" else "ws:"
    return f"{scheme}//{js.location.host}{path}"


class WebSocketTransport:
    """One browser WebSocket. ``connect`` once, then ``send``/``recv`` bytes until closed."""

    @classmethod
    async def open(cls, url: str, timeout: float = 10.0) -> WebSocketTransport:
        """A connected transport (the ``Connector`` shape the client session wants)."""
        transport = cls(url)
        await transport.connect(timeout)
        return transport

    def __init__(self, url: str) -> None:
        self.url = url
        self._ws: Any = None
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._proxies: list[Any] = []
        self.close_code: int | None = None
        self.close_reason = ""
        self._too_big = False

    async def connect(self, timeout: float = 10.0) -> None:
        loop = asyncio.get_running_loop()
        opened: asyncio.Future[None] = loop.create_future()
        ws = js.WebSocket.new(self.url)
        ws.binaryType = "arraybuffer"

        def on_open(_event: Any) -> None:
            if not opened.done():
                opened.set_result(None)

        def on_message(event: Any) -> None:
            data = event.data
            if isinstance(data, str):  # the protocol is binary; text is a peer bug, keep it visible
                self._queue.put_nowait(data.encode())
            elif int(data.byteLength) > MAX_FRAME_BYTES:
                # The same frame limit as the server and the CPython client (a browser has none
                # of its own): refuse it as they do, 1009, and let the engine back off.
                self._too_big = True
                ws.close(4000, "frame above max_frame")
            else:
                self._queue.put_nowait(js.Uint8Array.new(data).to_bytes())

        def on_close(event: Any) -> None:
            self.close_code = 1009 if self._too_big else int(event.code)
            self.close_reason = str(event.reason)
            if not opened.done():
                opened.set_exception(TransportClosed(self.close_code, self.close_reason))
            self._queue.put_nowait(None)
            loop.call_soon(self._release)  # not from inside the proxy being destroyed

        for name, fn in (("onopen", on_open), ("onmessage", on_message), ("onclose", on_close)):
            proxy = create_proxy(fn)
            self._proxies.append(proxy)
            setattr(ws, name, proxy)
        self._ws = ws
        try:
            await asyncio.wait_for(opened, timeout)
        except TimeoutError:
            await self.close(4000, "connect timeout")
            raise

    async def send(self, data: bytes) -> None:
        if self._ws is None or self.close_code is not None:
            raise TransportClosed(self.close_code or 1006, self.close_reason)
        self._ws.send(to_js(data))

    async def recv(self, timeout: float | None = None) -> bytes:
        """The next message; raises TransportClosed once the socket is closed and drained."""
        item = await asyncio.wait_for(self._queue.get(), timeout)
        if item is None:
            self._queue.put_nowait(None)  # stay closed for later callers
            raise TransportClosed(self.close_code or 1006, self.close_reason)
        return item

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake; ``recv`` raises TransportClosed once it completes."""
        if code != 1000 and not 3000 <= code <= 4999:
            code = 1000  # browsers only let a page send 1000 or 3000-4999 (1001 would throw)
        if self._ws is not None and self.close_code is None:
            self._ws.close(code, reason[:120])

    def _release(self) -> None:
        for proxy in self._proxies:
            proxy.destroy()
        self._proxies.clear()
        if self._ws is not None:
            self._ws.onopen = self._ws.onmessage = self._ws.onclose = None
