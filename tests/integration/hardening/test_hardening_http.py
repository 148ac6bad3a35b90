"""Abuse controls of the HTTP side, against the real server: forwarded headers trusted only
from configured proxies, login limits keyed on (account, IP) with a back-off instead of a lock,
registration and lookup throttles, the request read timeout and the per-IP cap on
unauthenticated connections."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from tests.support.accounts import PASSWORD, login, register, unique_name
from tests.support.rawclient import RawClient
from tests.support.server import ServerProcess

FAST_HASH = {"PARLEY_ARGON2_OPSLIMIT": "1", "PARLEY_ARGON2_MEMLIMIT": str(8 * 1024 * 1024)}
T = 20.0


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Default trust (no proxy), small limits."""
    env = {
        **FAST_HASH,
        "PARLEY_LOGIN_IP_LIMIT": "5",
        "PARLEY_HTTP_HEADER_TIMEOUT_S": "1",
        "PARLEY_UNAUTH_CONNS_PER_IP": "8",
    }
    srv = ServerProcess(tmp_path_factory.mktemp("plain") / "data", env=env)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Behind a trusted proxy on 127.0.0.1, so X-Forwarded-For names the client."""
    env = {
        **FAST_HASH,
        "PARLEY_LOGIN_ACCOUNT_LIMIT": "3",
        "PARLEY_LOGIN_ACCOUNT_GLOBAL_LIMIT": "6",
        "PARLEY_LOGIN_BACKOFF_S": "600",
        "PARLEY_LOOKUP_LIMIT": "3",
    }
    srv = ServerProcess(
        tmp_path_factory.mktemp("proxied") / "data",
        None,
        "--forwarded-allow-ips",
        "127.0.0.1",
        env=env,
    )
    srv.start()
    yield srv
    srv.stop()


def _login(base: str, username: str, password: str, ip: str | None = None) -> httpx.Response:
    headers = {"X-Forwarded-For": ip} if ip else {}
    return httpx.post(
        f"{base}/api/v1/sessions",
        json={"username": username, "password": password, "device_name": "t"},
        headers=headers,
        timeout=T,
    )


def test_forwarded_for_from_an_untrusted_peer_is_ignored(plain: ServerProcess) -> None:
    """Spoofing a new X-Forwarded-For on every try must not escape the per-IP limit."""
    codes = [
        _login(plain.http_url, unique_name("nobody"), "wrong password!", f"10.9.{i}.1").status_code
        for i in range(8)
    ]
    assert codes[:5] == [401] * 5
    assert codes[5:] == [429] * 3


def test_forwarded_for_from_a_trusted_proxy_names_the_client(proxied: ServerProcess) -> None:
    codes = [
        _login(proxied.http_url, unique_name("nobody"), "wrong password!", f"10.8.{i}.1")
        for i in range(8)
    ]
    assert [r.status_code for r in codes] == [401] * 8  # 8 clients, one failure each


def test_an_attacker_cannot_lock_the_owner_out(proxied: ServerProcess) -> None:
    name = unique_name("owner")
    register(proxied.http_url, name)
    assert _login(proxied.http_url, name, PASSWORD, "10.1.0.1").status_code == 201
    attacker = [_login(proxied.http_url, name, "bad guess 123", "10.2.0.1") for _ in range(4)]
    assert [r.status_code for r in attacker] == [401, 401, 401, 429]
    assert "Retry-After" in attacker[-1].headers
    # Same account from the owner's IP (and from any other IP) is not affected.
    assert _login(proxied.http_url, name, PASSWORD, "10.1.0.1").status_code == 201
    assert _login(proxied.http_url, name, PASSWORD, "10.3.0.1").status_code == 201


def test_many_ips_get_a_slow_back_off_per_account_not_a_lock(proxied: ServerProcess) -> None:
    name = unique_name("target")
    register(proxied.http_url, name)
    assert _login(proxied.http_url, name, PASSWORD, "10.4.0.1").status_code == 201  # known IP
    # 6 failures from 6 IPs reach the account's global limit (6).
    for i in range(6):
        assert _login(proxied.http_url, name, "bad guess 123", f"10.5.{i}.1").status_code == 401
    # Now one attempt per back-off interval from unknown IPs: the next one is tried...
    assert _login(proxied.http_url, name, "bad guess 123", "10.6.0.1").status_code == 401
    # ...and the following ones, from anywhere new, wait.
    for i in range(3):
        refused = _login(proxied.http_url, name, PASSWORD, f"10.7.{i}.1")
        assert refused.status_code == 429
        assert refused.json()["code"] == "rate_limited"
        assert 1 <= int(refused.headers["Retry-After"]) <= 600
    # The owner's known IP is never held back: no lock.
    assert _login(proxied.http_url, name, PASSWORD, "10.4.0.1").status_code == 201


def test_registration_is_throttled_per_ip(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every attempt counts, a taken name too (registration must say "taken", which is also
    how a hidden user's name could be probed)."""
    env = {**FAST_HASH, "PARLEY_REGISTER_IP_LIMIT": "3"}
    srv = ServerProcess(tmp_path_factory.mktemp("reg") / "data", env=env)
    srv.start()
    try:
        base = srv.http_url
        taken = unique_name("taken")
        answers = [
            httpx.post(f"{base}/api/v1/accounts", json={"username": name, "password": PASSWORD})
            for name in (taken, taken, unique_name("r"), unique_name("r"), unique_name("r"))
        ]
        assert [r.status_code for r in answers] == [201, 409, 201, 429, 429]
        assert answers[1].json()["code"] == "username_taken"
        assert answers[-1].json()["code"] == "rate_limited"
        assert int(answers[-1].headers["Retry-After"]) >= 1
    finally:
        srv.stop()


