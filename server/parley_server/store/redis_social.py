"""The Redis engine of the ``SocialStore``.

The contact graph (contacts, friend requests, blocks) lives in one slot, ``{social}``, so every
check-and-set (a request meeting a reverse request, a block racing an accept) is one script.
Its limit is one primary's throughput, far above the rate people add contacts; the reads on the
send path (``are_contacts``, ``blocked_between``) are single HEXISTS. The events each change
produces go to the users' timelines through the intent log (one script per user, deduplicated by
the operation id), and the script's outcome is kept under the operation id, so a sweeper
replaying the operation after a crash gets the same outcome and appends the same events once.

Profiles are in the user's slot (``{u:<id>}:profile``) with lookup indexes
``{idx:email:<value>}`` / ``{idx:phone:<value>}`` that a lookup re-checks against the profile
(an index entry left by a crash between the two writes finds nothing). Read marks are in the
user's slot (``{u:<id>}:reads``, with the ReadPosition event in the same script) and copied to
``{c:<id>}:reads`` for receipts. Recall rewrites entries in the conversation's slot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import msgspec

from parley.protocol.records import (
    BlockChanged,
    ContactAdded,
    ContactRemoved,
    ConvEntry,
    EntryBody,
    EventBody,
    FriendRequestClosed,
    FriendRequestOpened,
    FriendRequestOutcome,
    Message,
    MessageRecalled,
    ReadPosition,
    Recalled,
)
from parley_server.store.records import NotFound
from parley_server.store.redis import RedisStore
from parley_server.store.redis_conversations import join_entry, split_entry, to_conv_entry
from parley_server.store.redis_db import OP_TTL_S, RedisErrors, b
from parley_server.store.redis_events import split_event
from parley_server.store.social import (
    AlreadyContacts,
    Blocked,
    ContactRow,
    Events,
    ProfileChange,
    ProfileRow,
    RecallResult,
    RequestResult,
    RequestRow,
    SocialStore,
    TooManyPending,
)

_encode = msgspec.msgpack.Encoder().encode
_decode_entry = msgspec.msgpack.Decoder(EntryBody).decode
_unpack = msgspec.msgpack.decode

# Every graph script: KEYS[1] is the op's dedupe key; the rest are graph keys of {social}.
# ARGV[1] = a, ARGV[2] = b, ARGV[3] = now, ARGV[4] = ttl, then op-specific.
# Keys: out:<u> (target -> created), in:<u> (sender -> created), note:<from>:<to>,
# seqs:<from>:<to> ("from_seq,to_seq" of the opened events), contacts:<u> (other -> since),
# blocks:<u> (blocked -> created).
_LUA_DROP = """
local function drop(from, to)
  if redis.call('HDEL', P .. 'out:' .. from, to) == 0 then return nil end
  redis.call('HDEL', P .. 'in:' .. to, from)
  local note = redis.call('GET', P .. 'note:' .. from .. ':' .. to) or ''
  local seqs = redis.call('GET', P .. 'seqs:' .. from .. ':' .. to) or ''
  redis.call('DEL', P .. 'note:' .. from .. ':' .. to, P .. 'seqs:' .. from .. ':' .. to)
  if note == '' then seqs = '' end
  return seqs
end
local function connect(x, y, now)
  redis.call('HSET', P .. 'contacts:' .. x, y, now)
  redis.call('HSET', P .. 'contacts:' .. y, x, now)
end
local function finish(result)
  redis.call('SET', KEYS[1], result, 'EX', ARGV[4])
  return result
end
local done = redis.call('GET', KEYS[1])
if done then return done end
"""

_SEND = (
    "local P = KEYS[2]\n"
    + _LUA_DROP
    + """
local a, bb, now = ARGV[1], ARGV[2], ARGV[3]
if redis.call('HEXISTS', P .. 'blocks:' .. a, bb) == 1
  or redis.call('HEXISTS', P .. 'blocks:' .. bb, a) == 1 then return finish('blocked') end
