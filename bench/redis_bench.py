"""Redis against SQLite, side by side (figures only; nothing here asserts a speed).

    .venv/bin/python bench/redis_bench.py store   [--appends 20000] [--inflight 64] [--fsync everysec]
    .venv/bin/python bench/redis_bench.py sync    [--conversations 1000]
    .venv/bin/python bench/redis_bench.py nodes   [--nodes 1] [--pairs 16] [--window 16] [--seconds 10]
    .venv/bin/python bench/redis_bench.py group   [--nodes 2] [--members 20] [--seconds 10]

``store``: appends/s and ack latency p50/p99 of the Store engines alone (one asyncio process,
``--inflight`` appends in flight), and Redis memory per stored message (INFO used_memory before
and after, divided by the appends; the idempotency key is included, as in production).
``sync``: an account in ``--conversations`` conversations, the reads of an initial sync
(``conversation_states``) on each engine.
``nodes``: real ``parley serve`` processes, each pinned to its own core with ``taskset`` (node i
on core i mod cores), SQLite for one node or Redis for 1..N nodes; senders on node i send 1:1
to recipients on node i+1 (cross-node when N > 1) with ``--window`` sends in flight; prints
msgs/s, ack p50/p99 and server CPU per message (from /proc of the node PIDs).
``group``: one group of ``--members`` spread over the nodes; every member sends; deliveries/s.

Every Redis server here is started by this script on a free loopback port (never 6379) and
stopped by its PID; so are the nodes.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import click

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.redis_servers import RedisServer, cli  # noqa: E402

NOW = 1_800_000_000_000
TICKS = os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def redis_used_memory(port: int) -> int:
    for line in cli(port, "info", "memory").splitlines():
        if line.startswith("used_memory:"):
            return int(line.split(":")[1])
    return 0


# --- store -------------------------------------------------------------------------------------
async def _appends(store: Any, n: int, inflight: int) -> tuple[float, list[float]]:
    users = [
        (await store.create_user(f"b{i}-{uuid.uuid4().hex[:6]}", b"h", NOW)).user_id
        for i in range(16)
    ]
    convs = []
    for i in range(0, 16, 2):
        cid = os.urandom(16)
        await store.create_group(users[i], [users[i + 1]], b"", cid, NOW)
        convs.append((cid, users[i]))
    lat: list[float] = []
    sem = asyncio.Semaphore(inflight)
    env = os.urandom(256)

    async def one(i: int) -> None:
        cid, sender = convs[i % len(convs)]
        async with sem:
            t0 = time.perf_counter()
            await store.append_message(cid, sender, 1, f"m{i}", env, NOW)
            lat.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return n / (time.perf_counter() - t0), lat


@click.group()
def main() -> None:
    """Redis against SQLite."""


@main.command()
@click.option("--appends", default=20000)
@click.option("--inflight", default=64)
@click.option("--fsync", type=click.Choice(["always", "everysec"]), default="everysec")
def store(appends: int, inflight: int, fsync: str) -> None:
    """Store engines alone: appends/s, ack latency, Redis memory per message."""
    from parley_server.store.redis import RedisStore
    from parley_server.store.sqlite import SqliteStore

    tmp = Path(tempfile.mkdtemp(prefix="parley-rbench-"))
    server = RedisServer(tmp / "redis", None, "--appendfsync", fsync)
    server.start()
    try:

        async def run() -> None:
            sq = SqliteStore(tmp / "s.db")
            await sq.open()
            rate, lat = await _appends(sq, appends, inflight)
            await sq.close()
            print(f"sqlite          {rate:9.0f} appends/s  p50 {pct(lat, .5)*1e3:6.2f} ms"
                  f"  p99 {pct(lat, .99)*1e3:6.2f} ms")  # fmt: skip
            rs = RedisStore(server.url, prefix="bench:", sweep_every_s=0)
            await rs.open()
            before = redis_used_memory(server.port)
            rate, lat = await _appends(rs, appends, inflight)
            after = redis_used_memory(server.port)
            await rs.close()
            print(f"redis ({fsync:8}) {rate:9.0f} appends/s  p50 {pct(lat, .5)*1e3:6.2f} ms"
                  f"  p99 {pct(lat, .99)*1e3:6.2f} ms")  # fmt: skip
            print(f"redis memory per stored message (256 B envelope + idempotency key):"
                  f" {(after - before) / appends:.0f} B")  # fmt: skip

        asyncio.run(run())
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"command: bench/redis_bench.py store --appends {appends} --inflight {inflight}"
          f" --fsync {fsync}")  # fmt: skip


@main.command()
@click.option("--conversations", default=1000)
def sync(conversations: int) -> None:
    """Initial sync of an account in N conversations: conversation_states on each engine."""
    from parley_server.store.redis import RedisStore
    from parley_server.store.sqlite import SqliteStore

    tmp = Path(tempfile.mkdtemp(prefix="parley-rbench-"))
    server = RedisServer(tmp / "redis")
    server.start()

    async def fill(st: Any) -> str:
        me = (await st.create_user("me", b"h", NOW)).user_id
        other = (await st.create_user("other", b"h", NOW)).user_id
        await asyncio.gather(
            *(st.create_group(me, [other], b"", os.urandom(16), NOW) for _ in range(conversations))
        )
        return me

    async def run() -> None:
        for name, st in (
            ("sqlite", SqliteStore(tmp / "s.db")),
            ("redis", RedisStore(server.url, prefix="sync:", sweep_every_s=0)),
        ):
            await st.open()
            me = await fill(st)
            times = []
            for _ in range(5):
                t0 = time.perf_counter()
                states = await st.conversation_states(me)
                times.append(time.perf_counter() - t0)
            events = []
            t0 = time.perf_counter()
            after = 0
            while True:
                page = await st.events_after(me, after, 500)
                if not page:
                    break
                events += page
                after = page[-1].seq
            ev_s = time.perf_counter() - t0
            print(f"{name:7} {len(states)} conversation states: median {statistics.median(times)*1e3:7.1f} ms;"
                  f" {len(events)} events in pages of 500: {ev_s*1e3:7.1f} ms")  # fmt: skip
            await st.close()

    try:
        asyncio.run(run())
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"command: bench/redis_bench.py sync --conversations {conversations}")


# --- real nodes --------------------------------------------------------------------------------
class Node:
    def __init__(self, i: int, tmp: Path, store: str | None, prefix: str) -> None:
        from tests.support.server import free_port

        self.port = free_port()
        self.dir = tmp / f"node{i}"
        self.dir.mkdir(parents=True)
        core = str(i % (os.cpu_count() or 1))
        args = ["taskset", "-c", core, sys.executable, "-m", "parley_client.cli.main", "serve",
                "--port", str(self.port), "--data-dir", str(self.dir / "data"), "--log-level",
                "warning", "--node-id", f"n{i}"]  # fmt: skip
        if store:
            args += ["--store", store]
        env = {
            **os.environ,
            "PARLEY_REDIS_PREFIX": prefix,
            "PARLEY_DIRECT_OPEN_TO_ALL": "true",
            "PARLEY_REGISTER_IP_LIMIT": "1000000",
        }
        self.proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
        )
        import httpx

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("node did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def _pairs_load(
    nodes: list[Node], pairs: int, window: int, seconds: float
) -> tuple[int, list[float], float]:
    from parley.protocol.ops import DirectOpen, Send
    from tests.support.accounts import new_user
    from tests.support.rawclient import RawClient, envelope_for

    senders, receivers, convs = [], [], []
    for p in range(pairs):
        a, b = nodes[p % len(nodes)], nodes[(p + 1) % len(nodes)]
        [s] = new_user(a.url, "s")
        [r] = new_user(b.url, "r")
        sc = await RawClient.login(a.url.replace("http", "ws") + "/ws", s.token)
        rc = await RawClient.login(b.url.replace("http", "ws") + "/ws", r.token)
        conv = await sc.call(DirectOpen(user_id=r.user_id))
        senders.append(sc)
        receivers.append(rc)
        convs.append(conv.info.conversation_id)
    lat: list[float] = []
    sent = 0
    stop_at = time.monotonic() + seconds
    cpu0 = sum(cpu_s(n.proc.pid) for n in nodes)

    async def drain(rc: Any) -> None:
        while time.monotonic() < stop_at + 2:
            try:
                await rc.recv(timeout=1)
            except Exception:
                continue

    async def pump(i: int) -> None:
        """``window`` Send requests in flight on one socket; one reader matches the replies."""
        nonlocal sent
        from parley.protocol.frames import Error, Reply, Request

        sc, cid = senders[i], convs[i]
        started: dict[int, float] = {}
        free = asyncio.Semaphore(window)

        async def reader() -> None:
            nonlocal sent
            while time.monotonic() < stop_at + 5:
                try:
                    f = await sc.recv(timeout=1)
                except TimeoutError:
                    if time.monotonic() >= stop_at and not started:
                        return
                    continue
                if isinstance(f, (Reply, Error)) and f.id in started:
                    lat.append(time.perf_counter() - started.pop(f.id))
                    sent += isinstance(f, Reply)
                    free.release()
                    if time.monotonic() >= stop_at and not started:
                        return

        rd = asyncio.ensure_future(reader())
        k = 0
        while time.monotonic() < stop_at:
            await free.acquire()
            k += 1
            started[k] = time.perf_counter()
            op = Send(
                conversation_id=cid, client_msg_id=f"{i}-{k}", envelope=envelope_for(cid, 256)
            )
            await sc.send(Request(id=k, op=op))
        await rd

    t0 = time.monotonic()
    drains = [asyncio.ensure_future(drain(rc)) for rc in receivers]
    await asyncio.gather(*(pump(i) for i in range(pairs)))
    elapsed = time.monotonic() - t0
    cpu = sum(cpu_s(n.proc.pid) for n in nodes) - cpu0
    for d in drains:
        d.cancel()
    return sent, lat, cpu / max(1, sent) * 1e6 + 0 * elapsed


@main.command()
@click.option("--nodes", "n_nodes", default=1)
@click.option("--engine", type=click.Choice(["sqlite", "redis"]), default="redis")
@click.option("--pairs", default=16)
@click.option("--window", default=16)
@click.option("--seconds", default=10.0)
def nodes(n_nodes: int, engine: str, pairs: int, window: int, seconds: float) -> None:
    """1:1 messages through real nodes (pinned with taskset), SQLite (1 node) or Redis."""
    if engine == "sqlite" and n_nodes != 1:
        raise click.UsageError("SQLite serves one node")
    tmp = Path(tempfile.mkdtemp(prefix="parley-rbench-"))
    redis = (
        RedisServer(tmp / "redis", None, "--appendfsync", "everysec") if engine == "redis" else None
    )
    if redis:
        redis.start()
    prefix = f"nb{uuid.uuid4().hex[:6]}:"
    started: list[Node] = []
    try:
        for i in range(n_nodes):
            started.append(Node(i, tmp, redis.url if redis else None, prefix))
        t0 = time.monotonic()
        sent, lat, cpu_us = asyncio.run(_pairs_load(started, pairs, window, seconds))
        del t0
        print(f"{engine} x{n_nodes} node(s): {sent / seconds:8.0f} msgs/s  ack p50 {pct(lat, .5)*1e3:6.1f} ms"
              f"  p99 {pct(lat, .99)*1e3:6.1f} ms  server CPU {cpu_us:6.0f} us/msg")  # fmt: skip
    finally:
        for n in started:
            n.stop()
        if redis:
            redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"command: bench/redis_bench.py nodes --nodes {n_nodes} --engine {engine} --pairs {pairs}"
          f" --window {window} --seconds {seconds}  (nodes pinned: taskset -c i; load generator unpinned)")  # fmt: skip


@main.command()
@click.option("--nodes", "n_nodes", default=2)
@click.option("--engine", type=click.Choice(["sqlite", "redis"]), default="redis")
@click.option("--members", default=20)
@click.option("--seconds", default=10.0)
def group(n_nodes: int, engine: str, members: int, seconds: float) -> None:
    """One group spread over the nodes; every member sends in turn; deliveries/s."""
    from parley.protocol.frames import EntryPush
    from parley.protocol.ops import GroupCreate, Send
    from parley.protocol.social import FriendAccept, FriendRequest
    from tests.support.accounts import new_user
    from tests.support.rawclient import RawClient, envelope_for

    if engine == "sqlite":
        n_nodes = 1
    tmp = Path(tempfile.mkdtemp(prefix="parley-rbench-"))
    redis = (
        RedisServer(tmp / "redis", None, "--appendfsync", "everysec") if engine == "redis" else None
    )
    if redis:
        redis.start()
    started: list[Node] = []
    prefix = f"gb{uuid.uuid4().hex[:6]}:"

    async def run() -> tuple[int, int]:
        users = [new_user(started[i % n_nodes].url, "g")[0] for i in range(members)]
        clients = [
            await RawClient.login(started[i % n_nodes].url.replace("http", "ws") + "/ws", u.token)
            for i, u in enumerate(users)
        ]
        for u, c in zip(users[1:], clients[1:], strict=True):
            await clients[0].call(FriendRequest(user_id=u.user_id))
            await c.call(FriendAccept(user_id=users[0].user_id))
        conv = await clients[0].call(GroupCreate(members=[u.user_id for u in users[1:]]))
        cid = conv.info.conversation_id
        from parley.protocol.frames import Error, Reply, Request

        delivered = 0
        stop_at = time.monotonic() + seconds
        waiting: dict[tuple[int, int], asyncio.Future[None]] = {}

        async def receive(ci: int, c: Any) -> None:
            nonlocal delivered
            while time.monotonic() < stop_at + 2:
                try:
                    f = await c.recv(timeout=1)
                except TimeoutError:
                    continue
                if isinstance(f, EntryPush):
                    delivered += 1
                elif isinstance(f, (Reply, Error)):
                    fut = waiting.pop((ci, f.id), None)
                    if fut is not None:
                        fut.set_result(None)

        recv = [asyncio.ensure_future(receive(i, c)) for i, c in enumerate(clients)]
        sent = 0
        k = 0
        while time.monotonic() < stop_at:
            ci = k % members
            k += 1
            fut = asyncio.get_running_loop().create_future()
            waiting[(ci, k)] = fut
            op = Send(conversation_id=cid, client_msg_id=f"g{k}", envelope=envelope_for(cid, 256))
            await clients[ci].send(Request(id=k, op=op))
            await asyncio.wait_for(fut, 30)
            sent += 1
        await asyncio.sleep(2)
        for r in recv:
            r.cancel()
        return sent, delivered

    try:
        for i in range(n_nodes):
            started.append(Node(i, tmp, redis.url if redis else None, prefix))
        cpu0 = sum(cpu_s(n.proc.pid) for n in started)
        sent, delivered = asyncio.run(run())
        cpu = sum(cpu_s(n.proc.pid) for n in started) - cpu0
        print(f"{engine} x{n_nodes}: group of {members}, {sent / seconds:6.0f} msgs/s sent one at a time,"
              f" {delivered / seconds:8.0f} deliveries/s, server CPU {cpu / max(1, delivered) * 1e6:5.0f} us/delivery")  # fmt: skip
    finally:
        for n in started:
            n.stop()
        if redis:
            redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"command: bench/redis_bench.py group --nodes {n_nodes} --engine {engine} --members {members} --seconds {seconds}"
    )


if __name__ == "__main__":
    main()
