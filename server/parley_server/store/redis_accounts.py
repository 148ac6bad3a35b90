"""The Redis engine of the accounts domain.

Keys: ``{u:<id>}`` (hash: username, password hash, created, device and event counters),
``{u:<id>}:dev`` (device id -> [name, created, revoked]), ``{u:<id>}:seen`` (device id ->
last seen), ``{n:<username>}`` (-> user id, the uniqueness claim), ``{s:<token hash>}``
(-> "user id|device id"; a session is revoked when its device is).

Cross-slot steps and what a crash between them leaves: a user hash whose name claim failed or
never happened (unreachable, harmless); a device whose session key was never written (listed
until revoked, but no token was ever handed out for it).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

import msgspec

from parley_server.store.accounts import AccountStore
from parley_server.store.records import DeviceRow, NotFound, SessionRow, UsernameTaken, UserRow
from parley_server.store.redis_db import RedisDatabase, b

_pack = msgspec.msgpack.Encoder().encode
_unpack = msgspec.msgpack.decode

_CREATE_DEVICE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local d = redis.call('HINCRBY', KEYS[1], 'last_device_id', 1)
redis.call('HSET', KEYS[2], d, ARGV[1])
redis.call('HSET', KEYS[3], d, ARGV[2])
return d
"""

_REVOKE_DEVICE = """
local row = redis.call('HGET', KEYS[1], ARGV[1])
if not row then return 0 end
local r = cmsgpack.unpack(row)
if r[3] then return 0 end
r[3] = true
redis.call('HSET', KEYS[1], ARGV[1], cmsgpack.pack(r))
redis.call('DEL', KEYS[2])
return 1
"""

_TOUCH = """
for i = 1, #ARGV, 2 do
  local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0')
  if tonumber(ARGV[i + 1]) > cur then redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
return 1
"""


class RedisAccountStore(RedisDatabase, AccountStore):
    async def create_user(self, username: str, password_hash: bytes, now: int) -> UserRow:
        row = UserRow(str(uuid.uuid4()), username, password_hash, now)

        async def run() -> UserRow:
            ukey = self.k.user(row.user_id)
            await self.r.hset(
                ukey,
                mapping={
                    "user_id": row.user_id,
                    "username": username,
                    "password_hash": password_hash,
                    "created": now,
                    "last_device_id": 0,
                    "last_event_seq": 0,
                },
            )
            if not await self.r.set(self.k.name(username), row.user_id, nx=True):
                await self.r.delete(ukey)
                raise UsernameTaken(username)
            # the operators' listing (parley admin users list); list_users re-checks the user
            await self.r.zadd(f"{self.k.registry}:users", {f"{username}\x00{row.user_id}": 0})
            return row

        return await self.write("accounts.create_user", run())

    async def get_user(self, user_id: str) -> UserRow | None:
        r = await self.r.hmget(self.k.user(user_id), ["username", "password_hash", "created"])
        if r[0] is None:
            return None
        return UserRow(user_id, b(r[0]), bytes(r[1]), int(r[2]))

    async def get_user_by_name(self, username: str) -> UserRow | None:
        uid = await self.r.get(self.k.name(username))
        if uid is None:
            return None
        return await self.get_user(b(uid))

    async def users_exist(self, user_ids: Sequence[str]) -> set[str]:
        wanted = list(dict.fromkeys(user_ids))
        found = await asyncio.gather(*(self.r.exists(self.k.user(u)) for u in wanted))
        return {u for u, n in zip(wanted, found, strict=True) if n}

    async def create_device(
        self, user_id: str, name: str, token_hash: bytes, now: int
    ) -> DeviceRow:
        u = self.k.user(user_id)
        d = int(
            await self.run(
                "accounts.create_device",
                _CREATE_DEVICE,
                [u, f"{u}:dev", f"{u}:seen"],
                [_pack([name, now, False]), now],
            )
        )
        if d < 0:
            raise NotFound(f"user {user_id}")
        await self.r.set(self.k.session(token_hash), f"{user_id}|{d}")
        return DeviceRow(user_id, d, name, now, now, False)

    async def get_session(self, token_hash: bytes) -> SessionRow | None:
        v = await self.r.get(self.k.session(token_hash))
        if v is None:
            return None
        uid, _, dev = b(v).partition("|")
        row = await self.r.hget(f"{self.k.user(uid)}:dev", dev)
        revoked = row is None or bool(_unpack(row)[2])
        return SessionRow(uid, int(dev), revoked)

    async def touch_device(self, user_id: str, device_id: int, now: int) -> None:
        """One small script (never moves last_seen backwards); called once per connection."""
        await self.script("accounts.touch", _TOUCH)(
            keys=[f"{self.k.user(user_id)}:seen"], args=[device_id, now]
        )

    async def list_devices(self, user_id: str) -> list[DeviceRow]:
        u = self.k.user(user_id)
        rows = await self.r.hgetall(f"{u}:dev")
        seen = await self.r.hgetall(f"{u}:seen")
        out: list[DeviceRow] = []
        for dev, raw in rows.items():
            name, created, revoked = _unpack(raw)
            if revoked:
                continue
            last = int(seen.get(dev, created))
            out.append(DeviceRow(user_id, int(dev), name, created, last, False))
        return sorted(out, key=lambda d: d.device_id)

    async def revoke_device(self, user_id: str, device_id: int) -> bool:
        """Also drops the device's pending to-device items: nobody can fetch them any more."""
        u = self.k.user(user_id)
        n = await self.run(
            "accounts.revoke_device",
            _REVOKE_DEVICE,
            [f"{u}:dev", f"{u}:td:{device_id}"],
            [device_id],
        )
        return bool(int(n))


__all__ = ["RedisAccountStore"]
