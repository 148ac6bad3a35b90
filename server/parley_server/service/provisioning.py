"""Device linking relay (docs/imv1.md §3.5): the server carries a sealed ProvisionMessage from an
existing device to a new one and lets the new one log in with a one-time link token.

What the server learns: that some device asked to be linked (a random prov_id, from an IP) and
which user answered. It never sees ``E_pub`` (it is only in the QR code) nor the box content.
The link token is minted for the answering session's user and bound to the prov_id; it is
stored hashed, spent on first use, and expires with the prov_id (``provisioning_ttl_s``).
"""

from __future__ import annotations

import secrets

from parley.crypto.b64 import b64d, b64e
from parley.crypto.errors import MalformedMessage
from parley.protocol.errors import ErrorCode
from parley.protocol.provisioning import (
    SEALED_MAX,
    LinkLoginReply,
    LinkTokenReply,
    ProvisioningReply,
    ProvisionMessageReply,
)
from parley_server.logging import get_logger
from parley_server.service.accounts import hash_token
from parley_server.service.context import Services, Session, now_ms
from parley_server.service.errors import ServiceError
from parley_server.service.ratelimit import SlidingWindow
from parley_server.store.provisioning import (
    ProvClaimed,
    ProvExists,
    ProvisioningStore,
    ProvRow,
)

log = get_logger("parley.provisioning")


def _expired(msg: str) -> ServiceError:
    return ServiceError(ErrorCode.LINK_EXPIRED, msg)


class Provisioning:
    def __init__(self, services: Services, table: ProvisioningStore) -> None:
        self.s = services
        self.table = table
        cfg = services.settings
        self._ttl_ms = int(cfg.provisioning_ttl_s * 1000)
        self._by_ip = SlidingWindow(
            cfg.provisioning_ip_limit, cfg.login_window_s, name="provisioning_ip"
        )

    def _limit(self, client_ip: str, *, hit: bool) -> None:
        """Registrations and failed link-token logins (unauthenticated): bounded per IP."""
        wait = self._by_ip.retry_after(client_ip)
        if wait is not None:
            log.warning("provisioning_rate_limited", client_ip=client_ip)
            raise ServiceError(ErrorCode.RATE_LIMITED, "too many link attempts", wait)
        if hit:
            self._by_ip.hit(client_ip)

    async def _live(self, prov_id: bytes) -> ProvRow:
        row = await self.table.get(prov_id)
        if row is None:
            raise ServiceError(ErrorCode.NOT_FOUND, "no such link request")
        if row.used:
            raise ServiceError(ErrorCode.LINK_USED, "this link was already used")
        if row.expires <= now_ms():
            raise _expired("this link request expired: start linking again")
        return row

    # --- new device (no session) -------------------------------------------------------------
    async def register(self, prov_id_hex: str, client_ip: str) -> ProvisioningReply:
        self._limit(client_ip, hit=True)
        now = now_ms()
        try:
            await self.table.register(bytes.fromhex(prov_id_hex), now, now + self._ttl_ms)
        except ProvExists:
            raise ServiceError(ErrorCode.CONFLICT, "that prov_id is taken") from None
        return ProvisioningReply(prov_id=prov_id_hex, expires=now + self._ttl_ms)

    async def fetch(self, prov_id_hex: str) -> ProvisionMessageReply:
        row = await self._live(bytes.fromhex(prov_id_hex))
        sealed = None if row.sealed is None else b64e(row.sealed)
        return ProvisionMessageReply(sealed=sealed, expires=row.expires)

    async def login(self, link_token: str, device_name: str, client_ip: str) -> LinkLoginReply:
        """A new device of the token's user; the token is spent even if this fails later."""
        self._limit(client_ip, hit=False)
        h = hash_token(link_token)
        row = await self.table.by_token(h)
        if row is None or row.user_id is None:
            self._limit(client_ip, hit=True)  # a guess: counts like a failed login
            raise ServiceError(ErrorCode.UNAUTHORIZED, "unknown link token")
        if row.used:
            raise ServiceError(ErrorCode.LINK_USED, "this link token was already used")
        if row.expires <= now_ms():
            raise _expired("this link token expired: start linking again")
        before = await self.table.use_token(h)
        if before is None or before.used:  # another request spent it first
            raise ServiceError(ErrorCode.LINK_USED, "this link token was already used")
        user_id = row.user_id
        user = await self.s.store.get_user(user_id)
        if user is None:
            raise ServiceError(ErrorCode.UNAUTHORIZED, "unknown link token")
        token = secrets.token_urlsafe(32)
        device = await self.s.store.create_device(user_id, device_name, hash_token(token), now_ms())
        log.info("device_linked", user_id=user_id, device_id=device.device_id)
        return LinkLoginReply(user_id, device.device_id, token, user.username)

    # --- existing device (its session) -------------------------------------------------------
    async def mint_token(self, session: Session, prov_id_hex: str) -> LinkTokenReply:
        prov_id = bytes.fromhex(prov_id_hex)
        row = await self._live(prov_id)
        token = secrets.token_urlsafe(32)
        try:
            await self.table.set_token(prov_id, session.user_id, hash_token(token))
        except ProvClaimed:
            raise ServiceError(ErrorCode.FORBIDDEN, "this link request is not yours") from None
        return LinkTokenReply(link_token=token, expires=row.expires)

    async def answer(self, session: Session, prov_id_hex: str, sealed_b64: str) -> None:
        prov_id = bytes.fromhex(prov_id_hex)
        await self._live(prov_id)
        try:
            sealed = b64d(sealed_b64)
        except MalformedMessage:
            raise ServiceError(ErrorCode.INVALID, "sealed: not base64url") from None
        if not sealed or len(sealed) > SEALED_MAX:
            raise ServiceError(ErrorCode.INVALID, "sealed: empty or too large")
        try:
            await self.table.put_sealed(prov_id, session.user_id, sealed)
        except ProvClaimed:
            raise ServiceError(
                ErrorCode.FORBIDDEN, "ask for a link token first (or it was answered already)"
            ) from None
        log.info("link_answered", user_id=session.user_id, device_id=session.device_id)
