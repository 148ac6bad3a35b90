"""Lookup, profile settings, friend requests, contacts and blocks.

Every change goes through one atomic ``SocialStore`` call that also appends the user events
(both sides, and the caller's own other devices), which are then pushed. Lookups never tell a
hidden user apart from a user who does not exist: both answer an empty match list.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from parley.protocol import limits
from parley.protocol import social as op
from parley.protocol.errors import ErrorCode
from parley.protocol.ops import Ok
from parley_server.service.context import Services, Session, now_ms
from parley_server.service.errors import ServiceError
from parley_server.service.push import push_events
from parley_server.service.ratelimit import SlidingWindow
from parley_server.store.base import NotFound
from parley_server.store.social import (
    AlreadyContacts,
    Blocked,
    Events,
    ProfileChange,
    ProfileRow,
    RequestRow,
    SocialStore,
    TooManyPending,
)

if TYPE_CHECKING:
    from parley_server.service.presence import Presence

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
_PHONE_JUNK = re.compile(r"[\s().\-/]")


def normalize_email(text: str) -> str:
    """Trimmed and lowercased (mail providers treat the local part case-insensitively)."""
    email = text.strip().lower()
    if len(email) > limits.EMAIL_MAX or not _EMAIL.match(email):
        raise ServiceError(ErrorCode.INVALID, "not an email address")
    return email


def normalize_phone(text: str) -> str:
    """E.164: ``+`` and 7..15 digits; spaces, dots, dashes, slashes and parentheses dropped,
    a leading ``00`` read as ``+``."""
    phone = _PHONE_JUNK.sub("", text.strip())
    if phone.startswith("00"):
        phone = "+" + phone[2:]
    digits = phone[1:]
    if (
        not phone.startswith("+")
        or not digits.isascii()
        or not digits.isdigit()
        or not limits.PHONE_DIGITS_MIN <= len(digits) <= limits.PHONE_DIGITS_MAX
    ):
        raise ServiceError(ErrorCode.INVALID, "not a phone number in international form (+...)")
    return phone


def _profile(row: ProfileRow) -> op.Profile:
    return op.Profile(
        email=row.email,
        phone=row.phone,
        hidden=row.hidden,
        read_receipts=row.read_receipts,
        last_seen_visible=row.last_seen_visible,
    )


def _pending(rows: list[RequestRow]) -> list[op.PendingRequest]:
    return [
        op.PendingRequest(user_id=r.user_id, username=r.username, note=r.note, created=r.created)
        for r in rows
    ]


class Social:
    def __init__(self, services: Services, store: SocialStore) -> None:
        self.s = services
        self.store = store
        self.presence: Presence | None = None  # told about contact changes
        cfg = services.settings
        self._lookups = SlidingWindow(cfg.lookup_limit, cfg.lookup_window_s)

    async def _publish(self, events: Events) -> None:
        await push_events(self.s.broker, events)

    async def _other(self, session: Session, user_id: str) -> None:
        if user_id == session.user_id:
            raise ServiceError(ErrorCode.CONFLICT, "that is yourself")
        if not await self.s.store.users_exist([user_id]):
            raise ServiceError(ErrorCode.UNKNOWN_USER, "no such user")

    def _contacts_changed(self, *users: str) -> None:
        if self.presence is not None:
            self.presence.contacts_changed(users)

    # --- lookup and profile ------------------------------------------------------------------
    async def lookup(self, session: Session, q: op.UserLookup) -> op.UserMatches:
        given = [
            (k, v)
            for k, v in (("username", q.username), ("email", q.email), ("phone", q.phone))
            if v is not None
        ]
        if len(given) != 1:
            raise ServiceError(ErrorCode.INVALID, "give exactly one of username, email, phone")
        field, raw = given[0]
        wait = self._lookups.retry_after(session.user_id)
        if wait is not None:  # a directory must not be cheap to enumerate
            raise ServiceError(ErrorCode.RATE_LIMITED, "too many lookups, try later", wait)
        self._lookups.hit(session.user_id)
        if field == "email":
            value = normalize_email(raw)
        elif field == "phone":
            value = normalize_phone(raw)
        else:
            value = raw.strip().lower()
        rows = await self.store.find_users(field, value, limits.LOOKUP_RESULTS_MAX)
        return op.UserMatches(users=[op.UserCard(user_id=u, username=n) for u, n in rows])

    async def visible_user(self, user_id: str) -> bool:
        """False when the user hides from lookup (the HTTP username lookup asks this)."""
        return not (await self.store.get_profile(user_id)).hidden

    async def profile_get(self, session: Session, _: op.ProfileGet) -> op.Profile:
        return _profile(await self.store.get_profile(session.user_id))

    async def profile_set(self, session: Session, q: op.ProfileSet) -> op.Profile:
        change = ProfileChange(
            email=None
            if q.email is None
            else (normalize_email(q.email) if q.email.strip() else ""),
            phone=None
            if q.phone is None
            else (normalize_phone(q.phone) if q.phone.strip() else ""),
            hidden=q.hidden,
            read_receipts=q.read_receipts,
            last_seen_visible=q.last_seen_visible,
        )
        row = await self.store.set_profile(session.user_id, change)
        if q.last_seen_visible is not None and self.presence is not None:
            self.presence.touch(session.user_id)
        return _profile(row)

    # --- friend requests -----------------------------------------------------------------------
    async def request(self, session: Session, q: op.FriendRequest) -> op.FriendRequested:
        await self._other(session, q.user_id)
        try:
            result = await self.store.send_request(
                session.user_id, q.user_id, q.note, limits.MAX_PENDING_REQUESTS, now_ms()
            )
        except Blocked:
            raise ServiceError(ErrorCode.BLOCKED, "you cannot send this user a request") from None
        except AlreadyContacts:
            raise ServiceError(ErrorCode.CONFLICT, "you are already contacts") from None
        except TooManyPending:
            raise ServiceError(
                ErrorCode.RATE_LIMITED,
                f"at most {limits.MAX_PENDING_REQUESTS} pending requests; cancel some first",
            ) from None
        except NotFound:
            raise ServiceError(ErrorCode.UNKNOWN_USER, "no such user") from None
        await self._publish(result.events)
        if result.contact:
            self._contacts_changed(session.user_id, q.user_id)
        return op.FriendRequested(contact=result.contact)

    async def _close(self, sender: str, target: str, outcome: str) -> Ok:
        try:
            events = await self.store.close_request(sender, target, outcome, now_ms())
        except NotFound:
            raise ServiceError(ErrorCode.NOT_FOUND, "no pending request") from None
        await self._publish(events)
        if outcome == "accepted":
            self._contacts_changed(sender, target)
        return Ok()

    async def cancel(self, session: Session, q: op.FriendCancel) -> Ok:
        return await self._close(session.user_id, q.user_id, "cancelled")

    async def accept(self, session: Session, q: op.FriendAccept) -> Ok:
        return await self._close(q.user_id, session.user_id, "accepted")

    async def reject(self, session: Session, q: op.FriendReject) -> Ok:
        return await self._close(q.user_id, session.user_id, "rejected")

    async def requests(self, session: Session, _: op.FriendRequests) -> op.FriendRequestList:
        incoming, outgoing, more = await self.store.list_requests(
            session.user_id, limits.CONTACTS_PAGE_MAX
        )

        return op.FriendRequestList(
            incoming=_pending(incoming), outgoing=_pending(outgoing), more=more
        )

    # --- contacts and blocks -------------------------------------------------------------------
    async def contacts(self, session: Session, _: op.ContactList) -> op.Contacts:
        rows, blocked, more = await self.store.list_contacts(
            session.user_id, limits.CONTACTS_PAGE_MAX
        )
        return op.Contacts(
            contacts=[
                op.ContactInfo(user_id=r.user_id, username=r.username, since=r.since) for r in rows
            ],
            blocked=blocked,
            more=more,
        )

    async def remove(self, session: Session, q: op.ContactRemove) -> Ok:
        try:
            events = await self.store.remove_contact(session.user_id, q.user_id, now_ms())
        except NotFound:
            raise ServiceError(ErrorCode.NOT_FOUND, "not a contact") from None
        await self._publish(events)
        self._contacts_changed(session.user_id, q.user_id)
        return Ok()

    async def block(self, session: Session, q: op.Block) -> Ok:
        await self._other(session, q.user_id)
        try:
            events = await self.store.block(session.user_id, q.user_id, now_ms())
        except NotFound:
            raise ServiceError(ErrorCode.UNKNOWN_USER, "no such user") from None
        await self._publish(events)
        self._contacts_changed(session.user_id, q.user_id)
        return Ok()

    async def unblock(self, session: Session, q: op.Unblock) -> Ok:
        try:
            events = await self.store.unblock(session.user_id, q.user_id, now_ms())
        except NotFound:
            raise ServiceError(ErrorCode.NOT_FOUND, "that user is not blocked") from None
        await self._publish(events)
        return Ok()
