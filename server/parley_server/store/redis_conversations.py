"""The Redis engine of conversations, members and timelines.

Keys of one conversation share the hash tag ``{c:<hex id>}``: ``:meta`` (hash: kind, created_ts,
last_seq, last_ts, meta, disbanded), ``:m`` (user id -> role), ``:e`` (seq -> entry),
``:edits`` (seq -> comma list of edit seqs, for recall), ``:idem:<sender>:<device>:<client id>``
(-> "seq|op"), ``:op:<op id>`` (a step already done). An entry is
``ts|sender|device|ref_seq|ref_kind|recalled|`` followed by the msgpack body, so a script can
check a reference without decoding msgpack. A user's conversations are indexed in
``{u:<id>}:convs`` (sorted set, all scores 0, ordered by id bytes).

An append is one script: idempotency check, reference check, INCR of ``last_seq``, HSET of the
entry, SET of the idempotency key; gap-free under any concurrency, on one Redis or a cluster.
Creating a conversation and changing members span slots (the conversation, each member's index
and event timeline, the direct pair's claim): they run through the intent log, and each step is
idempotent (the conversation step by ``:op:<op id>``, the index step by re-reading the members,
the event step by the user's ``evop`` key). See docs/scale-out.md.

Idempotency keys live ``idempotency_ttl_s`` (7 days, like SQLite) and are scoped to the
conversation: a client that reuses a client message id in another conversation appends there
(clients draw ids at random, and a retry always targets the same conversation).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any, cast

import msgspec

from parley.protocol.ops import ConvState
from parley.protocol.records import (
    ConvEntry,
    ConversationAdded,
    ConversationInfo,
    EntryBody,
    EventBody,
    Member,
    Membership,
    MembershipAction,
    Mentioned,
    Message,
    RefKind,
)
from parley.protocol.types import ConversationKind, Role
from parley_server.store.conversations import ConversationStore
from parley_server.store.records import (
    AppendResult,
    BadReference,
    MemberChange,
    MembershipResult,
    NotFound,
    StoreError,
    StoreUnavailable,
)
from parley_server.store.redis_db import INTENT_DUE_S, OP_TTL_S, b
from parley_server.store.redis_events import RedisEventStore, fill_seq

IDEMPOTENCY_TTL_S = 7 * 24 * 3600

_encode = msgspec.msgpack.Encoder().encode
_decode_entry = msgspec.msgpack.Decoder(EntryBody).decode
_decode_event = msgspec.msgpack.Decoder(EventBody).decode
_KINDS = {k.value: k for k in ConversationKind}

_CREATE = """
local done = redis.call('GET', KEYS[4])
if done then return tonumber(done) end
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
redis.call('HSET', KEYS[1], 'kind', ARGV[1], 'created_ts', ARGV[2], 'last_ts', ARGV[2],
  'meta', ARGV[3], 'disbanded', 0, 'last_seq', 1)
for i = 7, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[3], 1, ARGV[2] .. '|' .. ARGV[4] .. '||||0|' .. ARGV[5])
redis.call('SET', KEYS[4], 1, 'EX', ARGV[6])
return 1
"""

_CHANGE = """
local done = redis.call('GET', KEYS[4])
if done then return tonumber(done) end
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local seq = redis.call('HINCRBY', KEYS[1], 'last_seq', 1)
redis.call('HSET', KEYS[1], 'last_ts', ARGV[1])
redis.call('HSET', KEYS[3], seq, ARGV[1] .. '|' .. ARGV[2] .. '||||0|' .. ARGV[3])
for i = 8, #ARGV, 2 do
  if ARGV[i + 1] == '' then redis.call('HDEL', KEYS[2], ARGV[i])
  else redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
end
if ARGV[5] == '1' then redis.call('HSET', KEYS[1], 'meta', ARGV[4]) end
if ARGV[6] == '1' then redis.call('HSET', KEYS[1], 'disbanded', 1) end
redis.call('SET', KEYS[4], seq, 'EX', ARGV[7])
return seq
"""

_APPEND = """
local dup = redis.call('GET', KEYS[3])
if dup then
  local sep = string.find(dup, '|', 1, true)
  local seq = string.sub(dup, 1, sep - 1)
  return {0, tonumber(seq), redis.call('HGET', KEYS[2], seq), string.sub(dup, sep + 1)}
