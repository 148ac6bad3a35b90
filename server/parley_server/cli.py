"""``parley`` command line: ``parley serve`` (more subcommands attach to the ``main`` group).

Runs uvicorn programmatically with the settings SERVER.md measured as best for an IM server:
sans-IO websockets, uvloop, httptools, no permessage-deflate, frames capped at MAX_FRAME_BYTES.
On SIGINT/SIGTERM every socket first gets a Bye and a 1001 close, then uvicorn stops and the
lifespan closes the store (flushing its writer).
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from types import FrameType
from typing import Any

import click
import uvicorn

from parley_server.app import create_app
from parley_server.cli_client import register_commands
from parley_server.config import Settings, load_settings
from parley_server.gateway.hub import Hub
from parley_server.logging import configure_logging, get_logger

log = get_logger("parley.cli")


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
                await self.hub.shutdown(self.settings.shutdown_grace_s)
            finally:
                self.should_exit = True

        self._drain_task = asyncio.ensure_future(drain())


def build_server(settings: Settings) -> ParleyServer:
    hub = Hub()
    app = create_app(settings, hub=hub)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        ws="websockets-sansio",
        loop="uvloop",
        http="httptools",
        ws_per_message_deflate=False,
        ws_max_size=settings.max_frame_bytes,
        ws_ping_interval=None,  # the protocol's own Ping/heartbeat covers liveness
        lifespan="on",
        access_log=False,
        log_config=None,
        # uvicorn's own per-connection lines duplicate ours: only its warnings, unless debugging.
        log_level="debug" if settings.log_level == "debug" else "warning",
        server_header=False,
        timeout_graceful_shutdown=int(settings.shutdown_grace_s) + 3,
    )
    return ParleyServer(config, hub, settings)


@click.group()
def main() -> None:
    """Parley: self-hosted, end-to-end encrypted instant messenger."""


@main.command()
@click.option("--host", default=None, help="Interface to listen on [127.0.0.1].")
@click.option("--port", type=int, default=None, help="TCP port [8080].")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Data directory [./parley-data].",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default=None,
    help="Log level [info].",
)
@click.option("--hello-timeout", type=float, default=None, help="Seconds to wait for Hello [10].")
@click.option(
    "--heartbeat", type=float, default=None, help="Heartbeat seconds (idle close 3x) [25]."
)
def serve(**options: Any) -> None:
    """Run the server (settings also come from PARLEY_* environment variables)."""
    overrides = {
        "host": options["host"],
        "port": options["port"],
        "data_dir": options["data_dir"],
        "log_level": options["log_level"],
        "hello_timeout_s": options["hello_timeout"],
        "heartbeat_s": options["heartbeat"],
    }
    try:
        settings = load_settings(overrides)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    configure_logging(settings.log_level, settings.log_json)
    server = build_server(settings)
    server.run()
    if not server.started:
        sys.exit(3)


register_commands(main)

if __name__ == "__main__":
    main()
