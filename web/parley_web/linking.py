"""Linking a browser to the account from another signed-in device, through the server's
provisioning relay (``/api/v1/provisioning``, docs/imv1.md §3.5). The crypto is the shared
package's (``parley.crypto.provisioning``, ``E2EDriver.seal_link`` / ``adopt_link``); this
module is the browser's HTTP edge and the two screens.

* The new device (signed in with the password, but the server refused its device list)
  registers a one-time ``prov_id`` with an ephemeral key and shows the link code
  (``imlink:1:...``) and a 6-digit check code; it polls the relay until the existing device
  answers, opens the sealed box (account key + device list) and publishes the next device list
  with itself: it can send, and the existing device answers its key requests (old history).
* The existing device pastes the code (Settings), compares the check code with the one the
  new device shows, confirms, and posts the sealed box with a token the relay mints for it.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
from pyodide.http import pyfetch  # type: ignore[import-not-found]

from parley.crypto import provisioning
from parley.crypto.b64 import b64d, b64e
from parley.crypto.constants import PROV_TTL
from parley.protocol import provisioning as proto
from parley.protocol.http import ErrorBody
from parley_web import dom
from parley_web.i18n import t

if TYPE_CHECKING:
    from parley_web.ui import Ui

BASE = "/api/v1/provisioning"
POLL_S = 1.0
T = TypeVar("T")


class RelayError(Exception):
    def __init__(self, status: int, code: str) -> None:
        super().__init__(f"{code} (HTTP {status})")
        self.status = status
        self.code = code


async def _call(method: str, path: str, body: object, reply: type[T] | None, token: str = "") -> T:
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    kw: dict[str, Any] = {"method": method, "headers": headers}
    if body is not None:
        kw["body"] = msgspec.json.encode(body).decode()
    r = await pyfetch(BASE + path, **kw)
    data = bytes(await r.bytes())
    if r.status >= 400:
        try:
            code = str(msgspec.json.decode(data, type=ErrorBody).code)
        except (msgspec.DecodeError, msgspec.ValidationError):
            code = "internal"
        raise RelayError(r.status, code)
    return msgspec.json.decode(data, type=reply) if reply is not None else None  # type: ignore[return-value]


def check_code(code: str) -> str:
    """Six digits both devices show for the same link code (compare before confirming)."""
    prov_id, e_pub = provisioning.parse_qr(code)
    n = int.from_bytes(hashlib.sha256(b"parley-link-check" + prov_id + e_pub).digest()[:4], "big")
    digits = f"{n % 1_000_000:06d}"
    return f"{digits[:3]} {digits[3:]}"


def qr_image(code: str) -> Any:
    """The link code as a QR code (an SVG data URL in an ``<img>``: allowed by the CSP), for a
    phone to scan; None if the encoder is missing (the code text is shown anyway)."""
    try:
        import segno
    except ImportError:
        return None
    uri = segno.make(code, error="m", micro=False).svg_data_uri(scale=5, border=3)
    return dom.h("img", "qr", src=uri, alt=t("link.qr_alt"), id="link-qr")


def _now_ms() -> int:
    return int(time.time() * 1000)


# --- the new device ---------------------------------------------------------------------------


async def wait_for_link(ui: Ui, show: Any) -> None:
    """Register a link request, ``show(code, check)``, wait (bounded by the relay's expiry)
    for the existing device, then adopt what it sealed."""
    req = provisioning.ProvisioningRequest.create(now=_now_ms())
    await _call("POST", "/", proto.RegisterProvisioningBody(prov_id=req.prov_id.hex()),
                proto.ProvisioningReply)  # fmt: skip
    code = req.qr_text()
    show(code, check_code(code))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PROV_TTL / 1000
    while True:
        reply = await _call("GET", f"/{req.prov_id.hex()}", None, proto.ProvisionMessageReply)
        if reply.sealed is not None:
            break
        if loop.time() >= deadline:
            raise RelayError(410, "link_expired")
        await asyncio.sleep(POLL_S)
    res = provisioning.open_sealed(req, b64d(reply.sealed), now=_now_ms())
    await ui.m.driver.adopt_link(res)


# --- the existing device ----------------------------------------------------------------------


async def accept(ui: Ui, code: str) -> None:
    prov_id, e_pub = provisioning.parse_qr(code)
    token = await _call("POST", f"/{prov_id.hex()}/token", None, proto.LinkTokenReply, ui.token)
    sealed = await ui.m.driver.seal_link(e_pub, token.link_token)
    await _call("PUT", f"/{prov_id.hex()}", proto.PutProvisionBody(sealed=b64e(sealed)), None,
                ui.token)  # fmt: skip


class LinkSettings:
    """Settings: "Link a new device" (paste its code, compare the check code, confirm).

    The settings pane is rebuilt whenever something changes (the device list arrives a moment
    after the tab opens), so the section's state (the status line, a code waiting for its
    confirmation) lives here and every rebuild shows it again; the field keeps what was pasted.
    """

    def __init__(self, ui: Ui) -> None:
        self.ui = ui
        self._status: tuple[str, bool] | None = None  # (text, is an error)
        self._confirming: str | None = None  # the code whose check code is shown

    def section(self, draft: str = "") -> Any:
        """The section; ``draft`` is what the link field held before the pane was rebuilt."""
        box = dom.h("div", "", id="link-settings")
        box.appendChild(dom.h("h3", "", t("link.title")))
        box.appendChild(dom.h("p", "muted", t("link.how")))
        field = dom.h("input", "", id="link-input", placeholder=t("link.paste"), autocomplete="off")
        field.value = draft
        box.appendChild(field)
        box.appendChild(dom.h("button", "small", t("link.check"), type="button", data_link="1"))
        msg = dom.h("p", "message", id="link-message", role="status")
        if self._status is not None:
            msg.textContent = self._status[0]
            msg.classList.toggle("error", self._status[1])
        box.appendChild(msg)
        if self._confirming is not None:
            box.appendChild(self._confirm_button(self._confirming))
        return box

    @staticmethod
    def _confirm_button(code: str) -> Any:
        confirm = dom.h("button", "small", t("link.confirm"), type="button", id="link-confirm")
        confirm.setAttribute("data-link-yes", code)
        return confirm

    def _say(self, text: str, error: bool = False) -> None:
        self._status = (text, error)
        msg = dom.el("link-message")
        if msg:
            msg.textContent = text
            msg.classList.toggle("error", error)

    def click(self, event: Any) -> bool:
        target = event.target
        if dom.data(target, "link") is not None:
            code = str(dom.el("link-input").value).strip()
            old = dom.el("link-confirm")
            if old:
                old.remove()
            self._confirming = None
            try:
                check = check_code(code)
            except Exception:
                self._say(t("link.bad_code"), True)
                return True
            self._say(t("link.compare", code=check))
            self._confirming = code
            dom.el("link-settings").appendChild(self._confirm_button(code))
            return True
        if (confirmed := dom.data(target, "link-yes")) is not None:
            target.remove()
            self._confirming = None
            self.ui.spawn(self._accept(confirmed))
            return True
        return False

    async def _accept(self, code: str) -> None:
        self._say(t("link.working"))
        try:
            await accept(self.ui, code)
        except Exception as exc:
            self._say(self.ui.error_text(exc), True)
            return
        self._say(t("link.sent"))
        field = dom.el("link-input")
        if field:
            field.value = ""
