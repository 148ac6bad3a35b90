"""Settings: account and device ids, language (switches at once), theme, this account's
devices (``GET /api/v1/devices``), sign out. Language and theme live in localStorage (not
secret; the shell can apply them before Python is ready)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import js  # type: ignore[import-not-found]
import msgspec
from pyodide.http import pyfetch  # type: ignore[import-not-found]

from app import dom, i18n
from app.i18n import t
from parley.protocol.http import DeviceList

if TYPE_CHECKING:
    from app.app import Ui

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
        p = self.pane
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

        p.appendChild(dom.h("h3", "", t("settings.devices")))
        ul = dom.h("ul", "plain", id="device-list")
        for d in self.devices.devices if self.devices else []:
            label = f"#{d.device_id} {d.name}"
            if d.device_id == m.device_id:
                label += f" ({t('settings.this_device')})"
            ul.appendChild(dom.h("li", "person", label))
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
        if dom.data(event.target, "signout") is not None:
            self.ui.spawn(self.ui.sign_out())
