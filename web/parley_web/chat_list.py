"""The chat list: newest first, the last message and an unread badge. One delegated click
listener for the whole list (re-rendering creates no proxies)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import js  # type: ignore[import-not-found]

from parley_web import dom
from parley_web.i18n import t

if TYPE_CHECKING:
    from parley_web.ui import Ui


class ChatList:
    def __init__(self, ui: Ui) -> None:
        self.ui = ui
        self.list = dom.el("chat-list")
        self._listeners = dom.Listeners()
        self._listeners.on(self.list, "click", self._on_click)

    def render(self) -> None:
        m = self.ui.m
        chats = sorted(m.chats.values(), key=lambda c: (c.last_ts, c.cid), reverse=True)
        frag = js.document.createDocumentFragment()
        for c in chats:
            if c.left:
                continue
            active = " active" if c.cid == self.ui.view.cid else ""
            li = dom.h("li", "chat" + active, data_cid=c.cid.hex(), data_kind=c.kind)
            li.appendChild(dom.h("span", "chat-title", m.title(c.cid)))
            if c.unread:
                li.appendChild(dom.h("span", "badge", str(c.unread)))
            last = {"waiting": t("chats.waiting"), "recalled": t("conv.recalled")}.get(
                c.last_state, c.last_text
            )
            li.appendChild(dom.h("span", "chat-last", last))
            frag.appendChild(li)
        if not frag.childNodes.length:
            frag.appendChild(dom.h("li", "muted", t("chats.empty")))
        self.list.replaceChildren(frag)

    def _on_click(self, event: Any) -> None:
        item = event.target.closest(".chat")
        if item:
            self.ui.open_chat(bytes.fromhex(dom.data(item, "cid") or ""))
