"""The Redis engine of the ``InviteStore``: an invitation lives in the invitee's slot
(``{u:<invitee>}:inv``: conversation -> [inviter, created]) and is written by one script with the
invitee's ``group_invited`` / ``group_invite_closed`` event, like SQLite's one transaction. The
group's set of invitees (``{c:<id>}:invitees``, for ``withdraw_all``) is written after; a crash in
between leaves an invitation that disbanding does not withdraw (the invitee can still decline
it; accepting it fails because the group is disbanded)."""

from __future__ import annotations

import msgspec

from parley.protocol.records import EventBody, GroupInviteClosed, GroupInvited, UserEvent
from parley_server.store.invites import InviteRow, InviteStore
from parley_server.store.redis import RedisStore
from parley_server.store.redis_db import RedisErrors, b

_encode = msgspec.msgpack.Encoder().encode
_unpack = msgspec.msgpack.decode

# KEYS: user hash, events, invitations; ARGV: conversation, value ('' = take), now, event body
_INVITE = """
if ARGV[2] ~= '' then
  if redis.call('HSETNX', KEYS[3], ARGV[1], ARGV[2]) == 0 then return {0, ''} end
  local seq = redis.call('HINCRBY', KEYS[1], 'last_event_seq', 1)
  redis.call('HSET', KEYS[2], seq, ARGV[3] .. '|' .. ARGV[4])
  return {seq, ''}
end
local row = redis.call('HGET', KEYS[3], ARGV[1])
if not row then return {0, ''} end
redis.call('HDEL', KEYS[3], ARGV[1])
local seq = redis.call('HINCRBY', KEYS[1], 'last_event_seq', 1)
redis.call('HSET', KEYS[2], seq, ARGV[3] .. '|' .. ARGV[4])
return {seq, row}
"""


class RedisInviteStore(RedisErrors, InviteStore):
    def __init__(self, store: RedisStore) -> None:
        self.s = store

    async def _run(
        self, name: str, cid: bytes, invitee: str, value: bytes, now: int, body: EventBody
    ) -> tuple[int, bytes]:
        u = self.s.k.user(invitee)
        seq, row = await self.s.run(
            name, _INVITE, [u, f"{u}:ev", f"{u}:inv"], [cid, value, now, _encode(body)]
        )
        return int(seq), bytes(row)

    async def add_invites(
        self, conversation_id: bytes, inviter: str, invitees: list[str], now: int
    ) -> list[tuple[str, UserEvent]]:
        out: list[tuple[str, UserEvent]] = []
        value = _encode([inviter, now])
        for user_id in invitees:
            body = GroupInvited(conversation_id=conversation_id, by=inviter)
            seq, _row = await self._run(
                "invites.add_invites", conversation_id, user_id, value, now, body
            )
            await self.s.r.sadd(f"{self.s.k.conv(conversation_id)}:invitees", user_id)
            if seq:
                out.append((user_id, UserEvent(seq, now, body)))
        return out

    async def list_invites(self, user_id: str, limit: int) -> tuple[list[InviteRow], bool]:
        raw = await self.s.r.hgetall(f"{self.s.k.user(user_id)}:inv")
        rows: list[InviteRow] = []
        for cid, value in raw.items():
            inviter, created = _unpack(value)
            user = await self.s.get_user(inviter)
            rows.append(InviteRow(bytes(cid), inviter, user.username if user else "", created))
        rows.sort(key=lambda r: (r.created, r.conversation_id))
        return rows[:limit], len(rows) > limit

    async def take_invite(
        self, conversation_id: bytes, invitee: str, outcome: str, now: int
    ) -> tuple[str | None, list[tuple[str, UserEvent]]]:
        body = GroupInviteClosed(conversation_id=conversation_id, outcome=outcome)
        seq, row = await self._run("invites.take_invite", conversation_id, invitee, b"", now, body)
        await self.s.r.srem(f"{self.s.k.conv(conversation_id)}:invitees", invitee)
        if not seq:
            return None, []
        inviter, _created = _unpack(row)
        return str(inviter), [(invitee, UserEvent(seq, now, body))]

    async def withdraw_all(self, conversation_id: bytes, now: int) -> list[tuple[str, UserEvent]]:
        out: list[tuple[str, UserEvent]] = []
        key = f"{self.s.k.conv(conversation_id)}:invitees"
        for raw in await self.s.r.smembers(key):
            _inviter, events = await self.take_invite(conversation_id, b(raw), "withdrawn", now)
            out += events
        await self.s.r.delete(key)
        return out


__all__ = ["RedisInviteStore"]
