"""Client-side state of the social layer, sans-IO: fold what the engine delivers into what a UI
shows. Nothing here sends or stores anything; a shell feeds it and reads it back.

* ``SocialState.apply_events``: the user event timeline (``EventsStored``): contacts, pending
  friend requests, blocks, own read positions, mentions, and recalls. It returns the
  ``(conversation_id, seq)`` pairs whose cached plaintext the shell must purge now, for every
  conversation, opened or not.
* ``SocialState.apply_signal``: ephemeral signals (``SignalReceived``): typing (expired
  client-side after ``TYPING_TTL_S``), other members' read receipts, contacts' presence.
* ``MessageFold``: folds a conversation's entries (with the plaintext the E2E layer decrypted)
  into messages: the latest edit by the original sender wins, reactions are counted with one
  reaction per user per message (an empty reaction withdraws it), replies are linked, and
  tombstones hide everything they covered.
* ``TypingSender``: when to send ``Typing`` so the indicator stays alive without spamming.
* ``count_unread``: the unread count of a conversation from locally stored entries.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from parley.protocol.limits import TYPING_REFRESH_S, TYPING_TTL_S
from parley.protocol.records import (
    BlockChanged,
    ContactAdded,
    ContactRemoved,
    ConvEntry,
    FriendRequestClosed,
    FriendRequestOpened,
    Mentioned,
    Message,
    MessageRecalled,
    ReadPosition,
    Recalled,
    RefKind,
    UserEvent,
)
from parley.protocol.signals import (
    PresenceSignal,
    PresenceState,
    ReceiptSignal,
    Signal,
    TypingSignal,
)

T = TypeVar("T")


# --- the user event timeline and signals ----------------------------------------------------


@dataclass
class SocialState:
    """What the user's devices agree on (from events) plus live signals (from pushes)."""

    contacts: set[str] = field(default_factory=set)
    incoming: dict[str, str] = field(default_factory=dict)  # user -> note
    outgoing: dict[str, str] = field(default_factory=dict)
    blocked: set[str] = field(default_factory=set)
    read: dict[bytes, int] = field(default_factory=dict)  # own read seq per conversation
    mentions: dict[bytes, list[int]] = field(default_factory=dict)  # unread mentions
    receipts: dict[bytes, dict[str, int]] = field(default_factory=dict)  # others' read seqs
    presence: dict[str, PresenceState] = field(default_factory=dict)
    _typing: dict[bytes, dict[str, float]] = field(default_factory=dict)  # -> expiry

    def apply_events(self, events: Iterable[UserEvent]) -> list[tuple[bytes, int]]:
        """Apply stored user events in seq order; returns entries to purge (recalled)."""
        purge: list[tuple[bytes, int]] = []
        for event in events:
            b = event.body
            if isinstance(b, FriendRequestOpened):
                (self.incoming if b.incoming else self.outgoing)[b.user_id] = b.note
            elif isinstance(b, FriendRequestClosed):
                (self.incoming if b.incoming else self.outgoing).pop(b.user_id, None)
            elif isinstance(b, ContactAdded):
                self.contacts.add(b.user_id)
            elif isinstance(b, ContactRemoved):
                self.contacts.discard(b.user_id)
                self.presence.pop(b.user_id, None)
            elif isinstance(b, BlockChanged):
                if b.blocked:
                    self.blocked.add(b.user_id)
                else:
                    self.blocked.discard(b.user_id)
            elif isinstance(b, ReadPosition):
                cid = b.conversation_id
                self.read[cid] = max(self.read.get(cid, 0), b.seq)
                left = [s for s in self.mentions.get(cid, []) if s > self.read[cid]]
                self.mentions[cid] = left
            elif isinstance(b, Mentioned):
                if b.seq > self.read.get(b.conversation_id, 0):
                    self.mentions.setdefault(b.conversation_id, []).append(b.seq)
            elif isinstance(b, MessageRecalled):
                purge += [(b.conversation_id, s) for s in (b.seq, *b.also)]
                gone = {b.seq, *b.also}
                if b.conversation_id in self.mentions:
                    kept = [s for s in self.mentions[b.conversation_id] if s not in gone]
                    self.mentions[b.conversation_id] = kept
        return purge

    def apply_signal(self, signal: Signal, now: float) -> None:
        """``now`` in seconds on the shell's monotonic clock (typing expiry)."""
        if isinstance(signal, TypingSignal):
            who = self._typing.setdefault(signal.conversation_id, {})
            if signal.typing:
                who[signal.user_id] = now + TYPING_TTL_S
            else:
                who.pop(signal.user_id, None)
        elif isinstance(signal, ReceiptSignal):
            seqs = self.receipts.setdefault(signal.conversation_id, {})
            seqs[signal.user_id] = max(seqs.get(signal.user_id, 0), signal.seq)
        elif isinstance(signal, PresenceSignal):
            self.apply_presence(signal.users)

    def apply_presence(self, states: Iterable[PresenceState]) -> None:
        """From a PresenceSignal, or a PresenceList snapshot after (re)connecting."""
        for state in states:
            self.presence[state.user_id] = state

    def typing_in(self, conversation_id: bytes, now: float) -> list[str]:
        """Who is typing there now (expired indicators are dropped)."""
        who = self._typing.get(conversation_id, {})
        for user in [u for u, until in who.items() if until <= now]:
            del who[user]
        return sorted(who)

    def message_typed(self, conversation_id: bytes, sender: str) -> None:
        """A message from ``sender`` arrived: their indicator ends with it."""
        self._typing.get(conversation_id, {}).pop(sender, None)


