"""Run the server under uvicorn with the settings measured as best for an IM server.

sans-IO websockets, uvloop, httptools, no permessage-deflate, frames capped at MAX_FRAME_BYTES
(why: docs/performance.md, "Server stack").
On SIGINT/SIGTERM every socket first gets a Bye and a 1001 close, then uvicorn stops and the
lifespan closes the store (flushing its writer). Imported only by ``parley serve``, so client
commands don't pay for loading the server stack.
"""

from __future__ import annotations

import asyncio
import signal
import socket
from types import FrameType

import uvicorn

from parley_server import metrics
from parley_server.api.operations import request_id_middleware
from parley_server.asgi import create_app
from parley_server.config import Settings
from parley_server.gateway.admission import ADMISSION
from parley_server.gateway.hub import Hub
from parley_server.gateway.wsprotocol import LeanHttpToolsProtocol, LeanWebSocketProtocol
from parley_server.logging import get_logger

log = get_logger("parley.server")


class ParleyServer(uvicorn.Server):
    """uvicorn.Server that drains our sockets (Bye + 1001) before uvicorn's own shutdown, which
    would otherwise close them with 1012, and exits 0 after a signal."""

    def __init__(self, config: uvicorn.Config, hub: Hub, settings: Settings) -> None:
        super().__init__(config)
        self.hub = hub
        self.settings = settings
        self._draining = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain_task: asyncio.Future[None] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)
        if self.started:
            cfg = self.settings
            print(f"Parley is running at http://{cfg.host}:{cfg.port}/", flush=True)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._draining or self._loop is None:
            if sig == signal.SIGINT and self._draining:
                self.force_exit = True  # a second Ctrl-C: stop waiting
            self.should_exit = True
            return
        self._draining = True
        self._loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        async def drain() -> None:
            try:
                # /readyz fails from here on; then every socket gets a Bye and 1001, and the
                # lifespan closes the store (its writer commits what was acknowledged).
                self.hub.draining = True
                metrics.DRAINING.set(1)
                log.info("draining", connections=len(self.hub.connections))
                if self.settings.drain_delay_s > 0:
                    await asyncio.sleep(self.settings.drain_delay_s)
                await self.hub.shutdown(self.settings.shutdown_grace_s)
            finally:
                self.should_exit = True

        self._drain_task = asyncio.ensure_future(drain())


def build_server(settings: Settings) -> ParleyServer:
    if settings.metrics_port:
        metrics.serve_metrics(settings.metrics_port, settings.metrics_host)
    ADMISSION.limit = settings.unauth_conns_per_ip
    LeanHttpToolsProtocol.read_timeout_s = settings.http_header_timeout_s
    hub = Hub()
    app = create_app(settings, hub=hub)
    config = uvicorn.Config(
        # Request ids wrap the ASGI app from outside Litestar: as a Litestar middleware, every
        # WebSocket kept two more frames (its middleware and exception layers) for its life.
        request_id_middleware(app),
        interface="asgi3",  # the wrapper is a plain function returning an awaitable
        host=settings.host,
        port=settings.port,
        ws=LeanWebSocketProtocol,  # uvicorn's websockets-sansio, slimmed (gateway/wsprotocol.py)
        loop="uvloop",
        http=LeanHttpToolsProtocol,  # uvicorn's httptools, freed right after a WS upgrade
        ws_per_message_deflate=False,
        ws_max_size=settings.max_frame_bytes,
        ws_ping_interval=None,  # the protocol's own Ping/heartbeat covers liveness
        lifespan="on",
        access_log=False,
        log_config=None,
        # uvicorn's own per-connection lines duplicate ours: only its warnings, unless debugging.
        log_level="debug" if settings.log_level == "debug" else "warning",
        server_header=False,
        # X-Forwarded-For only from the proxies named in the settings; uvicorn would
        # otherwise trust it from any peer on 127.0.0.1.
        proxy_headers=bool(settings.forwarded_allow_ips.strip()),
        forwarded_allow_ips=settings.forwarded_allow_ips.strip() or "",
        timeout_graceful_shutdown=int(settings.shutdown_grace_s) + 3,
    )
    return ParleyServer(config, hub, settings)
