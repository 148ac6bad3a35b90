"""The Redis engine of the device-linking relay's requests.

Keys: ``{prov:<hex id>}`` (hash: expires, user_id, token_hash, sealed, used; expires by itself a
day after the linking window) and ``{pt:<token hash hex>}`` (-> prov id hex, same expiry). Every
check-and-set is one script on the request's slot; the token index is written after the token is
bound and is checked against the request's own ``token_hash``, so a stale index entry (a newer
token replaced it, or a crash between the two writes) resolves to nothing.
"""

from __future__ import annotations

from typing import Any

from parley_server.store.provisioning import (
    KEEP_EXPIRED_MS,
    ProvClaimed,
    ProvExists,
    ProvisioningStore,
    ProvRow,
)
from parley_server.store.redis_db import RedisDatabase, RedisErrors, b

_REGISTER = """
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
redis.call('HSET', KEYS[1], 'expires', ARGV[1], 'used', 0)
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return 1
"""

_SET_TOKEN = """
local r = redis.call('HMGET', KEYS[1], 'expires', 'user_id', 'sealed', 'used')
if not r[1] or (r[2] and r[2] ~= ARGV[1]) or r[3] or r[4] == '1' then return -1 end
redis.call('HSET', KEYS[1], 'user_id', ARGV[1], 'token_hash', ARGV[2])
return 1
"""

_PUT_SEALED = """
local r = redis.call('HMGET', KEYS[1], 'expires', 'user_id', 'sealed', 'used')
if not r[1] or r[2] ~= ARGV[1] or r[3] or r[4] == '1' then return -1 end
redis.call('HSET', KEYS[1], 'sealed', ARGV[2])
return 1
"""

_USE = """
local r = redis.call('HMGET', KEYS[1], 'expires', 'user_id', 'sealed', 'used', 'token_hash')
if not r[1] or r[5] ~= ARGV[1] then return nil end
if r[4] ~= '1' then
  redis.call('HSET', KEYS[1], 'used', 1)
  redis.call('HDEL', KEYS[1], 'sealed')
end
return {r[1], r[2] or '', r[3] or '', r[4]}
"""


class RedisProvisioning(RedisErrors, ProvisioningStore):
    def __init__(self, db: RedisDatabase) -> None:
        self.db = db

    def _key(self, prov_id: bytes) -> str:
        return f"{self.db.k.p}{{prov:{prov_id.hex()}}}"

    def _tkey(self, token_hash: bytes) -> str:
        return f"{self.db.k.p}{{pt:{token_hash.hex()}}}"

    async def register(self, prov_id: bytes, now: int, expires: int) -> None:
        n = await self.db.run(
            "provisioning.register",
            _REGISTER,
            [self._key(prov_id)],
            [expires, expires + KEEP_EXPIRED_MS],
        )
        if int(n) < 0:
            raise ProvExists

    async def get(self, prov_id: bytes) -> ProvRow | None:
        r = await self.db.r.hmget(self._key(prov_id), ["expires", "user_id", "sealed", "used"])
        return _row(prov_id, r)

    async def by_token(self, token_hash: bytes) -> ProvRow | None:
        pid = await self.db.r.get(self._tkey(token_hash))
        if pid is None:
            return None
        prov_id = bytes.fromhex(b(pid))
        key = self._key(prov_id)
        r = await self.db.r.hmget(key, ["expires", "user_id", "sealed", "used", "token_hash"])
        if r[4] is None or bytes(r[4]) != token_hash:
            return None
        return _row(prov_id, r[:4])

    async def set_token(self, prov_id: bytes, user_id: str, token_hash: bytes) -> None:
        key = self._key(prov_id)
        n = await self.db.run("provisioning.set_token", _SET_TOKEN, [key], [user_id, token_hash])
        if int(n) < 0:
            raise ProvClaimed
        expires_at = await self.db.r.pexpiretime(key)
        await self.db.r.set(self._tkey(token_hash), prov_id.hex(), pxat=max(int(expires_at), 1))

    async def put_sealed(self, prov_id: bytes, user_id: str, sealed: bytes) -> None:
        n = await self.db.run(
            "provisioning.put_sealed", _PUT_SEALED, [self._key(prov_id)], [user_id, sealed]
        )
        if int(n) < 0:
            raise ProvClaimed

    async def use_token(self, token_hash: bytes) -> ProvRow | None:
        pid = await self.db.r.get(self._tkey(token_hash))
        if pid is None:
            return None
        prov_id = bytes.fromhex(b(pid))
        r = await self.db.run("provisioning.use_token", _USE, [self._key(prov_id)], [token_hash])
        if r is None:
            return None
        expires, user, sealed, used = r
        return ProvRow(
            prov_id, int(expires), b(user) or None, bytes(sealed) or None, b(used) == "1"
        )


def _row(prov_id: bytes, r: list[Any]) -> ProvRow | None:
    if r[0] is None:
        return None
    return ProvRow(
        prov_id,
        int(r[0]),
        b(r[1]) or None,
        None if r[2] is None else bytes(r[2]),
        b(r[3]) == "1",
    )


__all__ = ["RedisProvisioning"]