end
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1} end
if ARGV[4] ~= '' then
  local t = redis.call('HGET', KEYS[2], ARGV[4])
  if not t then return {-2} end
  local _, _, tsender, tdev, tkind, trec =
    string.find(t, '^[^|]*|([^|]*)|([^|]*)|[^|]*|([^|]*)|([^|]*)|')
  if tdev == '' or trec == '1' then return {-2} end
  if ARGV[5] == 'edit' and (tsender ~= ARGV[2] or tkind == 'edit' or tkind == 'reaction') then
    return {-3}
  end
  if ARGV[5] == 'reaction' and tkind == 'reaction' then return {-3} end
end
local seq = redis.call('HINCRBY', KEYS[1], 'last_seq', 1)
redis.call('HSET', KEYS[1], 'last_ts', ARGV[1])
redis.call('HSET', KEYS[2], seq, ARGV[1] .. '|' .. ARGV[2] .. '|' .. ARGV[3] .. '|' .. ARGV[4]
  .. '|' .. ARGV[5] .. '|0|' .. ARGV[6])
if ARGV[5] == 'edit' then
  local prev = redis.call('HGET', KEYS[4], ARGV[4])
  redis.call('HSET', KEYS[4], ARGV[4], prev and (prev .. ',' .. seq) or tostring(seq))
