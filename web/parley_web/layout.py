"""Narrow screens (<= 600 px, phones): one pane at a time, the chat list or the open chat,
with a Back button in the chat's header. The choice is ``data-view`` on ``#app`` (``list`` or
``chat``); the stylesheet does the rest, so wide screens are unaffected.

The chat opened last is remembered per user (``localStorage``) and opened again after a
reload."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import js  # type: ignore[import-not-found]

from parley_web import dom

if TYPE_CHECKING:
    from parley_web.ui import Ui

LAST_KEY = "parley.last_chat."


class Layout:
    def __init__(self, ui: Ui) -> None:
        self.ui = ui
        self.app = dom.el("app")
        self._listeners = dom.Listeners()
        self._listeners.on(dom.el("conv-back"), "click", self._on_back)
        self.show_list()

    def show_list(self) -> None:
        self.app.dataset.view = "list"

    def show_chat(self) -> None:
        self.app.dataset.view = "chat"

    def _on_back(self, _event: Any) -> None:
        self.ui.back_to_list()

    # --- the last open chat ----------------------------------------------------------------
    def remember(self, cid: bytes | None) -> None:
        try:
            key = LAST_KEY + self.ui.username
            if cid is None:
                js.localStorage.removeItem(key)
            else:
                js.localStorage.setItem(key, cid.hex())
        except Exception:
            pass  # storage disabled: nothing to remember

    def last(self) -> bytes | None:
        try:
            raw = js.localStorage.getItem(LAST_KEY + self.ui.username)
            return bytes.fromhex(str(raw)) if raw else None
        except Exception:
            return None
