"""The OpenAPI document is honest: schemathesis (PyPI) generates requests from
``/schema/openapi.json`` and checks the real server's answers against it (status codes,
bodies, headers, Allow, schema-valid input accepted, invalid input refused, no 5xx).

Bounded: a fixed seed, a few examples per operation and a time budget, so it is a regular
test (about a minute on a loaded 2-core machine). Semantic refusals no schema can express
are listed, with reasons, in ``schemathesis.toml`` next to this file.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.accounts import login, register, unique_name
from tests.support.server import ServerProcess

HERE = Path(__file__).parent
MAX_EXAMPLES = 12
MAX_TIME_S = 75


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {  # generated requests must reach the handlers, not the throttles
        "PARLEY_LOGIN_IP_LIMIT": "1000000",
        "PARLEY_LOGIN_ACCOUNT_LIMIT": "1000000",
        "PARLEY_LOGIN_ACCOUNT_GLOBAL_LIMIT": "1000000",
        "PARLEY_PROVISIONING_IP_LIMIT": "1000000",
        "PARLEY_ARGON2_OPSLIMIT": "1",
        "PARLEY_ARGON2_MEMLIMIT": str(8 * 1024 * 1024),
    }
    srv = ServerProcess(tmp_path_factory.mktemp("api") / "data", env=env)
    srv.start()
    yield srv
    srv.stop()


def test_openapi_document_matches_the_server(api_server: ServerProcess) -> None:
    name = unique_name("schema")
    register(api_server.http_url, name)
    token = login(api_server.http_url, name).token
    schemathesis = Path(sys.executable).parent / "schemathesis"
    cmd = [
        str(schemathesis), "--config-file", str(HERE / "schemathesis.toml"), "--no-color",
        "run", f"{api_server.http_url}/schema/openapi.json",
        "-H", f"Authorization: Bearer {token}",
        "--checks", "all",
        # ignored_auth sends requests without the header and expects 401: covered, but it also
        # replays the logout/revoke routes, which would end this run's session.
        "--exclude-checks", "ignored_auth",
        "--exclude-path-regex", "^/api/v1/(sessions/current|devices/)",
        "--max-examples", str(MAX_EXAMPLES),
        "--max-time", str(MAX_TIME_S),
        "--seed", "11",
        "--workers", "1",
        "--generation-database", "none",
        "--request-timeout", "20",
    ]  # fmt: skip
    run = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=MAX_TIME_S + 120,
        cwd=api_server.data_dir.parent,  # schemathesis keeps a .schemathesis/ dir in its cwd
    )
    out = run.stdout + run.stderr
    (api_server.data_dir.parent / "schemathesis.out").write_text(out)
    assert run.returncode == 0, out[-6000:]
    assert "Tested:" in out and "5xx" not in out.split("SUMMARY")[-1]
