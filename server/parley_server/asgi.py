"""Builds the Litestar application: store, broker, services, HTTP routes and the /ws gateway."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

from litestar import Litestar
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig

from parley_server.api.accounts import AccountController
from parley_server.api.blobs import blob_routes, blobs_lifespan
from parley_server.api.errors import EXCEPTION_HANDLERS
from parley_server.api.health import healthz
from parley_server.api.keys import KeyController, make_keys
from parley_server.api.openapi import complete_allow_header, describe_api
from parley_server.api.operations import operations_lifespan, readyz
from parley_server.api.provisioning import ProvisioningController, make_provisioning
from parley_server.api.turn import TurnService, turn_credentials
from parley_server.config import Settings
from parley_server.fanout.base import Broker
from parley_server.fanout.local import LocalBroker
from parley_server.gateway.endpoint import make_ws_handler
from parley_server.gateway.hub import Hub
from parley_server.logging import get_logger
from parley_server.service.context import Services, now_ms
from parley_server.service.dispatch import Dispatcher
from parley_server.store.stores import Stores, build_stores
from parley_server.webassets import web_routes

log = get_logger("parley.app")

IDEMPOTENCY_KEEP_MS = 7 * 24 * 3600 * 1000
"""Send retries older than this may append again (matches the SQLite engine's own TTL)."""


async def _expire_loop(app: Dispatcher) -> None:
    every = app.services.settings.to_device_expire_every_s
    while True:
        try:
            n = await app.to_device.expire()
            if n:
                log.info("to_device_expired", count=n)
            # old send idempotency keys (a no-op where they expire by themselves)
            await app.services.store.expire_idempotency(now_ms() - IDEMPOTENCY_KEEP_MS)
        except Exception:
            log.exception("to_device_expire_failed")
        await asyncio.sleep(every)


def node_id(settings: Settings) -> str:
    return settings.node_id or f"{socket.gethostname()}:{settings.port}"


def make_broker(settings: Settings) -> Broker:
    """In-process for one node; Redis pub/sub when a Redis broker (or store) is configured."""
    url = settings.broker or (settings.store if settings.store.startswith("redis") else "")
    if url in ("", "local"):
        return LocalBroker()
    from parley_server.fanout.redis import RedisBroker

    return RedisBroker(url, prefix=settings.redis_prefix, node_id=node_id(settings))


def create_app(
    settings: Settings,
    stores: Stores | None = None,
    broker: Broker | None = None,
    hub: Hub | None = None,
) -> Litestar:
    stores = stores or build_stores(settings)
    broker = broker or make_broker(settings)
    hub = hub or Hub()
    parley = Dispatcher(Services(stores=stores, broker=broker, settings=settings))

    @contextlib.asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        await stores.open()
        await broker.start()
        expiry = asyncio.create_task(_expire_loop(parley))
        log.info(
            "started",
            node=node_id(settings),
            store=stores.engine,
            broker=type(broker).__name__,
            data_dir=str(settings.data_path.resolve()),
        )
        try:
            yield
        finally:
            await hub.shutdown(settings.shutdown_grace_s)
            expiry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await expiry
            await broker.stop()
            await stores.close()
            log.info("stopped")

    return Litestar(
        route_handlers=[
            healthz,
            readyz,
            AccountController,
            KeyController,
            ProvisioningController,
            turn_credentials,
            make_ws_handler(parley, hub),
            *blob_routes(),
            *web_routes(),
        ],
        lifespan=[lifespan, blobs_lifespan(parley), operations_lifespan(parley, hub)],
        exception_handlers=EXCEPTION_HANDLERS,
        on_startup=[describe_api],  # error responses, security, strict bodies
        before_send=[complete_allow_header],
        openapi_config=OpenAPIConfig(title="Parley", version="1", path="/schema"),
        state=State(
            {
                "parley": parley,
                "hub": hub,
                "node_id": node_id(settings),
                "broker": broker,
                "key_service": make_keys(parley),
                "provisioning": make_provisioning(parley),
                "turn": TurnService(settings),
            }
        ),
        logging_config=None,  # structlog (parley_server.logging) owns the output
    )
