"""Cross-node fan-out on Redis pub/sub.

Every node delivers to its own sockets directly (an in-process ``LocalBroker``) and publishes the
same frame on the recipient user's channel, ``<prefix>{u:<user id>}:push``; a node subscribes to
the channel of every user with a socket on it, and ignores what it published itself. On a
cluster the channel carries the user's hash tag, so it belongs to the user's slot: it is a
sharded channel (``SPUBLISH``/``SSUBSCRIBE``), and a node keeps one subscriber connection (and
reader) per primary that owns a slot of a local user, so a message crosses only that shard.
Rate-limit hits go to every node on one plain channel.

The connection registry: ``<prefix>{r:<user id>}`` maps node id -> expiry (ms) for every node
that holds a socket of the user; each node refreshes its entries every ``REGISTRY_REFRESH_S``
and they expire ``REGISTRY_TTL_S`` after a node died. ``online()`` reads it (presence across
nodes).

A lost subscription (the pub/sub connection dropped, Redis restarted, a failover) is noticed by
the reader; it reconnects, subscribes again to every local user's channel, and closes the local
sockets with 1012 (service restart) so that their clients reconnect and resync from their
cursors: a push missed while unsubscribed costs a resync, never a message (messages are in the
store; pushes are only hints).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from typing import Any

import msgspec
import redis.asyncio as aioredis
import redis.exceptions as rex

from parley.protocol.errors import CloseCode
from parley_server.fanout.base import Broker, Subscriber
from parley_server.fanout.local import LocalBroker
from parley_server.logging import get_logger
from parley_server.service import ratelimit
from parley_server.store.redis_db import UNAVAILABLE_ERRORS, is_cluster_url, make_client

log = get_logger("parley.fanout.redis")

REGISTRY_TTL_S = 30.0
REGISTRY_REFRESH_S = 10.0
SERVICE_RESTART = CloseCode.SERVICE_RESTART

_SHARD_ERRORS: tuple[type[BaseException], ...] = (
    *UNAVAILABLE_ERRORS,
    rex.RedisClusterException,
    rex.ResponseError,
)
_pack = msgspec.msgpack.Encoder().encode
_unpack = msgspec.msgpack.decode


def _pubsub_urls(url: str) -> list[str]:
    """The nodes a subscriber of plain pub/sub may connect to (on a cluster any node: a PUBLISH
    reaches every node)."""
    if not is_cluster_url(url):
        return [url]
    hosts = url[len("redis+cluster://") :].split("/", 1)[0].split(",")
    return [f"redis://{h}/0" for h in hosts]


class RedisBroker(Broker):
    def __init__(self, url: str, prefix: str = "parley:", node_id: str = "node") -> None:
        self.url = url
        self.prefix = prefix
        self.node = node_id
        self.local = LocalBroker()
        self._client: Any = None
        self._pubsub: Any = None
        self._channels: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._lock = asyncio.Lock()
        self._pending: set[asyncio.Future[None]] = set()
        self.resubscribed = 0  # times a lost subscription was recovered (tests, /healthz)
        self._shards: dict[str, Any] = {}  # cluster primary -> its sharded pub/sub connection
        self._shard_tasks: dict[str, asyncio.Task[None]] = {}
        self._shard_recovery: asyncio.Task[None] | None = None

    def _channel(self, user_id: str) -> str:
        return f"{self.prefix}{{u:{user_id}}}:push"

    def _registry(self, user_id: str) -> str:
        return f"{self.prefix}{{r:{user_id}}}"

    # --- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        self._client = make_client(self.url)
        if hasattr(self._client, "initialize"):
            await self._client.initialize()
        await self._connect_pubsub()
        ratelimit.share_hits(self._share_hit)
        self._tasks = [
            asyncio.create_task(self._reader()),
            asyncio.create_task(self._refresher()),
        ]

    async def stop(self) -> None:
        ratelimit.share_hits(None)
        for t in self._tasks:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks = []
        if self._shard_recovery is not None:
            self._shard_recovery.cancel()
        await self._close_shards()
        with contextlib.suppress(Exception):
            users = list(self.local._users)
            for u in users:
                await self._client.hdel(self._registry(u), self.node)
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
        if self._client is not None:
            await self._client.aclose()

    async def _connect_pubsub(self) -> None:
        error: BaseException | None = None
        for url in _pubsub_urls(self.url):
            sub_client = aioredis.Redis.from_url(
                url, socket_connect_timeout=2.0, socket_keepalive=True
            )
            pubsub = sub_client.pubsub(ignore_subscribe_messages=True)
            try:
                # every node: throttle hits (this channel also keeps the connection subscribed
                # while no user is local)
                await pubsub.subscribe(self._throttle_channel)
                if self._channels and not self.sharded:
                    await pubsub.subscribe(*self._channels)
            except UNAVAILABLE_ERRORS as exc:
                error = exc
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                continue
            self._pubsub = pubsub
            return
        assert error is not None
        raise error

    # --- sharded pub/sub on a cluster: one reader per primary --------------------------------
    @property
    def sharded(self) -> bool:
        """On a cluster a user's channel is a sharded channel (SSUBSCRIBE/SPUBLISH) of the
        user's slot: only the primary (and replicas) of that slot carry its messages."""
        return is_cluster_url(self.url)

    async def _ssubscribe(self, channel: str) -> None:
        node = self._client.get_node_from_key(channel)
        ps = self._shards.get(node.name)
        if ps is None:
            conn = aioredis.Redis(
                host=node.host, port=node.port, socket_connect_timeout=2.0, socket_keepalive=True
            )
            ps = conn.pubsub(ignore_subscribe_messages=True)
            await ps.ssubscribe(channel)
            self._shards[node.name] = ps
            self._shard_tasks[node.name] = asyncio.create_task(self._shard_reader(ps))
        else:
            await ps.ssubscribe(channel)

    async def _sunsubscribe(self, channel: str) -> None:
        node = self._client.get_node_from_key(channel)
        ps = self._shards.get(node.name)
        if ps is not None:
            await ps.sunsubscribe(channel)

    async def _shard_reader(self, ps: Any) -> None:
        while True:
            try:
                msg = await ps.get_message(timeout=1.0)
                if msg is not None and msg.get("type") in ("smessage", "message"):
                    await self._on_message(msg["data"])
            except asyncio.CancelledError:
                raise
            except UNAVAILABLE_ERRORS as exc:
                log.warning("broker_shard_subscription_lost", error=repr(exc))
                if self._shard_recovery is None or self._shard_recovery.done():
                    self._shard_recovery = asyncio.create_task(self._recover_shards())
                return
            except Exception:
                log.exception("broker_message_failed")

    async def _close_shards(self) -> None:
        current = asyncio.current_task()
        for task in self._shard_tasks.values():
            if task is not current:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        for ps in self._shards.values():
            with contextlib.suppress(Exception):
                await ps.aclose()
        self._shards, self._shard_tasks = {}, {}

    async def _recover_shards(self) -> None:
        """A primary went away (failover): learn the new slot owners, subscribe again through
        them, and make local clients resync."""
        await self._close_shards()
        delay = 0.1
        while True:
            try:
                await self._client.nodes_manager.initialize()
                for channel in list(self._channels):
                    await self._ssubscribe(channel)
                break
            except _SHARD_ERRORS:
                await self._close_shards()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        self.resubscribed += 1
        log.info("broker_subscription_recovered", channels=len(self._channels), sharded=True)
        self._close_local("resync")

    def _close_local(self, reason: str) -> None:
        for devices in list(self.local._users.values()):
            for subs in list(devices.values()):
                for sub in list(subs):
                    sub.close(SERVICE_RESTART, reason)

    # --- the reader and the registry ---------------------------------------------------------
    async def _reader(self) -> None:
        while True:
            try:
                msg = await self._pubsub.get_message(timeout=1.0)
                if msg is not None and msg.get("type") == "message":
                    await self._on_message(msg["data"])
            except asyncio.CancelledError:
                raise
            except UNAVAILABLE_ERRORS as exc:
                log.warning("broker_subscription_lost", error=repr(exc))
                await self._recover()
            except Exception:
                log.exception("broker_message_failed")

    async def _recover(self) -> None:
        """Reconnect and resubscribe; then make local clients resync (they may have missed
        pushes while the subscription was down)."""
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()
        delay = 0.1
        while True:
            try:
                await self._connect_pubsub()
                break
            except UNAVAILABLE_ERRORS:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        self.resubscribed += 1
        log.info("broker_subscription_recovered", channels=len(self._channels))
        if not self.sharded:  # (sharded channels recover on their own readers)
            self._close_local("resync")

    @property
    def _throttle_channel(self) -> str:
        return f"{self.prefix}throttle"

    def _share_hit(self, window: str, key: str) -> None:
        """A named rate-limit window counted a hit here: tell the other nodes."""
        task = asyncio.ensure_future(self._publish_raw(self._throttle_channel, ["t", window, key]))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _publish_raw(self, channel: str, message: list[Any]) -> None:
        try:
            await self._client.publish(channel, _pack([self.node, *message]))
        except UNAVAILABLE_ERRORS as exc:
            log.warning("broker_publish_failed", error=repr(exc))

    async def _on_message(self, data: bytes) -> None:
        message = _unpack(data)
        if message[0] == self.node:
            return
        if message[1] == "t":
            ratelimit.remote_hit(message[2], message[3])
            return
        origin, kind, user, device, payload, reason = message
        del origin
        if kind == "u":
            await self.local.publish_to_users((user,), payload)
        elif kind == "d":
            await self.local.publish_to_device(user, device, payload)
        elif kind == "c":
            await self.local.close_device(user, device, payload, reason)

    async def _refresher(self) -> None:
        while True:
            await asyncio.sleep(REGISTRY_REFRESH_S)
            try:
                for user in list(self.local._users):
                    await self._register(user)
            except UNAVAILABLE_ERRORS:
                pass
            except Exception:
                log.exception("broker_registry_refresh_failed")

    async def _register(self, user_id: str) -> None:
        key = self._registry(user_id)
        expiry = int((time.time() + REGISTRY_TTL_S) * 1000)
        await self._client.hset(key, self.node, expiry)
        await self._client.pexpire(key, int(REGISTRY_TTL_S * 1000))

    async def online(self, user_ids: Iterable[str]) -> set[str]:
        now = int(time.time() * 1000)
        out: set[str] = set()
        for u in set(user_ids):
            if u in self.local._users:
                out.add(u)
                continue
            nodes = await self._client.hgetall(self._registry(u))
            if any(int(v) > now for v in nodes.values()):
                out.add(u)
        return out

    # --- the Broker interface ----------------------------------------------------------------
    async def subscribe(self, user_id: str, device_id: int, sub: Subscriber) -> None:
        first = user_id not in self.local._users
        await self.local.subscribe(user_id, device_id, sub)
        if first:
            ch = self._channel(user_id)
            self._channels.add(ch)
            async with self._lock:
                if self.sharded:
                    await self._ssubscribe(ch)
                else:
                    await self._pubsub.subscribe(ch)
            await self._register(user_id)

    async def unsubscribe(self, user_id: str, device_id: int, sub: Subscriber) -> None:
        await self.local.unsubscribe(user_id, device_id, sub)
        if user_id not in self.local._users:
            ch = self._channel(user_id)
            self._channels.discard(ch)
            with contextlib.suppress(*UNAVAILABLE_ERRORS):
                async with self._lock:
                    if self.sharded:
                        await self._sunsubscribe(ch)
                    else:
                        await self._pubsub.unsubscribe(ch)
                await self._client.hdel(self._registry(user_id), self.node)

    async def _publish(self, user_id: str, message: list[Any]) -> None:
        # a push is a hint: if it is lost, the client resyncs anyway
        if not self.sharded:
            await self._publish_raw(self._channel(user_id), message)
            return
        try:
            await self._client.spublish(self._channel(user_id), _pack([self.node, *message]))
        except _SHARD_ERRORS as exc:
            log.warning("broker_publish_failed", error=repr(exc))

    async def publish_to_users(
        self, user_ids: Iterable[str], frame: bytes, exclude: Subscriber | None = None
    ) -> None:
        users = set(user_ids)
        await self.local.publish_to_users(users, frame, exclude)
        if len(users) == 1:
            (u,) = users
            await self._publish(u, ["u", u, 0, frame, ""])
            return
        # one message per recipient user, all in flight at once (a pipeline on one Redis)
        try:
            if self.sharded:
                await asyncio.gather(
                    *(
                        self._client.spublish(
                            self._channel(u), _pack([self.node, "u", u, 0, frame, ""])
                        )
                        for u in users
                    )
                )
            else:
                async with self._client.pipeline(transaction=False) as pipe:
                    for u in users:
                        pipe.publish(self._channel(u), _pack([self.node, "u", u, 0, frame, ""]))
                    await pipe.execute()
        except _SHARD_ERRORS as exc:  # pushes are hints: clients resync anyway
            log.warning("broker_publish_failed", error=repr(exc))

    async def publish_to_device(self, user_id: str, device_id: int, frame: bytes) -> None:
        await self.local.publish_to_device(user_id, device_id, frame)
        await self._publish(user_id, ["d", user_id, device_id, frame, ""])

    async def close_device(self, user_id: str, device_id: int, code: int, reason: str) -> None:
        await self.local.close_device(user_id, device_id, code, reason)
        await self._publish(user_id, ["c", user_id, device_id, code, reason])

    def connection_count(self) -> int:
        return self.local.connection_count()


__all__ = ["RedisBroker"]
