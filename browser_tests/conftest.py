"""Browser end-to-end fixtures: built assets, the real server, Debian's Chromium, guarded contexts.

Every context logs its requests and the test fails if any request leaves loopback (the page must
load every byte from the Parley server; docs/browser.md). Set ``PARLEY_E2E_URL`` to test an already
running server instead of starting one.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Playwright,
    Request,
    expect,
    sync_playwright,
)

from tests.support.server import ServerProcess

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("PARLEY_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
VIEWPORT = {"width": 1280, "height": 800}
DEFAULT_TIMEOUT_MS = 20_000
PYTHON_READY_TIMEOUT_MS = 60_000  # a cold Pyodide start on a busy 2-core runner
EXPECT_TIMEOUT_MS = 15_000  # UI assertions that wait on the server (the default 5 s is tight
# for a loaded 2-core runner with three browsers)
expect.set_options(timeout=EXPECT_TIMEOUT_MS)


def is_local(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about"):
        return True
    return (parts.hostname or "") in LOCAL_HOSTS


@pytest.fixture(scope="session")
def web_dist() -> Path:
    """Build the web assets once per session (a no-op when nothing changed)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_web", ROOT / "scripts" / "build_web.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_web"] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    module.build()
    dist: Path = module.DIST
    return dist


@pytest.fixture(scope="session")
def base_url(web_dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real Parley server (serving web/dist) on a loopback port."""
    external = os.environ.get("PARLEY_E2E_URL")
    if external:
        yield external.rstrip("/")
        return
    srv = ServerProcess(tmp_path_factory.mktemp("e2e") / "data")
    srv.start()
    yield srv.http_url
    srv.stop()


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} missing: apt-get install -y chromium")
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
    yield browser
    browser.close()


class RequestLog:
    """Every request a context made; ``foreign`` are the ones that left loopback."""

    def __init__(self) -> None:
        self.urls: list[str] = []
        self.foreign: list[str] = []

    def __call__(self, request: Request) -> None:
        self.urls.append(request.url)
        if not is_local(request.url):
            self.foreign.append(request.url)


@pytest.fixture
def request_log() -> RequestLog:
    return RequestLog()


@pytest.fixture
def context(browser: Browser, request_log: RequestLog) -> Iterator[BrowserContext]:
    """A fresh browser context (cold caches) that fails the test on any non-local request."""
    ctx = browser.new_context(viewport=VIEWPORT)
    ctx.set_default_timeout(DEFAULT_TIMEOUT_MS)
    ctx.set_default_navigation_timeout(DEFAULT_TIMEOUT_MS)
    ctx.on("request", request_log)
    yield ctx
    ctx.close()
    if request_log.foreign:
        pytest.fail(f"requests left loopback: {request_log.foreign}")


SCREEN_SIZES = ((1280, 800), (390, 844))
"""Every screenshot is taken at a desktop and a phone size (the layout differs below 600 px)."""


def screenshot(page: object, name: str) -> None:
    """Save a screenshot of a key screen to artifacts/screenshots/ (gitignored; kept by CI),
    once per size in ``SCREEN_SIZES`` (``name-1280x800.png``, ``name-390x844.png``); the
    page's own viewport is restored afterwards."""
    from playwright.sync_api import Page

    assert isinstance(page, Page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    before = page.viewport_size
    current = (before["width"], before["height"]) if before else None
    # the page's own size first: resizing re-wraps text and can move a scroll position
    for width, height in sorted(SCREEN_SIZES, key=lambda size: size != current):
        page.set_viewport_size({"width": width, "height": height})
        page.evaluate("() => new Promise((ok) => requestAnimationFrame(() => ok(null)))")
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}x{height}.png"), full_page=True)
    if before is not None:
        page.set_viewport_size(before)


def settle(page: object, expression: str, timeout_ms: int = DEFAULT_TIMEOUT_MS) -> object:
    """Await a page-side promise with a bound (``page.evaluate`` alone would wait forever)."""
    from playwright.sync_api import Page

    assert isinstance(page, Page)
    return page.evaluate(
        f"""() => Promise.race([
            Promise.resolve({expression}),
            new Promise((_, reject) => setTimeout(() => reject(new Error("timeout")), {timeout_ms})),
        ])"""
    )


class Wire:
    """Everything a page sent: WebSocket frames and HTTP request bodies (plaintext checks)."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def attach(self, page: object) -> None:
        from playwright.sync_api import Page, WebSocket

        assert isinstance(page, Page)

        def on_ws(ws: WebSocket) -> None:
            ws.on("framesent", lambda payload: self.sent.append(
                payload if isinstance(payload, bytes) else payload.encode()
            ))  # fmt: skip

        page.on("websocket", on_ws)
        page.on("request", lambda r: self.sent.append(r.post_data_buffer or b""))

    def contains(self, text: str) -> bool:
        needle = text.encode()
        return any(needle in frame for frame in self.sent)


class Contexts:
    """Several guarded browser contexts in one test (two or three users)."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.opened: list[tuple[BrowserContext, RequestLog]] = []
        self.wire = Wire()
        self.errors: list[str] = []

    def new(self, **options: Any) -> BrowserContext:
        """A guarded context; ``options`` go to ``new_context`` (viewport, permissions...)."""
        log = RequestLog()
        ctx = self.browser.new_context(**{"viewport": VIEWPORT, **options})
        ctx.set_default_timeout(DEFAULT_TIMEOUT_MS)
        ctx.set_default_navigation_timeout(DEFAULT_TIMEOUT_MS)
        ctx.on("request", log)
        ctx.on("page", self._watch)
        self.opened.append((ctx, log))
        return ctx

    def _watch(self, page: object) -> None:
        from playwright.sync_api import Page

        assert isinstance(page, Page)
        self.wire.attach(page)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def close(self) -> list[str]:
        foreign: list[str] = []
        for ctx, log in self.opened:
            ctx.close()
            foreign += log.foreign
        return foreign


@pytest.fixture
def contexts(browser: Browser) -> Iterator[Contexts]:
    """A factory of guarded contexts; the test fails on any non-loopback request or page error."""
    c = Contexts(browser)
    yield c
    foreign = c.close()
    if foreign:
        pytest.fail(f"requests left loopback: {foreign}")
    if c.errors:
        pytest.fail(f"page errors: {c.errors}")


@pytest.fixture
def own_server(web_dist: Path, tmp_path: Path) -> Iterator[ServerProcess]:
    """A server of this test's own (it may be restarted)."""
    srv = ServerProcess(tmp_path / "data")
    srv.start()
    yield srv
    srv.stop()
