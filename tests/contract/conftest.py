"""The ``store`` fixture, parametrized over every Store engine.

Adding an engine is one more entry in ``ENGINES``: a factory that, given the test's request and
tmp_path,
returns a function making a fresh (unopened) engine instance on the same backing storage, so
durability tests can close one instance and reopen another on the same data.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import pytest

from parley_server.store.base import Store
from parley_server.store.redis import RedisStore
from parley_server.store.sqlite import SqliteStore
from tests.support.redis_servers import (  # noqa: F401 (session fixtures)
    RedisClusterServers,
    RedisServer,
    redis_cluster,
    redis_server,
)

StoreFactory = Callable[[], Store]

OP_TIMEOUT_S = 30.0
"""Every store call in the contract tests is bounded: a hung writer fails the test."""


class _Bounded:
    """Wraps an engine so that every coroutine method times out instead of hanging."""

    def __init__(self, inner: Store) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not asyncio.iscoroutinefunction(attr):
            return attr

        @functools.wraps(attr)
        async def bounded(*args: Any, **kwargs: Any) -> Any:
            return await asyncio.wait_for(cast(Awaitable[Any], attr(*args, **kwargs)), OP_TIMEOUT_S)

        return bounded


def bounded(make: Callable[[], Store]) -> StoreFactory:
    return lambda: cast(Store, _Bounded(make()))


def _sqlite(_request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    return lambda: SqliteStore(tmp_path / "parley.db")


def redis_prefix() -> str:
    """Each test gets its own key prefix on the shared test Redis."""
    return f"t{uuid.uuid4().hex[:12]}:"


def _redis(request: pytest.FixtureRequest, _tmp_path: Path) -> StoreFactory:
    server: RedisServer = request.getfixturevalue("redis_server")
    prefix = redis_prefix()
    return lambda: RedisStore(server.url, prefix=prefix)


def _redis_cluster(request: pytest.FixtureRequest, _tmp_path: Path) -> StoreFactory:
    cluster: RedisClusterServers = request.getfixturevalue("redis_cluster")
    prefix = redis_prefix()
    return lambda: RedisStore(cluster.url, prefix=prefix)


REDIS_FIXTURES = {"redis": "redis_server", "redis_cluster": "redis_cluster"}
"""The session fixture that starts each Redis engine's servers."""


def factory_for(engine: str, tmp_path: Path, url: str = "", prefix: str = "") -> StoreFactory:
    """Unopened instances of ``engine`` on explicit storage (for a child process, which has
    no fixtures): the SQLite file in ``tmp_path``, or ``url`` under ``prefix`` for Redis."""
    if engine == "sqlite":
        return lambda: SqliteStore(tmp_path / "parley.db")
    return lambda: RedisStore(url, prefix=prefix)


ENGINES: dict[str, Callable[[pytest.FixtureRequest, Path], StoreFactory]] = {
    "sqlite": _sqlite,
    "redis": _redis,
    "redis_cluster": _redis_cluster,
}


@pytest.fixture(params=sorted(ENGINES))
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """Makes unopened engine instances that all share this test's backing storage."""
    return bounded(ENGINES[request.param](request, tmp_path))


@pytest.fixture
async def store(make_store: StoreFactory) -> AsyncIterator[Store]:
    s = make_store()
    await s.open()
    try:
        yield s
    finally:
        await s.close()
