"""The browser's folding of edits and reactions into their target row (web/parley_web/edits.py), by
the protocol's rules; plain Python, no browser."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "web") not in sys.path:
    sys.path.insert(0, str(ROOT / "web"))

from parley_web.chats import Row, row_dec, row_enc  # noqa: E402
from parley_web.edits import EDIT, REACTION, fold  # noqa: E402

from parley.client.message_state import MessageState  # noqa: E402


def _row() -> Row:
    return Row(seq=5, sender="ann", ts=1, state=MessageState.DECRYPTED, text="hello")


def test_edits_only_by_the_sender_latest_wins_in_any_order() -> None:
    r = _row()
    assert not fold(r, EDIT, "ben", 9, "hijacked")  # not the sender: ignored
    assert fold(r, EDIT, "ann", 8, "hello again")
    assert not fold(r, EDIT, "ann", 7, "older edit arriving late")
    assert (r.text, r.edited, r.edit_seq) == ("hello again", True, 8)
    assert fold(r, EDIT, "ann", 10, "hello, final")
    assert r.text == "hello, final"
    assert row_dec.decode(row_enc.encode(r)) == r  # sealed at rest as it is


def test_one_reaction_per_user_latest_wins_empty_withdraws() -> None:
    r = _row()
    assert fold(r, REACTION, "ben", 6, "👍")
    assert fold(r, REACTION, "cat", 7, "👍")
    assert fold(r, REACTION, "ben", 8, "❤️")  # ben changes his mind
    assert not fold(r, REACTION, "ben", 6, "😂")  # a stale one changes nothing
    assert r.reacts == {"ben": "❤️", "cat": "👍"}
    assert fold(r, REACTION, "cat", 9, "")  # withdrawn
    assert r.reacts == {"ben": "❤️"}
    assert not fold(r, REACTION, "cat", 7, "👍")  # older than the withdrawal


def test_nothing_folds_into_a_row_that_is_not_readable() -> None:
    for state in (MessageState.WAITING, MessageState.RECALLED, MessageState.FAILED):
        r = Row(seq=5, sender="ann", ts=1, state=state)
        assert not fold(r, EDIT, "ann", 8, "x")
        assert not fold(r, REACTION, "ben", 8, "👍")
        assert (r.text, r.reacts) == ("", {})
    assert not fold(_row(), "reply", "ann", 8, "x")
