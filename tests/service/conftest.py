"""In-process service tests: the service container on a temporary SQLite store, no server
process and no socket (as Synapse's handler tests build a homeserver in memory).

Integration tests (tests/integration) prove the whole server over real WebSockets; these pin
the rules of the service layer one by one, fast enough to cover every branch.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from parley.protocol import social
from parley_server.config import Settings
from parley_server.fanout.local import LocalBroker
from parley_server.service.context import Services, Session, now_ms
from parley_server.service.dispatch import Dispatcher
from parley_server.store.stores import open_stores


class Recorder:
    """A subscriber that keeps the frames the broker delivers to it."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def deliver(self, frame: bytes) -> None:
        self.frames.append(frame)

    def close(self, code: int, reason: str = "") -> None:
        raise AssertionError(f"closed {code} {reason}")


class Harness:
    """The service container plus helpers to make users and contacts."""

    def __init__(self, app: Dispatcher) -> None:
        self.app = app
        self._names = itertools.count(1)

    async def user(self) -> Session:
        name = f"user{next(self._names)}"
        row = await self.app.services.store.create_user(name, b"-", now_ms())
        return Session(user_id=row.user_id, device_id=1)

    async def listen(self, who: Session) -> Recorder:
        rec = Recorder()
        await self.app.services.broker.subscribe(who.user_id, who.device_id, rec)
        return rec

    async def befriend(self, a: Session, b: Session) -> None:
        """Make ``a`` and ``b`` contacts (a no-op when they are)."""
        if await self.app.social_store.are_contacts(a.user_id, b.user_id):
            return
        await self.app.social.request(a, social.FriendRequest(user_id=b.user_id))
        await self.app.social.accept(b, social.FriendAccept(user_id=a.user_id))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "settings(**fields): Settings overrides for `harness`")


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    return Settings(data_dir=str(tmp_path), **overrides)  # type: ignore[arg-type]


@pytest.fixture
async def harness(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    """``@pytest.mark.settings(max_group_members=3, ...)`` overrides Settings fields."""
    marker = request.node.get_closest_marker("settings")
    settings = _settings(tmp_path, **(marker.kwargs if marker else {}))
    stores = await open_stores(settings)
    try:
        yield Harness(Dispatcher(Services(stores=stores, broker=LocalBroker(), settings=settings)))
    finally:
        await stores.close()
