"""The Redis engine of the ``AdminStore``.

Keys: ``{x}:status`` (user id -> status), ``{x}:settings`` (registration mode),
``{x}:users`` (sorted set of "username NUL user id", for listing), ``{x}:invites`` (set of invite
hashes, for expiry) and ``{inv:<hash>}`` (one invite). A claim is one script on the invite.

Purging an account spans slots (the user's, each of its conversations', the contact graph's):
it runs through the intent log, every step idempotent (deleting, tombstoning a message that is
already a tombstone, revoking a revoked device), so a crash halfway is finished by a sweeper.
"""

from __future__ import annotations

from typing import Any

from parley_server.store.admin import (
    AccountStatus,
    AdminStore,
    AdminUserRow,
    InviteRefused,
    PurgeReport,
    RegistrationMode,
    StoreStats,
)
from parley_server.store.records import NotFound
from parley_server.store.redis import RedisStore
from parley_server.store.redis_conversations import join_entry, split_entry
from parley_server.store.redis_db import RedisErrors, b

_CLAIM = """
local r = redis.call('HMGET', KEYS[1], 'expires', 'used_at')
if not r[1] or r[2] or tonumber(r[1]) <= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'used_at', ARGV[1])
return 1
"""

_RELEASE = """
if redis.call('HEXISTS', KEYS[1], 'used_by') == 0 then redis.call('HDEL', KEYS[1], 'used_at') end
return 1
"""