end
redis.call('SET', KEYS[3], seq .. '|' .. ARGV[8], 'EX', ARGV[7])
return {1, seq}
"""

_INFO = """
return {redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2])}
"""


class Entry(msgspec.Struct):
    """An entry as stored, with the columns scripts check."""

    ts: int
    sender: str
    device: int | None
    ref_seq: int | None
    ref_kind: str
    recalled: bool
    body: bytes


def split_entry(raw: bytes) -> Entry:
    ts, sender, dev, ref_seq, ref_kind, recalled, body = raw.split(b"|", 6)
    return Entry(
        int(ts),
        sender.decode(),
        int(dev) if dev else None,
        int(ref_seq) if ref_seq else None,
        ref_kind.decode(),
        recalled == b"1",
        body,
    )


def join_entry(e: Entry) -> bytes:
    head = (
        f"{e.ts}|{e.sender}|{'' if e.device is None else e.device}|"
        f"{'' if e.ref_seq is None else e.ref_seq}|{e.ref_kind}|{int(e.recalled)}|"
    )
    return head.encode() + e.body


def to_conv_entry(cid: bytes, seq: int, raw: bytes) -> ConvEntry:
    e = split_entry(raw)
    return ConvEntry(cid, seq, e.ts, e.sender, e.device, _decode_entry(e.body))


def _pairs(flat: Any) -> dict[str, Any]:
    if isinstance(flat, dict):
        return {b(k): v for k, v in flat.items()}
    return {b(flat[i]): flat[i + 1] for i in range(0, len(flat), 2)}


class RedisConversationStore(RedisEventStore, ConversationStore):
    idempotency_ttl_s = IDEMPOTENCY_TTL_S

    def _init_conversations(self) -> None:
        self.saga("conv.create", self._create_saga)
        self.saga("conv.change", self._change_saga)
        self.saga("conv.mention", self._mention_saga)

    # --- reads ---------------------------------------------------------------------------------
    async def get_conversation(self, conversation_id: bytes) -> ConversationInfo | None:
        c = self.k.conv(conversation_id)
        meta_raw, members_raw = await self.script("conversations.info", _INFO)(
            keys=[f"{c}:meta", f"{c}:m"], args=[]
        )
        meta = _pairs(meta_raw)
        if not meta:
            return None
        members = sorted(
            (Member(uid, Role(b(role))) for uid, role in _pairs(members_raw).items()),
            key=lambda m: m.user_id,
        )
        return ConversationInfo(
            conversation_id,
            _KINDS[b(meta["kind"])],
            members,
            int(meta["last_seq"]),
            int(meta["created_ts"]),
            bytes(meta.get("meta") or b""),
            b(meta.get("disbanded")) == "1",
        )

    async def member_role(self, conversation_id: bytes, user_id: str) -> Role | None:
        r = await self.r.hget(f"{self.k.conv(conversation_id)}:m", user_id)
        return Role(b(r)) if r is not None else None

    async def members(self, conversation_id: bytes) -> list[Member]:
        raw = await self.r.hgetall(f"{self.k.conv(conversation_id)}:m")
        return sorted(
            (Member(b(u), Role(b(role))) for u, role in raw.items()), key=lambda m: m.user_id
        )

    async def _user_conv_ids(self, user_id: str, after: bytes | None, limit: int) -> list[bytes]:
        lo = b"(" + after if after else b"-"
        ids: list[bytes] = await self.r.zrangebylex(
            f"{self.k.user(user_id)}:convs", lo, b"+", start=0, num=limit
        )
        return [bytes(i) for i in ids]

    async def list_conversations(
        self, user_id: str, after: bytes | None, limit: int
    ) -> list[ConversationInfo]:
        out: list[ConversationInfo] = []
        cursor = after
        while len(out) < limit:
            ids = await self._user_conv_ids(user_id, cursor, limit - len(out))
            if not ids:
                break
            infos = await asyncio.gather(*(self.get_conversation(c) for c in ids))
            for info in infos:  # the index converges on the members: trust the members
                if info is not None and any(m.user_id == user_id for m in info.members):
                    out.append(info)
            cursor = ids[-1]
        return out

    async def conversation_states(self, user_id: str) -> list[ConvState]:
        ids = [bytes(i) for i in await self.r.zrange(f"{self.k.user(user_id)}:convs", 0, -1)]
        if not ids:
            return []
        async with self.r.pipeline(transaction=False) as pipe:
            for cid in ids:
                c = self.k.conv(cid)
                pipe.hmget(f"{c}:meta", ["kind", "last_seq", "last_ts"])
                pipe.hexists(f"{c}:m", user_id)
            replies = await pipe.execute()
        out: list[ConvState] = []
        for i, cid in enumerate(ids):
            (kind, last_seq, last_ts), member = replies[2 * i], replies[2 * i + 1]
            if kind is not None and member:
                out.append(ConvState(cid, _KINDS[b(kind)], int(last_seq), int(last_ts)))
        return out

    # --- creation ------------------------------------------------------------------------------
    async def open_direct(
        self, user_a: str, user_b: str, conversation_id: bytes, now: int
    ) -> tuple[ConversationInfo, MembershipResult | None]:
        lo, hi = sorted((user_a, user_b))
        existing = await self.r.get(self.k.pair(lo, hi))
        if existing is not None:
            info = await self._wait_info(bytes(existing), 2.0)
            if info is not None:
                return info, None
            conversation_id = bytes(existing)  # claimed by a node that died: finish it
        if len(await self.users_exist_for_events({user_a, user_b})) < len({user_a, user_b}):
            raise NotFound("user")
        roles = [[user_a, Role.MEMBER.value], [user_b, Role.MEMBER.value]]
        result: tuple[ConversationInfo, MembershipResult | None] = await self.intent(
            "conversations.open_direct",
            "conv.create",
            {
                "cid": conversation_id,
                "kind": ConversationKind.DIRECT.value,
                "actor": user_a,
                "roles": roles,
                "meta": b"",
                "now": now,
                "pair": [lo, hi],
            },
        )
        return result

    async def create_group(
        self, owner: str, members: Sequence[str], meta: bytes, conversation_id: bytes, now: int
    ) -> MembershipResult:
        roles = {owner: Role.OWNER}
        for u in members:
            roles.setdefault(u, Role.MEMBER)
        if len(await self.users_exist_for_events(set(roles))) < len(roles):
            raise NotFound("user")
        _info, result = await self.intent(
            "conversations.create_group",
            "conv.create",
            {
                "cid": conversation_id,
                "kind": ConversationKind.GROUP.value,
                "actor": owner,
                "roles": [[u, r.value] for u, r in roles.items()],
                "meta": meta,
                "now": now,
                "pair": None,
            },
        )
        assert result is not None
        return cast(MembershipResult, result)

    async def _create_saga(
        self, opid: str, a: dict[str, Any]
    ) -> tuple[ConversationInfo, MembershipResult | None]:
        cid: bytes = a["cid"]
        if a["pair"] is not None:
            pkey = self.k.pair(*a["pair"])
            await self.r.set(pkey, cid, nx=True)
            owner = bytes(await self.r.get(pkey))
            if owner != cid:  # another open won the pair: its creation is (being) done
                info = await self._wait_info(owner, INTENT_DUE_S)
                if info is None:
                    raise StoreUnavailable("the direct conversation is being created; retry")
                return info, None
        roles: list[list[str]] = a["roles"]
        actor: str = a["actor"]
        kind = _KINDS[a["kind"]]
        now: int = a["now"]
        body = Membership(
            action=MembershipAction.CREATED,
            actor=actor,
            targets=[u for u, _r in roles if u != actor],
        )
        c = self.k.conv(cid)
        flat: list[Any] = []
        for u, role in roles:
            flat += [u, role]
        seq = await self.run(
            "conversations.create",
            _CREATE,
            [f"{c}:meta", f"{c}:m", f"{c}:e", f"{c}:op:{opid}"],
            [kind.value, now, a["meta"], actor, _encode(body), OP_TTL_S, *flat],
        )
        if seq == -1:
            if a["pair"] is not None:  # a concurrent finisher of the same pair created it
                info = await self.get_conversation(cid)
                assert info is not None
                return info, None
            raise StoreError("conversation id already in use")
        await self._reindex(cid, [u for u, _r in roles])
        added = ConversationAdded(conversation_id=cid, kind=kind, by=actor)
        events = await self.user_events(opid, [(u, added) for u, _r in roles], now)
        info = await self.get_conversation(cid)
        assert info is not None
        entry = ConvEntry(cid, 1, now, actor, None, body)
        return info, MembershipResult(entry, events, info)

    async def _wait_info(self, cid: bytes, timeout_s: float) -> ConversationInfo | None:
        """The conversation, waiting a little for a creation in flight on another task."""
        deadline = time.monotonic() + timeout_s
        while True:
            info = await self.get_conversation(cid)
            if info is not None or time.monotonic() >= deadline:
                return info
            await asyncio.sleep(0.02)

    async def _reindex(self, cid: bytes, users: Sequence[str]) -> None:
        """Make each user's conversation index agree with the members (idempotent: it reads
        the members, so replaying an old step cannot undo a newer change)."""
        c = self.k.conv(cid)
        for u in dict.fromkeys(users):
            if await self.r.hexists(f"{c}:m", u):
                await self.r.zadd(f"{self.k.user(u)}:convs", {cid: 0})
            else:
                await self.r.zrem(f"{self.k.user(u)}:convs", cid)

    # --- membership changes ----------------------------------------------------------------
    async def change_membership(
        self,
        conversation_id: bytes,
        entry: Membership,
        changes: Sequence[MemberChange],
        events: Sequence[tuple[str, EventBody]],
        now: int,
        meta: bytes | None = None,
        disband: bool = False,
    ) -> MembershipResult:
        if not await self.r.exists(f"{self.k.conv(conversation_id)}:meta"):
            raise NotFound("conversation")
        users = {c.user_id for c in changes} | {u for u, _ in events}
        if len(await self.users_exist_for_events(users)) < len(users):
            raise NotFound("user")
        result: MembershipResult = await self.intent(
            "conversations.change_membership",
            "conv.change",
            {
                "cid": conversation_id,
                "entry": _encode(entry),
                "actor": entry.actor,
                "changes": [[c.user_id, "" if c.role is None else c.role.value] for c in changes],
                "events": [[u, _encode(body)] for u, body in events],
                "now": now,
                "meta": meta,
                "disband": disband,
            },
        )
        return result

    async def _change_saga(self, opid: str, a: dict[str, Any]) -> MembershipResult:
        cid: bytes = a["cid"]
        c = self.k.conv(cid)
        now: int = a["now"]
        flat: list[Any] = []
        for u, role in a["changes"]:
            flat += [u, role]
        meta = a["meta"]
        seq = int(
            await self.run(
                "conversations.change_membership",
                _CHANGE,
                [f"{c}:meta", f"{c}:m", f"{c}:e", f"{c}:op:{opid}"],
                [
                    now,
                    a["actor"],
                    a["entry"],
                    meta if meta is not None else b"",
                    "1" if meta is not None else "0",
                    "1" if a["disband"] else "0",
                    OP_TTL_S,
                    *flat,
                ],
            )
        )
        if seq == -1:
            raise NotFound("conversation")
        await self._reindex(cid, [u for u, _r in a["changes"]])
        events = [(u, fill_seq(_decode_event(body), seq)) for u, body in a["events"]]
        user_events = await self.user_events(opid, events, now)
        info = await self.get_conversation(cid)
        assert info is not None
        body = _decode_entry(a["entry"])
        return MembershipResult(ConvEntry(cid, seq, now, a["actor"], None, body), user_events, info)

    # --- timeline ------------------------------------------------------------------------------
    async def append_message(
        self,
        conversation_id: bytes,
        sender: str,
        sender_device: int,
        client_msg_id: str,
        envelope: bytes,
        now: int,
        ref_seq: int | None = None,
        ref_kind: RefKind | None = None,
        mentions: Sequence[str] = (),
    ) -> AppendResult:
        mentioned = list(dict.fromkeys(mentions))
        args = {
            "cid": conversation_id,
            "sender": sender,
            "dev": sender_device,
            "cmid": client_msg_id,
            "envelope": envelope,
            "now": now,
            "ref_seq": ref_seq,
            "ref_kind": None if ref_kind is None else ref_kind.value,
            "mentions": mentioned,
        }
        if not mentioned:
            return await self._append(None, args)
        result: AppendResult = await self.intent(
            "conversations.append_message", "conv.mention", args
        )
        return result

    async def _mention_saga(self, opid: str, a: dict[str, Any]) -> AppendResult:
        return await self._append(opid, a)

    async def _append(self, opid: str | None, a: dict[str, Any]) -> AppendResult:
        cid: bytes = a["cid"]
        c = self.k.conv(cid)
        ref_seq: int | None = a["ref_seq"]
        ref_kind = None if a["ref_kind"] is None else RefKind(a["ref_kind"])
        has_ref = ref_seq is not None and ref_kind is not None
        body = Message(
            envelope=a["envelope"], ref_seq=ref_seq, ref_kind=ref_kind, mentions=a["mentions"]
        )
        sender: str = a["sender"]
        now: int = a["now"]
        reply = await self.run(
            "conversations.append_message",
            _APPEND,
            [f"{c}:meta", f"{c}:e", f"{c}:idem:{sender}:{a['dev']}:{a['cmid']}", f"{c}:edits"],
            [
                now,
                sender,
                a["dev"],
                ref_seq if has_ref else "",
                ref_kind.value if has_ref and ref_kind is not None else "",
                _encode(body),
                self.idempotency_ttl_s,
                opid or "",
            ],
        )
        status = int(reply[0])
        if status == -1:
            raise NotFound("conversation")
        if status == -2:
            raise BadReference("no such message in this conversation")
        if status == -3:
            forbidden = (
                "you can only edit your own original messages"
                if ref_kind == RefKind.EDIT
                else "cannot react to a reaction"
            )
            raise BadReference(forbidden, forbidden=True)
        seq = int(reply[1])
        if status == 0:
            original = to_conv_entry(cid, seq, bytes(reply[2]))
            mine = opid is not None and b(reply[3]) == opid
            if not mine:
                return AppendResult(original, duplicate=True)
            entry = original
        else:
            entry = ConvEntry(cid, seq, now, sender, a["dev"], body)
        events: list[tuple[str, EventBody]] = [
            (u, Mentioned(conversation_id=cid, seq=seq, by=sender)) for u in a["mentions"]
        ]
        user_events = await self.user_events(opid, events, now) if events else []
        return AppendResult(entry, duplicate=False, events=user_events)

    async def history(
        self,
        conversation_id: bytes,
        after_seq: int | None,
        before_seq: int | None,
        limit: int,
    ) -> tuple[list[ConvEntry], bool]:
        c = self.k.conv(conversation_id)
        last_raw = await self.r.hget(f"{c}:meta", "last_seq")
        last = int(last_raw) if last_raw is not None else 0
        upper = min(last, before_seq - 1) if before_seq is not None else last
        if after_seq is not None:
            lo, hi = after_seq + 1, min(upper, after_seq + limit)
            more = upper > hi
        else:
            hi = upper
            lo = max(1, hi - limit + 1)
            more = lo > 1
        if hi < lo:
            return [], False
        seqs = list(range(lo, hi + 1))
        raws = await self.r.hmget(f"{c}:e", seqs)
        entries = [
            to_conv_entry(conversation_id, s, bytes(raw))
            for s, raw in zip(seqs, raws, strict=True)
            if raw is not None
        ]
        return entries, more


__all__ = ["Entry", "RedisConversationStore", "join_entry", "split_entry", "to_conv_entry"]
