"""Cursors of the per-user event timeline and the per-device to-device queue.

Unlike conversations these are not buffered: a gap makes the engine re-run ``Sync`` from the
frontier, and a Sync page is authoritative (its items are accepted in order even across holes,
since to-device items expire). The cursor moves only when the shell reports the items stored;
for the to-device queue that report is what triggers the ``ToDeviceAck``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

from parley.sync.conversation import Classification, classify


class HasSeq(Protocol):
    @property
    def seq(self) -> int: ...


S = TypeVar("S", bound=HasSeq)


class StreamSync:
    def __init__(self, cursor: int = 0) -> None:
        self.cursor = cursor  # stored locally
        self.frontier = cursor  # handed to the shell for storing

    def push(self, seq: int) -> Classification:
        """Classify a pushed item; NEXT moves the frontier (store it, then report stored)."""
        kind = classify(seq, self.frontier)
        if kind is Classification.NEXT:
            self.frontier = seq
        return kind

    def page(self, items: Sequence[S]) -> list[S]:
        """The items of a Sync page to store: those past the frontier, ascending."""
        fresh = sorted((i for i in items if i.seq > self.frontier), key=lambda i: i.seq)
        if fresh:
            self.frontier = fresh[-1].seq
        return fresh

    def stored(self, upto: int) -> bool:
        """The shell committed everything up to ``upto``. True when the cursor advanced."""
        if upto <= self.cursor or upto > self.frontier:
            return False
        self.cursor = upto
        return True
