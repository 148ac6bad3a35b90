"""The message box: Enter sends, Shift+Enter is a new line (IME composition is left alone).
A send that cannot be encrypted is refused visibly; nothing goes out in plaintext."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app import dom
from app.i18n import t
from app.secure import EncryptionNotReady

if TYPE_CHECKING:
    from app.app import Ui


class Composer:
    def __init__(self, ui: Ui) -> None:
        self.ui = ui
        self.form = dom.el("composer")
        self.input = dom.el("composer-input")
        self.error = dom.el("composer-error")
        self._listeners = dom.Listeners()
        self._listeners.on(self.form, "submit", self._on_submit)
        self._listeners.on(self.input, "keydown", self._on_key)
        self._listeners.on(self.input, "input", self._on_input)

    def show(self, visible: bool) -> None:
        dom.show(self.form, visible)
        self.say("")
        if visible:
            self.input.focus()

    def say(self, text: str) -> None:
        self.error.textContent = text

    def _on_key(self, event: Any) -> None:
        if event.key == "Enter" and not event.shiftKey and not event.isComposing:
            event.preventDefault()
            self._send()

    def _on_input(self, _event: Any) -> None:
        cid = self.ui.view.cid
        if cid is not None:
            if str(self.input.value).strip():
                self.ui.live.keystroke(cid)
            else:
                self.ui.live.stopped(cid)

    def _on_submit(self, event: Any) -> None:
        event.preventDefault()
        self._send()

    def _send(self) -> None:
        text = str(self.input.value).strip()
        cid = self.ui.view.cid
        if not text or cid is None:
            return
        self.input.value = ""
        self.ui.live.stopped(cid)
        self.ui.spawn(self._deliver(cid, text))

    async def _deliver(self, cid: bytes, text: str) -> None:
        try:
            await self.ui.m.send_text(cid, text)
            self.say("")
        except EncryptionNotReady:
            self.input.value = text  # keep what was typed
            self.say(t("err.not_ready"))
        except Exception as exc:
            self.input.value = text
            self.say(t("err.send", err=str(exc) or type(exc).__name__))
        self.ui.view.render_outgoing()
