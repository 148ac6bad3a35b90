"""The Redis engine of the to-device queues.

Keys: ``{u:<id>}:td:<device>`` (a stream whose entry ids are ``<seq>-0``; fields t, s, d, b),
``{u:<id>}:tdseq`` (device -> last seq; kept apart from the stream so a trimmed or deleted
stream never reuses a seq), ``{x}:tdq`` (set of queue keys, for expiry). One script per
recipient user checks that every target device exists and is not revoked, then numbers and
queues the items; several users go through the intent log with a per-user dedupe key.
Acknowledging is ``XTRIM MINID``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from parley.protocol.records import ToDeviceItem
from parley_server.store.records import NotFound, ToDeviceOut
from parley_server.store.redis_db import OP_TTL_S, RedisDatabase, b
from parley_server.store.to_device import ToDeviceStore

_unpack = msgspec.msgpack.decode

_ENQUEUE = """
if KEYS[3] ~= KEYS[1] then
  local done = redis.call('GET', KEYS[3])
  if done then return cjson.decode(done) end
end
local n = (#ARGV - 4) / 2
for i = 1, n do
  local row = redis.call('HGET', KEYS[1], ARGV[3 + 2 * i])
  if not row or cmsgpack.unpack(row)[3] then return -1 end
end
local seqs = {}
for i = 1, n do
  local dev = ARGV[3 + 2 * i]
  local seq = redis.call('HINCRBY', KEYS[2], dev, 1)
  redis.call('XADD', KEYS[3 + i], seq .. '-0', 't', ARGV[1], 's', ARGV[2], 'd', ARGV[3],
    'b', ARGV[4 + 2 * i])
  seqs[#seqs + 1] = seq
end
if KEYS[3] ~= KEYS[1] then redis.call('SET', KEYS[3], cjson.encode(seqs), 'EX', ARGV[4]) end
return seqs
"""


def _item(entry_id: Any, fields: dict[Any, Any]) -> ToDeviceItem:
    f = {b(k): v for k, v in fields.items()}
    return ToDeviceItem(
        int(b(entry_id).split("-", 1)[0]), int(f["t"]), b(f["s"]), int(f["d"]), bytes(f["b"])
    )


class RedisToDeviceStore(RedisDatabase, ToDeviceStore):
    def _init_to_device(self) -> None:
        self.saga("td.enqueue", self._enqueue_saga)

    def _queue(self, user_id: str, device_id: int) -> str:
        return f"{self.k.user(user_id)}:td:{device_id}"

    async def enqueue_to_device(
        self, sender: str, sender_device: int, messages: Sequence[ToDeviceOut], now: int
    ) -> list[tuple[str, int, ToDeviceItem]]:
        msgs: list[list[Any]] = [[m.user_id, m.device_id, m.body] for m in messages]
        for uid, dev, _body in msgs:  # all or nothing: check every device before any step
            row = await self.r.hget(f"{self.k.user(uid)}:dev", dev)
            if row is None or _unpack(row)[2]:
                raise NotFound(f"device {uid}/{dev}")
        args = {"sender": sender, "dev": sender_device, "msgs": msgs, "now": now}
        if len({uid for uid, _d, _b in msgs}) <= 1:
            return await self._enqueue(None, args)
        result: list[tuple[str, int, ToDeviceItem]] = await self.intent(
            "to_device.enqueue_to_device", "td.enqueue", args
        )
        return result

    async def _enqueue_saga(
        self, opid: str, a: dict[str, Any]
    ) -> list[tuple[str, int, ToDeviceItem]]:
        return await self._enqueue(opid, a)

    async def _enqueue(
        self, opid: str | None, a: dict[str, Any]
    ) -> list[tuple[str, int, ToDeviceItem]]:
        by_user: dict[str, list[int]] = {}
        msgs: list[list[Any]] = a["msgs"]
        for i, (uid, _dev, _body) in enumerate(msgs):
            by_user.setdefault(uid, []).append(i)
        out: list[tuple[str, int, ToDeviceItem] | None] = [None] * len(msgs)
        for uid, idx in by_user.items():
            u = self.k.user(uid)
            dedupe = f"{u}:tdop:{opid}" if opid else f"{u}:dev"
            queues = [self._queue(uid, msgs[i][1]) for i in idx]
            await self.r.sadd(f"{self.k.registry}:tdq", *queues)
            flat: list[Any] = []
            for i in idx:
                flat += [msgs[i][1], msgs[i][2]]
            seqs = await self.run(
                "to_device.enqueue_to_device",
                _ENQUEUE,
                [f"{u}:dev", f"{u}:tdseq", dedupe, *queues],
                [a["now"], a["sender"], a["dev"], OP_TTL_S, *flat],
            )
            if seqs == -1:
                raise NotFound(f"device of {uid}")
            for i, seq in zip(idx, seqs, strict=True):
                item = ToDeviceItem(int(seq), a["now"], a["sender"], a["dev"], msgs[i][2])
                out[i] = (uid, msgs[i][1], item)
        return [o for o in out if o is not None]

    async def to_device_after(
        self, user_id: str, device_id: int, after: int, limit: int
    ) -> list[ToDeviceItem]:
        rows = await self.r.xrange(
            self._queue(user_id, device_id), min=f"{after + 1}-0", max="+", count=limit
        )
        return [_item(i, f) for i, f in rows]

    async def ack_to_device(self, user_id: str, device_id: int, upto_seq: int) -> int:
        q = self._queue(user_id, device_id)
        n = await self.write(
            "to_device.ack_to_device",
            self.r.xtrim(q, minid=f"{upto_seq + 1}-0", approximate=False),
        )
        return int(n)

    async def expire_to_device(self, older_than: int) -> int:
        removed = 0
        async for raw in self.r.sscan_iter(f"{self.k.registry}:tdq", count=200):
            q = b(raw)
            cut = 0
            while True:
                rows = await self.r.xrange(q, min=f"{cut + 1}-0", max="+", count=100)
                old = [_item(i, f).seq for i, f in rows if int(f[b"t"]) < older_than]
                if not old:
                    break
                cut = old[-1]
                if len(old) < len(rows):
                    break
            if cut:
                removed += int(await self.r.xtrim(q, minid=f"{cut + 1}-0", approximate=False))
        return removed


__all__ = ["RedisToDeviceStore"]
