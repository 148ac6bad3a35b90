"""Shared fixtures: the real server on a loopback port.

This file is also loaded when the shared-package tests run inside Pyodide, so it imports
nothing beyond pytest at module level.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.support.server import ServerProcess


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Inside Pyodide only the shared package exists: skip test modules of the CPython shells
    (the server and the CPython client)."""
    if sys.platform != "emscripten" or collection_path.suffix != ".py":
        return None
    text = collection_path.read_text(errors="replace")
    return "parley_server" in text or "parley_client" in text or None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Inside Pyodide there is no pytest-asyncio (the browser loop cannot run_until_complete):
    async tests run in CPython only, and are reported as skipped here."""
    if sys.platform != "emscripten":
        return
    skip = pytest.mark.skip(reason="async test: runs in CPython (no loop runner in Pyodide)")
    for item in items:
        if inspect.iscoroutinefunction(getattr(item, "function", None)):
            item.add_marker(skip)


OPEN_DIRECT = {"PARLEY_DIRECT_OPEN_TO_ALL": "true", "PARLEY_GROUP_DIRECT_ADD": "anyone"}
"""The spine's tests open direct conversations between strangers and put strangers in groups:
their servers allow that (the product defaults require mutual contacts, and invite anyone
else to a group; ``social_server`` runs with the defaults)."""


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One real server for the whole session (tests use fresh users, so they don't collide)."""
    from tests.support.server import ServerProcess

    srv = ServerProcess(tmp_path_factory.mktemp("srv") / "data", env=OPEN_DIRECT)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def social_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with default settings (direct chats need contacts) but a fast presence
    tick, for the social-layer tests."""
    from tests.support.server import ServerProcess

    env = {"PARLEY_PRESENCE_TICK_S": "0.2"}
    srv = ServerProcess(tmp_path_factory.mktemp("social") / "data", env=env)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A private server for tests that kill or restart it."""
    from tests.support.server import ServerProcess

    srv = ServerProcess(tmp_path / "data", env=OPEN_DIRECT)
    srv.start()
    yield srv
    srv.stop()
