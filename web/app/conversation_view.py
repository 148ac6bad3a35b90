"""The open conversation: a VIRTUALIZED list of rows (only the visible ones, plus a small
overscan, are in the DOM), then our own messages still on their way out.

Rows have a fixed height (``ROW_H``, long texts are cut with an ellipsis and shown whole in
the tooltip), so the position of row ``i`` is ``i * ROW_H`` and opening a chat costs one
read of its seqs (a typed array from IndexedDB) plus the rows of one screen, whatever the
length of the history. ``window.parleyUi.openMs`` holds the last open's duration (bench).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import js  # type: ignore[import-not-found]

from app import dom
from app.chats import Outgoing, Row
from app.i18n import t

if TYPE_CHECKING:
    from app.app import Ui

ROW_H = 56
OVERSCAN = 10


def _clock(ts: int) -> str:
    return time.strftime("%H:%M", time.localtime(ts / 1000))


class ConversationView:
    def __init__(self, ui: Ui) -> None:
        self.ui = ui
        self.cid: bytes | None = None
        self.seqs: list[int] = []
        self.window = (0, 0)
        self.scroll = dom.el("conv-scroll")
        self.spacer = dom.el("conv-spacer")
        self.rows_el = dom.el("conv-rows")
        self.out_el = dom.el("conv-outgoing")
        self._listeners = dom.Listeners()
        self._listeners.on(self.scroll, "scroll", self._on_scroll)
        self._listeners.on(self.out_el, "click", self._on_out_click)
        self._listeners.on(self.rows_el, "click", self._on_row_click)
        self._rendering = False
        self._again = False

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
        self.seqs = await self.m.row_seqs(cid)
        if self.cid != cid:
            return
        self.spacer.style.height = f"{len(self.seqs) * ROW_H}px"
        self.render_outgoing()
        self.scroll.scrollTop = self.scroll.scrollHeight
        self.window = (-1, -1)
        await self._render()
        js.window.parleyUi.openMs = js.performance.now() - t0
        js.window.parleyUi.openRows = len(self.seqs)
        self.ui.live.render_typing()
        self.ui.spawn(self.ui.live.load_receipts(cid))
        await self.m.mark_read(cid)
        self.ui.spawn(self.m.send_read_mark(cid))

    def title(self) -> None:
        if self.cid is not None:
            dom.el("conv-title").textContent = self.m.title(self.cid)

    def close(self) -> None:
        self.cid = None
        self.m.open_cid = None
        dom.show(dom.el("conv-empty"), True)
        dom.show(self.scroll, False)
        dom.show(dom.el("conv-details"), False)
        self.ui.composer.show(False)
        dom.el("conv-title").textContent = ""

    async def refresh(self) -> None:
        """New or changed rows in the open chat: keep the bottom in view if it was."""
        cid = self.cid
        if cid is None:
            return
        s = self.scroll
        at_bottom = s.scrollTop + s.clientHeight >= s.scrollHeight - ROW_H
        self.seqs = await self.m.row_seqs(cid)
        if self.cid != cid:
            return
        self.spacer.style.height = f"{len(self.seqs) * ROW_H}px"
        self.render_outgoing()
        if at_bottom:
            s.scrollTop = s.scrollHeight
        self.window = (-1, -1)
        await self._render()
        await self.m.mark_read(cid)
        self.ui.spawn(self.m.send_read_mark(cid))

    def rerender(self) -> None:
        """Language switch: same rows, new words."""
        self.title()
        self.window = (-1, -1)
        self.render_outgoing()
        self.ui.spawn(self._render())

    def _wanted(self) -> tuple[int, int]:
        top = int(self.scroll.scrollTop)
        height = int(self.scroll.clientHeight) or 600
        first = max(0, top // ROW_H - OVERSCAN)
        last = min(len(self.seqs), (top + height) // ROW_H + 1 + OVERSCAN)
        return first, last

    def _on_scroll(self, _event: Any) -> None:
        if self._wanted() != self.window:
            self.ui.spawn(self._render())

    async def _render(self) -> None:
        if self._rendering:
            self._again = True
            return
        self._rendering = True
        try:
            while True:
                self._again = False
                await self._render_once()
                if not self._again:
                    break
        finally:
            self._rendering = False

    async def _render_once(self) -> None:
        cid = self.cid
        if cid is None:
            return
        first, last = self._wanted()
        if (first, last) == self.window:
            return
        rows: list[Row] = []
        if last > first:
            rows = await self.m.rows(cid, self.seqs[first], self.seqs[last - 1])
        if cid != self.cid:
            return
        frag = js.document.createDocumentFragment()
        for r in rows:
            frag.appendChild(self._row(r))
        self.rows_el.style.transform = f"translateY({first * ROW_H}px)"
        self.rows_el.replaceChildren(frag)
        self.window = (first, last)

    def _row(self, r: Row) -> Any:
        mine = r.sender == self.m.user_id
        cls = f"msg {r.state}" + (" mine" if mine else "") + (" mention" if r.mentions_me else "")
        node = dom.h("div", cls, data_seq=str(r.seq))
        if r.state == "system":
            action, _, who = r.text.partition(":")
            text = t(f"conv.system.{action}", who=who)
        else:
            node.appendChild(dom.h("span", "who", self.m.name(r.sender)))
            node.appendChild(dom.h("span", "when", _clock(r.ts)))
            text = {
                "waiting": t("conv.waiting"),
                "failed": t("conv.failed"),
                "recalled": t("conv.recalled"),
            }.get(r.state, r.text)
        if mine and r.state == "decrypted":
            if self.cid is not None and r.seq <= self.ui.live.read_upto(self.cid):
                node.appendChild(dom.h("span", "read", t("msg.read")))
            else:
                node.appendChild(dom.h("span", "sent", t("msg.sent")))
            node.appendChild(dom.h("button", "act", t("msg.recall"), data_recall=str(r.seq)))
        if r.state == "decrypted":
            node.appendChild(dom.h("button", "act", t("msg.reply"), data_reply=str(r.seq)))
        body = dom.h("div", "text")
        if r.quote:
            body.appendChild(dom.h("span", "quote", f"↪ {r.quote}"))
        body.appendChild(js.document.createTextNode(text))
        if r.state == "decrypted":
            body.title = r.text
        node.appendChild(body)
        return node

    def _on_row_click(self, event: Any) -> None:
        seq = dom.data(event.target, "recall")
        if seq is not None and self.cid is not None:
            self.ui.spawn(self._recall(self.cid, int(seq)))
        reply = dom.data(event.target, "reply")
        if reply is not None:
            row = event.target.closest(".msg")
            text = row.querySelector(".text") if row else None
            self.ui.composer.reply(
                (int(reply), str(text.title or text.textContent) if text else "")
            )

    async def _recall(self, cid: bytes, seq: int) -> None:
        try:
            await self.m.recall(cid, seq)
        except Exception as exc:
            self.ui.composer.say(str(exc) or type(exc).__name__)

    def render_outgoing(self) -> None:
        if self.cid is None:
            return
        frag = js.document.createDocumentFragment()
        for o in self.m.outgoing(self.cid):
            frag.appendChild(self._out(o))
        self.out_el.replaceChildren(frag)

    def _out(self, o: Outgoing) -> Any:
        node = dom.h("div", f"out {o.state}", data_local=o.local_id)
        node.appendChild(dom.h("span", "who", self.m.name(self.m.user_id)))
        node.appendChild(dom.h("span", "state", t(f"msg.{o.state}")))
        if o.state == "failed":
            node.appendChild(
                dom.h("button", "small secondary retry", t("msg.retry"), data_retry=o.local_id)
            )
        node.appendChild(dom.h("div", "text", o.text))
        return node

    def _on_out_click(self, event: Any) -> None:
        local_id = dom.data(event.target, "retry")
        if local_id:
            self.ui.spawn(self._retry(local_id))

    async def _retry(self, local_id: str) -> None:
        await self.m.retry(local_id)
        self.render_outgoing()
