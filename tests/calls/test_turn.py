"""``GET /api/v1/turn`` against the real server (parley_server) and a real coturn: the REST
credentials' expiry and HMAC, refusals, the rate limit, and allocations through coturn with
good, wrong and expired credentials (``turnutils_uclient`` relaying to ``turnutils_peer``)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from parley.protocol.turn import rest_password, rest_username
from tests.support.accounts import new_user
from tests.support.coturn import Coturn, free_udp_port
from tests.support.server import ServerProcess


def _get(srv: ServerProcess, token: str | None) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.get(f"{srv.http_url}/api/v1/turn", headers=headers, timeout=10)


@pytest.fixture(scope="module")
def peer() -> Iterator[int]:
    """turnutils_peer: a UDP echo peer behind the relay."""
    port = free_udp_port()
    proc = subprocess.Popen(
        ["turnutils_peer", "-p", str(port), "-L", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    yield port
    proc.terminate()
    proc.wait(10)


def _relay(turn: Coturn, peer: int, user: str, password: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["turnutils_uclient", "-u", user, "-w", password, "-e", "127.0.0.1", "-r", str(peer),
         "-X", "-n", "10", "-m", "1", "-p", str(turn.port), "127.0.0.1"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_credentials_follow_the_coturn_rest_scheme(
    turn_server: ServerProcess, coturn: Coturn
) -> None:
    (dev,) = new_user(turn_server.http_url, "turn")
    before = int(time.time())
    r = _get(turn_server, dev.token)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["uris"] == [coturn.uri, f"turn:127.0.0.1:{coturn.port}?transport=tcp"]
    expiry, _, user = body["username"].partition(":")
    assert user == dev.user_id
    assert before + 600 <= int(expiry) <= int(time.time()) + 600
    assert body["expires_at"] == int(expiry) and body["ttl_s"] == 600
    mac = hmac.new(coturn.secret.encode(), body["username"].encode(), hashlib.sha1).digest()
    assert body["credential"] == base64.b64encode(mac).decode()


def test_refused_without_a_valid_session(turn_server: ServerProcess) -> None:
    for token in (None, "not-a-token"):
        r = _get(turn_server, token)
        assert r.status_code == 401 and r.json()["code"] == "unauthorized"


def test_rate_limited_per_account(turn_server: ServerProcess) -> None:
    a, b = new_user(turn_server.http_url, "turnrl", devices=2)
    codes = [_get(turn_server, (a if i % 2 else b).token).status_code for i in range(5)]
    assert codes == [200] * 5
    r = _get(turn_server, a.token)
    assert r.status_code == 429 and r.json()["code"] == "rate_limited"
    assert int(r.headers["retry-after"]) >= 1
    (other,) = new_user(turn_server.http_url, "turnrl2")
    assert _get(turn_server, other.token).status_code == 200


def test_no_turn_configured_gives_no_uris(server: ServerProcess) -> None:
    (dev,) = new_user(server.http_url, "noturn")
    r = _get(server, dev.token)
    assert r.status_code == 200
    assert r.json() == {"uris": [], "username": "", "credential": "", "ttl_s": 0, "expires_at": 0}


def test_coturn_relays_with_the_servers_credentials(
    turn_server: ServerProcess, coturn: Coturn, peer: int
) -> None:
    (dev,) = new_user(turn_server.http_url, "relay")
    body = _get(turn_server, dev.token).json()
    res = _relay(coturn, peer, body["username"], body["credential"])
    assert res.returncode == 0, res.stdout[-2000:]
    assert "tot_recv_msgs=20" in res.stdout  # 10 messages each way on 2 allocations


def test_coturn_refuses_wrong_or_expired_credentials(coturn: Coturn, peer: int) -> None:
    good_user = rest_username(int(time.time()) + 600, "mallory")
    wrong = _relay(coturn, peer, good_user, rest_password("not-the-secret", good_user))
    assert wrong.returncode != 0 and "Cannot complete Allocation" in wrong.stdout
    old = rest_username(int(time.time()) - 5, "mallory")
    expired = _relay(coturn, peer, old, rest_password(coturn.secret, old))
    assert expired.returncode != 0 and "Cannot complete Allocation" in expired.stdout
