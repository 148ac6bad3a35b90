"""What operators decide and every server node obeys: account status, registration mode, invites.

``parley admin`` changes the ``AdminStore`` (the same database or Redis the nodes use); it does
not talk to a running server. Each node therefore learns of a change by reading it:

* the registration mode and an invite are read at each registration;
* a disabled or deleted account is refused at once at login, at every WebSocket ``hello`` and
  at every authenticated HTTP call (``account_disabled``), because ``authenticate`` reads its
  status; and its sockets that are already open are closed with 4004 ``ACCOUNT_DISABLED``
  within ``admin_poll_s`` (default 2 s) by each node's ``watch`` loop.

Polling keeps the design engine-neutral (SQLite file shared with the admin command, or Redis
shared by many nodes) and needs no admin listener; the status table holds only the few
accounts an operator touched, so a poll is one small read.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

import msgspec

from parley.protocol.errors import CloseCode, ErrorCode
from parley.protocol.ops import GroupLeave
from parley.protocol.records import Recalled
from parley.protocol.types import ConversationKind
from parley_server import metrics
from parley_server.logging import get_logger
from parley_server.service.context import Services, Session, now_ms
from parley_server.service.errors import ServiceError
from parley_server.store.admin import (
    AccountStatus,
    AdminStore,
    InviteRefused,
    PurgeReport,
    RegistrationMode,
)

if TYPE_CHECKING:
    from parley_server.service.conversations import Conversations

log = get_logger("parley.admin")


class LiveSocket(Protocol):
    """A node's open connection as the watch loop sees it (``gateway.connection.Connection``)."""

    session: Session

    def close(self, code: int, reason: str = "") -> None: ...


INVITE_CODE_BYTES = 16


def hash_invite(code: str) -> bytes:
    """Invites are stored only as their SHA-256, like session tokens."""
    return hashlib.sha256(code.strip().encode()).digest()


class Operators:
    def __init__(
        self, services: Services, store: AdminStore, conversations: Conversations | None = None
    ) -> None:
        self.s = services
        self.store = store
        self.conversations = conversations
        """Needed by ``delete_user`` only (to leave the account's groups)."""
        self._known: dict[str, AccountStatus] = {}

    # --- registration ------------------------------------------------------------------------
    async def mode(self) -> RegistrationMode:
        stored = await self.store.registration_mode()
        if stored is not None:
            return stored
        try:
            return RegistrationMode(self.s.settings.registration)
        except ValueError:
            return RegistrationMode.CLOSED  # a typo in the setting must not open the server

    async def admit(self, invite: str | None) -> bytes | None:
        """Before creating an account: raise unless the mode allows it; in invite mode claim
        the invite (one use) and return its hash, for ``bind`` or ``release``."""
        mode = await self.mode()
        if mode == RegistrationMode.OPEN:
            return None
        if mode == RegistrationMode.CLOSED:
            raise ServiceError(ErrorCode.REGISTRATION_CLOSED, "registration is closed")
        if not invite:
            raise ServiceError(ErrorCode.INVITE_REQUIRED, "registration needs an invite")
        code_hash = hash_invite(invite)
        try:
            await self.store.claim_invite(code_hash, now_ms())
        except InviteRefused:
            raise ServiceError(
                ErrorCode.INVITE_INVALID, "this invite is unknown, used or expired"
            ) from None
        return code_hash

    async def bind(self, code_hash: bytes | None, user_id: str) -> None:
        if code_hash is not None:
            await self.store.bind_invite(code_hash, user_id)

    async def release(self, code_hash: bytes | None) -> None:
        if code_hash is not None:
            await self.store.release_invite(code_hash)

    async def create_invite(self, ttl_s: float | None = None) -> tuple[str, int]:
        """A new one-time invite code and its expiry (ms)."""
        code = secrets.token_urlsafe(INVITE_CODE_BYTES)
        now = now_ms()
        expires = now + int(1000 * (ttl_s if ttl_s is not None else self.s.settings.invite_ttl_s))
        await self.store.create_invite(hash_invite(code), now, expires)
        return code, expires

    def invite_link(self, code: str) -> str:
        base = self.s.settings.public_url.rstrip("/")
        return f"{base}/#invite={code}" if base else f"#invite={code}"

    # --- account status ----------------------------------------------------------------------
    async def check_active(self, user_id: str) -> None:
        """Raise ``account_disabled`` for a disabled or deleted account."""
        if await self.store.status(user_id) is not None:
            raise ServiceError(ErrorCode.ACCOUNT_DISABLED, "this account is disabled")

    async def set_status(self, user_id: str, status: AccountStatus | None) -> bool:
        changed = await self.store.set_status(user_id, status, now_ms())
        log.info("account_status", user_id=user_id, status=status.value if status else "active")
        return changed

    async def delete_user(self, user_id: str) -> PurgeReport:
        """Delete an account: refuse it everywhere first, leave its groups (as if it left:
        the other members keep the group and see a ``left`` entry; ownership passes on), then
        purge its devices, keys, queues and social rows and tombstone its messages. Direct
        conversations stay with the other member, with the messages tombstoned."""
        await self.store.set_status(user_id, AccountStatus.DELETED, now_ms())
        after = None
        while True:
            page = await self.s.store.list_conversations(user_id, after, 100)
            if not page:
                break
            for info in page:
                if info.kind == ConversationKind.GROUP and self.conversations is not None:
                    try:
                        await self.conversations.group_leave(
                            Session(user_id, 0), GroupLeave(conversation_id=info.conversation_id)
                        )
                    except ServiceError as exc:
                        log.warning("delete_leave_failed", user_id=user_id, code=exc.code.value)
            after = page[-1].conversation_id
        tombstone = msgspec.msgpack.encode(Recalled(by=user_id, recalled_ts=now_ms()))
        report = await self.store.purge_user(user_id, tombstone, now_ms())
        log.info("account_deleted", user_id=user_id, devices=report.devices)
        return report

    # --- the watch loop of each node ---------------------------------------------------------
    async def poll(self, connections: Iterable[LiveSocket]) -> int:
        """Read the statuses; close the local sockets of accounts newly disabled or deleted.
        Returns how many sockets were closed."""
        current = await self.store.statuses()
        fresh = {u for u, st in current.items() if self._known.get(u) != st}
        self._known = current
        if not fresh:
            return 0
        closed = 0
        for conn in list(connections):
            if conn.session.user_id in fresh:
                conn.close(CloseCode.ACCOUNT_DISABLED, "account disabled")
                closed += 1
        if closed:
            metrics.ADMIN_CLOSES.inc(closed)
            log.info("admin_closed_sockets", count=closed)
        forget = getattr(self.s.store, "forget_cached_memberships", None)
        if forget is not None and any(current[u] == AccountStatus.DELETED for u in fresh):
            forget()
        return closed

    async def watch(self, connections: Iterable[LiveSocket]) -> None:
        every = max(0.05, self.s.settings.admin_poll_s)
        self._known = await self.store.statuses()
        while True:
            await asyncio.sleep(every)
            try:
                await self.poll(connections)
            except Exception:
                log.exception("admin_poll_failed")
