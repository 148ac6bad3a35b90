"""uvicorn's websockets-sansio protocol, slimmed for many idle sockets, plus a direct send.

Idle memory per socket was the one target we missed (31.6 KiB for 20 KiB), and most of it is
the ASGI server's, not ours. This subclass keeps uvicorn's behaviour and changes only state:

* the receive queue is a list plus one waiter instead of an ``asyncio.Queue`` (three deques
  and an Event, ~2.5 KiB), and "writable" is a flag plus lazily made waiters instead of an
  ``asyncio.Event`` (whose deque alone is ~600 B);
* after the upgrade it drops the handshake request/response (headers) that uvicorn and the
  websockets parser would otherwise keep for the socket's lifetime;
* the HTTP protocol that parsed the upgrade request (``LeanHttpToolsProtocol``) lets go of
  its parser, so it and the request it parsed are freed at once instead of waiting, as a
  reference cycle, for a full garbage collection (~2 KiB per socket meanwhile);
* ``send_now`` writes a binary frame synchronously when the transport is writable, so the
  gateway needs no writer task per connection.

Written against uvicorn 0.54 / websockets 17: ``tests/server/test_wsprotocol_surface.py`` names
every private piece used here, so an upgrade that moves one fails CI (docs/performance.md, "The
gateway's uvicorn and websockets pins"). The gateway falls back to plain ASGI sends when it
runs under any other server.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState
from websockets.protocol import Protocol
from websockets.server import ServerProtocol

from parley_server.gateway.admission import ADMISSION

SCOPE_KEY = "parley.ws"
"""``scope["extensions"][SCOPE_KEY]``: a weak reference to this protocol (no cycle)."""


def _at_frame_start(conn: ServerProtocol) -> bool:
    """True when the parser waits in ``StreamReader.at_eof``: nothing of a frame consumed."""
    gen: Any = conn.parser
    while getattr(gen, "gi_yieldfrom", None) is not None:
        gen = gen.gi_yieldfrom
    return getattr(getattr(gen, "gi_code", None), "co_name", "") == "at_eof"


class _Inbox:
    """What uvicorn uses of its ``asyncio.Queue``: ``put_nowait``, ``get``, ``empty``."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def empty(self) -> bool:
        return not self._items

    async def get(self) -> Any:
        while not self._items:
            waiter = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            try:
                await waiter
            finally:
                self._waiter = None
        return self._items.pop(0)


class _Writable:
    """What uvicorn uses of its ``writable`` Event: ``set``, ``clear``, ``is_set``, ``wait``."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = True
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        while not self._set:
            waiter = asyncio.get_running_loop().create_future()
            if self._waiters is None:
                self._waiters = []
            self._waiters.append(waiter)
            await waiter
        return True


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    """Pass as uvicorn's ``ws=`` (runner.py)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = _Inbox()  # type: ignore[assignment]
        self.writable = _Writable()  # type: ignore[assignment]
        self.unauth_ip: str | None = None
        """Set by the HTTP protocol that upgraded: the admission slot this socket holds until
        its ``hello`` authenticates (``authenticated``) or it closes."""

    def authenticated(self) -> None:
        """The gateway accepted this socket's ``hello``: it no longer counts as unauthenticated."""
        ip, self.unauth_ip = self.unauth_ip, None
        if ip is not None:
            ADMISSION.leave(ip)

    def connection_lost(self, exc: Exception | None) -> None:
        self.authenticated()  # give the slot back
        super().connection_lost(exc)

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][SCOPE_KEY] = weakref.ref(self)

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept" and self.handshake_complete:
            self._forget_handshake()

    def _forget_handshake(self) -> None:
        # uvicorn reads self.request/self.response only before the accept went out.
        self.request = None  # type: ignore[assignment]
        self.response = None  # type: ignore[assignment]
        # websockets' parser generator holds the Request in its frame until the socket ends.
        # A client must not send frames before our 101 (RFC 6455 4.1), so the parser is idle
        # at a frame boundary: replace it by the bare frame parser, unless bytes are waiting.
        conn = self.conn
        if isinstance(conn, ServerProtocol) and not conn.reader.buffer and _at_frame_start(conn):
            parser = Protocol.parse(conn)
            next(parser)
            conn.parser = parser

    def send_now(self, data: bytes) -> bool:
        """Write one binary message now if the socket is open and writable; else False (the
        caller queues it and sends it through the ASGI ``send``, which waits)."""
        if (
            self.disconnected
            or self.close_sent
            or not self.handshake_complete
            or self.initial_response is not None
            or not self.writable.is_set()
        ):
            return False
        try:
            self.conn.send_binary(data)
        except InvalidState:
            return False
        self.transport.write(b"".join(self.conn.data_to_send()))
        return True

    def close_now(self, code: int, reason: str) -> bool:
        """Write the close frame now, even while the peer does not read (uvicorn's ASGI close
        first waits until the socket is writable, which for such a peer is never). The frame
        queues behind what the transport holds; if the peer has not completed the closing
        handshake ``close_timeout`` later, the connection is aborted and its buffer dropped.
        False when this protocol cannot (the caller uses the ASGI close)."""
        if (
            self.disconnected
            or self.close_sent
            or not self.handshake_complete
            or self.initial_response is not None
            or self.transport.is_closing()
        ):
            return False
        try:
            self.conn.send_close(code, reason)
        except InvalidState:
            return False
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        self.close_timer = self.loop.call_later(self.close_timeout, self.transport.abort)
        return True


