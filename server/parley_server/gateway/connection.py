"""One authenticated WebSocket session: the handler's own task reads; writes go out directly.

Requests of one connection are handled one at a time, in order, so replies come back in
request order. Pushes from other connections and replies share one send path: a frame is
written at once when nothing is queued and the socket is writable (``send_now`` of
``wsprotocol.LeanWebSocketProtocol``), else queued and sent by a flush task that exists only
while there is a backlog (or a close to send). When the backlog exceeds ``send_queue_max``
frames or ``send_queue_max_bytes`` bytes the socket is closed 4009 and the client resyncs by
seq: a socket that never reads holds at most that much (plus the transport's own buffer and
one frame). There is no timer per
connection: the hub's sweep closes connections idle for ``idle_s`` (``last_rx``).

Idle memory per socket is the figure this layout keeps small (docs/performance.md): one task
per connection (the ASGI server's), no queue until one is needed.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from litestar import WebSocket
from litestar.exceptions import WebSocketDisconnect

from parley.protocol.codec import FrameError, decode_client, encode
from parley.protocol.errors import CloseCode, ErrorCode
from parley.protocol.frames import Bye, Error, Ping, Pong, Reply, Request
from parley.protocol.limits import SEND_QUEUE_MAX_BYTES
from parley_server import metrics
from parley_server.logging import get_logger
from parley_server.service.context import Session
from parley_server.service.dispatch import Dispatcher
from parley_server.service.errors import ServiceError
from parley_server.store.records import StoreUnavailable

log = get_logger("parley.gateway")

_FLUSH_GRACE_S = 5.0
"""How long a closing connection may take to flush its backlog and send its close frame."""


class Connection:
    __slots__ = (
        "__weakref__",
        "_backlog",
        "_backlog_bytes",
        "_close_now",
        "_close_sent",
        "_flusher",
        "_send_now",
        "app",
        "close_code",
        "close_reason",
        "done",
        "idle_s",
        "last_rx",
        "queue_max",
        "queue_max_bytes",
        "session",
        "socket",
    )

    def __init__(
        self,
        socket: WebSocket[Any, Any, Any],
        app: Dispatcher,
        session: Session,
        queue_max: int,
        idle_s: float,
        send_now: Callable[[bytes], bool] | None = None,
        queue_max_bytes: int = SEND_QUEUE_MAX_BYTES,
        close_now: Callable[[int, str], bool] | None = None,
    ) -> None:
        self.socket = socket
        self.app = app
        self.session = session
        self.queue_max = queue_max
        self.queue_max_bytes = queue_max_bytes
        self.idle_s = idle_s
        self.last_rx = time.monotonic()
        self._send_now = send_now  # None: not under our uvicorn protocol, always queue
        self._close_now = close_now  # writes the close frame without waiting for writability
        self._backlog: deque[bytes] | None = None  # made on the first frame that must wait
        self._backlog_bytes = 0
        self._flusher: asyncio.Task[None] | None = None
        self._close_sent = False
        self.close_code: int | None = None
        self.close_reason = ""
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # --- Subscriber (called by the broker and the hub; never blocks) ------------------------
    def deliver(self, frame: bytes) -> None:
        if self.close_code is not None:
            return
        backlog = self._backlog
        if not backlog and self._send_now is not None and self._send_now(frame):
            return
        if backlog is None:
            backlog = self._backlog = deque()
        if (
            len(backlog) >= self.queue_max
            or self._backlog_bytes + len(frame) > self.queue_max_bytes
        ):
            self.close(CloseCode.SLOW_CONSUMER, "send queue overflow; resync")
            return
        backlog.append(frame)
        self._backlog_bytes += len(frame)
        self._start_flusher()

    def close(self, code: int, reason: str = "") -> None:
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
            if code == CloseCode.SLOW_CONSUMER and self._backlog:
                self._backlog.clear()
                self._backlog_bytes = 0
            self._start_flusher()

    def queued(self) -> int:
        """Frames waiting in this connection's send queue (for the metrics)."""
        return len(self._backlog) if self._backlog else 0

    def idle_for(self, now: float) -> bool:
        """For the hub's sweep: nothing received for longer than ``idle_s``."""
        return now - self.last_rx > self.idle_s

    # --- sending ------------------------------------------------------------------------------
    def _start_flusher(self) -> None:
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        """Send the backlog (waiting for the socket to drain), then the close frame if due."""
        ws = self.socket
        try:
            while True:
                backlog = self._backlog
                while backlog:
                    # Popped only once written, so deliver() keeps queueing behind it.
                    await ws.send_bytes(backlog[0])
                    if backlog:  # an overflow close may have cleared it meanwhile
                        self._backlog_bytes -= len(backlog.popleft())
                if self.close_code is None:
                    return
                if not self._close_sent:
                    self._close_sent = True
                    code, reason = self.close_code, self.close_reason
                    if code != 0 and (  # 0: the peer is already gone
                        self._close_now is None or not self._close_now(code, reason)
                    ):
                        await ws.close(code, reason)
                return
        except (WebSocketDisconnect, OSError, RuntimeError):
            if self.close_code is None:
                self.close_code = 0
        finally:
            self._flusher = None
            if self._backlog is not None and not self._backlog:
                self._backlog = None  # give the deque back while idle

    # --- the session --------------------------------------------------------------------------
    async def run(self) -> int:
        """Serve until closed; returns the close code."""
        try:
            await self._read()
            if self.close_code is None:  # not reached: _read returns only once closed
                self.close_code = 0
            flusher = self._flusher
            if flusher is None and not self._close_sent and self.close_code != 0:
                self._start_flusher()
                flusher = self._flusher
            if flusher is not None:
                await asyncio.wait({flusher}, timeout=_FLUSH_GRACE_S)
        finally:
            if self._flusher is not None:
                self._flusher.cancel()
            if not self.done.done():
                self.done.set_result(None)
        return self.close_code if self.close_code is not None else CloseCode.NORMAL

    async def _read(self) -> None:
        ws = self.socket
        try:
            while self.close_code is None:
                data = await ws.receive_bytes()
                self.last_rx = time.monotonic()
                try:
                    await self._handle(data)
                except Exception:
                    # Never let a fault become the framework's undocumented 4500 close: log
                    # it and answer ``internal``; the socket stays usable.
                    log.exception(
                        "frame_failed",
                        user_id=self.session.user_id,
                        device_id=self.session.device_id,
                    )
                    self._error(None, ErrorCode.INTERNAL, "internal server error")
        except WebSocketDisconnect as exc:
            # Our own close (sweep, overflow, revocation, shutdown) ends the receive too.
            if self.close_code is None:
                self.close_code = 0
                log.debug("peer_closed", code=exc.code)

    async def _handle(self, data: bytes) -> None:
        try:
            frame = decode_client(data)
        except FrameError as exc:
            self._error(exc.request_id, exc.code, exc.message)
            return
        if isinstance(frame, Request):
            await self._request(frame)
        elif isinstance(frame, Ping):
            self.deliver(encode(Pong(n=frame.n)))
        elif isinstance(frame, Bye):
            self.close(CloseCode.NORMAL, "bye")
        else:  # a second Hello
            self._error(None, ErrorCode.INVALID, "already authenticated")

    async def _request(self, req: Request) -> None:
        try:
            result = await self.app.dispatch(self.session, req.op, self)
        except ServiceError as exc:
            self._error(req.id, exc.code, exc.message, op=type(req.op).__name__)
            return
        except StoreUnavailable:  # the storage engine is down or failing over: retry later
            log.warning("store_unavailable", op=type(req.op).__name__)
            self._error(req.id, ErrorCode.UNAVAILABLE, "storage unavailable, retry")
            return
        except Exception:
            log.exception(
                "request_failed",
                op=type(req.op).__name__,
                user_id=self.session.user_id,
                device_id=self.session.device_id,
            )
            self._error(req.id, ErrorCode.INTERNAL, "internal server error")
            return
        self.deliver(encode(Reply(id=req.id, result=result)))

    def _error(self, rid: int | None, code: ErrorCode, message: str, op: str = "") -> None:
        metrics.count_error("ws", code.value)
        log.info(
            "request_error",
            code=code.value,
            op=op,
            reason=message[:200],
            user_id=self.session.user_id,
            device_id=self.session.device_id,
        )
        self.deliver(encode(Error(id=rid, code=code, message=message[:200])))
