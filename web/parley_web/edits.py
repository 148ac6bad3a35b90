"""Edits and reactions: messages that point at an earlier message (``ref_kind`` ``edit`` /
``reaction``, the new text or the emoji inside the E2E envelope) and are folded INTO that
message's row instead of showing as rows of their own.

The rules are the protocol's (docs/protocol.md, "Edits, reactions, replies, mentions"): an
edit counts only from the original sender and the latest one (highest seq) wins; each user has
at most one reaction per message, the latest, and an empty one withdraws it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from parley.client.e2e import groups
from parley.client.e2e.state import Waiting
from parley.client.message_state import MessageState
from parley.crypto import content as content_mod
from parley.protocol.records import ConvEntry, Message, Recalled, RefKind
from parley_web.chats import Ref, Row, row_dec, row_enc

if TYPE_CHECKING:
    from parley_web.secure import Messenger

EDIT = "edit"
REACTION = "reaction"


def fold(row: Row, kind: str, sender: str, seq: int, text: str) -> bool:
    """Apply an edit or reaction (entry ``seq`` by ``sender``) to ``row``; True if it changed."""
    if row.state != MessageState.DECRYPTED:
        return False
    if kind == EDIT:
        if sender != row.sender or seq <= row.edit_seq:
            return False
        row.text, row.edited, row.edit_seq = text, True, seq
        return True
    if kind == REACTION:
        if seq <= row.react_seqs.get(sender, 0):
            return False
        row.react_seqs = {**row.react_seqs, sender: seq}
        reacts = {u: e for u, e in row.reacts.items() if u != sender}
        if text:
            reacts[sender] = text
        row.reacts = reacts
        return True
    return False


async def apply(
    m: Messenger, cid: bytes, kind: str, target: int, sender: str, seq: int, text: str
) -> None:
    """Fold one edit/reaction into the stored row it points at (a missing or undecrypted
    target: nothing to show it on, it is dropped)."""
    stored = await m.store.rows(cid, target, target)
    if not stored:
        return
    row = row_dec.decode(stored[0][1])
    if not fold(row, kind, sender, seq, text):
        return
    await m.store.put_rows(cid, [(row.seq, row_enc.encode(row))])
    c = m.chats.get(cid)
    if kind == EDIT and c is not None and c.last_seq == target:
        c.last_text = row.text
        await m.store.put_conv(cid, row_enc.encode(c))
        m._emit("chats", cid)
    m._emit("rows", cid)


async def send_edit(m: Any, cid: bytes, seq: int, text: str) -> str:
    return str(await m.send_text(cid, text, Ref(reply_to=seq, kind=EDIT)))


async def send_reaction(m: Any, cid: bytes, seq: int, emoji: str) -> str:
    """``emoji`` empty: withdraw our reaction."""
    return str(await m.send_text(cid, emoji, Ref(reply_to=seq, kind=REACTION)))


class Folds:
    """The messenger's side: which entries were edits/reactions (``done``, per conversation,
    sealed at rest, so a re-scan does not hand them again), and the ones still waiting for
    their key (folded when it arrives)."""

    def __init__(self, m: Messenger) -> None:
        self.m = m
        self.done: dict[bytes, set[int]] = {}
        self.waiting: dict[tuple[bytes, int], tuple[str, int, str]] = {}

    async def load(self) -> None:
        raw = await self.m.store.get_sealed("folded")
        if raw is not None:
            done = msgspec.msgpack.decode(raw, type=dict[bytes, list[int]])
            self.done = {cid: set(seqs) for cid, seqs in done.items()}

    async def _mark(self, cid: bytes, seq: int) -> None:
        self.done.setdefault(cid, set()).add(seq)
        plain = {c: sorted(s) for c, s in self.done.items()}
        await self.m.store.put_sealed("folded", msgspec.msgpack.encode(plain))

    async def entry(self, cid: bytes, e: ConvEntry | None, result: object) -> bool:
        """One handled entry; True if it was an edit or reaction (it gets no row)."""
        if e is None:  # decrypted late: one we saw waiting?
            seq = int(getattr(result, "seq", -1))
            w = self.waiting.pop((cid, seq), None)
            if w is None:
                return False
            await self._fold(cid, w[0], w[1], w[2], seq, result)
            return True
        b = e.body
        if isinstance(b, Recalled) and b.ref_kind in (RefKind.EDIT, RefKind.REACTION):
            await self._mark(cid, e.seq)  # a recalled edit/reaction: nothing to show
            return True
        if not isinstance(b, Message) or b.ref_seq is None:
            return False
        if b.ref_kind not in (RefKind.EDIT, RefKind.REACTION):
            return False
        if isinstance(result, Waiting):
            self.waiting[(cid, e.seq)] = (b.ref_kind.value, b.ref_seq, e.sender)
            return True
        await self._fold(cid, b.ref_kind.value, b.ref_seq, e.sender, e.seq, result)
        return True

    async def _fold(
        self, cid: bytes, kind: str, target: int, sender: str, seq: int, result: object
    ) -> None:
        """``result`` None: our own device's (folded when sent); Failed: nothing to show."""
        if isinstance(result, groups.Received) and isinstance(result.content, content_mod.Text):
            await apply(self.m, cid, kind, target, sender, seq, result.content.body)
        await self._mark(cid, seq)

    async def ours(self, cid: bytes, kind: str, target: int, seq: int, text: str) -> None:
        """Our own edit/reaction, stored by the server at ``seq``."""
        await apply(self.m, cid, kind, target, self.m.user_id, seq, text)
        await self._mark(cid, seq)
