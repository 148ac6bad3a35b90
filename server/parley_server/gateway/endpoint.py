"""The ``/ws`` handler: accept, authenticate the first frame (Hello), then run the session.

Low-level Litestar ``@websocket`` on purpose (docs/performance.md, "Server stack"): we own the
receive loop, decode msgpack ourselves and keep our own bounded send queue.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from litestar import WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect
from litestar.handlers import WebsocketRouteHandler

from parley.protocol.codec import FrameError, decode_client, encode
from parley.protocol.errors import CloseCode, ErrorCode
from parley.protocol.frames import Hello, Limits, Welcome
from parley.protocol.limits import PROTOCOL_VERSION
from parley_server import metrics
from parley_server.gateway.connection import Connection
from parley_server.gateway.hub import Hub
from parley_server.gateway.wsprotocol import SCOPE_KEY, LeanWebSocketProtocol
from parley_server.logging import get_logger
from parley_server.service.context import Session, now_ms
from parley_server.service.dispatch import Dispatcher
from parley_server.service.errors import ServiceError
from parley_server.store.base import StoreError
from parley_server.store.records import StoreUnavailable

log = get_logger("parley.gateway")


async def _close(socket: WebSocket[Any, Any, Any], code: int, reason: str) -> None:
    log.info("ws_rejected", code=int(code), reason=reason)
    with contextlib.suppress(WebSocketDisconnect, OSError, RuntimeError):
        await socket.close(code, reason)


async def _handshake(
    socket: WebSocket[Any, Any, Any], app: Dispatcher
) -> tuple[Session, str] | None:
    cfg = app.services.settings
    try:
        data = await asyncio.wait_for(socket.receive_bytes(), cfg.hello_timeout_s)
    except TimeoutError:
        await _close(socket, CloseCode.HELLO_TIMEOUT, "no hello in time")
        return None
    except WebSocketDisconnect:
        return None
    detail = ""
    try:
        hello = decode_client(data)
    except FrameError as exc:
        hello, detail = None, f"{exc.code.value}: {exc.message[:120]}"
    if not isinstance(hello, Hello):
        log.info("ws_bad_hello", reason=detail or "not a hello")
        await _close(socket, CloseCode.PROTOCOL_ERROR, "first frame must be a hello")
        return None
    if hello.v != PROTOCOL_VERSION:
        await _close(socket, CloseCode.UNSUPPORTED_VERSION, f"server speaks v{PROTOCOL_VERSION}")
        return None
    try:
        session = await app.accounts.authenticate(hello.token)
    except ServiceError as exc:
        code = {
            ErrorCode.DEVICE_REVOKED: CloseCode.DEVICE_REVOKED,
            ErrorCode.ACCOUNT_DISABLED: CloseCode.ACCOUNT_DISABLED,
        }.get(exc.code, CloseCode.UNAUTHORIZED)
        await _close(socket, code, exc.message)
        return None
    return session, hello.token


def make_ws_handler(app: Dispatcher, hub: Hub) -> WebsocketRouteHandler:
    cfg = app.services.settings
    broker = app.services.broker

    @websocket("/ws")
    async def ws_endpoint(socket: WebSocket[Any, Any, Any]) -> None:
        if hub.closing:
            await _close(socket, CloseCode.GOING_AWAY, "server shutting down")
            return
        await socket.accept()
        try:
            handshake = await _handshake(socket, app)
        except StoreUnavailable:  # Redis down or failing over: the client retries later
            log.warning("ws_handshake_store_unavailable")
            await _close(socket, CloseCode.TRY_AGAIN_LATER, "storage unavailable, retry")
            return
        except Exception:
            log.exception("ws_handshake_failed")
            await _close(socket, CloseCode.INTERNAL_ERROR, "internal server error")
            return
        if handshake is None:
            return
        session, token = handshake
        # The request headers served their purpose (the token came in the Hello): let them go.
        socket.scope["headers"] = []
        extensions: dict[Any, Any] = socket.scope.get("extensions") or {}
        proto_ref = extensions.pop(SCOPE_KEY, None)
        proto = proto_ref() if proto_ref is not None else None
        if isinstance(proto, LeanWebSocketProtocol):
            proto.authenticated()  # leaves the per-IP budget of unauthenticated connections
        conn = Connection(
            socket,
            app,
            session,
            cfg.send_queue_max,
            3 * cfg.heartbeat_s,
            send_now=proto.send_now if isinstance(proto, LeanWebSocketProtocol) else None,
            queue_max_bytes=cfg.send_queue_max_bytes,
            close_now=proto.close_now if isinstance(proto, LeanWebSocketProtocol) else None,
        )
        welcome = Welcome(
            user_id=session.user_id,
            device_id=session.device_id,
            server_time=now_ms(),
            limits=Limits(
                max_frame=cfg.max_frame_bytes,
                max_envelope=cfg.max_envelope_bytes,
                max_to_device=cfg.max_to_device_bytes,
                history_page_max=cfg.history_page_max,
                heartbeat_s=cfg.heartbeat_s,
            ),
        )
        conn.deliver(encode(welcome))
        hub.add(conn)
        metrics.CONNECTIONS_OPENED.inc()
        await broker.subscribe(session.user_id, session.device_id, conn)
        # A revocation between the handshake and the subscription found no socket to close.
        if not await app.accounts.still_valid(session, token):
            conn.close(CloseCode.DEVICE_REVOKED, "this device was signed out")
        await app.services.store.touch_device(session.user_id, session.device_id, now_ms())
        app.presence.connected(session.user_id)
        log.info("ws_open", user_id=session.user_id, device_id=session.device_id)
        code: int = CloseCode.NORMAL
        try:
            code = await conn.run()
        finally:
            await broker.unsubscribe(session.user_id, session.device_id, conn)
            hub.discard(conn)
            metrics.CLOSES.labels(str(int(code))).inc()
            app.presence.disconnected(session.user_id)
            with contextlib.suppress(StoreError):  # last seen: the store may be closing
                await app.services.store.touch_device(session.user_id, session.device_id, now_ms())
            log.info(
                "ws_close",
                user_id=session.user_id,
                device_id=session.device_id,
                code=int(code) or "peer",
            )

    return ws_endpoint