if redis.call('HEXISTS', P .. 'contacts:' .. a, bb) == 1 then return finish('contacts') end
local rev = drop(bb, a)
if rev then
  connect(a, bb, now)
  return finish('accepted|' .. rev)
end
if redis.call('HEXISTS', P .. 'out:' .. a, bb) == 1 then return finish('dup') end
if redis.call('HLEN', P .. 'out:' .. a) >= tonumber(ARGV[5]) then return finish('toomany') end
redis.call('HSET', P .. 'out:' .. a, bb, now)
redis.call('HSET', P .. 'in:' .. bb, a, now)
redis.call('SET', P .. 'note:' .. a .. ':' .. bb, ARGV[6])
return finish('opened')
"""
)

_CLOSE = (
    "local P = KEYS[2]\n"
    + _LUA_DROP
    + """
local seqs = drop(ARGV[1], ARGV[2])
if not seqs then return finish('none') end
if ARGV[5] == 'accepted' then connect(ARGV[1], ARGV[2], ARGV[3]) end
return finish('ok|' .. seqs)
"""
)

_REMOVE = (
    "local P = KEYS[2]\n"
    + _LUA_DROP
    + """
local n = redis.call('HDEL', P .. 'contacts:' .. ARGV[1], ARGV[2])
n = n + redis.call('HDEL', P .. 'contacts:' .. ARGV[2], ARGV[1])
if n == 0 then return finish('none') end
return finish('ok')
"""
)

_BLOCK = (
    "local P = KEYS[2]\n"
    + _LUA_DROP
    + """
local a, bb = ARGV[1], ARGV[2]
if redis.call('HSETNX', P .. 'blocks:' .. a, bb, ARGV[3]) == 0 then return finish('dup') end
local n = redis.call('HDEL', P .. 'contacts:' .. a, bb) + redis.call('HDEL', P .. 'contacts:' .. bb, a)
local ab = drop(a, bb)
local ba = drop(bb, a)
return finish('ok|' .. n .. '|' .. (ab and ('1|' .. ab) or '0|') .. '|' .. (ba and ('1|' .. ba) or '0|'))
"""
)

_UNBLOCK = (
    "local P = KEYS[2]\n"
    + _LUA_DROP
    + """
if redis.call('HDEL', P .. 'blocks:' .. ARGV[1], ARGV[2]) == 0 then return finish('none') end
return finish('ok')
"""
)

_SET_READ = """
local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if cur >= tonumber(ARGV[2]) then return {cur, 0} end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local seq = redis.call('HINCRBY', KEYS[2], 'last_event_seq', 1)
redis.call('HSET', KEYS[3], seq, ARGV[3] .. '|' .. ARGV[4])
return {tonumber(ARGV[2]), seq}
"""

_MAX = """
local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if tonumber(ARGV[2]) > cur then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return 1
"""

_UNREAD = """
local last = tonumber(redis.call('HGET', KEYS[1], 'last_seq') or '0')
local n, cap, scanned = 0, tonumber(ARGV[3]), 0
for s = tonumber(ARGV[1]) + 1, last do
  local e = redis.call('HGET', KEYS[2], s)
  if e then
    local _, _, sender, dev, kind, rec = string.find(e, '^[^|]*|([^|]*)|([^|]*)|[^|]*|([^|]*)|([^|]*)|')
    if dev ~= '' and sender ~= ARGV[2] and rec ~= '1' and (kind == '' or kind == 'reply') then
      n = n + 1
      if n >= cap then return n end
    end
  end
  scanned = scanned + 1
  if scanned >= 20000 then return n end
