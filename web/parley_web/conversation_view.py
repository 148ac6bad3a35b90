"""The open conversation: chat bubbles (``bubbles``) for a WINDOW of the newest rows, grown
by a page of older ones when the reader scrolls near the top, then our own messages still on
their way out.

Bubbles have any height (text wraps, newlines are kept), so instead of positioning fixed-height
rows the view renders the last ``PAGE`` rows and prepends older pages on demand, keeping the
reader's place. Opening a chat costs one read of its seqs (a typed array from IndexedDB) plus
one page of rows, whatever the length of the history. ``window.parleyUi.openMs`` holds the last
open's duration (bench).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import js  # type: ignore[import-not-found]

from parley.client.message_state import MessageState
from parley_web import bubbles, dom, edits
from parley_web.chats import Outgoing, Row
from parley_web.i18n import t

if TYPE_CHECKING:
    from parley_web.ui import Ui

PAGE = 40
"""Rows rendered when a chat opens, and added per scroll to the top."""
NEAR_TOP_PX = 150


class ConversationView:
    def __init__(self, ui: Ui) -> None:
        self.ui = ui
        self.cid: bytes | None = None
        self.seqs: list[int] = []
        self.first = 0  # index in ``seqs`` of the first rendered row
        self.rows: list[Row] = []  # the rendered window
        self.scroll = dom.el("conv-scroll")
        self.rows_el = dom.el("conv-rows")
        self.out_el = dom.el("conv-outgoing")
        self._listeners = dom.Listeners()
        self._listeners.on(self.scroll, "scroll", self._on_scroll)
        self._listeners.on(self.out_el, "click", self._on_out_click)
        self._listeners.on(self.rows_el, "click", self._on_row_click)
        self._loading_older = False

    @property
    def m(self) -> Any:
        return self.ui.m

    async def open(self, cid: bytes) -> None:
        t0 = js.performance.now()
        self.cid = cid
        self.m.open_cid = cid
        self.ui.composer.show(True)
        dom.show(dom.el("conv-empty"), False)
        dom.show(self.scroll, True)
        dom.show(dom.el("conv-details"), True)
        self.title()
        self.ui.calls.on_chat(cid)
        self.seqs = await self.m.row_seqs(cid)
        if self.cid != cid:
            return
        self.first = max(0, len(self.seqs) - PAGE)
        self.render_outgoing()
        await self._load()
        self.scroll.scrollTop = self.scroll.scrollHeight
        js.window.parleyUi.openMs = js.performance.now() - t0
        js.window.parleyUi.openRows = len(self.seqs)
        self.ui.live.render_typing()
        self.ui.spawn(self.ui.live.load_receipts(cid))
        if js.document.hidden:
            self.m.open_cid = None
            return
        await self.m.mark_read(cid)
        self.ui.spawn(self.m.send_read_mark(cid))

    def title(self) -> None:
        if self.cid is not None:
            dom.el("conv-title").textContent = self.m.title(self.cid)

    def close(self) -> None:
        self.cid = None
        self.m.open_cid = None
        self.rows = []
        self.rows_el.replaceChildren()
        dom.show(dom.el("conv-empty"), True)
        dom.show(self.scroll, False)
        dom.show(dom.el("conv-details"), False)
        self.ui.calls.on_chat(None)
        self.ui.composer.show(False)
        dom.el("conv-title").textContent = ""

    async def refresh(self) -> None:
        """New or changed rows in the open chat: keep the bottom in view if it was."""
        cid = self.cid
        if cid is None:
            return
        s = self.scroll
        at_bottom = s.scrollTop + s.clientHeight >= s.scrollHeight - 80
        top = s.scrollTop
        self.seqs = await self.m.row_seqs(cid)
        if self.cid != cid:
            return
        self.first = min(self.first, max(0, len(self.seqs) - PAGE))
        self.render_outgoing()
        await self._load()
        s.scrollTop = s.scrollHeight if at_bottom else top
        if not js.document.hidden:  # a hidden tab has read nothing
            await self.m.mark_read(cid)
            self.ui.spawn(self.m.send_read_mark(cid))

    def rerender(self) -> None:
        """Same rows, new words or new receipts (no store read)."""
        self.title()
        self.render_outgoing()
        top = self.scroll.scrollTop
        self._paint()
        self.scroll.scrollTop = top

    async def _load(self) -> None:
        cid = self.cid
        if cid is None:
            return
        rows: list[Row] = []
        if self.first < len(self.seqs):
            rows = await self.m.rows(cid, self.seqs[self.first], self.seqs[-1])
        if cid != self.cid:
            return
        self.rows = rows
        self._paint()

    def _paint(self) -> None:
        if self.cid is None:
            return
        chat = self.m.chats.get(self.cid)
        ctx = bubbles.Context(
            self.m.user_id,
            chat is not None and chat.kind == "group",
            self.m.name,
            lambda seq: self.ui.live.readers(self.cid, seq) if self.cid else [],
        )
        self.rows_el.replaceChildren(bubbles.render(self.rows, ctx))

    def _on_scroll(self, _event: Any) -> None:
        if self.scroll.scrollTop < NEAR_TOP_PX and self.first > 0 and not self._loading_older:
            self.ui.spawn(self._older())

    async def _older(self) -> None:
        """A page of older rows above, the reader's place kept."""
        self._loading_older = True
        try:
            before = self.scroll.scrollHeight
            self.first = max(0, self.first - PAGE)
            await self._load()
            self.scroll.scrollTop += self.scroll.scrollHeight - before
        finally:
            self._loading_older = False

    def row(self, seq: int) -> Row | None:
        return next((r for r in self.rows if r.seq == seq), None)

    def _on_row_click(self, event: Any) -> None:
        target = event.target
        cid = self.cid
        if cid is None:
            return
        node = target.closest(".msg")
        if (seq := dom.data(target, "reply")) is not None:
            r = self.row(int(seq))
            self.ui.composer.reply((int(seq), r.text if r else ""))
        elif (seq := dom.data(target, "picker")) is not None and node:
            self._toggle_extra(node, "picker", lambda: bubbles.picker(int(seq)))
        elif (seq := dom.data(target, "react")) is not None:
            emoji = dom.data(target, "emoji") or ""
            r = self.row(int(seq))
            mine = r.reacts.get(self.m.user_id) if r else None
            self.ui.spawn(self._react(cid, int(seq), "" if mine == emoji else emoji))
        elif (seq := dom.data(target, "edit")) is not None:
            r = self.row(int(seq))
            if r is not None:
                self.ui.composer.edit((r.seq, r.text))
        elif (seq := dom.data(target, "recall")) is not None and node:
            self._toggle_extra(node, "confirm", lambda: bubbles.confirm_recall(int(seq)))
        elif (seq := dom.data(target, "recall-yes")) is not None:
            self.ui.spawn(self._recall(cid, int(seq)))
        elif dom.data(target, "recall-no") is not None and node:
            extra = node.querySelector(".confirm")
            if extra:
                extra.remove()
        elif node and not target.closest("a, button"):
            node.classList.toggle("show-acts")  # touch: a tap shows the bubble's actions

    @staticmethod
    def _toggle_extra(node: Any, cls: str, make: Any) -> None:
        extra = node.querySelector(f".{cls}")
        if extra:
            extra.remove()
        else:
            node.appendChild(make())

    async def _react(self, cid: bytes, seq: int, emoji: str) -> None:
        try:
            await edits.send_reaction(self.m, cid, seq, emoji)
        except Exception as exc:
            self.ui.composer.say(self.ui.error_text(exc))

    async def _recall(self, cid: bytes, seq: int) -> None:
        try:
            await self.m.recall(cid, seq)
        except Exception as exc:
            self.ui.composer.say(self.ui.error_text(exc))

    def render_outgoing(self) -> None:
        if self.cid is None:
            return
        frag = js.document.createDocumentFragment()
        for o in self.m.outgoing(self.cid):
            frag.appendChild(self._out(o))
        self.out_el.replaceChildren(frag)

    def _out(self, o: Outgoing) -> Any:
        node = dom.h("div", f"out msg mine {o.state}", data_local=o.local_id)
        b = dom.h("div", "bubble")
        b.appendChild(bubbles.text_node(o.text))
        meta = dom.h("div", "meta")
        meta.appendChild(dom.h("span", "state", t(f"msg.{o.state}")))
        if o.state == MessageState.FAILED:
            meta.appendChild(
                dom.h("button", "small secondary retry", t("msg.retry"), data_retry=o.local_id)
            )
        b.appendChild(meta)
        node.appendChild(b)
        return node

    def _on_out_click(self, event: Any) -> None:
        local_id = dom.data(event.target, "retry")
        if local_id:
            self.ui.spawn(self._retry(local_id))

    async def _retry(self, local_id: str) -> None:
        await self.m.retry(local_id)
        self.render_outgoing()
