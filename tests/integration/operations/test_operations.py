"""Operations against a live server: metrics, ``parley admin``, backup/restore, drain on SIGTERM.

Every test runs the real server (``parley serve``) and the real admin command as processes on
loopback, and talks to the server over real HTTP and WebSockets.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import ConnectionClosed

from parley.protocol.ops import (
    Conversation,
    GroupCreate,
    History,
    HistoryPage,
    Send,
    Sent,
)
from parley.protocol.records import Membership, MembershipAction, Message, Recalled
from tests.support.accounts import PASSWORD, Login, login, new_user, unique_name
from tests.support.rawclient import Closed, RawClient, envelope_for
from tests.support.redis_servers import RedisServer
from tests.support.server import ServerProcess, free_port

OPS_ENV = {
    "PARLEY_DIRECT_OPEN_TO_ALL": "true",
    "PARLEY_GROUP_DIRECT_ADD": "anyone",  # group_create adds members at once (no invitations)
    "PARLEY_ADMIN_POLL_S": "0.2",
    "PARLEY_REGISTER_IP_LIMIT": "1000",
}
WAIT_S = 20.0
ROOT = Path(__file__).resolve().parents[3]


def admin(
    data_dir: Path, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> str:
    """Run ``parley admin`` (a separate process, as an operator would) and return its stdout;
    ``env``: extra PARLEY_* settings (the same as the server's)."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "parley_client.cli.main",
            "admin",
            "--data-dir",
            str(data_dir),
            *args,
        ],
        capture_output=True,
        text=True,
        input=stdin,
        env={**os.environ, **(env or {})},
        timeout=60,
    )
    assert proc.returncode == 0, f"admin {args} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture
def ops_server(tmp_path: Path) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path / "data", env={**OPS_ENV, "PARLEY_METRICS_PORT": str(free_port())})
    srv.start()
    yield srv
    srv.stop()


def _metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels``."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def _scrape(srv: ServerProcess) -> str:
    port = srv.env["PARLEY_METRICS_PORT"]
    r = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    r.raise_for_status()
    return r.text


async def _group(a: RawClient, members: list[str]) -> bytes:
    conv: Conversation = await a.call(GroupCreate(members=members))
    return conv.info.conversation_id


async def _send(c: RawClient, cid: bytes, mid: str) -> Sent:
    sent: Sent = await c.call(
        Send(conversation_id=cid, client_msg_id=mid, envelope=envelope_for(cid))
    )
    return sent


async def _all_entries(c: RawClient, cid: bytes) -> list[object]:
    out: list[object] = []
    after = 0
    while True:
        page: HistoryPage = await c.call(History(conversation_id=cid, after_seq=after, limit=100))
        out.extend(page.entries)
        if not page.entries or not page.more:
            return out
        after = page.entries[-1].seq


# --- metrics ------------------------------------------------------------------------------------
async def test_metrics_move_when_messages_flow(ops_server: ServerProcess) -> None:
    before = _scrape(ops_server)
    assert "process_cpu_seconds_total" in before and "process_resident_memory_bytes" in before
    # /metrics is not on the public listener
    assert httpx.get(f"{ops_server.http_url}/metrics").status_code == 404
    (alice,) = new_user(ops_server.http_url, "m_alice")
    (bob,) = new_user(ops_server.http_url, "m_bob")
    a = await RawClient.login(ops_server.ws_url, alice.token)
    b = await RawClient.login(ops_server.ws_url, bob.token)
    cid = await _group(a, [bob.user_id])
    for i in range(5):
        await _send(a, cid, f"m{i}")
    httpx.post(f"{ops_server.http_url}/api/v1/accounts", json={"username": "x"})  # invalid
    after = _scrape(ops_server)
    assert _metric(after, "parley_messages_total") - _metric(before, "parley_messages_total") == 5
    assert (
        _metric(after, "parley_deliveries_total") >= _metric(before, "parley_deliveries_total") + 5
    )
    assert _metric(after, "parley_connections") == 2
    assert _metric(after, "parley_errors_total", code="invalid", transport="http") >= 1
    # store transactions are timed under their names
    assert _metric(after, "parley_store_seconds_count", engine="sqlite") > _metric(
        before, "parley_store_seconds_count", engine="sqlite"
    )
    await a.close()
    await b.close()


