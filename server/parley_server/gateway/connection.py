"""One authenticated WebSocket session: a reader loop and a writer task over a bounded queue.

Requests of one connection are handled one at a time, in order, so replies come back in
request order. Pushes from other connections and replies share the same send queue; when it
exceeds ``send_queue_max`` frames the socket is closed 4009 and the client resyncs by seq.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import deque
from typing import Any

from litestar import WebSocket
from litestar.exceptions import WebSocketDisconnect

from parley.protocol.codec import FrameError, decode_client, encode
from parley.protocol.errors import CloseCode, ErrorCode
from parley.protocol.frames import Bye, Error, Ping, Pong, Reply, Request
from parley_server.logging import get_logger
from parley_server.service.context import Session
from parley_server.service.dispatch import App
from parley_server.service.errors import ServiceError

log = get_logger("parley.gateway")

_LENGTH_LIMIT = re.compile(r"of length <= \d+")


class Connection:
    def __init__(
        self,
        socket: WebSocket[Any, Any, Any],
        app: App,
        session: Session,
        queue_max: int,
        idle_s: float,
    ) -> None:
        self.socket = socket
        self.app = app
        self.session = session
        self.queue_max = queue_max
        self.idle_s = idle_s
        self._queue: deque[bytes] = deque()
        self._wake = asyncio.Event()
        self.close_code: int | None = None
        self.close_reason = ""
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # --- Subscriber (called by the broker and the hub; never blocks) ------------------------
    def deliver(self, frame: bytes) -> None:
        if self.close_code is not None:
            return
        if len(self._queue) >= self.queue_max:
            self.close(CloseCode.SLOW_CONSUMER, "send queue overflow; resync")
            return
        self._queue.append(frame)
        self._wake.set()

    def close(self, code: int, reason: str = "") -> None:
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
            if code == CloseCode.SLOW_CONSUMER:
                self._queue.clear()
            self._wake.set()

    # --- tasks ----------------------------------------------------------------------------
    async def run(self) -> int:
        """Serve until closed; returns the close code."""
        reader = asyncio.create_task(self._reader())
        writer = asyncio.create_task(self._writer())
        try:
            await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
            if reader.done() and not writer.done():
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(writer), 5.0)
        finally:
            for task in (reader, writer):
                task.cancel()
            await asyncio.gather(reader, writer, return_exceptions=True)
            if not self.done.done():
                self.done.set_result(None)
        return self.close_code if self.close_code is not None else CloseCode.NORMAL

    async def _writer(self) -> None:
        ws = self.socket
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._queue:
                    await ws.send_bytes(self._queue.popleft())
                if self.close_code is not None:
                    if self.close_code != 0:  # 0: the peer is already gone
                        await ws.close(self.close_code, self.close_reason)
                    return
        except (WebSocketDisconnect, OSError, RuntimeError):
            if self.close_code is None:
                self.close_code = 0
            return

    async def _reader(self) -> None:
        ws = self.socket
        try:
            while self.close_code is None:
                try:
                    data = await asyncio.wait_for(ws.receive_bytes(), self.idle_s)
                except TimeoutError:
                    self.close(CloseCode.IDLE_TIMEOUT, "idle timeout")
                    return
                await self._handle(data)
        except WebSocketDisconnect as exc:
            if self.close_code is None:
                self.close_code = 0
                log.debug("peer_closed", code=exc.code)
            self._wake.set()

    async def _handle(self, data: bytes) -> None:
        try:
            frame = decode_client(data)
        except FrameError as exc:
            code = exc.code
            if code == ErrorCode.INVALID and _LENGTH_LIMIT.search(exc.message):
                code = ErrorCode.TOO_LARGE  # e.g. an envelope above MAX_ENVELOPE_BYTES
            self._error(exc.request_id, code, exc.message)
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
        log.info(
            "request_error",
            code=code.value,
            op=op,
            user_id=self.session.user_id,
            device_id=self.session.device_id,
        )
        self.deliver(encode(Error(id=rid, code=code, message=message[:200])))
