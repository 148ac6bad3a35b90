"""Settings: account and device ids, language (switches at once), theme, this account's
devices (``GET /api/v1/devices``), sign out. Language and theme live in localStorage (not
secret; the shell can apply them before Python is ready)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import js  # type: ignore[import-not-found]
import msgspec
from pyodide.http import pyfetch  # type: ignore[import-not-found]

from parley.protocol.http import DeviceList
from parley_web import dom, i18n
from parley_web.i18n import t

if TYPE_CHECKING:
    from parley_web.ui import Ui

THEMES = ("system", "light", "dark")


def saved_lang() -> str:
    try:
        return str(js.localStorage.getItem("parley.lang") or "en")
    except Exception:
        return "en"


def apply_theme(theme: str) -> None:
    root = js.document.documentElement
    if theme in ("light", "dark"):
        root.dataset.theme = theme
    else:
        root.removeAttribute("data-theme")


def saved_theme() -> str:
    try:
        return str(js.localStorage.getItem("parley.theme") or "system")
    except Exception:
        return "system"


class Settings:
    def __init__(self, ui: Ui) -> None:
        self.ui = ui
        self.pane = dom.el("pane-settings")
        self.devices: DeviceList | None = None
        self._listeners = dom.Listeners()
        self._listeners.on(self.pane, "change", self._on_change)
        self._listeners.on(self.pane, "click", self._on_click)

    async def refresh(self) -> None:
        try:
            r = await pyfetch(
                "/api/v1/devices", headers={"authorization": f"Bearer {self.ui.token}"}
            )
            if r.ok:
                self.devices = msgspec.json.decode(bytes(await r.bytes()), type=DeviceList)
        except Exception:
            pass  # offline: the list stays as it was
        self.render()

    def render(self) -> None:
        # The pane is rebuilt whenever something changes (the device list arrives a moment
        # after the tab opens): a link code already pasted, and the caret of a field being
        # typed in, must survive that.
        with dom.keeping_focus():
            self._build()

    def _build(self) -> None:
        p = self.pane
        field = dom.el("link-input")
        link_draft = str(field.value) if field else ""
        dom.clear(p)
        m = self.ui.m
        p.appendChild(dom.h("h3", "", t("settings.account")))
        box = dom.h("div", "", id="welcome")
        line = dom.h("p", "", t("settings.signed_in_as") + " ")
        line.appendChild(dom.h("strong", "", self.ui.username, id="welcome-user"))
        box.appendChild(line)
        ids = dom.h("p", "muted", t("settings.user_id") + " ")
        ids.appendChild(dom.h("code", "", m.user_id, id="welcome-user-id"))
        ids.appendChild(js.document.createTextNode(" · " + t("settings.device_id") + " "))
        ids.appendChild(dom.h("code", "", str(m.device_id), id="welcome-device-id"))
        box.appendChild(ids)
        e2e = (
            "settings.e2e_ready"
            if m.ready
            else ("settings.e2e_link" if m.link_needed else "settings.e2e_pending")
        )
        box.appendChild(dom.h("p", "", t(e2e), id="e2e-state", data_ready="1" if m.ready else "0"))
        box.appendChild(dom.h("p", "muted", t("settings.at_rest")))
        p.appendChild(box)

        p.appendChild(dom.h("h3", "", t("settings.language")))
        lang = dom.h("select", "", id="lang-select", data_setting="lang")
        for code, label in (("en", "English"), ("zh", "中文")):
            opt = dom.h("option", "", label, value=code)
            opt.selected = code == i18n.lang()
            lang.appendChild(opt)
        p.appendChild(lang)

        p.appendChild(dom.h("h3", "", t("settings.theme")))
        theme = dom.h("select", "", id="theme-select", data_setting="theme")
        for code in THEMES:
            opt = dom.h("option", "", t(f"settings.theme.{code}"), value=code)
            opt.selected = code == saved_theme()
            theme.appendChild(opt)
        p.appendChild(theme)

        p.appendChild(self.ui.notifier.settings_section())
        p.appendChild(dom.h("h3", "", t("settings.backup")))
        on = self.ui.recovery.backup_on()
        state = t("settings.backup_on" if on else "settings.backup_off")
        p.appendChild(dom.h("p", "muted", state, id="backup-state", data_on="1" if on else "0"))
        p.appendChild(
            dom.h("button", "small secondary", t("settings.backup_create"), data_backup="1")
        )
        if m.ready:  # only a device holding the account key can link another
            p.appendChild(self.ui.recovery.link.section(link_draft))

        p.appendChild(dom.h("h3", "", t("settings.devices")))
        ul = dom.h("ul", "plain", id="device-list")
        for d in self.devices.devices if self.devices else []:
            label = f"#{d.device_id} {d.name}"
            li = dom.h("li", "person", data_device=str(d.device_id))
            if d.device_id == m.device_id:
                label += f" ({t('settings.this_device')})"
            li.appendChild(dom.h("span", "name", label))
            if d.device_id != m.device_id:
                li.appendChild(
                    dom.h(
                        "button",
                        "small secondary",
                        t("settings.remove"),
                        data_remove=str(d.device_id),
                    )
                )
            ul.appendChild(li)
        p.appendChild(ul)
        p.appendChild(dom.h("p", ""))
        p.appendChild(
            dom.h(
                "button", "secondary small", t("settings.sign_out"), id="sign-out", data_signout="1"
            )
        )

    def _on_change(self, event: Any) -> None:
        target = event.target
        which = dom.data(target, "setting")
        value = str(target.value)
        if which == "lang":
            js.localStorage.setItem("parley.lang", value)
            i18n.set_lang(value)
        elif which == "theme":
            js.localStorage.setItem("parley.theme", value)
            apply_theme(value)

    def _on_click(self, event: Any) -> None:
        if self.ui.notifier.settings_click(event) or self.ui.recovery.settings_click(event):
            return
        if dom.data(event.target, "signout") is not None:
            self.ui.spawn(self.ui.sign_out())
        elif (device := dom.data(event.target, "remove")) is not None:
            self.ui.spawn(self._remove(int(device)))

    async def _remove(self, device_id: int) -> None:
        """Another device of ours: out of the E2E device list first, then its session."""
        try:
            if self.ui.m.ready:  # an unlinked device has no device list of the account to edit
                await self.ui.m.remove_device(device_id)
        except Exception as exc:
            js.console.warn(f"remove device from the device list: {exc!r}")
        try:
            r = await pyfetch(
                f"/api/v1/devices/{device_id}",
                method="DELETE",
                headers={"authorization": f"Bearer {self.ui.token}"},
            )
            if not r.ok:
                raise RuntimeError(f"HTTP {r.status}")
        except Exception as exc:
            js.console.warn(f"remove device: {exc!r}")
        await self.refresh()
