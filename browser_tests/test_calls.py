"""Voice and video calls between two Chromium contexts through a real coturn, relay only
(``iceTransportPolicy: "relay"``), with Chromium's fake camera and microphone: the call
connects, getStats shows inbound audio and video bytes growing on both sides, hang-up ends it
on both sides, the call entry appears in both chats; decline; missed after the timeout; a
CPython (aiortc) peer calls a browser, media flowing both ways; and the callee's browser stops
ringing when its linked CPython device answers."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect

from browser_tests.conftest import CHROMIUM, CHROMIUM_FLAGS, Contexts
from browser_tests.ui import become_contacts, open_direct, sign_up
from tests.support.accounts import unique_name
from tests.support.coturn import Coturn
from tests.support.server import ServerProcess

MEDIA_FLAGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
]
CALL_MS = 60_000
RELAY_ONLY = "try { localStorage.setItem('parley.call_relay', '1') } catch (e) {}"


@pytest.fixture(scope="module")
def coturn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Coturn]:
    turn = Coturn(tmp_path_factory.mktemp("coturn"))
    turn.start()
    yield turn
    turn.stop()


@pytest.fixture(scope="module")
def call_server(
    web_dist: Path, coturn: Coturn, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    env = {"PARLEY_TURN_URI": coturn.uri, "PARLEY_TURN_SECRET": coturn.secret}
    srv = ServerProcess(tmp_path_factory.mktemp("calls") / "data", env=env)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def media_browser(playwright: Playwright) -> Iterator[Browser]:
    b = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS + MEDIA_FLAGS)
    yield b
    b.close()


@pytest.fixture
def media_contexts(media_browser: Browser) -> Iterator[Contexts]:
    """Guarded contexts as ``contexts`` gives, in the media browser. Page errors count up to the
    end of the test; a fetch cut off by closing the contexts ("Failed to fetch") does not."""
    c = Contexts(media_browser)
    yield c
    errors = list(c.errors)
    foreign = c.close()
    if foreign:
        pytest.fail(f"requests left loopback: {foreign}")
    if errors:
        pytest.fail(f"page errors: {errors}")


def _ctx(contexts: Contexts) -> BrowserContext:
    ctx = contexts.new()
    ctx.add_init_script(RELAY_ONLY)
    return ctx


def _pair(contexts: Contexts, base: str) -> tuple[Page, Page, str, str]:
    an, bn = unique_name("ca"), unique_name("cb")
    a = sign_up(_ctx(contexts), base, an)
    b = sign_up(_ctx(contexts), base, bn)
    become_contacts(a, b, bn, an)
    open_direct(a, bn)
    open_direct(b, an)
    return a, b, an, bn


def _state(page: Page, state: str, timeout: int = CALL_MS) -> None:
    page.wait_for_selector(f"body[data-call-state={state}]", state="attached", timeout=timeout)


def _stats(page: Page) -> dict[str, object]:
    out: dict[str, object] = json.loads(page.evaluate("() => window.parleyUi.callStats()"))
    return out


def _growing(page: Page, kinds: tuple[str, ...]) -> dict[str, object]:
    """Inbound bytes of each kind grow between two looks (bounded wait)."""
    first = _stats(page)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        page.wait_for_timeout(500)
        now = _stats(page)
        if all(int(now[k]) > int(first[k]) > 0 for k in kinds):  # type: ignore[call-overload]
            return now
        if any(int(first[k]) == 0 for k in kinds):  # type: ignore[call-overload]
            first = now
    raise AssertionError(f"inbound bytes did not grow: {first} -> {_stats(page)}")


def test_video_call_through_turn_relay(
    call_server: ServerProcess, media_contexts: Contexts
) -> None:
    a, b, an, _ = _pair(media_contexts, call_server.http_url)
    a.click("#call-video")
    expect(b.locator("#call-banner")).to_be_visible(timeout=CALL_MS)
    expect(b.locator("#call-banner-text")).to_contain_text(an)
    assert b.evaluate("document.body.dataset.ringing") == "yes"
    b.click("#call-accept-video")
    for p in (a, b):
        _state(p, "connected")
        expect(p.locator("#call-view")).to_be_visible()
    for p in (a, b):
        got = _growing(p, ("audio", "video"))
        assert got["relay"] is True, got
    assert b.evaluate("document.body.dataset.ringing") == "no"
    expect(a.locator("#call-duration")).to_contain_text("s")
    # the network changes on either side: the caller restarts ICE, the call stays up
    for n, p in enumerate((a, b), start=1):
        p.evaluate("window.dispatchEvent(new Event('online'))")
        a.wait_for_selector(f"body[data-call-restarts='{n}']", state="attached", timeout=CALL_MS)
        _state(a, "connected")
        _state(b, "connected")
        _growing(b, ("audio", "video"))
    # camera off and on again (video -> voice -> video), mute: the peer's view follows
    expect(a.locator("#call-view")).to_have_class(re.compile(r"\bwith-video\b"))
    b.click("#call-camera")
    expect(a.locator("#call-view")).not_to_have_class(re.compile(r"\bwith-video\b"))
    expect(b.locator("#call-camera")).to_have_text("Camera on")
    b.click("#call-camera")
    expect(a.locator("#call-view")).to_have_class(re.compile(r"\bwith-video\b"))
    _growing(a, ("video",))
    a.click("#call-mute")
    expect(b.locator("#call-status")).to_contain_text("is muted")
    expect(a.locator("#call-mute")).to_have_text("Unmute")
    a.click("#call-hangup")
    for p in (a, b):
        _state(p, "ended")
        assert p.evaluate("document.body.dataset.callEnd") == "hung_up"
    for p in (a, b):
        expect(p.locator("#conv-rows")).to_contain_text("Video call,", timeout=CALL_MS)


def _fits(page: Page, selector: str, width: int) -> None:
    box = page.locator(selector).bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width + 0.5, box


def test_decline_and_missed(call_server: ServerProcess, media_contexts: Contexts) -> None:
    a, b, _, _ = _pair(media_contexts, call_server.http_url)
    for p in (a, b):  # a phone-sized screen
        p.set_viewport_size({"width": 360, "height": 700})
    a.click("#call-voice")
    expect(b.locator("#call-banner")).to_be_visible(timeout=CALL_MS)
    expect(a.locator("#call-view")).to_be_visible()
    _fits(b, "#call-banner", 360)
    _fits(a, "#call-view", 360)
    _fits(a, "#call-hangup", 360)
    b.click("#call-decline")
    for p in (a, b):
        _state(p, "ended")
        assert p.evaluate("document.body.dataset.callEnd") == "declined"
    expect(a.locator("#call-status")).to_have_text("Declined")
    for p in (a, b):
        expect(p.locator("#conv-rows")).to_contain_text("Declined voice call", timeout=CALL_MS)
    expect(b.locator("#call-banner")).to_be_hidden()
    # no answer: both sides end as missed once the 45 s are over; the caller reads "Unavailable"
    a.wait_for_selector("#call-view[hidden]", state="attached", timeout=CALL_MS)
    a.click("#call-voice")
    expect(b.locator("#call-banner")).to_be_visible(timeout=CALL_MS)
    for p in (a, b):
        _state(p, "ended", timeout=90_000)
        assert p.evaluate("document.body.dataset.callEnd") == "missed"
    expect(a.locator("#call-status")).to_have_text("Unavailable")
    expect(b.locator("#call-banner")).to_be_hidden()
    for p in (a, b):
        expect(p.locator("#conv-rows")).to_contain_text("Missed voice call", timeout=CALL_MS)


class BotThread:
    """A CPython device (parley_client.calls, aiortc) on its own asyncio loop in a thread:
    the browser test drives it with ``do(coro)``."""

    def __init__(self, server: ServerProcess, tmp: Path) -> None:
        import threading

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = server
        self.tmp = tmp

    def do(self, coro: object, timeout: float = 90) -> object:
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]
        return fut.result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def test_aiortc_peer_calls_a_browser(
    call_server: ServerProcess, media_contexts: Contexts, tmp_path: Path
) -> None:
    from parley.client.call import CallState
    from parley.protocol.social import FriendRequest, UserLookup, UserMatches
    from parley_client.calls import Calls
    from parley_client.e2e_client import E2EClient
    from tests.support.accounts import new_user

    bn = unique_name("cb")
    b = sign_up(_ctx(media_contexts), call_server.http_url, bn)
    (bot_login,) = new_user(call_server.http_url, "bot")
    bot = BotThread(call_server, tmp_path)
    e2e = E2EClient(call_server.http_url, bot_login.user_id, bot_login.device_id,
                    bot_login.token, tmp_path / "bot.db")  # fmt: skip
    calls: Calls | None = None
    browser_uid = ""
    try:

        async def start() -> Calls:
            nonlocal browser_uid
            await e2e.start()
            await e2e.wait_online(30)
            found = await e2e.client.request(UserLookup(username=bn), 15)
            assert isinstance(found, UserMatches) and found.users
            browser_uid = found.users[0].user_id
            await e2e.client.request(FriendRequest(user_id=browser_uid, note="bot"), 15)
            k = Calls(e2e, relay_only=True)
            k.start()
            return k

        calls = bot.do(start())  # type: ignore[assignment]
        assert isinstance(calls, Calls)
        b.click("#tab-contacts")
        incoming = b.locator(f"#contacts-incoming .person[data-name='{bot_login.username}']")
        expect(incoming).to_be_visible(timeout=CALL_MS)
        incoming.locator("button[data-action=accept]").click()
        expect(b.locator("#contacts-contacts")).to_contain_text(bot_login.username)

        async def place() -> None:
            assert calls is not None
            await calls.driver.place(browser_uid, video=False)

        bot.do(place())
        expect(b.locator("#call-banner")).to_be_visible(timeout=CALL_MS)
        b.click("#call-accept-voice")
        _state(b, "connected")
        got = _growing(b, ("audio",))
        assert got["relay"] is True, got

        async def flowing() -> int:
            assert calls is not None
            await calls.wait_state(CallState.CONNECTED, timeout=60)
            for _ in range(600):
                n = calls.peers[-1].received["audio"]
                if n > 50:
                    return n
                await asyncio.sleep(0.1)
            return calls.peers[-1].received["audio"]

        assert int(bot.do(flowing())) > 50  # type: ignore[call-overload]
        b.click("#call-hangup")

        async def ended() -> str:
            assert calls is not None
            v = await calls.wait_state(CallState.ENDED, timeout=60)
            return str(v.end_reason)

        assert bot.do(ended()) == "hung_up"
    finally:

        async def close() -> None:
            if calls is not None:
                await calls.close()
            await e2e.close()

        bot.do(close())
        bot.stop()


ACCEPT_LINK = """
import json
from parley_web import main
from parley.client.e2e import identity
from parley.crypto import provisioning
from parley.crypto.b64 import b64e
from pyodide.http import pyfetch

