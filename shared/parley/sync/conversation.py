"""Per-conversation sequence sync: classification of pushes, the gap buffer, pull planning.

See the package docstring for the rules. Everything here is synchronous and allocation-light:
one ``ConversationSync`` per conversation, fed by the client engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from parley.protocol.limits import HISTORY_PAGE_MAX
from parley.protocol.ops import History, HistoryPage
from parley.protocol.records import ConvEntry

BUFFER_MAX = HISTORY_PAGE_MAX
"""Most out-of-order pushed entries kept per conversation; beyond that they are re-pulled."""


class Classification(Enum):
    NEXT = "next"  # seq == last + 1: store it
    DUPLICATE = "duplicate"  # seq <= last: already held (or being stored); drop it
    GAP = "gap"  # seq > last + 1: something is missing before it


def classify(seq: int, last: int) -> Classification:
    """Classify ``seq`` against ``last``, the highest contiguous seq held or being stored."""
    if seq == last + 1:
        return Classification.NEXT
    if seq <= last:
        return Classification.DUPLICATE
    return Classification.GAP


@dataclass(frozen=True, eq=False)
class Pull:
    """A planned ``History`` request. Identity matters: the engine hands it back with its page."""

    conversation_id: bytes
    after_seq: int | None = None
    before_seq: int | None = None
    limit: int = HISTORY_PAGE_MAX

    @property
    def older(self) -> bool:
        """An on-demand page of older history (never moves the cursor)."""
        return self.before_seq is not None

    def op(self) -> History:
        return History(
            conversation_id=self.conversation_id,
            after_seq=self.after_seq,
            before_seq=self.before_seq,
            limit=self.limit,
        )


@dataclass(frozen=True)
class StoreRange:
    """Entries for the shell to store, ascending and contiguous, in ONE transaction together
    with ``cursor`` (when not None; write ``max(old, cursor)``). Afterwards the shell reports
    ``range_stored(first, last)``.

    The shell MUST complete StoreRanges in the order they were handed out (the Session driver
    does: it awaits each store before the next effect). ``cursor`` counts on the earlier ranges
    being stored already; completing a later range first could persist a cursor past a hole."""

    conversation_id: bytes
    entries: tuple[ConvEntry, ...]
    cursor: int | None

    @property
    def first(self) -> int:
        return self.entries[0].seq

    @property
    def last(self) -> int:
        return self.entries[-1].seq


Action = Pull | StoreRange


class ConversationSync:
    """Sync state of one conversation. Methods return the actions to carry out, in order."""

    def __init__(
        self,
        conversation_id: bytes,
        cursor: int = 0,
        *,
        eager: bool = True,
        page: int = HISTORY_PAGE_MAX,
    ) -> None:
        self.conversation_id = conversation_id
        self.cursor = cursor  # stored locally (what the shell reported)
        self.frontier = cursor  # handed to the shell for storing
        self.known_last = cursor  # newest seq the server told us about
        self.eager = eager
        self.in_view = False
        self.page = max(1, min(page, HISTORY_PAGE_MAX))
        self.pulling: Pull | None = None
        self.removed = False  # the user left; stop pulling
        self.buffer: dict[int, ConvEntry] = {}
        self._parked: list[tuple[int, int]] = []  # stored ranges not yet contiguous
        self._jump_first: int | None = None  # first seq of a recent page that jumps the cursor

    # --- inputs ------------------------------------------------------------------------------
    def push(self, entry: ConvEntry) -> list[Action]:
        """A pushed entry (or our own just-sent one)."""
        seq = entry.seq
        self.known_last = max(self.known_last, seq)
        kind = classify(seq, self.frontier)
        if kind is Classification.DUPLICATE:
            return []
        if kind is Classification.GAP:
            if len(self.buffer) < BUFFER_MAX:
                self.buffer[seq] = entry
            return self.plan()
        actions: list[Action] = [self._hand_on([entry])]
        return actions + self.plan()

    def server_last_seq(self, last_seq: int) -> list[Action]:
        """The server's newest seq of this conversation (from Sync or a HistoryPage)."""
        self.known_last = max(self.known_last, last_seq)
        return self.plan()

    def set_in_view(self, in_view: bool) -> list[Action]:
        self.in_view = in_view
        return self.plan()

    def page_received(self, pull: Pull, page: HistoryPage) -> list[Action]:
        """The reply to ``pull``. Older pages are stored without moving the cursor."""
        self.known_last = max(self.known_last, page.last_seq)
        if pull.older:
            older = tuple(e for e in page.entries if e.seq <= self.frontier)
            return [StoreRange(self.conversation_id, older, None)] if older else []
        if pull is self.pulling:
            self.pulling = None
        fresh = sorted((e for e in page.entries if e.seq > self.frontier), key=lambda e: e.seq)
        actions: list[Action] = []
        if fresh and fresh[0].seq > self.frontier + 1:
            if pull.after_seq is None:  # the recent page of a lazy chat: jump the head range
                run = _contiguous_prefix(fresh)
                self._jump_first = run[0].seq
                self.frontier = run[0].seq - 1
                for e in fresh[len(run) :]:
                    self.buffer.setdefault(e.seq, e)
                fresh = run
            else:  # the server skipped seqs: keep what we got, pull again
                for e in fresh:
                    self.buffer.setdefault(e.seq, e)
                fresh = []
        if fresh:
            actions.append(self._hand_on(_contiguous_prefix(fresh)))
        elif self.buffer and min(self.buffer) == self.frontier + 1:
            actions.append(self._hand_on([]))
        return actions + self.plan()

    def pull_failed(self, pull: Pull) -> None:
        """The pull got an error or the connection dropped; plan again later."""
        if pull is self.pulling:
            self.pulling = None

    def range_stored(self, first: int, last: int) -> bool:
        """The shell committed entries ``first..last``. True when the cursor advanced."""
        before = self.cursor
        if self._jump_first is not None and first == self._jump_first:
            self._jump_first = None
            self.cursor = max(self.cursor, last)
        else:
            self._parked.append((first, last))
        self._parked.sort()
        keep: list[tuple[int, int]] = []
        for lo, hi in self._parked:
            if lo <= self.cursor + 1:
                self.cursor = max(self.cursor, hi)
            else:
                keep.append((lo, hi))
        self._parked = keep
        return self.cursor > before

    def older(self, before_seq: int, limit: int | None = None) -> Pull:
        """An on-demand page of the history just before ``before_seq`` (the UI's scroll)."""
        return Pull(self.conversation_id, before_seq=before_seq, limit=limit or self.page)

    # --- planning ----------------------------------------------------------------------------
    @property
    def behind(self) -> int:
        """How many entries the server has beyond what is held or being stored."""
        return max(0, self.known_last - self.frontier)

    def plan(self) -> list[Action]:
        """The next pull, if one is due and none is in flight."""
        if self.removed or self.pulling is not None or self.known_last <= self.frontier:
            return []
        if not (self.eager or self.in_view):
            return []
        if self.eager or self.behind <= self.page:
            limit = self.page
            if self.buffer:  # fetch just the hole before the buffered entries
                limit = max(1, min(limit, min(self.buffer) - self.frontier - 1))
            pull = Pull(self.conversation_id, after_seq=self.frontier, limit=limit)
        else:
            pull = Pull(self.conversation_id, limit=self.page)
        self.pulling = pull
        return [pull]

    # --- internals ---------------------------------------------------------------------------
    def _hand_on(self, entries: list[ConvEntry]) -> StoreRange:
        """Hand ``entries`` (contiguous from frontier+1) plus now-contiguous buffered ones on."""
        out = list(entries)
        if out:
            self.frontier = out[-1].seq
        while self.frontier + 1 in self.buffer:
            self.frontier += 1
            out.append(self.buffer.pop(self.frontier))
        for seq in [s for s in self.buffer if s <= self.frontier]:
            del self.buffer[seq]
        return StoreRange(self.conversation_id, tuple(out), self.frontier)


def _contiguous_prefix(entries: list[ConvEntry]) -> list[ConvEntry]:
    run = entries[:1]
    for e in entries[1:]:
        if e.seq != run[-1].seq + 1:
            break
        run.append(e)
    return run