@dataclass
class TypingSender:
    """Decides when to send ``Typing``: ``True`` on the first keystroke and then at most every
    ``refresh_s`` while typing continues (well inside the 6 s expiry), ``False`` once on stop."""

    refresh_s: float = 2 * TYPING_REFRESH_S
    _sent_at: dict[bytes, float] = field(default_factory=dict)

    def keystroke(self, conversation_id: bytes, now: float) -> bool:
        """True: send ``Typing(conversation_id, typing=True)`` now."""
        at = self._sent_at.get(conversation_id)
        if at is not None and now - at < self.refresh_s:
            return False
        self._sent_at[conversation_id] = now
        return True

    def stopped(self, conversation_id: bytes) -> bool:
        """True: send ``Typing(conversation_id, typing=False)`` (message sent, field cleared)."""
        return self._sent_at.pop(conversation_id, None) is not None


# --- folding a conversation's entries ---------------------------------------------------------


@dataclass
class FoldedMessage(Generic[T]):
    seq: int
    sender: str
    ts: int
    content: T | None  # None: recalled (or not decrypted yet)
    recalled: bool = False
    edited: bool = False
    reply_to: int | None = None
    reactions: Counter[T] = field(default_factory=Counter)


@dataclass
class MessageFold(Generic[T]):
    """Folds entries into messages. ``content`` is what the E2E layer decrypted for an entry:
    the text of a message or an edit, the reaction key (e.g. an emoji) of a reaction; None if
    not decrypted (yet). Entries may arrive in any order; an edit or reaction whose target is
    not known yet is kept and applied when the target arrives."""

    messages: dict[int, FoldedMessage[T]] = field(default_factory=dict)
    _original: dict[int, T | None] = field(default_factory=dict)
    _edits: dict[int, list[tuple[int, str, T | None]]] = field(default_factory=dict)
    _reactions: dict[int, dict[str, tuple[int, T | None]]] = field(default_factory=dict)

    def add(self, entry: ConvEntry, content: T | None) -> None:
        body = entry.body
        if isinstance(body, Recalled):
            self._recall(entry, body)
            return
        if not isinstance(body, Message):
            return
        if body.ref_seq is not None and body.ref_kind == RefKind.EDIT:
            self._edits.setdefault(body.ref_seq, []).append((entry.seq, entry.sender, content))
            self._refold(body.ref_seq)
        elif body.ref_seq is not None and body.ref_kind == RefKind.REACTION:
            mine = self._reactions.setdefault(body.ref_seq, {})
            if entry.sender not in mine or mine[entry.sender][0] < entry.seq:
                mine[entry.sender] = (entry.seq, content)
            self._refold(body.ref_seq)
        else:
            reply = body.ref_seq if body.ref_kind == RefKind.REPLY else None
            self._original[entry.seq] = content
            self.messages[entry.seq] = FoldedMessage(
                entry.seq, entry.sender, entry.ts, content, reply_to=reply
            )
            self._refold(entry.seq)

    def _recall(self, entry: ConvEntry, body: Recalled) -> None:
        if body.ref_kind == RefKind.EDIT and body.ref_seq is not None:
            edits = self._edits.get(body.ref_seq, [])
            self._edits[body.ref_seq] = [e for e in edits if e[0] != entry.seq]
            self._refold(body.ref_seq)
        elif body.ref_kind == RefKind.REACTION and body.ref_seq is not None:
            mine = self._reactions.get(body.ref_seq, {})
            if entry.sender in mine and mine[entry.sender][0] == entry.seq:
                del mine[entry.sender]
            self._refold(body.ref_seq)
        else:
            self._original.pop(entry.seq, None)
            self.messages[entry.seq] = FoldedMessage(
                entry.seq, entry.sender, entry.ts, None, recalled=True
            )

    def _refold(self, seq: int) -> None:
        msg = self.messages.get(seq)
        if msg is None or msg.recalled:
            return
        edits = [e for e in self._edits.get(seq, []) if e[1] == msg.sender]
        if edits:
            latest = max(edits, key=lambda e: e[0])
            msg.content, msg.edited = latest[2], True
        else:
            msg.content, msg.edited = self._original.get(seq), False
        counts: Counter[T] = Counter()
        for _, key in self._reactions.get(seq, {}).values():
            if key:  # None (not decrypted) or empty: no reaction
                counts[key] += 1
        msg.reactions = counts

    def ordered(self) -> list[FoldedMessage[T]]:
        return [self.messages[s] for s in sorted(self.messages)]


def count_unread(entries: Sequence[ConvEntry], read_seq: int, me: str) -> int:
    """Messages from others after ``read_seq`` (edits, reactions and tombstones don't count):
    the same rule as the server's ``ConvState.unread``."""
    return sum(
        1
        for e in entries
        if e.seq > read_seq
        and e.sender != me
        and isinstance(e.body, Message)
        and e.body.ref_kind not in (RefKind.EDIT, RefKind.REACTION)
    )