def _family(name: str) -> str:
    return re.sub(r"_(total|bucket|count|sum|created)$", "", name)


def test_grafana_dashboard_queries_only_metrics_the_server_exports(
    ops_server: ServerProcess,
) -> None:
    dashboard = json.loads((ROOT / "docker" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"\b((?:parley|process)_[a-z_]+)", e)}
    text = _scrape(ops_server)
    # a labelled family with no sample yet (errors, closes) is still declared by its HELP line
    declared = {_family(m) for m in re.findall(r"^# HELP (\S+)", text, re.M)}
    declared |= {_family(s.name) for f in text_string_to_metric_families(text) for s in f.samples}
    missing = {m for m in used if _family(m) not in declared}
    assert used and not missing, missing


# --- admin: disable, enable, invites --------------------------------------------------------------
async def test_disable_closes_sockets_with_4004_and_refuses_until_enabled(
    ops_server: ServerProcess,
) -> None:
    who, other_device = new_user(ops_server.http_url, "dis", devices=2)
    c1 = await RawClient.login(ops_server.ws_url, who.token)
    c2 = await RawClient.login(ops_server.ws_url, other_device.token)
    out = admin(ops_server.data_dir, "users", "disable", who.username)
    assert "disabled" in out
    assert await c1.wait_closed(WAIT_S) == 4004
    assert await c2.wait_closed(WAIT_S) == 4004
    # refused at the hello, at login and on HTTP
    again = await RawClient.connect(ops_server.ws_url)
    with pytest.raises(Closed) as closed:
        await again.hello(who.token)
        await again.recv()
    assert closed.value.code == 4004
    r = httpx.post(
        f"{ops_server.http_url}/api/v1/sessions",
        json={"username": who.username, "password": PASSWORD, "device_name": "x"},
    )
    assert r.status_code == 403 and r.json()["code"] == "account_disabled"
    r = httpx.get(
        f"{ops_server.http_url}/api/v1/devices", headers={"authorization": f"Bearer {who.token}"}
    )
    assert r.status_code == 403 and r.json()["code"] == "account_disabled"
    assert '"status": "disabled"' in admin(ops_server.data_dir, "users", "show", who.username)
    admin(ops_server.data_dir, "users", "enable", who.username)
    back = await RawClient.login(ops_server.ws_url, who.token)
    assert back.welcome is not None
    await back.close()


async def test_invite_only_registration(ops_server: ServerProcess) -> None:
    url = f"{ops_server.http_url}/api/v1/accounts"
    assert "registration: invite" in admin(ops_server.data_dir, "registration", "invite")
    name = unique_name("inv")
    r = httpx.post(url, json={"username": name, "password": PASSWORD})
    assert r.status_code == 403 and r.json()["code"] == "invite_required"
    r = httpx.post(url, json={"username": name, "password": PASSWORD, "invite": "nope"})
    assert r.status_code == 403 and r.json()["code"] == "invite_invalid"
    out = admin(ops_server.data_dir, "invite", "create")
    code = re.search(r"invite code: (\S+)", out)
    assert code is not None and f"#invite={code.group(1)}" in out
    # a taken username does not burn the invite
    (taken,) = new_user_open_or_fail(ops_server)
    r = httpx.post(url, json={"username": taken, "password": PASSWORD, "invite": code.group(1)})
    assert r.status_code == 409
    r = httpx.post(url, json={"username": name, "password": PASSWORD, "invite": code.group(1)})
    assert r.status_code == 201, r.text
    r = httpx.post(
        url, json={"username": name + "2", "password": PASSWORD, "invite": code.group(1)}
    )
    assert r.status_code == 403 and r.json()["code"] == "invite_invalid"  # one use only
    assert "registration: closed" in admin(ops_server.data_dir, "registration", "closed")
    r = httpx.post(url, json={"username": name + "3", "password": PASSWORD})
    assert r.status_code == 403 and r.json()["code"] == "registration_closed"
    login(ops_server.http_url, name)  # the invited account works
    admin(ops_server.data_dir, "registration", "open")


