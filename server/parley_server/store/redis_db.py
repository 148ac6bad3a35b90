"""The Redis connection every Redis domain engine shares: one client (single Redis or Redis
Cluster, chosen by the URL), the key layout, Lua scripts, named transactions, the intent log for
operations that span slots, and the durability settings.

Key layout: every key of one conversation carries the hash tag ``{c:<hex id>}``, every key of
one user ``{u:<user id>}``, so a script touching one conversation (or one user) runs in one slot
and the same code works on one Redis and on a Redis Cluster. See docs/scale-out.md.

Operations that span slots (a membership change touches the conversation and each member's event
timeline and conversation index) run through the intent log: the operation's arguments are
written first to ``{o}:intents`` (with a due time in ``{o}:due``), then every step runs as an
idempotent script keyed by the operation id, then the intent is deleted. If the node dies
halfway, another node's sweeper finds the intent when it is due and runs the same steps again;
the steps that already ran are no-ops, so the outcome is the one the first node would have had.

Errors: a Redis that cannot be reached (or a cluster that is down) raises ``StoreUnavailable``
after the client's bounded retries, never hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

import msgspec
import redis.asyncio as aioredis
import redis.exceptions as rex
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from parley_server.logging import get_logger
from parley_server.store.records import StoreError, StoreUnavailable
from parley_server.store.transactions import timed

T = TypeVar("T")
log = get_logger("parley.store.redis")

Client = aioredis.Redis | RedisCluster

UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    rex.ConnectionError,
    rex.TimeoutError,
    rex.ClusterDownError,
    rex.TryAgainError,
    rex.BusyLoadingError,
    rex.MasterDownError,
    rex.ReadOnlyError,
    OSError,
    TimeoutError,
)

INTENT_DUE_S = 10.0
"""An intent not finished this long after it was written is taken over by a sweeper."""
OP_TTL_S = 7 * 24 * 3600
"""How long a step's dedupe marker is kept: far beyond any sweeper delay."""

_pack = msgspec.msgpack.Encoder().encode
_unpack = msgspec.msgpack.decode


def is_cluster_url(url: str) -> bool:
    return url.startswith("redis+cluster://")


def make_client(url: str, *, timeout_s: float = 5.0) -> Client:
    """``redis://HOST:PORT/DB`` (one Redis) or ``redis+cluster://HOST:PORT,HOST:PORT`` (a
    cluster, any reachable nodes). Bounded timeouts and retries: a dead Redis fails fast."""
    retry = Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=3)
    if is_cluster_url(url):
        netloc = url[len("redis+cluster://") :].split("/", 1)[0]
        nodes = []
        for hp in netloc.split(","):
            host, _, port = hp.rpartition(":")
            nodes.append(ClusterNode(host or "127.0.0.1", int(port or 6379)))
        return RedisCluster(
            startup_nodes=nodes,
            socket_timeout=timeout_s,
            socket_connect_timeout=min(2.0, timeout_s),
            retry=retry,
            # per node; redis-py's cluster pool raises when exhausted instead of waiting, so
            # leave room for every request in flight
            max_connections=1024,
        )
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"not a Redis URL: {url!r}")
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=64,
        timeout=timeout_s,
        socket_timeout=timeout_s,
        socket_connect_timeout=min(2.0, timeout_s),
        retry=retry,
        retry_on_error=[rex.ConnectionError, rex.TimeoutError],
    )
    return aioredis.Redis(connection_pool=pool)


def unavailable_on_redis_errors(
    fn: Callable[..., Coroutine[Any, Any, T]],
) -> Callable[..., Coroutine[Any, Any, T]]:
    @functools.wraps(fn)
    async def run(*args: Any, **kwargs: Any) -> T:
        try:
            return await fn(*args, **kwargs)
        except UNAVAILABLE_ERRORS as exc:
            raise StoreUnavailable(f"redis unavailable: {exc!r}") from exc

    return run