class LeanHttpToolsProtocol(HttpToolsProtocol):
    """Pass as uvicorn's ``http=`` (runner.py) together with ``LeanWebSocketProtocol``.

    Also the first line of defence against idle or slow clients (gateway/admission.py): a
    connection past its IP's cap of unauthenticated connections is closed at once, and a
    request whose head and body have not fully arrived ``read_timeout_s`` after it began (or
    after the connection opened) is closed. uvicorn has neither; its keep-alive timeout only
    runs between requests.
    """

    read_timeout_s: ClassVar[float] = 10.0
    """Set by ``runner.build_server`` from ``http_header_timeout_s``."""

    _read_timer: asyncio.TimerHandle | None = None
    _admitted_ip: str | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ip = self.client[0] if self.client else "unknown"
        if not ADMISSION.enter(ip):
            transport.abort()
            return
        self._admitted_ip = ip
        self._arm_read_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_read_timer()
        ip, self._admitted_ip = self._admitted_ip, None
        if ip is not None:
            ADMISSION.leave(ip)
        super().connection_lost(exc)

    def _arm_read_timer(self) -> None:
        if self._read_timer is None and self.read_timeout_s > 0:
            self._read_timer = self.loop.call_later(self.read_timeout_s, self._read_timed_out)

    def _disarm_read_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _read_timed_out(self) -> None:
        self._read_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_read_timer()

    upload_paths: ClassVar[tuple[str, ...]] = ("/api/v1/blobs/",)
    upload_timeout_s: ClassVar[float] = 3600.0
    """A PUT to these paths (presigned attachment uploads of the local blob store, up to
    ``max_blob_bytes``) gets this long for its body instead of ``read_timeout_s``: a large file
    over a slow link. Its head is still bounded by ``read_timeout_s``; the per-IP cap still
    applies; the handler refuses an unsigned or expired URL before reading the body."""

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        scope = getattr(self, "scope", None) or {}
        path = str(scope.get("path", ""))
        if scope.get("method") == "PUT" and path.startswith(self.upload_paths):
            self._disarm_read_timer()
            self._read_timer = self.loop.call_later(self.upload_timeout_s, self._read_timed_out)

    def on_message_complete(self) -> None:
        self._disarm_read_timer()
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self._disarm_read_timer()
        super().handle_websocket_upgrade()
        # The admission slot moves to the WebSocket protocol (the hello timeout bounds it now).
        ip, self._admitted_ip = self._admitted_ip, None
        ws = self.transport.get_protocol()
        if isinstance(ws, LeanWebSocketProtocol):
            ws.unauth_ip = ip
        elif ip is not None:
            ADMISSION.leave(ip)
        # The transport now feeds the WebSocket protocol; this object is done. Its parser
        # refers back to it (a cycle): drop that link so refcounting frees both now.
        self.parser = None  # type: ignore[assignment]
