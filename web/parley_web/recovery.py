"""Never locked out of your history: key backup set up at registration, restore on a browser
that has no keys for the account's past messages, and a sign-out that says what will happen.

All of it runs on the shared E2E driver (``Messenger.driver``): ``create_backup`` makes a new
backup version and returns the recovery key (shown ONCE, to save or print; the keys of new
messages are then backed up continuously by the driver), ``restore_backup`` imports the
backed-up keys of our chats and re-decrypts the rows that waited for them.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import js  # type: ignore[import-not-found]

from parley_web import dom, linking
from parley_web.i18n import t

if TYPE_CHECKING:
    from parley_web.ui import Ui

READY_WAIT_S = 60.0
"""How long the first start may take to publish keys (a busy server) before giving up."""


class Recovery:
    def __init__(self, ui: Ui) -> None:
        self.ui = ui
        self.dismissed = False
        self.box: Any = None
        self.link = linking.LinkSettings(ui)

    @property
    def m(self) -> Any:
        return self.ui.m

    def backup_on(self) -> bool:
        return self.m.st.backup is not None

    async def _wait_keys(self) -> bool:
        """True once this device's keys are published; False if it must be linked instead."""
        loop = asyncio.get_running_loop()
        end = loop.time() + READY_WAIT_S
        while loop.time() < end:
            if self.m.ready:
                return True
            if self.m.link_needed:
                return False
            await asyncio.sleep(0.1)
        return False

    # --- registration: backup on by default ------------------------------------------------
    async def backup_at_registration(self) -> None:
        """A new account's first device: create the key backup and show the recovery key."""
        if not await self._wait_keys() or self.backup_on():
            return
        try:
            key = await self.m.driver.create_backup()
        except Exception as exc:
            js.console.warn(f"backup: {exc!r}")
            self._dialog(t("backup.failed", err=self.ui.error_text(exc)), None)
            return
        self._dialog(t("backup.created"), key)

    def _dialog(self, text: str, key: str | None) -> None:
        old = dom.el("recovery-dialog")
        if old:
            old.remove()
        # a card at the top of the side pane, not a modal: it asks for attention without
        # blocking the app (the key can be saved while the first chat starts)
        dlg = dom.h("section", "recovery-dialog", id="recovery-dialog", role="dialog")
        card = dom.h("div", "recovery card")
        card.appendChild(dom.h("h1", "", t("backup.title")))
        card.appendChild(dom.h("p", "", text))
        if key:
            card.appendChild(dom.h("p", "recovery-key", key, id="recovery-key"))
            card.appendChild(dom.h("p", "muted", t("backup.keep")))
        actions = dom.h("div", "actions")
        if key:
            actions.appendChild(
                dom.h("button", "secondary", t("backup.print"), type="button", id="recovery-print")
            )
        actions.appendChild(dom.h("button", "", t("backup.saved"), type="button", id="recovery-ok"))
        card.appendChild(actions)
        dlg.appendChild(card)
        side = js.document.querySelector(".side")
        side.insertBefore(dlg, side.firstChild)
        listeners = dom.Listeners()

        def close(_event: Any) -> None:
            listeners.clear()
            dlg.remove()

        listeners.on(dom.el("recovery-ok"), "click", close)
        if key:
            listeners.on(dom.el("recovery-print"), "click", lambda _e: js.window.print())

    # --- a browser without this account's keys ---------------------------------------------
    async def check(self) -> None:
        """After going online: if this browser is a further device that could not publish its
        keys, offer the ways back to the history."""
        if self.dismissed or self.box is not None:
            return
        if await self._wait_keys():
            return
        if self.m.link_needed:
            self._offer()

    def _offer(self) -> None:
        box = dom.h("section", "recovery card", id="recovery-offer")
        box.appendChild(dom.h("h3", "", t("restore.title")))
        box.appendChild(dom.h("p", "", t("restore.why")))
        form = dom.h("form", "stack", id="restore-form")
        form.appendChild(
            dom.h("input", "", id="restore-key", placeholder=t("restore.key"), autocomplete="off")
        )
        form.appendChild(dom.h("button", "small", t("restore.restore"), type="submit"))
        box.appendChild(form)
        box.appendChild(dom.h("p", "", t("restore.or_link")))
        box.appendChild(
            dom.h("button", "small", t("restore.link"), type="button", id="restore-link")
        )
        box.appendChild(dom.h("div", "", id="link-show"))
        box.appendChild(
            dom.h("button", "small secondary", t("restore.skip"), type="button", id="restore-skip")
        )
        box.appendChild(dom.h("p", "message", id="restore-message", role="status"))
        conv = dom.el("conversation")
        conv.insertBefore(box, conv.firstChild)
        self.box = box
        # The offer lives in the conversation pane: on a phone (one pane at a time) show that
        # pane, or a new device would see only its chat list of undecryptable messages.
        self.ui.layout.show_chat()
        self._listeners = dom.Listeners()
        self._listeners.on(form, "submit", self._on_restore)
        self._listeners.on(dom.el("restore-skip"), "click", self._on_skip)
        self._listeners.on(dom.el("restore-link"), "click", self._on_link)

    def _on_link(self, _event: Any) -> None:
        dom.el("restore-link").disabled = True
        self.ui.spawn(self._link())

    def _show_code(self, code: str, check: str) -> None:
        where = dom.el("link-show")
        dom.clear(where)
        where.appendChild(dom.h("p", "", t("restore.link_how")))
        qr = linking.qr_image(code)
        if qr is not None:
            where.appendChild(qr)
        where.appendChild(dom.h("p", "recovery-key", code, id="link-code"))
        where.appendChild(dom.h("p", "", t("link.compare", code=check), id="link-check"))

    async def _link(self) -> None:
        try:
            await linking.wait_for_link(self.ui, self._show_code)
        except Exception as exc:
            self._say(self.ui.error_text(exc), True)
            link = dom.el("restore-link")
            if link:
                link.disabled = False
            return
        self._close()
        self.ui.settings.render()
        self.ui.spawn(self.ui.view.refresh())

    def _say(self, text: str, error: bool = False) -> None:
        msg = dom.el("restore-message")
        if msg:
            msg.textContent = text
            msg.classList.toggle("error", error)

    def _on_restore(self, event: Any) -> None:
        event.preventDefault()
        key = str(dom.el("restore-key").value).strip()
        if key:
            self.ui.spawn(self._restore(key))

    async def _restore(self, key: str) -> None:
        self._say(t("restore.working"))
        cids = sorted(self.m.chats)
        try:
            n = await self.m.driver.restore_backup(cids, recovery_key=key)
        except Exception as exc:
            name = type(exc).__name__
            wrong = name in ("DecryptionFailed", "ValueError", "BackupKeyError")
            self._say(t("restore.wrong_key") if wrong else self.ui.error_text(exc), True)
            return
        self._say(t("restore.done", n=str(n)))
        self.ui.spawn(self.ui.view.refresh())
        self._close()

    def _on_skip(self, _event: Any) -> None:
        """Continue without the old history: only after a plain warning (a second click)."""
        skip = dom.el("restore-skip")
        if dom.data(skip, "confirm") is None:
            skip.setAttribute("data-confirm", "1")
            skip.textContent = t("restore.skip_confirm")
            self._say(t("restore.skip_warning"), True)
            return
        self.dismissed = True
        self._close()

    def _close(self) -> None:
        if self.box is not None:
            self._listeners.clear()
            self.box.remove()
            self.box = None
            self.ui.layout.show_list()

    # --- sign-out --------------------------------------------------------------------------
    def sign_out_warning(self, devices: int) -> Any:
        """What signing out means here, with a backup offer when it would lose the history."""
        box = dom.h("div", "confirm signout", id="signout-confirm", role="alertdialog")
        if self.backup_on():
            box.appendChild(dom.h("p", "", t("signout.with_backup")))
        else:
            only = devices <= 1
            box.appendChild(
                dom.h("p", "", t("signout.no_backup_only" if only else "signout.no_backup"))
            )
            box.appendChild(
                dom.h("button", "small", t("signout.backup_first"), type="button", data_backup="1")
            )
        box.appendChild(
            dom.h(
                "button", "small danger", t("signout.anyway"), type="button", data_signout_yes="1"
            )
        )
        box.appendChild(
            dom.h("button", "small secondary", t("msg.cancel"), type="button", data_signout_no="1")
        )
        return box

    def settings_click(self, event: Any) -> bool:
        """Sign-out, backup and link clicks in the settings pane; True when handled here."""
        target = event.target
        if self.link.click(event):
            return True
        pane = dom.el("pane-settings")
        if dom.data(target, "signout") is not None:
            old = dom.el("signout-confirm")
            if old:
                old.remove()
            devices = self.ui.settings.devices
            count = len(devices.devices) if devices is not None else 1
            pane.appendChild(self.sign_out_warning(count))
            return True
        if dom.data(target, "signout-yes") is not None:
            self.ui.spawn(self.ui.sign_out())
            return True
        if dom.data(target, "signout-no") is not None:
            old = dom.el("signout-confirm")
            if old:
                old.remove()
            return True
        if dom.data(target, "backup") is not None:
            old = dom.el("signout-confirm")
            if old:
                old.remove()
            self.ui.spawn(self.backup_now())
            return True
        return False

    async def backup_now(self) -> None:
        if not self.m.ready:
            self._dialog(t("err.not_ready"), None)
            return
        try:
            key = await self.m.driver.create_backup()
        except Exception as exc:
            self._dialog(t("backup.failed", err=self.ui.error_text(exc)), None)
            return
        self._dialog(t("backup.created"), key)
        self.ui.settings.render()
