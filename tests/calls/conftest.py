"""Fixtures of the call tests: a real coturn on loopback and a Parley server handing out its
credentials. (Module text names parley_server: skipped inside Pyodide.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def coturn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from tests.support.coturn import Coturn

    turn = Coturn(tmp_path_factory.mktemp("coturn"))
    turn.start()
    yield turn
    turn.stop()


@pytest.fixture(scope="session")
def turn_server(tmp_path_factory: pytest.TempPathFactory, coturn: object) -> Iterator[object]:
    """A Parley server (default social rules: direct chats need contacts) that hands out
    credentials for the coturn above."""
    from tests.support.coturn import Coturn
    from tests.support.server import ServerProcess

    assert isinstance(coturn, Coturn)
    env = {
        "PARLEY_TURN_URI": f"{coturn.uri},turn:127.0.0.1:{coturn.port}?transport=tcp",
        "PARLEY_TURN_SECRET": coturn.secret,
        "PARLEY_TURN_TTL_S": "600",
        "PARLEY_TURN_LIMIT": "5",
    }
    srv = ServerProcess(Path(tmp_path_factory.mktemp("turnsrv")) / "data", env=env)
    srv.start()
    yield srv
    srv.stop()