class RedisErrors:
    """Mixin: every public coroutine method defined by a subclass turns Redis connection
    failures into ``StoreUnavailable`` (a typed ``unavailable`` error for the client)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, attr in list(vars(cls).items()):
            if not name.startswith("_") and asyncio.iscoroutinefunction(attr):
                setattr(cls, name, unavailable_on_redis_errors(attr))


def b(value: bytes | str | None) -> str:
    """Decode a reply value to str ('' for None)."""
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


class Keys:
    """The key layout (one prefix per installation, so several may share one Redis)."""

    def __init__(self, prefix: str) -> None:
        self.p = prefix

    def user(self, uid: str) -> str:
        return f"{self.p}{{u:{uid}}}"

    def conv(self, cid: bytes) -> str:
        return f"{self.p}{{c:{cid.hex()}}}"

    def name(self, username: str) -> str:
        return f"{self.p}{{n:{username}}}"

    def session(self, token_hash: bytes) -> str:
        return f"{self.p}{{s:{token_hash.hex()}}}"

    def pair(self, lo: str, hi: str) -> str:
        return f"{self.p}{{d:{lo}:{hi}}}"

    @property
    def social(self) -> str:
        return f"{self.p}{{social}}"

    @property
    def intents(self) -> str:
        return f"{self.p}{{o}}:intents"

    @property
    def due(self) -> str:
        return f"{self.p}{{o}}:due"

    @property
    def registry(self) -> str:
        """Slot of installation-wide indexes (to-device queues, for expiry)."""
        return f"{self.p}{{x}}"


Saga = Callable[[str, dict[str, Any]], Awaitable[Any]]


class RedisDatabase(RedisErrors):
    """One Redis (or cluster) connection shared by the Redis domain engines."""

    engine = "redis"

    def __init__(
        self,
        url: str,
        prefix: str = "parley:",
        wait_replicas: int = 0,
        wait_timeout_ms: int = 1000,
        sweep_every_s: float = 5.0,
    ) -> None:
        self.url = url
        self.k = Keys(prefix)
        self.wait_replicas = wait_replicas
        self.wait_timeout_ms = wait_timeout_ms
        self.sweep_every_s = sweep_every_s
        self._client: Client | None = None
        self._scripts: dict[str, Any] = {}
        self._sagas: dict[str, Saga] = {}
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def cluster(self) -> bool:
        return is_cluster_url(self.url)

    @property
    def r(self) -> Any:
        """The client (typed Any: redis-py's return types are unions of sync and async)."""
        if self._client is None:
            raise StoreError("store is not open")
        return self._client

    # --- lifecycle ---------------------------------------------------------------------------
    async def open(self) -> None:
        if self._client is not None:
            return
        client = make_client(self.url)
        if isinstance(client, RedisCluster):
            await client.initialize()
        self._client = client
        try:
            await self._check_persistence()
        except UNAVAILABLE_ERRORS as exc:
            await self._drop_client()
            raise StoreUnavailable(f"redis unavailable: {exc!r}") from exc
        if self.sweep_every_s > 0:
            self._sweeper = asyncio.create_task(self._sweep_loop())

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._sweeper
            self._sweeper = None
        await self._drop_client()

    async def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def _check_persistence(self) -> None:
        """Read the persistence settings of every primary; warn when an acknowledged write
        could be lost by a Redis restart."""
        for node, conf in (await self._config_get("appendonly", "appendfsync", "save")).items():
            aof = conf.get("appendonly", "no") == "yes"
            fsync = conf.get("appendfsync", "")
            save = conf.get("save", "")
            if not aof and not save:
                log.warning(
                    "redis_not_persistent",
                    node=node,
                    detail="appendonly=no and no RDB snapshots: a Redis restart loses everything"
                    " acknowledged (only acceptable for tests)",
                )
            elif not aof:
                log.warning(
                    "redis_snapshots_only",
                    node=node,
                    save=save,
                    detail="appendonly=no: a Redis crash loses what was acknowledged since the"
                    " last snapshot; use appendonly yes",
                )
            elif fsync == "no":
                log.warning(
                    "redis_appendfsync_no",
                    node=node,
                    detail="appendfsync=no: a power loss may lose ~30 s of acknowledged writes",
                )
            elif fsync == "everysec":
                log.info(
                    "redis_appendfsync_everysec",
                    node=node,
                    detail="a power loss or kernel crash may lose ~1 s of acknowledged writes"
                    " (a Redis process crash loses none)",
                )
            if self.wait_replicas:
                log.info("redis_wait_replicas", replicas=self.wait_replicas)

    async def _config_get(self, *names: str) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        client = self.r
        if isinstance(client, RedisCluster):
            for node in client.get_primaries():
                conf = await client.config_get(*names, target_nodes=node)
                out[node.name] = {b(k): b(v) for k, v in dict(conf).items()}
        else:
            conf = await client.config_get(*names)
            out[self.url] = {b(k): b(v) for k, v in dict(conf).items()}
        return out

    # --- scripts and named transactions ------------------------------------------------------
    def script(self, name: str, lua: str) -> Any:
        """The registered script (EVALSHA, loaded on first use) for this client."""
        s = self._scripts.get(name)
        if s is None:
            s = self.r.register_script(lua)
            self._scripts[name] = s
        return s

    async def run(self, name: str, lua: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """One atomic script (all ``keys`` in one slot) as the write transaction ``name``;
        with ``wait_replicas`` it returns only after WAIT confirmed that many replicas."""
        outer = _outer.get()
        reported = name if outer is None else f"{outer}/{name}"
        return await timed("redis", reported, self._run(name, lua, keys, args))

    async def _run(self, name: str, lua: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        s = self.script(name, lua)
        if not self.wait_replicas:
            return await s(keys=list(keys), args=list(args))
        client = self.r
        if isinstance(client, RedisCluster):
            result, acked = await self._eval_wait_on_node(client, lua, keys, args)
        else:
            # one pipeline: the script and the WAIT go out on the same connection, so the WAIT
            # covers this write (a WAIT sent separately may cover nothing)
            async with client.pipeline(transaction=False) as pipe:
                await s(keys=list(keys), args=list(args), client=pipe)
                pipe.execute_command("WAIT", self.wait_replicas, self.wait_timeout_ms)
                result, acked = await pipe.execute()
        if int(acked) < self.wait_replicas:
            raise StoreUnavailable(
                f"write reached {int(acked)} of {self.wait_replicas} replicas in time"
            )
        return result

    async def _eval_wait_on_node(
        self, client: RedisCluster, lua: str, keys: Sequence[str], args: Sequence[Any]
    ) -> tuple[Any, Any]:
        """EVAL then WAIT on one connection of the slot's primary (redis-py refuses scripts in
        cluster pipelines)."""
        node = client.get_node_from_key(keys[0])
        if node is None:
            raise StoreUnavailable("no primary serves this slot")
        conn = node.acquire_connection()
        ok = False
        try:
            await conn.connect()  # type: ignore[no-untyped-call]
            await conn.send_packed_command(
                conn.pack_commands(
                    [
                        ("EVAL", lua, len(keys), *keys, *args),
                        ("WAIT", self.wait_replicas, self.wait_timeout_ms),
                    ]
                )
            )
            result = await conn.read_response()
            acked = await conn.read_response()
            ok = True
        finally:
            if not ok:
                await conn.disconnect()
            node.release(conn)
        if isinstance(result, rex.ResponseError):
            raise result
        return result, acked

    async def cas(
        self, name: str, version_key: str, plan: Callable[[], Awaitable[tuple[list[list[Any]], T]]]
    ) -> T:
        """An optimistic transaction on one slot, for logic that is clearer in Python than in
        Lua: ``plan`` reads what it needs and returns (commands, result); the commands run in
        one script only if ``version_key`` (same slot) did not change since before the reads,
        else ``plan`` runs again. Every command's keys must be in ``version_key``'s slot."""
        for _attempt in range(100):
            seen = await self.r.get(version_key)
            commands, result = await plan()
            if not commands:
                return result
            flat: list[Any] = [int(seen or 0)]
            for cmd in commands:
                flat += [len(cmd), *cmd]
            if int(await self.run(name, _CAS, [version_key], flat)):
                return result
            await asyncio.sleep(0.001)
        raise StoreUnavailable(f"{name}: too much contention")

    async def write(self, name: str, run: Awaitable[T]) -> T:
        """A write of plain commands (no script) reported under ``name``."""
        return await timed("redis", name, run)

    # --- the intent log ----------------------------------------------------------------------
    def saga(self, kind: str, fn: Saga) -> None:
        """Register the idempotent steps of a cross-slot operation ``kind``."""
        self._sagas[kind] = fn

    async def intent(self, name: str, kind: str, args: dict[str, Any]) -> Any:
        """Run a cross-slot operation (the write transaction ``name``): intent first, then its
        steps (each reported as ``<name>/<step>``), then forget the intent."""
        return await timed("redis", name, self._intent(name, kind, args))

    async def _intent(self, name: str, kind: str, args: dict[str, Any]) -> Any:
        token = _outer.set(name)
        try:
            opid = uuid.uuid4().hex
            due = time.time() + INTENT_DUE_S
            await self.script("intent.begin", _INTENT_BEGIN)(
                keys=[self.k.intents, self.k.due],
                args=[opid, _pack({"kind": kind, "args": args}), due],
            )
            result = await self._sagas[kind](opid, args)
            await self.r.zrem(self.k.due, opid)
            await self.r.hdel(self.k.intents, opid)
            return result
        finally:
            _outer.reset(token)

    async def sweep(self, now: float | None = None) -> int:
        """Finish every intent that is due (another node died halfway); how many."""
        now = time.time() if now is None else now
        done = 0
        for raw in await self.r.zrangebyscore(self.k.due, "-inf", now, start=0, num=100):
            opid = b(cast(bytes, raw))
            # take it over for another period, so that two sweepers rarely run it at once
            # (running it twice is harmless: every step is idempotent)
            await self.r.zadd(self.k.due, {opid: now + INTENT_DUE_S})
            blob = await self.r.hget(self.k.intents, opid)
            if blob is not None:
                op: dict[str, Any] = _unpack(cast(bytes, blob))
                fn = self._sagas.get(op["kind"])
                if fn is None:
                    continue
                try:
                    await fn(opid, op["args"])
                except StoreError as exc:  # its validation fails now: nothing more to do
                    log.info("intent_abandoned", kind=op["kind"], error=repr(exc))
                log.info("intent_finished_by_sweeper", kind=op["kind"], opid=opid)
            await self.r.zrem(self.k.due, opid)
            await self.r.hdel(self.k.intents, opid)
            done += 1
        return done

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_every_s)
            try:
                await self.sweep()
            except UNAVAILABLE_ERRORS:
                pass
            except Exception:
                log.exception("intent_sweep_failed")


_outer: contextvars.ContextVar[str | None] = contextvars.ContextVar("redis_intent", default=None)
"""The cross-slot operation the current task runs: its steps are reported under it."""

_CAS = """
local v = tonumber(redis.call('GET', KEYS[1]) or '0')
if v ~= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], v + 1)
local i = 2
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  local cmd = {}
  for j = 1, n do cmd[j] = ARGV[i + j] end
  redis.call(unpack(cmd))
  i = i + n + 1
end
return 1
"""

_INTENT_BEGIN = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
return 1
"""


def as_int(value: Any) -> int:
    return int(cast(int, value))


__all__ = [
    "OP_TTL_S",
    "Client",
    "Keys",
    "RedisDatabase",
    "RedisErrors",
    "b",
    "is_cluster_url",
    "make_client",
]