m = main.ui.m
prov_id, e_pub = provisioning.parse_qr(CODE)
await m.driver.refresh_devlist(m.user_id)
own = m.driver.st.contacts[m.user_id]
h = {"authorization": "Bearer " + main.ui.token, "content-type": "application/json"}
r = await pyfetch(f"/api/v1/provisioning/{prov_id.hex()}/token", method="POST", headers=h)
token = json.loads(await r.string())["link_token"]
sealed = provisioning.seal(e_pub, user_id=m.user_id, aik=identity.aik(m.driver.st),
                           devlist_data=own.devlist.data, devlist_sig=own.devlist.sig,
                           link_token=token)
r = await pyfetch(f"/api/v1/provisioning/{prov_id.hex()}", method="PUT", headers=h,
                  body=json.dumps({"sealed": b64e(sealed)}))
r.status
"""
"""The browser (the account's first device) accepts a link code, as ``parley link-accept`` does
(the browser has no linking UI yet): run inside the page's Pyodide."""


def test_second_device_stops_ringing_when_another_answers(
    call_server: ServerProcess, media_contexts: Contexts, tmp_path: Path
) -> None:
    """Bob has a browser (first device) and a linked CPython device; alice calls from a browser:
    both of bob's devices ring, the CPython one answers, the browser stops ringing."""
    import queue

    from parley.client.call import CallState
    from parley_client.calls import Calls
    from parley_client.e2e_client import E2EClient

    a, b, _, _ = _pair(media_contexts, call_server.http_url)
    bot = BotThread(call_server, tmp_path)
    codes: queue.Queue[str] = queue.Queue()
    holder: dict[str, object] = {}
    try:
        fut = asyncio.run_coroutine_threadsafe(
            E2EClient.link_new_device(call_server.http_url, "b2", codes.put,
                                      db_path=tmp_path / "b2.db", timeout=60),
            bot.loop,
        )  # fmt: skip
        code = codes.get(timeout=60)
        src = f"CODE = {code!r}\n" + ACCEPT_LINK
        assert b.evaluate("src => window.parleyBoot.pyodide.runPythonAsync(src)", src) == 204
        e2e = fut.result(60)
        assert isinstance(e2e, E2EClient)
        holder["e2e"] = e2e

        async def start() -> Calls:
            await e2e.start()
            await e2e.wait_online(30)
            k = Calls(e2e, relay_only=True)
            k.start()
            return k

        calls = bot.do(start())
        assert isinstance(calls, Calls)
        holder["calls"] = calls
        a.click("#call-voice")
        expect(b.locator("#call-banner")).to_be_visible(timeout=CALL_MS)
        bot.do(calls.wait_state(CallState.INCOMING, timeout=60))
        assert b.evaluate("document.body.dataset.ringing") == "yes"
        calls.driver.accept(False)  # (thread-safe enough: the worker picks it up from its queue)
        bot.do(calls.driver.idle())
        _state(b, "ended")
        assert b.evaluate("document.body.dataset.callEnd") == "answered_elsewhere"
        assert b.evaluate("document.body.dataset.ringing") == "no"
        expect(b.locator("#call-banner")).to_be_hidden()
        _state(a, "connected")
        _growing(a, ("audio",))
        a.click("#call-hangup")
        bot.do(calls.wait_state(CallState.ENDED, timeout=60))
        for p in (a, b):
            expect(p.locator("#conv-rows")).to_contain_text("Voice call,", timeout=CALL_MS)
    finally:

        async def close() -> None:
            k = holder.get("calls")
            if isinstance(k, Calls):
                await k.close()
            e = holder.get("e2e")
            if isinstance(e, E2EClient):
                await e.close()

        bot.do(close())
        bot.stop()


def test_no_microphone_says_so(base_url: str, contexts: Contexts) -> None:
    """Chromium without fake devices (the suite's usual browser): getUserMedia fails, the caller
    reads why, and nothing rings on the other side."""
    an, bn = unique_name("na"), unique_name("nb")
    a = sign_up(contexts.new(), base_url, an)
    b = sign_up(contexts.new(), base_url, bn)
    become_contacts(a, b, bn, an)
    open_direct(a, bn)
    a.click("#call-voice")
    a.wait_for_selector("body[data-call-media-error]", state="attached", timeout=CALL_MS)
    kind = a.evaluate("document.body.dataset.callMediaError")
    assert kind in ("denied", "missing")
    text = "access was denied" if kind == "denied" else "No microphone or camera"
    expect(a.locator("#call-error")).to_contain_text(text)
    _state(a, "ended")
    assert a.evaluate("document.body.dataset.callEnd") == "cancelled"
    expect(b.locator("#call-banner")).to_be_hidden()
    assert b.evaluate("document.body.dataset.callState") is None
