"""Shared fixtures: the real server on a loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import ServerProcess


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One real server for the whole session (tests use fresh users, so they don't collide)."""
    srv = ServerProcess(tmp_path_factory.mktemp("srv") / "data")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A private server for tests that kill or restart it."""
    srv = ServerProcess(tmp_path / "data")
    srv.start()
    yield srv
    srv.stop()
