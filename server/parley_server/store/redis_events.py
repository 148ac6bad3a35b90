"""The Redis engine of the per-user event timelines.

Keys: ``{u:<id>}:ev`` (hash seq -> "ts|" + msgpack body; seqs are gap-free, counted by the
``last_event_seq`` field of ``{u:<id>}``). One script per user appends that user's events and
numbers them atomically. Events of several users span slots: they go through the intent log,
and each user's step is deduplicated by the operation id (``{u:<id>}:evop:<op>``), so a sweeper
finishing a half-done operation never appends an event twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from parley.protocol.records import ConversationChanged, EventBody, Mentioned, UserEvent
from parley_server.store.events import EventStore
from parley_server.store.records import NotFound
from parley_server.store.redis_db import OP_TTL_S, RedisDatabase

_encode = msgspec.msgpack.Encoder().encode
_decode_event = msgspec.msgpack.Decoder(EventBody).decode

_APPEND = """
if KEYS[3] ~= KEYS[1] then
  local done = redis.call('GET', KEYS[3])
  if done then return cjson.decode(done) end
end
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local seqs = {}
for i = 3, #ARGV do
  local seq = redis.call('HINCRBY', KEYS[1], 'last_event_seq', 1)
  redis.call('HSET', KEYS[2], seq, ARGV[1] .. '|' .. ARGV[i])
  seqs[#seqs + 1] = seq
end
if KEYS[3] ~= KEYS[1] then redis.call('SET', KEYS[3], cjson.encode(seqs), 'EX', ARGV[2]) end
return seqs
"""

_RANGE = """
local last = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
local lo = tonumber(ARGV[2]) + 1
local hi = math.min(last, tonumber(ARGV[2]) + tonumber(ARGV[3]))
if hi < lo then return {last} end
local fields = {}
for s = lo, hi do fields[#fields + 1] = s end
local out = redis.call('HMGET', KEYS[2], unpack(fields))
table.insert(out, 1, last)
return out
"""


def fill_seq(body: EventBody, seq: int) -> EventBody:
    """Events recorded before their entry had a seq carry 0: fill in the entry's seq."""
    if isinstance(body, ConversationChanged) and body.seq == 0:
        return ConversationChanged(conversation_id=body.conversation_id, seq=seq)
    if isinstance(body, Mentioned) and body.seq == 0:
        return Mentioned(conversation_id=body.conversation_id, seq=seq, by=body.by)
    return body


def split_event(raw: bytes) -> tuple[int, EventBody]:
    ts, _, body = raw.partition(b"|")
    return int(ts), _decode_event(body)


class RedisEventStore(RedisDatabase, EventStore):
    def _init_events(self) -> None:
        self.saga("events.append", self._append_saga)

    async def user_events(
        self, opid: str | None, events: Sequence[tuple[str, EventBody]], now: int
    ) -> list[tuple[str, UserEvent]]:
        """Append ``events`` (one script per user, in order); with ``opid`` each user's step is
        done at most once. NotFound for a user that does not exist."""
        by_user: dict[str, list[int]] = {}
        for i, (u, _body) in enumerate(events):
            by_user.setdefault(u, []).append(i)
        out: list[tuple[str, UserEvent] | None] = [None] * len(events)
        for u, idx in by_user.items():
            key = self.k.user(u)
            dedupe = f"{key}:evop:{opid}" if opid else key
            bodies = [_encode(events[i][1]) for i in idx]
            seqs = await self.run(
                "events.append_events",
                _APPEND,
                [key, f"{key}:ev", dedupe],
                [now, OP_TTL_S, *bodies],
            )
            if seqs == -1:
                raise NotFound(f"user {u}")
            for i, seq in zip(idx, seqs, strict=True):
                out[i] = (u, UserEvent(int(seq), now, events[i][1]))
        return [e for e in out if e is not None]

    async def _append_saga(self, opid: str, args: dict[str, Any]) -> list[tuple[str, UserEvent]]:
        events = [(u, _decode_event(body)) for u, body in args["events"]]
        return await self.user_events(opid, events, args["now"])

    async def append_events(
        self, events: Sequence[tuple[str, EventBody]], now: int
    ) -> list[tuple[str, UserEvent]]:
        events = list(events)
        users = {u for u, _ in events}
        if not users:
            return []
        missing = users - await self.users_exist_for_events(users)
        if missing:
            raise NotFound(f"user {sorted(missing)[0]}")
        if len(users) == 1:
            return await self.user_events(None, events, now)
        packed = [(u, _encode(body)) for u, body in events]
        result: list[tuple[str, UserEvent]] = await self.intent(
            "events.append_events", "events.append", {"events": packed, "now": now}
        )
        return result

    async def users_exist_for_events(self, users: set[str]) -> set[str]:
        found = set()
        for u in users:
            if await self.r.exists(self.k.user(u)):
                found.add(u)
        return found

    async def events_after(self, user_id: str, after: int, limit: int) -> list[UserEvent]:
        key = self.k.user(user_id)
        reply = await self.script("events.range", _RANGE)(
            keys=[key, f"{key}:ev"], args=["last_event_seq", after, limit]
        )
        out: list[UserEvent] = []
        for i, raw in enumerate(reply[1:]):
            if raw is None:
                continue
            ts, body = split_event(raw)
            out.append(UserEvent(after + 1 + i, ts, body))
        return out


__all__ = ["RedisEventStore", "fill_seq", "split_event"]
