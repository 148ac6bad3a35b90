"""Browser entry point, run by web/boot.js once Pyodide, msgspec and libsodium are loaded.

For now: prove the shared package runs here (protocol, crypto backend), mark the page ready,
and drive the sign-in form: register/login over the HTTP API, then run a ``parley.client``
session (engine + ``Session`` driver) over ``app.transport.WebSocketTransport`` until it is
online, and show the user and device the server's ``Welcome`` named. The in-memory LocalStore
is a placeholder until the IndexedDB store lands.
"""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any

import js  # type: ignore[import-not-found]
import msgspec
from pyodide.ffi import create_proxy  # type: ignore[import-not-found]
from pyodide.http import pyfetch  # type: ignore[import-not-found]

from app.transport import WebSocketTransport, ws_url
from parley.client import ClientEngine, ConnectionState, Transport, TransportClosed
from parley.client.memory_store import MemoryLocalStore
from parley.client.session import RequestError, Session
from parley.protocol.http import ErrorBody, LoginBody, LoginReply, RegisterBody

CONNECT_TIMEOUT_S = 10.0
DEVICE_NAME = "browser"

_tasks: set[asyncio.Task[None]] = set()
_busy = False
_session: Session | None = None


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


async def _connect(login: LoginReply) -> Session:
    """Start a client session and wait until it is online (Hello → Welcome → Sync done)."""
    url = ws_url()

    async def connector() -> Transport:
        return await WebSocketTransport.open(url, CONNECT_TIMEOUT_S)

    session = Session(
        ClientEngine(login.token, client_name="parley-web"), connector, MemoryLocalStore()
    )
    await session.start()
    try:
        await session.wait_state(ConnectionState.ONLINE, CONNECT_TIMEOUT_S)
    except (TimeoutError, RequestError):
        await session.stop()
        raise
    global _session
    _session = session  # the UI to come takes it from here
    return session


async def _submit(action: str) -> None:
    global _busy
    if _busy:
        return
    _busy = True
    username = str(_el("username").value).strip()
    password = str(_el("password").value)
    try:
        if action == "register":
            _say("Creating account…")
            await _post("/api/v1/accounts", RegisterBody(username=username, password=password))
        _say("Signing in…")
        body = LoginBody(username=username, password=password, device_name=DEVICE_NAME)
        login = msgspec.json.decode(await _post("/api/v1/sessions", body), type=LoginReply)
        _say("Connecting…")
        session = await _connect(login)
    except (ApiError, RequestError, TransportClosed, TimeoutError, OSError) as exc:
        _say(str(exc) or type(exc).__name__, error=True)
        return
    except msgspec.ValidationError as exc:
        _say(f"Invalid input: {exc}", error=True)
        return
    except Exception as exc:  # anything else (e.g. a JsException): visible, never silent
        js.console.error(f"sign-in failed: {exc!r}")
        _say(f"Unexpected error: {exc}", error=True)
        return
    finally:
        _busy = False
    _say("")
    _el("welcome-user").textContent = username
    _el("welcome-user-id").textContent = str(session.engine.user_id)
    _el("welcome-device-id").textContent = str(session.engine.device_id)
    _el("auth").hidden = True
    _el("welcome").hidden = False
    js.document.body.dataset.connected = "yes"


def _spawn(action: str) -> None:
    task = asyncio.ensure_future(_submit(action))
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


def _on_submit(event: Any) -> None:
    event.preventDefault()
    submitter = event.submitter
    _spawn(str(submitter.value) if submitter else "login")


async def start() -> None:
    """Called once by boot.js; returns as soon as the page is interactive."""
    import parley.protocol  # the contract must import here

    if importlib.util.find_spec("parley.crypto.backend") is not None:
        import parley.crypto.backend  # noqa: F401  (binds libsodium.js via the "sodium" module)
    boot = js.window.parleyBoot
    boot.handler = create_proxy(_on_submit)
    js.document.body.dataset.python = "ready"
    _el("status").textContent = "Ready"
    pending = boot.pending
    if pending:
        boot.pending = None
        _spawn(str(pending))
