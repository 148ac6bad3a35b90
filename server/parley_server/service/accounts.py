"""Accounts, sessions and devices: register, login (Argon2id), token resolution, revocation."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import nacl.exceptions
import nacl.pwhash

from parley.protocol.errors import CloseCode, ErrorCode
from parley.protocol.http import DeviceInfo, DeviceList, LoginReply, RegisterReply, UserInfo
from parley_server.logging import get_logger
from parley_server.service.context import Services, Session, now_ms
from parley_server.service.errors import ServiceError
from parley_server.service.ratelimit import SlidingWindow
from parley_server.store.base import UsernameTaken

if TYPE_CHECKING:
    from parley_server.service.admin import Operators

log = get_logger("parley.accounts")

COMMON_PASSWORDS = frozenset(
    {
        "password", "password1", "password12", "password123", "password1234", "passw0rd",
        "123456", "1234567890", "12345678910", "0123456789", "qwertyuiop", "qwerty1234",
        "qwerty123456", "1q2w3e4r5t", "1qaz2wsx3edc", "iloveyou12", "letmein123",
        "welcome123", "admin12345", "abc1234567", "abcdefghij", "aaaaaaaaaa", "1111111111",
        "0000000000", "football12", "baseball12", "sunshine12", "princess12", "dragon1234",
        "monkey1234", "trustno1234", "parley1234", "parleyparley",
    }
)  # fmt: skip
"""A tiny deny list; the length rule does most of the work."""


def hash_token(token: str) -> bytes:
    """Tokens are stored only as their SHA-256: a leaked database holds no usable token."""
    return hashlib.sha256(token.encode()).digest()


def normalize_username(username: str) -> str:
    return username.strip().lower()


class Accounts:
    def __init__(self, services: Services) -> None:
        self.s = services
        cfg = services.settings
        # Failed logins per (account, IP): an attacker elsewhere cannot lock the owner out.
        self._by_account_ip = SlidingWindow(
            cfg.login_account_limit, cfg.login_window_s, name="login_account_ip"
        )
        self._by_ip = SlidingWindow(cfg.login_ip_limit, cfg.login_window_s, name="login_ip")
        # Failed logins per account from anywhere: past the limit a slow back-off, no lock.
        self._by_account = SlidingWindow(
            cfg.login_account_global_limit, cfg.login_window_s, name="login_account"
        )
        self._backoff_last: dict[str, float] = {}
        self._known_ips = SlidingWindow(1, 30 * 24 * 3600.0, name="login_known_ip")
        """(account, IP) pairs that logged in successfully: exempt from the back-off."""
        self._register_by_ip = SlidingWindow(
            cfg.register_ip_limit, cfg.register_window_s, name="register_ip"
        )
        self._lookups = SlidingWindow(cfg.lookup_limit, cfg.lookup_window_s)
        self._dummy_hash: bytes | None = None
        self.visible_user: Callable[[str], Awaitable[bool]] | None = None
        """Set by the social layer: False hides a user from lookup (as if absent)."""
        self.operators: Operators | None = None
        """Set by the app (service/admin.py): registration mode, invites, disabled accounts."""

    # --- password hashing (slow on purpose: always in a thread) ----------------------------
    def _hash_sync(self, password: str) -> bytes:
        cfg = self.s.settings
        return nacl.pwhash.argon2id.str(
            password.encode(), opslimit=cfg.argon2_opslimit, memlimit=cfg.argon2_memlimit
        )

    async def _hash(self, password: str) -> bytes:
        return await asyncio.to_thread(self._hash_sync, password)

    async def _verify(self, password_hash: bytes, password: str) -> bool:
        def check() -> bool:
            try:
                return bool(nacl.pwhash.verify(password_hash, password.encode()))
            except (nacl.exceptions.InvalidkeyError, nacl.exceptions.CryptoError):
                return False

        return await asyncio.to_thread(check)

    def check_password_strength(self, username: str, password: str) -> None:
        low = password.lower()
        if len(password) < self.s.settings.password_min_len:
            raise ServiceError(
                ErrorCode.WEAK_PASSWORD,
                f"password must be at least {self.s.settings.password_min_len} characters",
            )
        rest = low.replace(username, "") if username else low
        if (
            low in COMMON_PASSWORDS
            or len(rest) < self.s.settings.password_min_len
            or len(set(low)) < 4
        ):
            raise ServiceError(ErrorCode.WEAK_PASSWORD, "password is too easy to guess")

    # --- accounts ----------------------------------------------------------------------------
    async def register(
        self, username: str, password: str, client_ip: str, invite: str | None = None
    ) -> RegisterReply:
        # Every attempt counts (a taken name too): registration is also a way to probe names.
        wait = self._register_by_ip.retry_after(client_ip)
        if wait is not None:
            log.warning("register_rate_limited", client_ip=client_ip)
            raise ServiceError(ErrorCode.RATE_LIMITED, "too many registrations, try later", wait)
        self._register_by_ip.hit(client_ip)
        self.check_password_strength(username, password)
        claim = await self.operators.admit(invite) if self.operators else None
        password_hash = await self._hash(password)
        try:
            user = await self.s.store.create_user(username, password_hash, now_ms())
        except UsernameTaken:
            if self.operators:
                await self.operators.release(claim)
            raise ServiceError(ErrorCode.USERNAME_TAKEN, "that username is taken") from None
        if self.operators:
            await self.operators.bind(claim, user.user_id)
        log.info("account_registered", user_id=user.user_id)
        return RegisterReply(user_id=user.user_id, username=user.username)

    async def login(
        self, username: str, password: str, device_name: str, client_ip: str
    ) -> LoginReply:
        pair = f"{username}\x00{client_ip}"
        for window, key in ((self._by_account_ip, pair), (self._by_ip, client_ip)):
            wait = window.retry_after(key)
            if wait is not None:
                log.warning("login_rate_limited", client_ip=client_ip)
                raise ServiceError(
                    ErrorCode.RATE_LIMITED, "too many failed logins, try again later", wait
                )
        self._account_backoff(username, pair, client_ip)
        user = await self.s.store.get_user_by_name(username)
        if user is None:
            # Spend the same hashing time as for a real account: no user enumeration by timing.
            if self._dummy_hash is None:
                self._dummy_hash = await self._hash(secrets.token_urlsafe(16))
            await self._verify(self._dummy_hash, password)
            ok = False
        else:
            ok = await self._verify(user.password_hash, password)
        if not ok or user is None:
            self._by_account_ip.hit(pair)
            self._by_account.hit(username)
            self._by_ip.hit(client_ip)
            log.info("login_failed", client_ip=client_ip)
            raise ServiceError(ErrorCode.BAD_CREDENTIALS, "wrong username or password")
        self._known_ips.hit(pair)
        if self.operators:
            await self.operators.check_active(user.user_id)  # after the password: no probing
        token = secrets.token_urlsafe(32)
        device = await self.s.store.create_device(
            user.user_id, device_name, hash_token(token), now_ms()
        )
        log.info("login", user_id=user.user_id, device_id=device.device_id)
        return LoginReply(user_id=user.user_id, device_id=device.device_id, token=token)

    def _account_backoff(self, username: str, pair: str, client_ip: str) -> None:
        """Past ``login_account_global_limit`` failures in the window, an account takes one
        attempt per ``login_backoff_s`` (from IPs that never logged in to it): guessing slows
        to a crawl, while its owner waits seconds at most and never gets locked out."""
        if self._by_account.retry_after(username) is None:
            return
        if self._known_ips.retry_after(pair) is not None:
            return  # this IP logged in to this account before
        now = time.monotonic()
        gap = self.s.settings.login_backoff_s
        last = self._backoff_last.get(username)
        if last is not None and now - last < gap:
            log.warning("login_backoff", client_ip=client_ip)
            raise ServiceError(
                ErrorCode.RATE_LIMITED,
                "too many failed logins, try again shortly",
                last + gap - now,
            )
        if len(self._backoff_last) > 100_000:
            self._backoff_last.clear()
        self._backoff_last[username] = now

    def check_lookup(self, user_id: str) -> None:
        """Lookups are throttled per user: a directory must not be cheap to enumerate."""
        wait = self._lookups.retry_after(user_id)
        if wait is not None:
            raise ServiceError(ErrorCode.RATE_LIMITED, "too many lookups, try later", wait)
        self._lookups.hit(user_id)

    async def authenticate(self, token: str) -> Session:
        """The session of a bearer token; raises unauthorized / device_revoked."""
        row = await self.s.store.get_session(hash_token(token)) if token else None
        if row is None:
            raise ServiceError(ErrorCode.UNAUTHORIZED, "unknown or expired token")
        if row.revoked:
            raise ServiceError(ErrorCode.DEVICE_REVOKED, "this device was signed out")
        if self.operators:
            await self.operators.check_active(row.user_id)
        return Session(user_id=row.user_id, device_id=row.device_id)

    async def still_valid(self, session: Session, token: str) -> bool:
        row = await self.s.store.get_session(hash_token(token))
        return row is not None and not row.revoked and row.device_id == session.device_id

    async def list_devices(self, session: Session) -> DeviceList:
        rows = await self.s.store.list_devices(session.user_id)
        return DeviceList(
            devices=[
                DeviceInfo(
                    device_id=r.device_id,
                    name=r.name,
                    created=r.created,
                    last_seen=r.last_seen,
                    current=r.device_id == session.device_id,
                )
                for r in rows
            ]
        )

    async def revoke_device(self, session: Session, device_id: int) -> None:
        """Revoke one of the caller's own devices and close its open sockets (4003)."""
        if not await self.s.store.revoke_device(session.user_id, device_id):
            raise ServiceError(ErrorCode.NOT_FOUND, "no such device")
        log.info("device_revoked", user_id=session.user_id, device_id=device_id)
        await self.s.broker.close_device(
            session.user_id, device_id, CloseCode.DEVICE_REVOKED, "device revoked"
        )

    async def lookup_user(self, session: Session, username: str) -> UserInfo:
        self.check_lookup(session.user_id)
        user = await self.s.store.get_user_by_name(normalize_username(username))
        if user is None or (
            self.visible_user is not None and not await self.visible_user(user.user_id)
        ):
            raise ServiceError(ErrorCode.NOT_FOUND, "no such user")
        return UserInfo(user_id=user.user_id, username=user.username)