def test_expired_invite_is_refused_and_collected_by_gc(ops_server: ServerProcess) -> None:
    admin(ops_server.data_dir, "registration", "invite")
    out = admin(ops_server.data_dir, "invite", "create", "--ttl-hours", "0")
    code = re.search(r"invite code: (\S+)", out)
    assert code is not None
    r = httpx.post(
        f"{ops_server.http_url}/api/v1/accounts",
        json={"username": unique_name("late"), "password": PASSWORD, "invite": code.group(1)},
    )
    assert r.status_code == 403 and r.json()["code"] == "invite_invalid"
    report = json.loads(admin(ops_server.data_dir, "gc"))
    assert report["invites_expired"] == 1
    assert {"to_device_expired", "idempotency_keys_expired", "blobs_collected"} <= set(report)
    assert json.loads(admin(ops_server.data_dir, "stats"))["invites_open"] == 0


def new_user_open_or_fail(srv: ServerProcess) -> tuple[str]:
    """A username that exists (made while registration is briefly open)."""
    admin(srv.data_dir, "registration", "open")
    (u,) = new_user(srv.http_url, "taken")
    admin(srv.data_dir, "registration", "invite")
    return (u.username,)


async def test_admin_on_redis_two_nodes_disable_closes_sockets_on_both(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """``parley admin`` against the Redis store: two nodes, an invite made through one and used
    on the other, a disable that closes the user's sockets on both nodes (each node's poll)."""
    store_env = {
        **OPS_ENV,
        "PARLEY_STORE": redis_server.url,
        "PARLEY_REDIS_PREFIX": f"ops{uuid.uuid4().hex[:8]}:",
    }
    for i in range(2):
        (tmp_path / f"n{i}").mkdir()
    nodes = [ServerProcess(tmp_path / f"n{i}" / "data", env=store_env) for i in range(2)]
    for node in nodes:
        node.start()
    try:
        data = nodes[0].data_dir
        admin(data, "registration", "invite", env=store_env)
        code = re.search(r"invite code: (\S+)", admin(data, "invite", "create", env=store_env))
        assert code is not None
        name = unique_name("rds")
        r = httpx.post(
            f"{nodes[1].http_url}/api/v1/accounts",
            json={"username": name, "password": PASSWORD, "invite": code.group(1)},
        )
        assert r.status_code == 201, r.text
        tokens = [login(n.http_url, name, device=f"d{i}").token for i, n in enumerate(nodes)]
        sockets = [await RawClient.login(n.ws_url, t) for n, t in zip(nodes, tokens, strict=True)]
        admin(data, "users", "disable", name, env=store_env)
        assert [await s.wait_closed(WAIT_S) for s in sockets] == [4004, 4004]
        assert f"{name}" in admin(data, "users", "list", env=store_env)
    finally:
        for node in nodes:
            node.stop()


# --- admin: delete --------------------------------------------------------------------------------
async def test_delete_user_keeps_others_conversations_and_tombstones_messages(
    ops_server: ServerProcess,
) -> None:
    (alice,) = new_user(ops_server.http_url, "del_a")
    (bob,) = new_user(ops_server.http_url, "del_b")
    a = await RawClient.login(ops_server.ws_url, alice.token)
    b = await RawClient.login(ops_server.ws_url, bob.token)
    cid = await _group(a, [bob.user_id])  # alice owns it
    sent_a = await _send(a, cid, "from-alice")
    sent_b = await _send(b, cid, "from-bob")
    out = admin(ops_server.data_dir, "users", "delete", "--yes", alice.username)
    assert "messages tombstoned 1" in out
    assert await a.wait_closed(WAIT_S) == 4004
    entries = {e.seq: e for e in await _all_entries(b, cid)}  # type: ignore[attr-defined]
    assert isinstance(entries[sent_a.seq].body, Recalled)
    assert isinstance(entries[sent_b.seq].body, Message)
    left = [
        e.body
        for e in entries.values()
        if isinstance(e.body, Membership) and e.body.action == MembershipAction.LEFT
    ]
    assert left and left[0].actor == alice.user_id
    r = httpx.post(
        f"{ops_server.http_url}/api/v1/sessions",
        json={"username": alice.username, "password": PASSWORD, "device_name": "x"},
    )
    assert r.status_code == 401  # the username is gone
    listing = admin(ops_server.data_dir, "users", "list")
    assert alice.username not in listing and "deleted" in listing
    await b.close()


# --- backup under load, restore -------------------------------------------------------------------
async def _writer(srv: ServerProcess, who: Login, cid: bytes, tag: str, acked: list[int],
                  stop: asyncio.Event) -> None:  # fmt: skip
    c = await RawClient.login(srv.ws_url, who.token)
    i = 0
    try:
        while not stop.is_set():
            sent = await _send(c, cid, f"{tag}-{i}")
            acked.append(sent.seq)
            i += 1
    except (Closed, ConnectionClosed):
        pass
    finally:
        await c.close()


async def test_backup_under_write_load_then_restore(
    ops_server: ServerProcess, tmp_path: Path
) -> None:
    writers = [new_user(ops_server.http_url, "bk")[0] for _ in range(3)]
    owner = await RawClient.login(ops_server.ws_url, writers[0].token)
    cid = await _group(owner, [w.user_id for w in writers[1:]])
    acked: list[int] = []
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(_writer(ops_server, w, cid, f"w{i}", acked, stop))
        for i, w in enumerate(writers)
    ]
    while len(acked) < 50:
        await asyncio.sleep(0.01)
    acked_before = list(acked)
    backup_dir = tmp_path / "backup"
    out = await asyncio.to_thread(admin, ops_server.data_dir, "backup", str(backup_dir))
    assert "backup of" in out
    grew = len(acked)
    while len(acked) < grew + 20:  # writes went on during and after the copy
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.gather(*tasks)
    await owner.close()
    # restore into a fresh data dir and serve it
    fresh = tmp_path / "restored"
    admin(fresh, "restore", str(backup_dir))
    with sqlite3.connect(fresh / "parley.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    srv = ServerProcess(fresh, env=OPS_ENV)
    srv.start()
    try:
        c = await RawClient.login(srv.ws_url, writers[0].token)
        seqs = {e.seq for e in await _all_entries(c, cid)}  # type: ignore[attr-defined]
        missing = sorted(set(acked_before) - seqs)
        assert not missing, f"acknowledged before the backup but not restored: {missing[:10]}"
        await c.close()
    finally:
        srv.stop()


# --- drain on SIGTERM -----------------------------------------------------------------------------
async def test_sigterm_under_load_loses_no_ack_and_clients_resume(tmp_path: Path) -> None:
    # /readyz must fail for a while before the sockets are told to go
    srv = ServerProcess(tmp_path / "data", env={**OPS_ENV, "PARLEY_DRAIN_DELAY_S": "1.0"})
    srv.start()
    try:
        users = [new_user(srv.http_url, "drain")[0] for _ in range(4)]
        owner = await RawClient.login(srv.ws_url, users[0].token)
        cid = await _group(owner, [u.user_id for u in users[1:]])
        await owner.close()
        acked: list[int] = []
        clients = [await RawClient.login(srv.ws_url, u.token) for u in users]
        codes: list[int | None] = []

        async def load(c: RawClient, tag: str) -> None:
            i = 0
            try:
                while True:
                    sent = await _send(c, cid, f"{tag}-{i}")
                    acked.append(sent.seq)
                    i += 1
            except Closed as exc:  # (also when the close arrives while sending)
                codes.append(exc.code)

        tasks = [asyncio.create_task(load(c, f"c{i}")) for i, c in enumerate(clients)]
        while len(acked) < 100:
            await asyncio.sleep(0.01)
        assert srv.proc is not None
        srv.proc.send_signal(15)
        ready_failed = False
        for _ in range(200):  # /readyz fails while draining (until the listener goes away)
            try:
                r = httpx.get(f"{srv.http_url}/readyz", timeout=1)
            except httpx.HTTPError:
                break
            if r.status_code == 503:
                ready_failed = True
                break
            await asyncio.sleep(0.01)
        await asyncio.wait_for(asyncio.gather(*tasks), WAIT_S)
        assert srv.proc.wait(WAIT_S) == 0
        assert codes and all(code == 1001 for code in codes), codes
        assert "draining" in srv.log()
        assert ready_failed, "/readyz never failed while draining"
        srv.proc = None
        srv.start()
        # every client resumes: a new session, and the history holds every acknowledged message
        resumed = [await RawClient.login(srv.ws_url, u.token) for u in users]
        seqs = {e.seq for e in await _all_entries(resumed[1], cid)}  # type: ignore[attr-defined]
        missing = sorted(set(acked) - seqs)
        assert not missing, f"acknowledged but lost: {missing[:10]}"
        for c in resumed:
            await _send(c, cid, f"after-{id(c)}")
            await c.close()
    finally:
        srv.stop()