def test_username_lookup_is_throttled_per_user(proxied: ServerProcess) -> None:
    base = proxied.http_url
    name = unique_name("look")
    register(base, name)
    me = login(base, name)
    auth = {"Authorization": f"Bearer {me.token}"}
    codes = [
        httpx.get(f"{base}/api/v1/users/{unique_name('x')}", headers=auth).status_code
        for _ in range(5)
    ]
    assert codes == [404, 404, 404, 429, 429]


async def _half_sent_head(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    await writer.drain()
    return reader, writer


async def test_half_sent_heads_are_closed_after_the_read_timeout(plain: ServerProcess) -> None:
    conns = [await _half_sent_head(plain.port) for _ in range(6)]
    for reader, writer in conns:
        # The server closes: EOF (or a reset) long before the generous bound.
        try:
            data = await asyncio.wait_for(reader.read(), T)
        except ConnectionResetError:
            data = b""
        assert data == b""
        writer.close()
    assert httpx.get(f"{plain.http_url}/healthz", timeout=T).status_code == 200


async def test_unauthenticated_connections_per_ip_are_capped(plain: ServerProcess) -> None:
    held = [await _half_sent_head(plain.port) for _ in range(8)]
    reader, writer = await asyncio.open_connection("127.0.0.1", plain.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        refused = await asyncio.wait_for(reader.read(), T)
    except ConnectionResetError:
        refused = b""
    assert refused == b""  # closed without an answer while 8 are held
    writer.close()
    for _, w in held:
        w.close()
    # Once they are gone the budget is back.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + T
    while True:
        try:
            r = await asyncio.to_thread(httpx.get, f"{plain.http_url}/healthz", timeout=T)
            if r.status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert loop.time() < deadline, "budget not given back"
        await asyncio.sleep(0.05)


async def test_authenticated_sockets_do_not_count_against_the_cap(
    proxied: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> None:
    env = {**FAST_HASH, "PARLEY_UNAUTH_CONNS_PER_IP": "3"}
    srv = ServerProcess(tmp_path_factory.mktemp("cap") / "data", env=env)
    srv.start()
    try:
        name = unique_name("many")
        register(srv.http_url, name)
        token = login(srv.http_url, name).token
        clients = [await RawClient.login(srv.ws_url, token) for _ in range(6)]
        assert httpx.get(f"{srv.http_url}/healthz", timeout=T).status_code == 200
        for c in clients:
            await c.close()
    finally:
        srv.stop()


async def test_user_lookup_op_is_throttled_per_user(proxied: ServerProcess) -> None:
    from parley.protocol import social as so

    name = unique_name("lookws")
    register(proxied.http_url, name)
    me = login(proxied.http_url, name)
    client = await RawClient.login(proxied.ws_url, me.token)
    codes = []
    for _ in range(5):
        answer = await client.request(so.UserLookup(username=unique_name("x")))
        codes.append(getattr(answer, "code", "ok"))
    assert codes == ["ok", "ok", "ok", "rate_limited", "rate_limited"]
    await client.close()


async def test_websockets_waiting_for_hello_count_against_the_cap(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    env = {**FAST_HASH, "PARLEY_UNAUTH_CONNS_PER_IP": "3"}
    srv = ServerProcess(tmp_path_factory.mktemp("cap2") / "data", env=env)
    srv.start()
    try:
        waiting = [await RawClient.connect(srv.ws_url) for _ in range(3)]  # no hello sent
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            refused = await asyncio.wait_for(reader.read(), T)
        except ConnectionResetError:
            refused = b""
        assert refused == b""
        writer.close()
        for c in waiting:
            await c.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + T
        while True:  # their slots come back once they are gone
            try:
                r = await asyncio.to_thread(httpx.get, f"{srv.http_url}/healthz", timeout=T)
                if r.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert loop.time() < deadline, "slots not given back"
            await asyncio.sleep(0.05)
    finally:
        srv.stop()
