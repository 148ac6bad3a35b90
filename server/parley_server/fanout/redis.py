"""Cross-node fan-out on Redis pub/sub.

Every node delivers to its own sockets directly (an in-process ``LocalBroker``) and publishes the
same frame on the recipient user's channel, ``<prefix>{u:<user id>}:push``; a node subscribes to
the channel of every user with a socket on it, and ignores what it published itself. On a
cluster the channel carries the user's hash tag, so it belongs to the user's slot.

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

from parley_server.fanout.base import Broker, Subscriber
from parley_server.fanout.local import LocalBroker
from parley_server.logging import get_logger
from parley_server.service import ratelimit
from parley_server.store.redis_db import UNAVAILABLE_ERRORS, is_cluster_url, make_client

log = get_logger("parley.fanout.redis")

REGISTRY_TTL_S = 30.0
REGISTRY_REFRESH_S = 10.0
SERVICE_RESTART = 1012

_pack = msgspec.msgpack.Encoder().encode
_unpack = msgspec.msgpack.decode


def _pubsub_url(url: str) -> str:
    """The node a cluster's subscriber connects to (plain pub/sub reaches every node)."""
    if not is_cluster_url(url):
        return url
    first = url[len("redis+cluster://") :].split("/", 1)[0].split(",")[0]
    return f"redis://{first}/0"


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
        sub_client = aioredis.Redis.from_url(
            _pubsub_url(self.url), socket_connect_timeout=2.0, socket_keepalive=True
        )
        pubsub = sub_client.pubsub(ignore_subscribe_messages=True)
        # every node: throttle hits (this channel also keeps the connection subscribed while
        # no user is local)
        await pubsub.subscribe(self._throttle_channel)
        if self._channels:
            await pubsub.subscribe(*self._channels)
        self._pubsub = pubsub

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
        for devices in list(self.local._users.values()):
            for subs in list(devices.values()):
                for sub in list(subs):
                    sub.close(SERVICE_RESTART, "resync")

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
                await self._pubsub.subscribe(ch)
            await self._register(user_id)

    async def unsubscribe(self, user_id: str, device_id: int, sub: Subscriber) -> None:
        await self.local.unsubscribe(user_id, device_id, sub)
        if user_id not in self.local._users:
            ch = self._channel(user_id)
            self._channels.discard(ch)
            with contextlib.suppress(*UNAVAILABLE_ERRORS):
                async with self._lock:
                    await self._pubsub.unsubscribe(ch)
                await self._client.hdel(self._registry(user_id), self.node)

    async def _publish(self, user_id: str, message: list[Any]) -> None:
        # a push is a hint: if it is lost, the client resyncs anyway
        await self._publish_raw(self._channel(user_id), message)

    async def publish_to_users(
        self, user_ids: Iterable[str], frame: bytes, exclude: Subscriber | None = None
    ) -> None:
        users = set(user_ids)
        await self.local.publish_to_users(users, frame, exclude)
        for u in users:
            await self._publish(u, ["u", u, 0, frame, ""])

    async def publish_to_device(self, user_id: str, device_id: int, frame: bytes) -> None:
        await self.local.publish_to_device(user_id, device_id, frame)
        await self._publish(user_id, ["d", user_id, device_id, frame, ""])

    async def close_device(self, user_id: str, device_id: int, code: int, reason: str) -> None:
        await self.local.close_device(user_id, device_id, code, reason)
        await self._publish(user_id, ["c", user_id, device_id, code, reason])

    def connection_count(self) -> int:
        return self.local.connection_count()


__all__ = ["RedisBroker"]
