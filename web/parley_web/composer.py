"""The message box: Enter sends, Shift+Enter is a new line (IME composition is left alone).
A reply target is shown above it; ``@username`` of a member becomes a mention. A send that
cannot be encrypted is refused visibly; nothing goes out in plaintext."""

from __future__ import annotations

import contextlib
import re
from typing import TYPE_CHECKING, Any

from parley_web import dom, edits
from parley_web.chats import Ref
from parley_web.contacts import LookupFailed, lookup
from parley_web.i18n import t
from parley_web.secure import EncryptionNotReady

if TYPE_CHECKING:
    from parley_web.ui import Ui


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
        self._listeners.on(dom.el("composer-reply-cancel"), "click", lambda _e: self.reply(None))
        self.reply_to: tuple[int, str] | None = None
        self.editing: tuple[int, str] | None = None

    def reply(self, target: tuple[int, str] | None) -> None:
        """Answer row ``(seq, text)`` with the next message (None: not a reply)."""
        if self.editing is not None:
            self.editing = None
            self.input.value = ""
        self.reply_to = target
        bar = dom.el("composer-reply")
        dom.show(bar, target is not None)
        if target is not None:
            dom.el("composer-reply-text").textContent = t("conv.replying", quote=target[1][:80])
            self.input.focus()

    def edit(self, target: tuple[int, str]) -> None:
        """Edit our row ``(seq, text)``: the text goes into the box; sending replaces it."""
        self.reply(None)
        self.editing = target
        self.input.value = target[1]
        dom.el("composer-reply-text").textContent = t("conv.editing", quote=target[1][:80])
        dom.show(dom.el("composer-reply"), True)
        self.input.focus()

    async def mentions(self, cid: bytes, text: str) -> list[str]:
        """User ids of the chat's members named as ``@username`` in ``text`` (names not known
        yet are looked up: the API has no id -> name lookup, only name -> id)."""
        chat = self.ui.m.chats.get(cid)
        members = set(chat.members if chat else [])
        by_name = {self.ui.m.name(u): u for u in members}
        found = set()
        for name in set(re.findall(r"@([a-z0-9_.\-]+)", text)):
            user_id = by_name.get(name)
            if user_id is None:
                with contextlib.suppress(LookupFailed):
                    info = await lookup(self.ui.token, name)
                    await self.ui.m.remember_names({info.user_id: info.username})
                    user_id = info.user_id
            if user_id in members and user_id != self.ui.m.user_id:
                found.add(user_id)
        return sorted(found)

    def show(self, visible: bool) -> None:
        dom.show(self.form, visible)
        self.reply(None)
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
        editing = self.editing
        r = self.reply_to
        self.reply(None)
        if editing is not None:
            if text != editing[1]:
                self.ui.spawn(self._deliver_edit(cid, editing[0], text))
            return
        self.ui.spawn(self._deliver(cid, text, r))

    async def _deliver_edit(self, cid: bytes, seq: int, text: str) -> None:
        try:
            await edits.send_edit(self.ui.m, cid, seq, text)
            self.say("")
        except Exception as exc:
            self.say(t("err.send", err=self.ui.error_text(exc)))

    async def _deliver(self, cid: bytes, text: str, r: tuple[int, str] | None) -> None:
        try:
            mentions = await self.mentions(cid, text) if "@" in text else []
            ref = Ref(r[0] if r else 0, r[1][:80] if r else "", mentions)
            await self.ui.m.send_text(cid, text, ref)
            self.say("")
        except EncryptionNotReady:
            self.input.value = text  # keep what was typed
            self.say(t("err.not_ready"))
        except Exception as exc:
            self.input.value = text
            self.say(t("err.send", err=self.ui.error_text(exc)))
        self.ui.view.render_outgoing()
