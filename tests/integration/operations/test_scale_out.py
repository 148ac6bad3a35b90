"""Several ``parley serve`` nodes on one Redis (real processes, real sockets, real Redis).

Users on different nodes chat 1:1 and in a group, pushes and typing cross nodes, a node killed
with SIGKILL mid-load loses nothing acknowledged and its clients finish on the other node, and a
Redis that goes away turns requests into a typed ``unavailable`` error until it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from parley.crypto.b64 import b64e
from parley.protocol.errors import CloseCode, ErrorCode
from parley.protocol.frames import EntryPush, Error, Hello, SignalPush
from parley.protocol.ops import (
    Conversation,
    DirectOpen,
    GroupCreate,
    History,
    HistoryPage,
    Send,
    Sent,
)
from parley.protocol.records import Message
from parley.protocol.signals import PresenceSignal, TypingSignal
from parley.protocol.social import FriendAccept, FriendRequest, PresenceGet, PresenceList, Typing
from tests.support.accounts import PASSWORD, Login, new_user
from tests.support.rawclient import Closed, RawClient, envelope_for
from tests.support.redis_servers import RedisClusterServers, RedisServer, cli
from tests.support.server import ServerProcess


def _node(tmp: Path, name: str, redis_url: str, prefix: str, **env: str) -> ServerProcess:
    (tmp / name).mkdir(parents=True, exist_ok=True)
    return ServerProcess(
        tmp / name / "data",
        None,
        "--store",
        redis_url,
        "--node-id",
        name,
        env={
            "PARLEY_DIRECT_OPEN_TO_ALL": "true",
            "PARLEY_REDIS_PREFIX": prefix,
            "PARLEY_PRESENCE_TICK_S": "0.2",
            "PARLEY_PRESENCE_COALESCE_S": "0.2",
            "PARLEY_LOGIN_ACCOUNT_LIMIT": "4",
            **env,
        },
    )


@pytest.fixture(scope="module")
def nodes(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[ServerProcess]]:
    """Three nodes sharing one Redis under a key prefix of their own."""
    tmp = tmp_path_factory.mktemp("scale")
    prefix = f"so{uuid.uuid4().hex[:8]}:"
    procs = [_node(tmp, f"n{i}", redis_server.url, prefix) for i in range(3)]
    for p in procs:
        p.start()
    yield procs
    for p in procs:
        p.stop()


async def _on(node: ServerProcess, who: Login) -> RawClient:
    return await RawClient.login(node.ws_url, who.token)


async def _befriend(node: ServerProcess, owner: Login, others: list[Login]) -> None:
    """Make ``owner`` a contact of each of ``others`` (group members must be contacts, or get
    an invitation instead)."""
    oc = await _on(node, owner)
    for other in others:
        await oc.call(FriendRequest(user_id=other.user_id))
        c = await _on(node, other)
        await c.call(FriendAccept(user_id=owner.user_id))
        await c.close()
    await oc.close()


async def _entry(client: RawClient, seq: int) -> EntryPush:
    push: EntryPush = await client.next_push(EntryPush)
    while push.entry.seq != seq:
        push = await client.next_push(EntryPush)
    return push


def test_healthz_names_the_node_and_engines(nodes: list[ServerProcess]) -> None:
    for i, node in enumerate(nodes):
        body = httpx.get(f"{node.http_url}/healthz").json()
        assert body == {"status": "ok", "node": f"n{i}", "store": "redis", "broker": "RedisBroker"}
        ready = httpx.get(f"{node.http_url}/readyz")
        assert ready.status_code == 200 and ready.json() == {"status": "ready", "node": f"n{i}"}


async def test_direct_and_group_across_nodes(nodes: list[ServerProcess]) -> None:
    a, b, c = nodes
    [alice] = new_user(a.http_url, "alice")  # registered on one node, used on the others
    [bob] = new_user(b.http_url, "bob")
    [carol] = new_user(c.http_url, "carol")
    await _befriend(c, alice, [bob, carol])
    ca, cb, cc = await _on(a, alice), await _on(b, bob), await _on(c, carol)
    direct: Conversation = await ca.call(DirectOpen(user_id=bob.user_id))
    cid = direct.info.conversation_id
    again: Conversation = await cb.call(DirectOpen(user_id=alice.user_id))
    assert again.info.conversation_id == cid  # one direct conversation, whichever node asks
    sent: Sent = await ca.call(
        Send(conversation_id=cid, client_msg_id="d1", envelope=envelope_for(cid))
    )
    push = await _entry(cb, sent.seq)
    assert push.entry.sender == alice.user_id
    reply: Sent = await cb.call(
        Send(conversation_id=cid, client_msg_id="d2", envelope=envelope_for(cid))
    )
    assert reply.seq == sent.seq + 1
    await _entry(ca, reply.seq)

    group: Conversation = await ca.call(GroupCreate(members=[bob.user_id, carol.user_id]))
    gid = group.info.conversation_id
    seqs = []
    for i, client in enumerate((ca, cb, cc)):
        s: Sent = await client.call(
            Send(conversation_id=gid, client_msg_id=f"g{i}", envelope=envelope_for(gid))
        )
        seqs.append(s.seq)
        for other in {ca, cb, cc} - {client}:
            await _entry(other, s.seq)
    assert seqs == [2, 3, 4]  # gap-free across nodes
    page: HistoryPage = await cc.call(History(conversation_id=gid, after_seq=0))
    assert [e.seq for e in page.entries] == [1, 2, 3, 4]
    for cl in (ca, cb, cc):
        await cl.close()


async def test_typing_crosses_nodes(nodes: list[ServerProcess]) -> None:
    a, b, _c = nodes
    [alice] = new_user(a.http_url, "alice")
    [bob] = new_user(a.http_url, "bob")
    await _befriend(b, alice, [bob])
    ca, cb = await _on(a, alice), await _on(b, bob)
    conv: Conversation = await ca.call(GroupCreate(members=[bob.user_id]))
    cid = conv.info.conversation_id
    await ca.call(Typing(conversation_id=cid, typing=True))
    push: SignalPush = await cb.next_push(SignalPush)
    while not isinstance(push.signal, TypingSignal):
        push = await cb.next_push(SignalPush)
    assert push.signal == TypingSignal(conversation_id=cid, user_id=alice.user_id, typing=True)
    await ca.close()
    await cb.close()


def test_login_throttle_holds_across_nodes(nodes: list[ServerProcess]) -> None:
    [alice] = new_user(nodes[0].http_url, "alice")

    def attempt(node: ServerProcess, password: str) -> httpx.Response:
        return httpx.post(
            f"{node.http_url}/api/v1/sessions",
            json={"username": alice.username, "password": password, "device_name": "x"},
            timeout=30,
        )

    # 4 failures (the limit per account and IP), spread over the three nodes
    for node in (nodes[0], nodes[1], nodes[2], nodes[0]):
        assert attempt(node, "wrong password!").status_code == 401
    # every node refuses now, even the right password (each saw at most 2 failures itself)
    for node in nodes:
        r = attempt(node, PASSWORD)
        assert r.status_code == 429 and r.json()["code"] == "rate_limited"


async def test_presence_crosses_nodes(nodes: list[ServerProcess]) -> None:
    a, b, _c = nodes
    [alice] = new_user(a.http_url, "alice")
    [bob] = new_user(b.http_url, "bob")
    ca, cb = await _on(a, alice), await _on(b, bob)
    await ca.call(FriendRequest(user_id=bob.user_id))
    await cb.call(FriendAccept(user_id=alice.user_id))
    await cb.close()  # bob goes offline on node b ...
    snapshot: PresenceList = await ca.call(PresenceGet())
    assert [(s.user_id, s.online) for s in snapshot.users] == [(bob.user_id, False)]
    cb = await _on(b, bob)  # ... and comes back there: alice, on node a, is told
    while True:
        push: SignalPush = await ca.next_push(SignalPush)
        if isinstance(push.signal, PresenceSignal):
            states = {s.user_id: s.online for s in push.signal.users}
            if states.get(bob.user_id):
                break
    snapshot = await ca.call(PresenceGet())
    assert [(s.user_id, s.online) for s in snapshot.users] == [(bob.user_id, True)]
    await ca.close()
    await cb.close()


async def test_device_linked_through_the_relay_of_another_node(nodes: list[ServerProcess]) -> None:
    a, b, c = nodes
    [alice] = new_user(a.http_url, "alice")
    prov_id = secrets.token_bytes(16).hex()
    auth = {"Authorization": f"Bearer {alice.token}"}
    async with httpx.AsyncClient(timeout=30) as http:
        # the new device registers on node b, alice's device answers on node a, the new device
        # polls and logs in on node c
        r = await http.post(f"{b.http_url}/api/v1/provisioning/", json={"prov_id": prov_id})
        assert r.status_code == 201
        r = await http.post(f"{a.http_url}/api/v1/provisioning/{prov_id}/token", headers=auth)
        assert r.status_code == 201
        token = r.json()["link_token"]
        sealed = b64e(b"s" * 80)
        r = await http.put(
            f"{a.http_url}/api/v1/provisioning/{prov_id}", json={"sealed": sealed}, headers=auth
        )
        assert r.status_code == 204
        r = await http.get(f"{c.http_url}/api/v1/provisioning/{prov_id}")
        assert r.json()["sealed"] == sealed
        login = {"link_token": token, "device_name": "linked"}
        r = await http.post(f"{c.http_url}/api/v1/provisioning/session", json=login)
        assert r.status_code == 201 and r.json()["user_id"] == alice.user_id
        r = await http.post(f"{b.http_url}/api/v1/provisioning/session", json=login)
        assert r.status_code == 409 and r.json()["code"] == "link_used"  # once, on any node


async def test_sigkill_of_a_node_mid_load_loses_nothing_acknowledged(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    prefix = f"kill{uuid.uuid4().hex[:8]}:"
    a = _node(tmp_path, "ka", redis_server.url, prefix)
    b = _node(tmp_path, "kb", redis_server.url, prefix)
    a.start()
    b.start()
    try:
        senders = [new_user(a.http_url, f"s{i}")[0] for i in range(4)]
        [reader] = new_user(b.http_url, "reader")
        await _befriend(b, senders[0], [*senders[1:], reader])
        owner = await _on(a, senders[0])
        conv: Conversation = await owner.call(
            GroupCreate(members=[s.user_id for s in senders[1:]] + [reader.user_id])
        )
        cid = conv.info.conversation_id
        await owner.close()
        acked: dict[str, int] = {}
        per_sender = 60
        kill_after = 40  # acknowledged sends in all, then SIGKILL mid-stream

        async def send_all(who: Login, node: ServerProcess, start: int) -> int:
            """Send from ``start`` until the connection dies; returns the next unsent index."""
            client = await _on(node, who)
            i = start
            try:
                while i < per_sender:
                    mid = f"{who.user_id[:8]}-{i}"
                    reply = await client.request(
                        Send(conversation_id=cid, client_msg_id=mid, envelope=envelope_for(cid))
                    )
                    if isinstance(reply, Error):
                        return i
                    acked[mid] = reply.result.seq  # type: ignore[union-attr]
                    i += 1
                    if len(acked) == kill_after and a.proc is not None and a.proc.poll() is None:
                        a.kill()
            except Exception:  # the node died under the request
                return i
            finally:
                with contextlib.suppress(Exception):
                    await client.close()
            return i

        stopped = await asyncio.gather(*(send_all(s, a, 0) for s in senders))
        assert a.proc is not None and a.proc.poll() is not None, "node a was killed mid-load"
        assert len(acked) >= kill_after
        # the clients move to node b and resend from where they stopped (the unacknowledged
        # message first, with its client_msg_id: a duplicate if it had in fact been stored)
        await asyncio.gather(*(send_all(s, b, i) for s, i in zip(senders, stopped, strict=True)))
        assert len(acked) == per_sender * len(senders)
        rc = await _on(b, reader)
        entries = []
        after = 0
        while True:
            page: HistoryPage = await rc.call(History(conversation_id=cid, after_seq=after))
            entries += page.entries
            if not page.more:
                break
            after = page.entries[-1].seq
        await rc.close()
        seqs = [e.seq for e in entries]
        assert seqs == list(range(1, len(seqs) + 1))  # gap-free
        messages = [e for e in entries if e.sender_device is not None]
        assert len(messages) == per_sender * len(senders)  # nothing lost, nothing duplicated
        assert set(acked.values()) <= set(seqs)
    finally:
        a.kill()
        b.stop()


async def test_redis_down_is_unavailable_then_recovers(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    node = _node(tmp_path, "solo", redis.url, "down:")
    try:
        node.start()
        [alice] = new_user(node.http_url, "alice")
        client = await _on(node, alice)
        conv: Conversation = await client.call(GroupCreate(members=[]))
        cid = conv.info.conversation_id
        redis.kill()
        reply = await client.request(
            Send(conversation_id=cid, client_msg_id="x1", envelope=envelope_for(cid)), timeout=30
        )
        assert isinstance(reply, Error) and reply.code == ErrorCode.UNAVAILABLE
        r = httpx.post(
            f"{node.http_url}/api/v1/sessions",
            json={"username": alice.username, "password": "whatever-long", "device_name": "x"},
            timeout=30,
        )
        assert r.status_code == 503 and r.json()["code"] == "unavailable"
        probe = await RawClient.connect(node.ws_url)  # a new socket: its hello cannot be checked
        await probe.send(Hello(token=alice.token, v=1, client="probe"))
        assert await probe.wait_closed(timeout=60) == CloseCode.TRY_AGAIN_LATER
        redis.start()  # same directory: its AOF comes back
        # the broker noticed its lost subscription, subscribed again and asks its clients to
        # resync (1012), since pushes may have been missed meanwhile
        assert await client.wait_closed(timeout=60) == CloseCode.SERVICE_RESTART
        client = await _on(node, alice)
        reply = await client.request(
            Send(conversation_id=cid, client_msg_id="x1", envelope=envelope_for(cid)), timeout=30
        )
        assert not isinstance(reply, Error), reply
        assert reply.result.seq == 2  # type: ignore[union-attr]
        await client.close()
    finally:
        node.stop()
        redis.stop()


def test_startup_warns_when_redis_keeps_nothing(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "volatile", None, "--appendonly", "no")  # and --save ""
    redis.start()
    node = _node(tmp_path, "v", redis.url, "volatile:")
    try:
        node.start()
        assert "redis_not_persistent" in node.log()
        assert "a Redis restart loses everything" in node.log()
    finally:
        node.stop()
        redis.stop()


async def test_primary_killed_with_wait_replicas_loses_nothing_acknowledged(tmp_path: Path) -> None:
    """``--redis-wait-replicas 1``: a reply means the replica has the write. The primary is
    SIGKILLed mid-load and the replica promoted by hand (``REPLICAOF NO ONE``, no Sentinel); a
    node on the promoted replica holds every acknowledged message."""
    primary = RedisServer(tmp_path / "primary")
    primary.start()
    replica = RedisServer(tmp_path / "replica", None, "--replicaof", "127.0.0.1", str(primary.port))
    replica.start()
    deadline = asyncio.get_running_loop().time() + 60
    while "master_link_status:up" not in cli(replica.port, "info", "replication"):
        assert asyncio.get_running_loop().time() < deadline, "replica never linked"
        await asyncio.sleep(0.1)
    node = _node(tmp_path, "w1", primary.url, "wait:", PARLEY_REDIS_WAIT_REPLICAS="1")
    later: ServerProcess | None = None
    try:
        node.start()
        senders = [new_user(node.http_url, f"w{i}")[0] for i in range(3)]
        await _befriend(node, senders[0], senders[1:])
        owner = await _on(node, senders[0])
        conv: Conversation = await owner.call(GroupCreate(members=[s.user_id for s in senders[1:]]))
        cid = conv.info.conversation_id
        await owner.close()
        acked: dict[str, bytes] = {}  # client_msg_id -> envelope

        async def send(who: Login) -> None:
            client = await _on(node, who)
            try:
                for i in range(200):
                    mid = f"{who.user_id[:8]}-{i}"
                    env = envelope_for(cid)
                    reply = await client.request(
                        Send(conversation_id=cid, client_msg_id=mid, envelope=env), timeout=30
                    )
                    if isinstance(reply, Error):
                        return
                    acked[mid] = env
                    if len(acked) == 60:
                        primary.kill()
            except Exception:  # the node lost its Redis under the request
                return
            finally:
                with contextlib.suppress(Exception):
                    await client.close()

        await asyncio.gather(*(send(s) for s in senders))
        assert primary.proc is not None and primary.proc.poll() is not None
        assert len(acked) >= 60
        assert cli(replica.port, "replicaof", "no", "one") == "OK"  # promote by hand
        later = _node(tmp_path, "w2", replica.url, "wait:")
        later.start()
        reader = await _on(later, senders[1])
        entries = []
        after = 0
        while True:
            page: HistoryPage = await reader.call(History(conversation_id=cid, after_seq=after))
            entries += page.entries
            if not page.more:
                break
            after = page.entries[-1].seq
        await reader.close()
        seqs = [e.seq for e in entries]
        assert seqs == list(range(1, len(seqs) + 1))
        stored = {e.body.envelope for e in entries if isinstance(e.body, Message)}
        assert set(acked.values()) <= stored  # every acknowledged message survived
    finally:
        node.kill()
        if later is not None:
            later.stop()
        primary.stop()
        replica.stop()


async def test_two_nodes_on_a_redis_cluster(
    redis_cluster: RedisClusterServers, tmp_path: Path
) -> None:
    """The same code on a 3-primary cluster: state in every shard, pushes on sharded channels
    (one subscriber per primary on each node), typing across nodes."""
    prefix = f"cl{uuid.uuid4().hex[:8]}:"
    a = _node(tmp_path, "ca", redis_cluster.url, prefix)
    b = _node(tmp_path, "cb", redis_cluster.url, prefix)
    a.start()
    b.start()
    try:
        users = [new_user(a.http_url, f"c{i}")[0] for i in range(4)]
        await _befriend(b, users[0], users[1:])
        clients = [await _on(a if i % 2 else b, u) for i, u in enumerate(users)]
        conv: Conversation = await clients[0].call(
            GroupCreate(members=[u.user_id for u in users[1:]])
        )
        cid = conv.info.conversation_id
        for i, client in enumerate(clients):
            sent: Sent = await client.call(
                Send(conversation_id=cid, client_msg_id=f"c{i}", envelope=envelope_for(cid))
            )
            assert sent.seq == i + 2
            for other in clients:
                if other is not client:
                    await _entry(other, sent.seq)
        await clients[1].call(Typing(conversation_id=cid, typing=True))
        push: SignalPush = await clients[0].next_push(SignalPush)
        while not isinstance(push.signal, TypingSignal):
            push = await clients[0].next_push(SignalPush)
        assert push.signal.user_id == users[1].user_id
        for client in clients:
            await client.close()
    finally:
        a.stop()
        b.stop()


async def test_cluster_failover_under_the_broker(tmp_path: Path) -> None:
    """A dedicated 3+3 cluster: the primary owning a user's slot is SIGKILLed; its replica takes
    over; the node holding the user's socket notices its sharded subscription is gone, asks the
    client to resync (1012), and pushes from the other node reach the reconnected client."""
    cluster = RedisClusterServers(tmp_path / "cluster")
    cluster.start()
    prefix = f"fo{uuid.uuid4().hex[:6]}:"
    a = _node(tmp_path, "fa", cluster.url, prefix)
    b = _node(tmp_path, "fb", cluster.url, prefix)
    try:
        a.start()
        b.start()
        [alice] = new_user(a.http_url, "alice")
        [bob] = new_user(b.http_url, "bob")
        await _befriend(a, alice, [bob])
        ca, cb = await _on(a, alice), await _on(b, bob)
        conv: Conversation = await ca.call(GroupCreate(members=[bob.user_id]))
        cid = conv.info.conversation_id
        channel = f"{prefix}{{u:{bob.user_id}}}:push"
        slot = int(cli(cluster.ports[0], "cluster", "keyslot", channel))
        primary_port = _slot_owner(cluster, slot)
        next(n for n in cluster.nodes if n.port == primary_port).kill()
        assert await cb.wait_closed(timeout=60) == 1012  # b noticed, resubscribed, resync
        deadline = asyncio.get_running_loop().time() + 60
        attempt = 0
        while True:  # the cluster fails over (node timeout 2 s), then serves writes again
            attempt += 1
            with contextlib.suppress(Exception):
                await ca.close()
            try:
                # (node a may have asked for a resync too; a hello while the slot has no
                # primary yet is closed 1013 "retry", as a real client would be)
                ca, cb = await _on(a, alice), await _on(b, bob)
                reply = await ca.request(
                    Send(
                        conversation_id=cid, client_msg_id=f"f{attempt}", envelope=envelope_for(cid)
                    ),
                    timeout=30,
                )
            except Closed:  # a resync (1012) or a retry (1013) came now: try again
                reply = Error(id=0, code=ErrorCode.UNAVAILABLE, message="closed")
            if not isinstance(reply, Error):
                break
            assert asyncio.get_running_loop().time() < deadline, reply
            with contextlib.suppress(Exception):
                await cb.close()
            await asyncio.sleep(0.5)
        await _entry(cb, reply.result.seq)  # type: ignore[union-attr]
        await ca.close()
        await cb.close()
    finally:
        a.stop()
        b.stop()
        cluster.stop()


def _slot_owner(cluster: RedisClusterServers, slot: int) -> int:
    """The port of the primary serving ``slot`` (from CLUSTER SLOTS of any live node)."""
    for line_set in (cli(p, "cluster", "slots") for p in cluster.ports):
        lines = line_set.splitlines()
        for i in range(0, len(lines) - 3):
            if lines[i].isdigit() and lines[i + 1].isdigit():
                lo, hi = int(lines[i]), int(lines[i + 1])
                if lo <= slot <= hi and lines[i + 3].isdigit():
                    return int(lines[i + 3])
    raise AssertionError(f"no owner of slot {slot}")
