"""What an orchestrator and an operator see of a node: readiness, request ids, the admin watch.

* ``GET /readyz``: 200 while the node takes new work, 503 ``unavailable`` from the moment it
  starts draining (SIGTERM), so a load balancer stops sending it clients before it closes them.
  ``/healthz`` (liveness) stays 200 until the process exits.
* Every HTTP request and WebSocket session gets a request id: the ``X-Request-ID`` a proxy sent
  (if it looks like one) or a new random one. Every log line of that request or session carries
  it (structlog context variables), and HTTP responses echo it in ``X-Request-ID``.
* ``operations_lifespan`` runs the node's admin watch (``service/admin.py``) and connects the
  metrics that are sampled rather than counted (send queues, store transactions).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import structlog
from litestar import Litestar, MediaType, Response, get
from litestar.datastructures import State
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from parley.protocol.errors import ErrorCode
from parley.protocol.http import ErrorBody
from parley_server import metrics
from parley_server.gateway.hub import Hub
from parley_server.service.dispatch import Dispatcher

_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,64}$")


@get("/readyz", include_in_schema=False, sync_to_thread=False)
def readyz(state: State) -> Response[Any]:
    hub: Hub = state.hub
    if hub.draining or hub.closing:
        return Response(
            ErrorBody(code=ErrorCode.UNAVAILABLE, message="draining"),
            status_code=503,
            media_type=MediaType.JSON,
        )
    # which node answered (behind a load balancer; docs/scale-out.md)
    return Response(
        {"status": "ready", "node": state.get("node_id", "")}, media_type=MediaType.JSON
    )


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            return value.decode() if _REQUEST_ID.match(value) else None
    return None


def request_id_middleware(app: ASGIApp) -> ASGIApp:
    """Bind ``request_id`` for the logs of one HTTP request and echo it in ``X-Request-ID``.

    It wraps the whole ASGI app (runner.py), outside Litestar's middleware stack.

    WebSocket sessions are left alone: a binding held for a socket's whole life costs about
    1 KiB per idle connection (measured with ``bench/load.py idle``), and the gateway's log
    lines already name their connection.
    """

    def middleware(scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not a coroutine itself: a WebSocket gets the app's own awaitable, with no extra frame
        # of ours kept alive for the socket's life.
        if scope["type"] != ScopeType.HTTP:
            return app(scope, receive, send)
        return _with_request_id(scope, receive, send)

    async def _with_request_id(scope: Scope, receive: Receive, send: Send) -> None:
        rid = _incoming_id(scope) or secrets.token_hex(8)
        header = (b"x-request-id", rid.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=rid):
            await app(scope, receive, send_with_id)

    return middleware


def operations_lifespan(
    parley: Dispatcher, hub: Hub
) -> Callable[[Litestar], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        metrics.watch_send_queues(lambda: (c.queued() for c in list(hub.connections)))
        unobserve = metrics.observe_store_transactions()
        watch = asyncio.create_task(parley.operators.watch(hub.connections))
        try:
            yield
        finally:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
            unobserve()

    return lifespan


__all__ = ["operations_lifespan", "readyz", "request_id_middleware"]
