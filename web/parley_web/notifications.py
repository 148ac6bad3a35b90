"""Telling the user something happened: the unread count in the tab title and on the favicon,
a badge on the Contacts tab for friend requests, and system notifications (the Notification
API) for new messages while the tab is hidden.

Permission is asked only from a click (browsers ignore or punish a request without a user
gesture); a notification shows the sender and chat, and the message text only if the user
opted in (``parley.notify.preview``): a notification is visible on a locked screen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import js  # type: ignore[import-not-found]
from pyodide.ffi import create_once_callable, create_proxy, to_js  # type: ignore[import-not-found]

from parley.client.session import RequestError
from parley.protocol.invites import GroupInviteList, GroupInvites
from parley_web import dom
from parley_web.i18n import t

if TYPE_CHECKING:
    from parley_web.ui import Ui

APP_TITLE = "Parley"
PREVIEW_KEY = "parley.notify.preview"


def _supported() -> bool:
    return bool(getattr(js.window, "Notification", None))


def permission() -> str:
    return str(js.Notification.permission) if _supported() else "unsupported"


def preview_enabled() -> bool:
    try:
        return str(js.localStorage.getItem(PREVIEW_KEY) or "") == "1"
    except Exception:
        return False


class Notifier:
    def __init__(self, ui: Ui) -> None:
        self.ui = ui
        self._unread: dict[bytes, int] = {}  # per chat, as last seen (new = an increase)
        self._shown_total = -1
        self._requests = 0
        self._icon = js.document.querySelector("link[rel=icon]")
        self._listeners = dom.Listeners()
        self._listeners.on(js.document, "visibilitychange", self._on_visibility)
        self._on_click_proxy = create_proxy(self._on_notification_click)

    # --- unread count: title and favicon ---------------------------------------------------
    def chats_changed(self) -> None:
        """The chat summaries changed: update the count, notify about new messages."""
        m = self.ui.m
        total = 0
        for cid, c in m.chats.items():
            if c.left:
                continue
            total += c.unread
            before = self._unread.get(cid)
            if before is not None and c.unread > before and js.document.hidden:
                self._notify(cid, c.last_text, c.last_state)
            self._unread[cid] = c.unread
        self._show_count(total)

    def _show_count(self, total: int) -> None:
        if total == self._shown_total:
            return
        self._shown_total = total
        js.document.title = f"({total}) {APP_TITLE}" if total else APP_TITLE
        js.document.body.dataset.unread = str(total)
        if self._icon:
            self._icon.href = self._favicon(total)

    @staticmethod
    def _favicon(count: int) -> str:
        """A small round icon, with the count on a red dot when there is any."""
        canvas = js.document.createElement("canvas")
        canvas.width = canvas.height = 32
        g = canvas.getContext("2d")
        g.fillStyle = "#2f6fdb"
        g.beginPath()
        g.arc(16, 16, 14, 0, 6.2832)
        g.fill()
        g.fillStyle = "#fff"
        g.font = "bold 18px sans-serif"
        g.textAlign = "center"
        g.textBaseline = "middle"
        g.fillText("P", 16, 17)
        if count:
            g.fillStyle = "#d33"
            g.beginPath()
            g.arc(22, 10, 10, 0, 6.2832)
            g.fill()
            g.fillStyle = "#fff"
            g.font = "bold 13px sans-serif"
            g.fillText("9+" if count > 9 else str(count), 22, 11)
        return str(canvas.toDataURL("image/png"))

    # --- badges: friend requests (Contacts tab), group invitations (Chats tab) ---------------
    def requests_changed(self, incoming: int) -> None:
        self._requests = incoming
        self._badge("tab-contacts", incoming, "notify.requests")

    async def refresh_invites(self) -> None:
        """Pending group invitations (``group_invites``): their number on the Chats tab."""
        try:
            r = await self.ui.m.session.request(GroupInvites(), 15)
        except (RequestError, TimeoutError):
            return
        if isinstance(r, GroupInviteList):
            self._badge("tab-chats", len(r.invites), "notify.invites")

    @staticmethod
    def _badge(tab_id: str, count: int, label: str) -> None:
        tab = dom.el(tab_id)
        badge = tab.querySelector(".tab-badge")
        if count and not badge:
            badge = dom.h("span", "tab-badge")
            tab.appendChild(badge)
        if badge:
            if count:
                badge.textContent = str(count)
                badge.setAttribute("aria-label", t(label, n=str(count)))
            else:
                badge.remove()

    # --- system notifications --------------------------------------------------------------
    def _notify(self, cid: bytes, text: str, state: str) -> None:
        if permission() != "granted":
            return
        title = self.ui.m.title(cid)
        body = text if preview_enabled() and state == "decrypted" and text else t("notify.new")
        opts = to_js({"body": body, "tag": cid.hex()}, dict_converter=js.Object.fromEntries)
        try:
            n = js.Notification.new(title, opts)
        except Exception as exc:  # e.g. Android Chrome: only from a service worker
            js.console.warn(f"notification: {exc!r}")
            return
        n.onclick = self._on_click_proxy
        js.window.parleyUi.notified = int(getattr(js.window.parleyUi, "notified", 0) or 0) + 1

    def _on_notification_click(self, event: Any) -> None:
        js.window.focus()
        tag = str(event.target.tag or "")
        if tag:
            self.ui.open_chat(bytes.fromhex(tag))
        event.target.close()

    def _on_visibility(self, _event: Any) -> None:
        self.ui.visibility_changed(not js.document.hidden)

    # --- settings section ------------------------------------------------------------------
    def settings_section(self) -> Any:
        box = dom.h("div", "", id="notify-settings")
        box.appendChild(dom.h("h3", "", t("notify.title")))
        state = permission()
        if state == "granted":
            box.appendChild(dom.h("p", "muted", t("notify.on"), id="notify-state"))
        elif state == "denied":
            box.appendChild(dom.h("p", "muted", t("notify.denied"), id="notify-state"))
        elif state == "default":
            box.appendChild(
                dom.h("button", "small", t("notify.enable"), id="notify-enable", data_notify="1")
            )
        else:
            box.appendChild(dom.h("p", "muted", t("notify.unsupported"), id="notify-state"))
        label = dom.h("label", "check")
        check = dom.h("input", "", type="checkbox", id="notify-preview", data_preview="1")
        check.checked = preview_enabled()
        label.appendChild(check)
        label.appendChild(js.document.createTextNode(" " + t("notify.preview")))
        box.appendChild(label)
        return box

    def settings_click(self, event: Any) -> bool:
        """A click in the settings pane; True when it was ours. The permission request runs
        inside the click (the user gesture)."""
        target = event.target
        if dom.data(target, "notify") is not None and _supported():
            promise = js.Notification.requestPermission()
            promise.then(create_once_callable(lambda _r: self.ui.settings.render()))
            return True
        if dom.data(target, "preview") is not None:
            js.localStorage.setItem(PREVIEW_KEY, "1" if target.checked else "0")
            return True
        return False
