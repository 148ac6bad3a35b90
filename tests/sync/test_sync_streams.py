from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from parley.protocol.records import ToDeviceItem
from parley.sync import Classification, StreamSync


def item(seq: int) -> ToDeviceItem:
    return ToDeviceItem(seq=seq, ts=0, sender="u", sender_device=1, body=b"")


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(1, 30), max_size=60))
def test_push_moves_the_frontier_only_on_next_and_never_the_cursor(seqs: list[int]) -> None:
    s = StreamSync()
    for seq in seqs:
        before = s.frontier
        kind = s.push(seq)
        assert (kind is Classification.NEXT) == (seq == before + 1)
        assert s.frontier == (seq if kind is Classification.NEXT else before)
        assert s.cursor == 0


def test_sync_page_is_authoritative_across_holes_and_cursor_waits_for_storage() -> None:
    s = StreamSync(cursor=2)
    fresh = s.page([item(5), item(2), item(9)])
    assert [i.seq for i in fresh] == [5, 9] and s.frontier == 9 and s.cursor == 2
    assert not s.stored(10)  # never past what was handed on
    assert s.stored(9) and s.cursor == 9
    assert not s.stored(4)  # never backwards
