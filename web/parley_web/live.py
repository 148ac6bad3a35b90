"""Live, never-stored state: who is typing in the open chat, how far the others have read
(read receipts), and contacts' presence (handed to the contacts pane). Fed by the engine's signal notifications and the ``receipts`` op; typing is
sent while the user types (refreshed every ``TYPING_REFRESH_S``, expired by the others after
``TYPING_TTL_S``)."""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

from parley.client.session import RequestError
from parley.protocol.limits import TYPING_REFRESH_S, TYPING_TTL_S
from parley.protocol.signals import PresenceSignal, ReceiptSignal, TypingSignal
from parley.protocol.social import ReceiptList, Receipts, Typing
from parley_web import dom
from parley_web.chats import row_enc
from parley_web.i18n import t

if TYPE_CHECKING:
    from parley_web.ui import Ui


class Live:
    def __init__(self, ui: Ui) -> None:
        self.ui = ui
        self.typing: dict[bytes, dict[str, float]] = {}  # cid -> user -> expires (monotonic)
        self.reads: dict[bytes, dict[str, int]] = {}  # cid -> user -> read seq
        self._sent_typing: dict[bytes, float] = {}
        self._label = dom.el("conv-typing")

    # --- outgoing typing -------------------------------------------------------------------
    def keystroke(self, cid: bytes) -> None:
        now = time.monotonic()
        if now - self._sent_typing.get(cid, -1e9) >= TYPING_REFRESH_S:
            self._sent_typing[cid] = now
            self.ui.spawn(self._typing(cid, True))

    def stopped(self, cid: bytes) -> None:
        if self._sent_typing.pop(cid, None) is not None:
            self.ui.spawn(self._typing(cid, False))

    async def _typing(self, cid: bytes, on: bool) -> None:
        with contextlib.suppress(RequestError, TimeoutError):
            await self.ui.m.session.request(Typing(conversation_id=cid, typing=on), 10)

    # --- incoming --------------------------------------------------------------------------
    def signal(self, sig: Any) -> None:
        if isinstance(sig, TypingSignal):
            users = self.typing.setdefault(sig.conversation_id, {})
            if sig.typing:
                users[sig.user_id] = time.monotonic() + TYPING_TTL_S
                js_later(TYPING_TTL_S + 0.1, self.render_typing)
            else:
                users.pop(sig.user_id, None)
            self.render_typing()
        elif isinstance(sig, PresenceSignal):
            self.ui.contacts.presence(sig.users)
        elif isinstance(sig, ReceiptSignal):
            reads = self._reads(sig.conversation_id)
            reads[sig.user_id] = max(reads.get(sig.user_id, 0), sig.seq)
            self._keep(sig.conversation_id)
            if sig.conversation_id == self.ui.view.cid:
                self.ui.view.rerender()

    def message_from(self, cid: bytes, user_id: str) -> None:
        """A message arrived: its sender has stopped typing."""
        if self.typing.get(cid, {}).pop(user_id, None) is not None:
            self.render_typing()

    async def load_receipts(self, cid: bytes) -> None:
        try:
            r = await self.ui.m.session.request(Receipts(conversation_id=cid), 10)
        except (RequestError, TimeoutError):
            return
        if isinstance(r, ReceiptList):
            reads = self._reads(cid)
            for rr in r.reads:
                reads[rr.user_id] = max(reads.get(rr.user_id, 0), rr.seq)
            self._keep(cid)
            if cid == self.ui.view.cid:
                self.ui.view.rerender()

    def read_upto(self, cid: bytes) -> int:
        """The highest seq another member has read (1:1: the peer)."""
        reads = self._reads(cid)
        return max((s for u, s in reads.items() if u != self.ui.m.user_id), default=0)

    def readers(self, cid: bytes, seq: int) -> list[str]:
        """The other members who have read ``seq`` (group receipts say who)."""
        me = self.ui.m.user_id
        return sorted(u for u, s in self._reads(cid).items() if u != me and s >= seq)

    def _reads(self, cid: bytes) -> dict[str, int]:
        """Read positions, starting from the ones kept with the chat (sealed at rest), so
        ticks do not fall back to "sent" after a reload."""
        if cid not in self.reads:
            chat = self.ui.m.chats.get(cid)
            self.reads[cid] = dict(chat.reads) if chat is not None else {}
        return self.reads[cid]

    def _keep(self, cid: bytes) -> None:
        chat = self.ui.m.chats.get(cid)
        if chat is not None and chat.reads != self.reads[cid]:
            chat.reads = dict(self.reads[cid])
            self.ui.spawn(self.ui.m.store.put_conv(cid, row_enc.encode(chat)))

    def render_typing(self) -> None:
        cid = self.ui.view.cid
        now = time.monotonic()
        users = self.typing.get(cid, {}) if cid is not None else {}
        for u in [u for u, exp in users.items() if exp <= now]:
            users.pop(u)
        names = [self.ui.m.name(u) for u in users if u != self.ui.m.user_id]
        self._label.textContent = t("conv.typing", who=", ".join(names)) if names else ""


def js_later(seconds: float, fn: Any) -> None:
    import asyncio

    asyncio.get_running_loop().call_later(seconds, fn)
