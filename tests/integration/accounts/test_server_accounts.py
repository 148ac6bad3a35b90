"""Accounts over real HTTP: register, login, rate limits, logout, devices, user lookup."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from parley.protocol.frames import Hello
from tests.support.accounts import PASSWORD, login, new_user, register, unique_name
from tests.support.rawclient import RawClient
from tests.support.server import ServerProcess


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _error(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["code"] == code
    assert isinstance(body["message"], str) and body["message"]


def test_health_and_schema(server: ServerProcess) -> None:
    r = httpx.get(f"{server.http_url}/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    assert r.json()["store"] == "sqlite" and r.json()["node"]  # which node answered
    schema = httpx.get(f"{server.http_url}/schema/openapi.json").json()
    assert "/api/v1/accounts" in schema["paths"]
    assert "/api/v1/sessions" in schema["paths"]


def test_register_normalizes_and_refuses_taken_name(server: ServerProcess) -> None:
    name = unique_name("Reg")
    r = httpx.post(
        f"{server.http_url}/api/v1/accounts", json={"username": name, "password": PASSWORD}
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["username"] == name.lower()
    assert len(body["user_id"]) == 36 and body["user_id"][14] == "4"  # uuid4 text
    again = httpx.post(
        f"{server.http_url}/api/v1/accounts",
        json={"username": name.lower(), "password": PASSWORD},
    )
    _error(again, 409, "username_taken")
    # The name was normalized, so logging in with any case works.
    assert login(server.http_url, name.upper()).user_id == body["user_id"]


@pytest.mark.parametrize("password", ["short", "password123", "aaaaaaaaaaaaaa"])
def test_register_weak_password(server: ServerProcess, password: str) -> None:
    r = httpx.post(
        f"{server.http_url}/api/v1/accounts",
        json={"username": unique_name("weak"), "password": password},
    )
    _error(r, 400, "weak_password")


@pytest.mark.parametrize(
    "body",
    [
        {"username": "ab", "password": PASSWORD},
        {"username": "has space", "password": PASSWORD},
        {"username": "x" * 40, "password": PASSWORD},
        {"password": PASSWORD},
        {"username": 5, "password": PASSWORD},
    ],
)
def test_register_invalid(server: ServerProcess, body: dict[str, object]) -> None:
    r = httpx.post(f"{server.http_url}/api/v1/accounts", json=body)
    _error(r, 400, "invalid")


def test_not_json_and_unknown_route_and_method(server: ServerProcess) -> None:
    r = httpx.post(f"{server.http_url}/api/v1/accounts", content=b"\x00not json")
    _error(r, 400, "invalid")
    _error(httpx.get(f"{server.http_url}/api/v1/nope"), 404, "not_found")
    _error(httpx.put(f"{server.http_url}/api/v1/accounts"), 405, "invalid")


def test_login_and_bad_credentials(server: ServerProcess) -> None:
    name = unique_name("login")
    user_id = register(server.http_url, name)
    first = login(server.http_url, name, device="laptop")
    second = login(server.http_url, name, device="phone")
    assert first.user_id == second.user_id == user_id
    assert second.device_id > first.device_id
    assert first.token != second.token
    wrong = httpx.post(
        f"{server.http_url}/api/v1/sessions",
        json={"username": name, "password": "not the password", "device_name": "x"},
    )
    nobody = httpx.post(
        f"{server.http_url}/api/v1/sessions",
        json={"username": unique_name("nobody"), "password": PASSWORD, "device_name": "x"},
    )
    _error(wrong, 401, "bad_credentials")
    _error(nobody, 401, "bad_credentials")
    assert wrong.json()["message"] == nobody.json()["message"]


def test_devices_list_logout_and_revoke(server: ServerProcess) -> None:
    a1, a2, a3 = new_user(server.http_url, "dev", devices=3)
    r = httpx.get(f"{server.http_url}/api/v1/devices", headers=_auth(a1.token))
    assert r.status_code == 200
    devices = r.json()["devices"]
    assert [d["device_id"] for d in devices] == [a1.device_id, a2.device_id, a3.device_id]
    assert [d["current"] for d in devices] == [True, False, False]
    assert [d["name"] for d in devices] == ["dev0", "dev1", "dev2"]

    # Revoke a2 from a1; a2's token is then refused with device_revoked.
    r = httpx.delete(f"{server.http_url}/api/v1/devices/{a2.device_id}", headers=_auth(a1.token))
    assert r.status_code == 204
    _error(
        httpx.get(f"{server.http_url}/api/v1/devices", headers=_auth(a2.token)),
        401,
        "device_revoked",
    )
    # Revoking it again: not found.
    r = httpx.delete(f"{server.http_url}/api/v1/devices/{a2.device_id}", headers=_auth(a1.token))
    _error(r, 404, "not_found")

    # Logout of a3 revokes a3 only.
    assert (
        httpx.delete(
            f"{server.http_url}/api/v1/sessions/current", headers=_auth(a3.token)
        ).status_code
        == 204
    )
    _error(
        httpx.get(f"{server.http_url}/api/v1/devices", headers=_auth(a3.token)),
        401,
        "device_revoked",
    )
    r = httpx.get(f"{server.http_url}/api/v1/devices", headers=_auth(a1.token))
    assert [d["device_id"] for d in r.json()["devices"]] == [a1.device_id]


def test_cannot_revoke_another_users_device(server: ServerProcess) -> None:
    # Device ids are per user: Bob's third device id is one Alice does not have.
    (alice,) = new_user(server.http_url, "alice")
    bobs = new_user(server.http_url, "bob", devices=3)
    target = bobs[2].device_id
    assert target != alice.device_id
    r = httpx.delete(f"{server.http_url}/api/v1/devices/{target}", headers=_auth(alice.token))
    _error(r, 404, "not_found")
    # Bob's devices are untouched, and Alice's own device is still valid.
    r = httpx.get(f"{server.http_url}/api/v1/devices", headers=_auth(bobs[2].token))
    assert r.status_code == 200
    assert [d["device_id"] for d in r.json()["devices"]] == [b.device_id for b in bobs]
    assert (
        httpx.get(f"{server.http_url}/api/v1/devices", headers=_auth(alice.token)).status_code
        == 200
    )


def test_auth_required_and_unknown_token(server: ServerProcess) -> None:
    _error(httpx.get(f"{server.http_url}/api/v1/devices"), 401, "unauthorized")
    _error(
        httpx.get(f"{server.http_url}/api/v1/devices", headers=_auth("nope")), 401, "unauthorized"
    )


def test_user_lookup(server: ServerProcess) -> None:
    (alice,) = new_user(server.http_url, "look")
    r = httpx.get(f"{server.http_url}/api/v1/users/{alice.username}", headers=_auth(alice.token))
    assert r.status_code == 200
    assert r.json() == {"user_id": alice.user_id, "username": alice.username}
    r = httpx.get(
        f"{server.http_url}/api/v1/users/{unique_name('none')}", headers=_auth(alice.token)
    )
    _error(r, 404, "not_found")


async def test_revoked_device_socket_closes_4003_and_cannot_reconnect(
    server: ServerProcess,
) -> None:
    a1, a2 = new_user(server.http_url, "rev", devices=2)
    conn = await RawClient.login(server.ws_url, a2.token)
    r = httpx.delete(f"{server.http_url}/api/v1/devices/{a2.device_id}", headers=_auth(a1.token))
    assert r.status_code == 204
    assert await conn.wait_closed() == 4003
    again = await RawClient.connect(server.ws_url)
    await again.send(Hello(token=a2.token))
    assert await again.wait_closed() == 4003
    # The other device still works.
    ok = await RawClient.login(server.ws_url, a1.token)
    await ok.close()


@pytest.fixture
def limited_server(tmp_path: Path) -> Iterator[ServerProcess]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PARLEY_LOGIN_ACCOUNT_LIMIT", "3")
        mp.setenv("PARLEY_LOGIN_IP_LIMIT", "5")
        mp.setenv("PARLEY_LOGIN_WINDOW_S", "60")
        srv = ServerProcess(tmp_path / "data")
        srv.start()
    yield srv
    srv.stop()


def test_login_rate_limits(limited_server: ServerProcess) -> None:
    url = limited_server.http_url
    name = unique_name("rl")
    register(url, name)

    def attempt(username: str, password: str) -> httpx.Response:
        return httpx.post(
            f"{url}/api/v1/sessions",
            json={"username": username, "password": password, "device_name": "x"},
        )

    for _ in range(3):
        _error(attempt(name, "wrong password!"), 401, "bad_credentials")
    # Per account: even the right password is refused now.
    limited = attempt(name, PASSWORD)
    _error(limited, 429, "rate_limited")
    assert int(limited.headers["Retry-After"]) >= 1
    # Per IP: 2 more failures on another account reach the IP limit (5).
    other = unique_name("rl")
    register(url, other)
    for _ in range(2):
        _error(attempt(other, "wrong password!"), 401, "bad_credentials")
    _error(attempt(other, PASSWORD), 429, "rate_limited")
    # The server still serves: registering and the health check work.
    assert httpx.get(f"{url}/healthz").status_code == 200
