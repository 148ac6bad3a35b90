"""The conversations domain: conversations, members and their timelines of entries
(gap-free seqs, idempotent appends)."""

from __future__ import annotations

import abc
from collections.abc import Sequence

from parley.protocol.ops import ConvState
from parley.protocol.records import (
    ConvEntry,
    ConversationInfo,
    EventBody,
    Member,
    Membership,
    RefKind,
)
from parley.protocol.types import Role
from parley_server.store.records import AppendResult, MemberChange, MembershipResult


class ConversationStore(abc.ABC):
    """Conversations and their timelines. A membership change also appends user events (one
    transaction on SQLite; see docs/scale-out.md for Redis)."""

    # --- conversations -----------------------------------------------------------------------
    @abc.abstractmethod
    async def open_direct(
        self, user_a: str, user_b: str, conversation_id: bytes, now: int
    ) -> tuple[ConversationInfo, MembershipResult | None]:
        """The one direct conversation of the unordered pair {a, b}, creating it with
        ``conversation_id`` (and a CREATED entry and ConversationAdded events for both)
        if it does not exist. The second value is None when it already existed.
        Raises NotFound (creating nothing) if either user does not exist."""

    @abc.abstractmethod
    async def create_group(
        self, owner: str, members: Sequence[str], meta: bytes, conversation_id: bytes, now: int
    ) -> MembershipResult:
        """Create a group; ``owner`` gets Role.OWNER, the others Role.MEMBER; appends a CREATED
        entry (seq 1) and a ConversationAdded event to every member's timeline.
        Raises NotFound (creating nothing) if a member is not a registered user."""

    @abc.abstractmethod
    async def get_conversation(self, conversation_id: bytes) -> ConversationInfo | None: ...

    async def get_membership(self, conversation_id: bytes) -> ConversationInfo | None:
        """Like ``get_conversation`` for the send path, which needs only kind, members (with
        roles) and ``disbanded``: those are current, while ``last_seq``/``meta`` may be stale
        (an engine may cache it; it must drop the copy when a membership change commits)."""
        return await self.get_conversation(conversation_id)

    @abc.abstractmethod
    async def member_role(self, conversation_id: bytes, user_id: str) -> Role | None:
        """The user's role, or None when not a (current) member. Hot path: keep it cheap."""

    @abc.abstractmethod
    async def members(self, conversation_id: bytes) -> list[Member]: ...

    @abc.abstractmethod
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
        """Atomically: append ``entry`` with the next seq, apply the member ``changes``, set
        ``meta`` when given, mark disbanded when asked, and append ``events`` to those users'
        timelines. Events whose body is a ConversationChanged with seq 0 get the new entry's
        seq filled in. Raises NotFound (changing nothing) if the conversation, or a user
        named in ``changes`` or ``events``, does not exist."""

    @abc.abstractmethod
    async def list_conversations(
        self, user_id: str, after: bytes | None, limit: int
    ) -> list[ConversationInfo]:
        """The user's current conversations ordered by conversation id, after ``after``."""

    @abc.abstractmethod
    async def conversation_states(self, user_id: str) -> list[ConvState]:
        """(id, kind, last_seq, last_ts) of every current conversation of the user, by id.
        Must stay cheap for a user in 1,000 conversations."""

    # --- timeline ----------------------------------------------------------------------------
    @abc.abstractmethod
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
        """Append with the next gap-free seq, atomically with an idempotency check on
        (sender, sender_device, client_msg_id). Returns only after the write is durable.
        Raises NotFound if the conversation does not exist.

        With ``ref_seq``: in the same transaction, check that it names a live (not recalled)
        message of this conversation that this kind may reference (an edit: the sender's own
        original message; a reaction: not a reaction), else raise BadReference. Each user in
        ``mentions`` (already checked to be members) gets a Mentioned event."""

    @abc.abstractmethod
    async def history(
        self,
        conversation_id: bytes,
        after_seq: int | None,
        before_seq: int | None,
        limit: int,
    ) -> tuple[list[ConvEntry], bool]:
        """Entries ascending by seq: after ``after_seq``; or the last ``limit`` before
        ``before_seq``; or the latest ``limit``. The bool tells whether more exist in that
        direction."""

    # --- housekeeping --------------------------------------------------------------------------
    async def expire_idempotency(self, older_than: int) -> int:
        """Forget append idempotency keys created before ``older_than`` (ms); how many. Engines
        whose keys expire by themselves (Redis TTLs) keep this default."""
        return 0
