"""In-process fan-out: the embedded default (one server process)."""

from __future__ import annotations

from collections.abc import Iterable

from parley_server import metrics
from parley_server.fanout.base import Broker, Subscriber


class LocalBroker(Broker):
    def __init__(self) -> None:
        # user_id -> device_id -> connections (a device may hold several sockets briefly)
        self._users: dict[str, dict[int, set[Subscriber]]] = {}

    async def subscribe(self, user_id: str, device_id: int, sub: Subscriber) -> None:
        self._users.setdefault(user_id, {}).setdefault(device_id, set()).add(sub)

    async def unsubscribe(self, user_id: str, device_id: int, sub: Subscriber) -> None:
        devices = self._users.get(user_id)
        if devices is None:
            return
        subs = devices.get(device_id)
        if subs is None:
            return
        subs.discard(sub)
        if not subs:
            del devices[device_id]
            if not devices:
                del self._users[user_id]

    async def publish_to_users(
        self, user_ids: Iterable[str], frame: bytes, exclude: Subscriber | None = None
    ) -> None:
        n = 0
        for user_id in set(user_ids):
            devices = self._users.get(user_id)
            if not devices:
                continue
            for subs in list(devices.values()):
                for sub in list(subs):
                    if sub is not exclude:
                        sub.deliver(frame)
                        n += 1
        if n:
            metrics.DELIVERIES.inc(n)

    async def publish_to_device(self, user_id: str, device_id: int, frame: bytes) -> None:
        subs = list(self._users.get(user_id, {}).get(device_id, ()))
        for sub in subs:
            sub.deliver(frame)
        if subs:
            metrics.DELIVERIES.inc(len(subs))

    async def close_device(self, user_id: str, device_id: int, code: int, reason: str) -> None:
        for sub in list(self._users.get(user_id, {}).get(device_id, ())):
            sub.close(code, reason)

    async def online(self, user_ids: Iterable[str]) -> set[str]:
        return {u for u in user_ids if u in self._users}

    def connection_count(self) -> int:
        return sum(len(s) for d in self._users.values() for s in d.values())
