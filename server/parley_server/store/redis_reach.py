"""The Redis engine of the ``ReachStore``: contacts from the contact graph (``{social}``), shared
conversations from the two users' conversation indexes (re-checked against the members), queued
items counted by one script over the recipient's queues (all in the recipient's slot)."""

from __future__ import annotations

from parley_server.store.reach import ReachStore
from parley_server.store.redis import RedisStore
from parley_server.store.redis_db import RedisErrors, b

_QUEUED_FROM = """
local n = 0
for i = 1, #KEYS do
  for _, item in ipairs(redis.call('XRANGE', KEYS[i], '-', '+')) do
    local f = item[2]
    for j = 1, #f, 2 do
      if f[j] == 's' and f[j + 1] == ARGV[1] then n = n + 1 end
    end
  end
end
return n
"""


class RedisReachStore(RedisErrors, ReachStore):
    def __init__(self, store: RedisStore) -> None:
        self.s = store

    async def may_reach(self, sender: str, recipients: list[str]) -> set[str]:
        allowed = {sender} & set(recipients)
        mine: set[bytes] | None = None
        for user_id in set(recipients) - allowed:
            if await self.s.r.hexists(f"{self.s.k.social}:contacts:{sender}", user_id):
                allowed.add(user_id)
                continue
            if mine is None:
                mine = {
                    bytes(c) for c in await self.s.r.zrange(f"{self.s.k.user(sender)}:convs", 0, -1)
                }
            theirs = await self.s.r.zrange(f"{self.s.k.user(user_id)}:convs", 0, -1)
            for cid in mine & {bytes(c) for c in theirs}:
                m = f"{self.s.k.conv(cid)}:m"
                if await self.s.r.hexists(m, sender) and await self.s.r.hexists(m, user_id):
                    allowed.add(user_id)
                    break
        return allowed

    async def queued_from(self, sender: str, recipient: str) -> int:
        u = self.s.k.user(recipient)
        queues = [f"{u}:td:{b(d)}" for d in await self.s.r.hkeys(f"{u}:dev")]
        if not queues:
            return 0
        n = await self.s.script("reach.queued_from", _QUEUED_FROM)(keys=queues, args=[sender])
        return int(n)


__all__ = ["RedisReachStore"]
