"""Replies bounded in bytes as well as in count.

Every reply must fit in one frame of ``max_frame`` bytes (announced in ``Welcome.limits``):
the clients refuse larger frames, and a server that built them held tens of MB per request
(500 history entries of 96 KiB are a 48 MB frame). Pages are read from the store in small
chunks, so one request never holds much more than a frame's worth, and a page stops early,
with ``more`` set, once the next item would not fit. The client continues from the last item
it got (``after_seq`` = its seq; backwards, ``before_seq`` = the first one's).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

import msgspec

from parley.protocol.limits import FRAME_HEADROOM

CHUNK = 64
"""Items read from the store per step while filling a page."""

_encoder = msgspec.msgpack.Encoder()


class _Seqd(Protocol):
    @property
    def seq(self) -> int: ...


T = TypeVar("T", bound=_Seqd)


def reply_budget(max_frame: int) -> int:
    """Bytes the items of one reply may take: a frame minus room for the reply's framing."""
    return max(1024, max_frame - FRAME_HEADROOM)


def wire_size(item: msgspec.Struct) -> int:
    return len(_encoder.encode(item))


async def forward_page(
    fetch: Callable[[int, int], Awaitable[Sequence[T]]],
    after: int,
    limit: int,
    budget: int,
    more_hint: Callable[[Sequence[T], int], bool] | None = None,
) -> tuple[list[T], bool, int]:
    """Items after ``after`` ascending, at most ``limit`` and ``budget`` bytes (at least one
    item when any exists). ``fetch(after, n)`` returns up to n items ascending. Returns
    (items, more, bytes used)."""
    out: list[T] = []
    used = 0
    cursor = after
    while len(out) < limit:
        want = min(CHUNK, limit - len(out))
        chunk = await fetch(cursor, want + 1)  # one extra: is there more after?
        for item in chunk[:want]:
            size = wire_size(item)  # type: ignore[arg-type]
            if out and used + size > budget:
                return out, True, used
            out.append(item)
            used += size
        if len(chunk) <= want:
            return out, False, used
        cursor = chunk[want - 1].seq
    return out, True, used


async def backward_page(
    fetch: Callable[[int | None, int], Awaitable[tuple[Sequence[T], bool]]],
    before: int | None,
    limit: int,
    budget: int,
) -> tuple[list[T], bool]:
    """The newest items before ``before`` (None: the latest), ascending, at most ``limit`` and
    ``budget`` bytes (at least one). ``fetch(before, n)`` returns (up to n items ascending,
    whether older ones exist). Returns (items, more older)."""
    newest_first: list[T] = []
    used = 0
    cursor = before
    while len(newest_first) < limit:
        want = min(CHUNK, limit - len(newest_first))
        chunk, older = await fetch(cursor, want)
        for item in reversed(chunk):
            size = wire_size(item)  # type: ignore[arg-type]
            if newest_first and used + size > budget:
                newest_first.reverse()
                return newest_first, True
            newest_first.append(item)
            used += size
        if not chunk or not older:
            newest_first.reverse()
            return newest_first, False
        cursor = chunk[0].seq
    newest_first.reverse()
    return newest_first, True