end
return n
"""

_RECALL = """
local done = redis.call('GET', KEYS[3])
if done then return {1, done} end
local e = redis.call('HGET', KEYS[1], ARGV[1])
if not e then return {-1} end
local _, _, dev, rec = string.find(e, '^[^|]*|[^|]*|([^|]*)|[^|]*|[^|]*|([^|]*)|')
if dev == '' then return {-1} end
if rec == '1' then return {0} end
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('SET', KEYS[3], ARGV[2], 'EX', 604800)
return {1, ARGV[2]}
"""

_PROFILE_FIELDS = ("email", "phone", "hidden", "read_receipts", "last_seen_visible")


def _closed(sender: str, target: str, outcome: FriendRequestOutcome) -> list[tuple[str, EventBody]]:
    return [
        (sender, FriendRequestClosed(user_id=target, incoming=False, outcome=outcome)),
        (target, FriendRequestClosed(user_id=sender, incoming=True, outcome=outcome)),
    ]


def _connected(a: str, bb: str) -> list[tuple[str, EventBody]]:
    return [(a, ContactAdded(user_id=bb)), (bb, ContactAdded(user_id=a))]


def _profile(raw: dict[Any, Any]) -> ProfileRow:
    p = {b(k): b(v) for k, v in raw.items()}
    return ProfileRow(
        p.get("email") or None,
        p.get("phone") or None,
        p.get("hidden", "0") == "1",
        p.get("read_receipts", "1") == "1",
        p.get("last_seen_visible", "1") == "1",
    )


class RedisSocialStore(RedisErrors, SocialStore):
    def __init__(self, store: RedisStore) -> None:
        self.s = store
        store.saga("social.graph", self._graph_saga)
        store.saga("social.recall", self._recall_saga)

    @property
    def _g(self) -> str:
        return f"{self.s.k.social}:"

    # --- profile and lookup ------------------------------------------------------------------
    async def get_profile(self, user_id: str) -> ProfileRow:
        return _profile(await self.s.r.hgetall(f"{self.s.k.user(user_id)}:profile"))

    async def set_profile(self, user_id: str, change: ProfileChange) -> ProfileRow:
        key = f"{self.s.k.user(user_id)}:profile"
        before = await self.get_profile(user_id)
        fields: dict[str, str] = {}
        for name in ("email", "phone"):
            value = getattr(change, name)
            if value is not None:
                fields[name] = value
        for name in ("hidden", "read_receipts", "last_seen_visible"):
            value = getattr(change, name)
            if value is not None:
                fields[name] = "1" if value else "0"
        if fields:
            await self.s.write("social.set_profile", self.s.r.hset(key, mapping=fields))
        after = await self.get_profile(user_id)
        for name in ("email", "phone"):
            old, new = getattr(before, name), getattr(after, name)
            if old != new:
                if old:
                    await self.s.r.srem(f"{self.s.k.p}{{idx:{name}:{old}}}", user_id)
                if new:
                    await self.s.r.sadd(f"{self.s.k.p}{{idx:{name}:{new}}}", user_id)
        return after

    async def find_users(self, field: str, value: str, limit: int) -> list[tuple[str, str]]:
        if field == "username":
            uid = await self.s.r.get(self.s.k.name(value))
            ids = [b(uid)] if uid is not None else []
        else:
            ids = sorted(
                b(u) for u in await self.s.r.smembers(f"{self.s.k.p}{{idx:{field}:{value}}}")
            )
        out: list[tuple[str, str]] = []
        for uid in ids:
            profile = await self.get_profile(uid)
            if profile.hidden or (field != "username" and getattr(profile, field) != value):
                continue
            row = await self.s.get_user(uid)
            if row is not None:
                out.append((uid, row.username))
        out.sort(key=lambda r: r[1])
        return out[:limit]

    # --- contacts, requests, blocks ------------------------------------------------------------
    async def are_contacts(self, a: str, bb: str) -> bool:
        return bool(await self.s.r.hexists(f"{self._g}contacts:{a}", bb))

    async def blocked_between(self, a: str, bb: str) -> bool:
        x, y = await asyncio.gather(
            self.s.r.hexists(f"{self._g}blocks:{a}", bb),
            self.s.r.hexists(f"{self._g}blocks:{bb}", a),
        )
        return bool(x or y)

    async def blockers_of(self, user_id: str, others: Sequence[str]) -> set[str]:
        out = set()
        for o in set(others):
            if await self.s.r.hexists(f"{self._g}blocks:{o}", user_id):
                out.add(o)
        return out

    async def contact_ids(self, user_id: str) -> list[str]:
        return [b(u) for u in await self.s.r.hkeys(f"{self._g}contacts:{user_id}")]

    async def _graph(self, name: str, op: str, a: str, bb: str, now: int, *extra: Any) -> Any:
        return await self.s.intent(
            name, "social.graph", {"op": op, "a": a, "b": bb, "now": now, "extra": list(extra)}
        )

    async def _graph_saga(self, opid: str, x: dict[str, Any]) -> Any:
        op, a, bb, now, extra = x["op"], x["a"], x["b"], x["now"], x["extra"]
        lua = {"send": _SEND, "close": _CLOSE, "remove": _REMOVE, "block": _BLOCK}.get(op, _UNBLOCK)
        result = b(
            await self.s.run(
                f"social.{op}",
                lua,
                [f"{self._g}op:{opid}", self._g],
                [a, bb, now, OP_TTL_S, *extra],
            )
        )
        parts = result.split("|")
        events: list[tuple[str, EventBody]] = []
        scrub: list[tuple[str, str, str]] = []  # (from, to, "from_seq,to_seq")
        outcome: Any = parts[0]
        if op == "send":
            if parts[0] == "accepted":
                scrub.append((bb, a, parts[1]))
                events = _closed(bb, a, FriendRequestOutcome.ACCEPTED) + _connected(a, bb)
            elif parts[0] == "opened":
                note = extra[1]
                events = [
                    (a, FriendRequestOpened(user_id=bb, incoming=False, note=note)),
                    (bb, FriendRequestOpened(user_id=a, incoming=True, note=note)),
                ]
        elif op == "close" and parts[0] == "ok":
            scrub.append((a, bb, parts[1]))
            outcome_ = FriendRequestOutcome(extra[0])
            events = _closed(a, bb, outcome_)
            if outcome_ == FriendRequestOutcome.ACCEPTED:
                events += _connected(a, bb)
        elif op == "remove" and parts[0] == "ok":
            events = [(a, ContactRemoved(user_id=bb)), (bb, ContactRemoved(user_id=a))]
        elif op == "block" and parts[0] == "ok":
            events = [(a, BlockChanged(bb, True))]
            if int(parts[1]):
                events += [(a, ContactRemoved(user_id=bb)), (bb, ContactRemoved(user_id=a))]
            if parts[2] == "1":
                scrub.append((a, bb, parts[3]))
                events += _closed(a, bb, FriendRequestOutcome.CANCELLED)
            if parts[4] == "1":
                scrub.append((bb, a, parts[5]))
                events += _closed(bb, a, FriendRequestOutcome.CANCELLED)
        elif op == "unblock" and parts[0] == "ok":
            events = [(a, BlockChanged(bb, False))]
        appended = await self.s.user_events(opid, events, now) if events else []
        if op == "send" and parts[0] == "opened":
            seqs = f"{appended[0][1].seq},{appended[1][1].seq}"
            await self.s.r.set(f"{self._g}seqs:{a}:{bb}", seqs)
        for frm, to, seqs in scrub:
            await self._scrub_note(frm, to, seqs)
        return outcome, appended

    async def _scrub_note(self, frm: str, to: str, seqs: str) -> None:
        """Drop a closed request's note from both users' stored FriendRequestOpened events."""
        if not seqs:
            return
        from_seq, to_seq = (int(s) for s in seqs.split(","))
        for uid, seq, body in (
            (frm, from_seq, FriendRequestOpened(user_id=to, incoming=False)),
            (to, to_seq, FriendRequestOpened(user_id=frm, incoming=True)),
        ):
            key = f"{self.s.k.user(uid)}:ev"
            raw = await self.s.r.hget(key, seq)
            if raw is not None:
                ts, _old = split_event(bytes(raw))
                await self.s.r.hset(key, seq, f"{ts}|".encode() + _encode(body))

    async def send_request(
        self, sender: str, target: str, note: str, max_pending: int, now: int
    ) -> RequestResult:
        if not await self.s.r.exists(self.s.k.user(target)):
            raise NotFound("user")
        outcome, events = await self._graph(
            "social.send_request", "send", sender, target, now, max_pending, note
        )
        if outcome == "blocked":
            raise Blocked("blocked")
        if outcome == "contacts":
            raise AlreadyContacts("already contacts")
        if outcome == "toomany":
            raise TooManyPending("too many pending requests")
        return RequestResult(outcome == "accepted", events)

    async def close_request(self, sender: str, target: str, outcome: str, now: int) -> Events:
        FriendRequestOutcome(outcome)
        result, events = await self._graph(
            "social.close_request", "close", sender, target, now, outcome
        )
        if result == "none":
            raise NotFound("no pending request")
        return list(events)

    async def _requests(self, key: str, user_id: str, limit: int) -> list[RequestRow]:
        raw = await self.s.r.hgetall(key)
        rows: list[RequestRow] = []
        for other_raw, created in raw.items():
            other = b(other_raw)
            frm, to = (other, user_id) if ":in:" in key else (user_id, other)
            note = b(await self.s.r.get(f"{self._g}note:{frm}:{to}"))
            u = await self.s.get_user(other)
            rows.append(RequestRow(other, u.username if u else "", note, int(created)))
        rows.sort(key=lambda r: (r.created, r.user_id))
        return rows[: limit + 1]

    async def list_requests(
        self, user_id: str, limit: int
    ) -> tuple[list[RequestRow], list[RequestRow], bool]:
        incoming = await self._requests(f"{self._g}in:{user_id}", user_id, limit)
        outgoing = await self._requests(f"{self._g}out:{user_id}", user_id, limit)
        more = len(incoming) > limit or len(outgoing) > limit
        return incoming[:limit], outgoing[:limit], more

    async def list_contacts(
        self, user_id: str, limit: int
    ) -> tuple[list[ContactRow], list[str], bool]:
        contacts: list[ContactRow] = []
        for other, since in (await self.s.r.hgetall(f"{self._g}contacts:{user_id}")).items():
            u = await self.s.get_user(b(other))
            contacts.append(ContactRow(b(other), u.username if u else "", int(since)))
        contacts.sort(key=lambda c: c.username)
        blocks = await self.s.r.hgetall(f"{self._g}blocks:{user_id}")
        blocked = [b(k) for k, _v in sorted(blocks.items(), key=lambda kv: (int(kv[1]), kv[0]))]
        more = len(contacts) > limit or len(blocked) > limit
        return contacts[:limit], blocked[:limit], more

    async def remove_contact(self, user_id: str, other: str, now: int) -> Events:
        result, events = await self._graph("social.remove_contact", "remove", user_id, other, now)
        if result == "none":
            raise NotFound("not a contact")
        return list(events)

    async def block(self, user_id: str, other: str, now: int) -> Events:
        if not await self.s.r.exists(self.s.k.user(other)):
            raise NotFound("user")
        _result, events = await self._graph("social.block", "block", user_id, other, now)
        return list(events)

    async def unblock(self, user_id: str, other: str, now: int) -> Events:
        result, events = await self._graph("social.unblock", "unblock", user_id, other, now)
        if result == "none":
            raise NotFound("not blocked")
        return list(events)

    # --- read marks ------------------------------------------------------------------------------
    async def set_read(
        self, conversation_id: bytes, user_id: str, seq: int, now: int
    ) -> tuple[int, Events]:
        u = self.s.k.user(user_id)
        event = ReadPosition(conversation_id=conversation_id, seq=seq)
        read, ev_seq = await self.s.run(
            "social.set_read",
            _SET_READ,
            [f"{u}:reads", u, f"{u}:ev"],
            [conversation_id, seq, now, _encode(event)],
        )
        await self.s.script("social.read_max", _MAX)(
            keys=[f"{self.s.k.conv(conversation_id)}:reads"], args=[user_id, int(read)]
        )
        if not int(ev_seq):
            return int(read), []
        from parley.protocol.records import UserEvent

        return int(read), [(user_id, UserEvent(int(ev_seq), now, event))]

    async def read_marks(self, conversation_id: bytes) -> dict[str, int]:
        raw = await self.s.r.hgetall(f"{self.s.k.conv(conversation_id)}:reads")
        return {b(k): int(v) for k, v in raw.items()}

    async def read_seqs(self, user_id: str) -> dict[bytes, int]:
        raw = await self.s.r.hgetall(f"{self.s.k.user(user_id)}:reads")
        return {bytes(k): int(v) for k, v in raw.items()}

    async def unread_count(self, conversation_id: bytes, user_id: str, after: int, cap: int) -> int:
        c = self.s.k.conv(conversation_id)
        n = await self.s.script("social.unread", _UNREAD)(
            keys=[f"{c}:meta", f"{c}:e"], args=[after, user_id, cap]
        )
        return int(n)

    # --- recall ----------------------------------------------------------------------------------
    async def get_entry(self, conversation_id: bytes, seq: int) -> ConvEntry | None:
        raw = await self.s.r.hget(f"{self.s.k.conv(conversation_id)}:e", seq)
        return None if raw is None else to_conv_entry(conversation_id, seq, bytes(raw))

    async def recall(
        self, conversation_id: bytes, seq: int, by: str, notify: Sequence[str], now: int
    ) -> RecallResult:
        result: RecallResult = await self.s.intent(
            "social.recall",
            "social.recall",
            {"cid": conversation_id, "seq": seq, "by": by, "notify": list(notify), "now": now},
        )
        return result

    async def _recall_saga(self, opid: str, x: dict[str, Any]) -> RecallResult:
        cid, seq, by, now = x["cid"], x["seq"], x["by"], x["now"]
        c = self.s.k.conv(cid)
        raw = await self.s.r.hget(f"{c}:e", seq)
        if raw is None:
            raise NotFound("no such message")
        target = split_entry(bytes(raw))
        edits_raw = b(await self.s.r.hget(f"{c}:edits", seq))
        also: list[int] = []
        rewrites: list[Any] = []
        for s in [seq] + [int(e) for e in edits_raw.split(",") if e]:
            r = await self.s.r.hget(f"{c}:e", s)
            if r is None:
                continue
            e = split_entry(bytes(r))
            if e.recalled or (s != seq and e.sender != target.sender):
                continue
            body = _decode_entry(e.body)
            if isinstance(body, Message):
                tomb = Recalled(
                    by=by, recalled_ts=now, ref_seq=body.ref_seq, ref_kind=body.ref_kind
                )
                e.body, e.recalled = _encode(tomb), True
                rewrites += [s, join_entry(e)]
                if s != seq:
                    also.append(s)
        status = await self.s.run(
            "social.recall_entries",
            _RECALL,
            [f"{c}:e", f"{c}:meta", f"{c}:op:{opid}"],
            [seq, ",".join(map(str, also)), *rewrites],
        )
        if int(status[0]) == -1:
            raise NotFound("no such message")
        entry = await self.get_entry(cid, seq)
        assert entry is not None
        if int(status[0]) == 0:
            return RecallResult(entry, [], [], duplicate=True)
        also = [int(s) for s in b(status[1]).split(",") if s]
        event = MessageRecalled(conversation_id=cid, seq=seq, by=by, also=also)
        events = await self.s.user_events(opid, [(u, event) for u in x["notify"]], now)
        return RecallResult(entry, also, events, duplicate=False)


__all__ = ["RedisSocialStore"]
