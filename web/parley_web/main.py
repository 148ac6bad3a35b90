"""Browser entry point, run by web/boot.js once Pyodide, msgspec and libsodium are loaded.

``start()`` marks the page ready, then either resumes the remembered profile (its chats show
from IndexedDB at once, then the session syncs) or drives the sign-in form: register/login over
the HTTP API, a profile sealed for this device (``profile``, ``vault``), then the E2E messenger
(``secure``) over a ``parley.client`` session on the WebSocket transport.
"""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any

import js  # type: ignore[import-not-found]
import msgspec
import parley_glue as glue  # type: ignore[import-not-found]
from pyodide.ffi import create_proxy  # type: ignore[import-not-found]
from pyodide.http import pyfetch  # type: ignore[import-not-found]

from parley.client import ClientEngine, Transport
from parley.client.session import Session
from parley.protocol.http import ErrorBody, LoginBody, LoginReply, RegisterBody
from parley_web import i18n, profile, settings
from parley_web.error_text import describe, for_code
from parley_web.i18n import t
from parley_web.keydir import KeyDirectory
from parley_web.local_store import WebStore
from parley_web.secure import Messenger
from parley_web.transport import WebSocketTransport, ws_url
from parley_web.ui import Ui
from parley_web.vault import Vault, VaultError

CONNECT_TIMEOUT_S = 10.0
DEVICE_NAME = "browser"

_tasks: set[asyncio.Task[None]] = set()
_busy = False
ui: Ui | None = None
"""The running app (tests and the bench reach it through ``parley_web.main.ui``)."""


class OtherTab(Exception):
    """This profile is open in another tab of this browser."""


class ApiError(Exception):
    """An HTTP API call answered with an error body (stable ``code``)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def _el(element_id: str) -> Any:
    return js.document.getElementById(element_id)


def _say(text: str, *, error: bool = False) -> None:
    msg = _el("auth-message")
    msg.textContent = text
    msg.classList.toggle("error", error)


async def _post(path: str, body: msgspec.Struct) -> bytes:
    response = await pyfetch(
        path,
        method="POST",
        headers={"Content-Type": "application/json"},
        body=msgspec.json.encode(body).decode(),
    )
    data = bytes(await response.bytes())
    if not response.ok:
        try:
            err = msgspec.json.decode(data, type=ErrorBody)
            raise ApiError(response.status, str(err.code), err.message)
        except msgspec.DecodeError:
            raise ApiError(response.status, "http", f"HTTP {response.status}") from None
    return data


async def _run(p: profile.Profile, data_key: bytes, token: str) -> Ui:
    """Open the profile's sealed store, show what it holds, then connect and sync."""
    global ui
    if not await glue.holdLock(f"parley-profile-{p.db}"):
        raise OtherTab(t("auth.other_tab"))
    store = await WebStore.open(p.db, Vault(data_key))
    url = ws_url()

    async def connector() -> Transport:
        return await WebSocketTransport.open(url, CONNECT_TIMEOUT_S)

    session = Session(ClientEngine(token, client_name="parley-web"), connector, store)
    m = Messenger(store, session, KeyDirectory(token), p.user_id, p.device_id)
    await m.load()
    await m.remember_names({p.user_id: p.username})
    ui = Ui(m, p.username, token, _sign_out)
    ui.show()
    await m.start()
    return ui


async def _sign_out() -> None:
    # Hold the app in a local: the server's answer to the DELETE (the session ends,
    # "unauthorized") makes ``Ui._after_stop`` clear the global ``ui`` while we await.
    current = ui
    if current is None:
        return
    try:
        await pyfetch("/api/v1/sessions/current", method="DELETE",
                      headers={"authorization": f"Bearer {current.token}"})  # fmt: skip
    except Exception as exc:  # offline: the local sign-out still happens
        js.console.warn(f"logout: {exc!r}")
    await profile.forget(current.username)
    await current.m.close()
    js.location.reload()


def _invite_code() -> str | None:
    """The code of an invite link (``https://server/#invite=CODE``, from parley admin)."""
    fragment = str(js.location.hash or "")
    prefix = "#invite="
    if not fragment.startswith(prefix):
        return None
    return fragment[len(prefix) :] or None


async def _sign_in(action: str, username: str, password: str) -> None:
    if action == "register":
        _say(t("auth.creating"))
        body = RegisterBody(username=username, password=password, invite=_invite_code())
        await _post("/api/v1/accounts", body)
    existing = await profile.find(username) if action == "login" else None
    if existing is not None and existing.token_sealed:
        _say(t("auth.unlocking"))
        try:
            key = profile.unlock(existing, password)
        except VaultError:
            key = None  # the password changed elsewhere? the server decides below
        if key is not None:
            await profile.remember(existing, key)
            await _run(existing, key, profile.token_of(existing, key))
            return
    _say(t("auth.signing_in"))
    creds = LoginBody(username=username, password=password, device_name=DEVICE_NAME)
    login = msgspec.json.decode(await _post("/api/v1/sessions", creds), type=LoginReply)
    _say(t("auth.unlocking"))
    p, key = await profile.create(username, login.user_id, login.device_id, login.token, password)
    _say(t("auth.connecting"))
    app = await _run(p, key, login.token)
    if action == "register":  # key backup on by default: the recovery key is shown once
        app.spawn(app.recovery.backup_at_registration())


async def _submit(action: str) -> None:
    global _busy
    if _busy or ui is not None:
        return
    _busy = True
    username = str(_el("username").value).strip().lower()
    password = str(_el("password").value)
    try:
        await _sign_in(action, username, password)
    except OtherTab as exc:
        _say(str(exc), error=True)
        return
    except ApiError as exc:  # the stable code, in the user's language (not the server's text)
        _say(describe(exc), error=True)
        return
    except msgspec.ValidationError:
        _say(for_code("invalid"), error=True)
        return
    except Exception as exc:  # anything else (e.g. a JsException): visible, never silent
        js.console.error(f"sign-in failed: {exc!r}")
        _say(describe(exc), error=True)
        return
    finally:
        _busy = False
    _say("")


def _spawn(action: str) -> None:
    task = asyncio.ensure_future(_submit(action))
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


def _on_submit(event: Any) -> None:
    event.preventDefault()
    submitter = event.submitter
    _spawn(str(submitter.value) if submitter else "login")


async def _resume() -> None:
    found = await profile.resume()
    if found is None or not found[0].token_sealed:
        return
    p, key = found
    await _run(p, key, profile.token_of(p, key))


async def start() -> None:
    """Called once by boot.js; returns as soon as the page is interactive."""
    import parley.protocol  # the contract must import here

    if importlib.util.find_spec("parley.crypto.backend") is not None:
        import parley.crypto.backend  # noqa: F401  (binds libsodium.js via the "sodium" module)
    js.window.parleyUi = js.Object.new()
    settings.apply_theme(settings.saved_theme())
    i18n.set_lang(settings.saved_lang())
    boot = js.window.parleyBoot
    boot.handler = create_proxy(_on_submit)
    try:
        await _resume()
    except OtherTab as exc:
        _say(str(exc), error=True)
    except Exception as exc:  # a damaged profile must never brick the page: sign in instead
        js.console.warn(f"resume failed: {exc!r}")
    js.document.body.dataset.python = "ready"
    _el("status").textContent = t("status.ready") if ui is None else _el("status").textContent
    pending = boot.pending
    if pending and ui is None:
        boot.pending = None
        _spawn(str(pending))