class RedisAdminStore(RedisErrors, AdminStore):
    def __init__(self, store: RedisStore) -> None:
        self.s = store
        store.saga("admin.purge", self._purge_saga)

    @property
    def _x(self) -> str:
        return self.s.k.registry

    def _inv(self, code_hash: bytes) -> str:
        return f"{self.s.k.p}{{inv:{code_hash.hex()}}}"

    # --- account status ----------------------------------------------------------------------
    async def statuses(self) -> dict[str, AccountStatus]:
        raw = await self.s.r.hgetall(f"{self._x}:status")
        return {b(u): AccountStatus(b(v)) for u, v in raw.items()}

    async def status(self, user_id: str) -> AccountStatus | None:
        v = await self.s.r.hget(f"{self._x}:status", user_id)
        return AccountStatus(b(v)) if v is not None else None

    async def set_status(self, user_id: str, status: AccountStatus | None, now: int) -> bool:
        if not await self.s.r.exists(self.s.k.user(user_id)):
            raise NotFound(f"user {user_id}")
        if await self.status(user_id) == AccountStatus.DELETED:
            return status == AccountStatus.DELETED
        if status is None:
            await self.s.write("admin.set_status", self.s.r.hdel(f"{self._x}:status", user_id))
        else:
            await self.s.write(
                "admin.set_status", self.s.r.hset(f"{self._x}:status", user_id, status.value)
            )
        return True

    async def list_users(self, after: str, limit: int) -> list[AdminUserRow]:
        lo = b"(" + after.encode() + b"\x00\xff" if after else b"-"
        names = await self.s.r.zrangebylex(f"{self._x}:users", lo, b"+", start=0, num=limit)
        statuses = await self.statuses()
        out: list[AdminUserRow] = []
        for raw in names:
            username, _, uid = bytes(raw).decode().partition("\x00")
            user = await self.s.get_user(uid)
            if user is None or user.username != username:
                continue
            devices = await self.s.list_devices(uid)
            out.append(
                AdminUserRow(
                    uid,
                    username,
                    user.created,
                    None if uid not in statuses else statuses[uid].value,
                    len(devices),
                    max((d.last_seen for d in devices), default=0),
                )
            )
        return out

    async def set_password(self, user_id: str, password_hash: bytes, revoke: bool) -> int:
        u = self.s.k.user(user_id)
        if not await self.s.r.exists(u):
            raise NotFound(f"user {user_id}")
        await self.s.write("admin.set_password", self.s.r.hset(u, "password_hash", password_hash))
        if not revoke:
            return 0
        n = 0
        for d in await self.s.list_devices(user_id):
            n += await self.s.revoke_device(user_id, d.device_id)
        return n

    async def purge_user(self, user_id: str, tombstone: bytes, now: int) -> PurgeReport:
        if not await self.s.r.exists(self.s.k.user(user_id)):
            raise NotFound(f"user {user_id}")
        report: PurgeReport = await self.s.intent(
            "admin.purge_user",
            "admin.purge",
            {"user": user_id, "tombstone": tombstone, "now": now},
        )
        return report

    async def _purge_saga(self, opid: str, a: dict[str, Any]) -> PurgeReport:
        uid, tombstone = a["user"], a["tombstone"]
        r, k = self.s.r, self.s.k
        u = k.user(uid)
        await r.hset(f"{self._x}:status", uid, AccountStatus.DELETED.value)
        devices = 0
        queued = 0
        for dev in [int(d) for d in await r.hkeys(f"{u}:dev")]:
            queued += int(await r.xlen(f"{u}:td:{dev}"))
            devices += await self.s.revoke_device(uid, dev)
        # its own messages lose their envelopes (server-authored entries naming it stay)
        tombstoned = 0
        for cid in [bytes(c) for c in await r.zrange(f"{u}:convs", 0, -1)]:
            ekey = f"{k.conv(cid)}:e"
            for seq, raw in (await r.hgetall(ekey)).items():
                e = split_entry(bytes(raw))
                if e.sender == uid and e.device is not None and not e.recalled:
                    e.body, e.recalled = tombstone, True
                    await r.hset(ekey, seq, join_entry(e))
                    tombstoned += 1
        g = f"{k.social}:"
        for other in await r.hkeys(f"{g}contacts:{uid}"):
            await r.hdel(f"{g}contacts:{b(other)}", uid)
        for other in await r.hkeys(f"{g}out:{uid}"):
            await r.hdel(f"{g}in:{b(other)}", uid)
        for other in await r.hkeys(f"{g}in:{uid}"):
            await r.hdel(f"{g}out:{b(other)}", uid)
        await r.delete(f"{g}contacts:{uid}", f"{g}out:{uid}", f"{g}in:{uid}", f"{g}blocks:{uid}")
        async for key in r.scan_iter(match=f"{u}:kd*", count=500):
            await r.delete(key)
        await r.delete(f"{u}:ev", f"{u}:reads", f"{u}:profile", f"{u}:seen")
        username = b(await r.hget(u, "username"))
        if username and not username.startswith("deleted-"):
            await r.delete(k.name(username))
            await r.zrem(f"{self._x}:users", f"{username}\x00{uid}")
            await r.hset(u, mapping={"username": f"deleted-{uid}", "password_hash": b""})
        return PurgeReport(devices=devices, to_device=queued, messages_tombstoned=tombstoned)

    # --- registration ------------------------------------------------------------------------
    async def registration_mode(self) -> RegistrationMode | None:
        v = await self.s.r.hget(f"{self._x}:settings", "registration_mode")
        return RegistrationMode(b(v)) if v is not None else None

    async def set_registration_mode(self, mode: RegistrationMode) -> None:
        await self.s.write(
            "admin.set_registration_mode",
            self.s.r.hset(f"{self._x}:settings", "registration_mode", mode.value),
        )

    async def create_invite(self, code_hash: bytes, now: int, expires: int) -> None:
        await self.s.write(
            "admin.create_invite",
            self.s.r.hset(self._inv(code_hash), mapping={"created": now, "expires": expires}),
        )
        await self.s.r.sadd(f"{self._x}:invites", code_hash.hex())

    async def claim_invite(self, code_hash: bytes, now: int) -> None:
        if not int(await self.s.run("admin.claim_invite", _CLAIM, [self._inv(code_hash)], [now])):
            raise InviteRefused("unknown, used or expired invite")

    async def release_invite(self, code_hash: bytes) -> None:
        await self.s.run("admin.release_invite", _RELEASE, [self._inv(code_hash)], [])

    async def bind_invite(self, code_hash: bytes, user_id: str) -> None:
        await self.s.write(
            "admin.bind_invite", self.s.r.hset(self._inv(code_hash), "used_by", user_id)
        )

    # --- housekeeping ------------------------------------------------------------------------
    async def stats(self) -> StoreStats:
        """Counts by scanning the installation's indexes (an operator's command, not a hot
        path)."""
        r, k = self.s.r, self.s.k
        statuses = list((await self.statuses()).values())
        users = devices = conversations = entries = queued = 0
        seen_convs: set[bytes] = set()
        async for raw in r.zscan_iter(f"{self._x}:users"):
            member = raw[0] if isinstance(raw, tuple) else raw
            uid = bytes(member).decode().partition("\x00")[2]
            users += 1
            devices += len(await self.s.list_devices(uid))
            seen_convs.update(bytes(c) for c in await r.zrange(f"{k.user(uid)}:convs", 0, -1))
        for cid in seen_convs:
            last = await r.hget(f"{k.conv(cid)}:meta", "last_seq")
            if last is not None:
                conversations += 1
                entries += int(last)
        async for q in r.sscan_iter(f"{self._x}:tdq"):
            queued += int(await r.xlen(b(q)))
        invites_open = 0
        async for h in r.sscan_iter(f"{self._x}:invites"):
            inv = await r.hmget(self._inv(bytes.fromhex(b(h))), ["expires", "used_at"])
            invites_open += inv[0] is not None and inv[1] is None
        return StoreStats(
            users=users,
            disabled=statuses.count(AccountStatus.DISABLED),
            deleted=statuses.count(AccountStatus.DELETED),
            devices=devices,
            conversations=conversations,
            entries=entries,
            to_device_queued=queued,
            invites_open=int(invites_open),
        )

    async def expire_invites(self, now: int) -> int:
        n = 0
        async for h in self.s.r.sscan_iter(f"{self._x}:invites"):
            key = self._inv(bytes.fromhex(b(h)))
            inv = await self.s.r.hmget(key, ["expires", "used_at"])
            if inv[0] is None or (inv[1] is None and int(inv[0]) <= now):
                if inv[0] is not None:
                    n += 1
                await self.s.r.delete(key)
                await self.s.r.srem(f"{self._x}:invites", b(h))
        return n


__all__ = ["RedisAdminStore"]
