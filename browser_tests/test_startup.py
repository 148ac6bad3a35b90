"""Start-up is never a dead end: a download that fails once is retried and the app starts; one
that keeps failing ends on a Retry button that works; an action taken before Python is ready
waits for it with visible progress and then goes through."""

from __future__ import annotations

from playwright.sync_api import BrowserContext, Route, expect

from browser_tests.conftest import PYTHON_READY_TIMEOUT_MS, screenshot
from browser_tests.ui import wait_online
from tests.support.accounts import PASSWORD, unique_name

READY = "body[data-python=ready]"


def _fail_first(pattern: str, failures: int, context: BrowserContext) -> list[str]:
    """Abort the first ``failures`` requests matching ``pattern``; let the rest through."""
    seen: list[str] = []

    def handle(route: Route) -> None:
        seen.append(route.request.url)
        if len(seen) <= failures:
            route.abort("failed")
        else:
            route.continue_()

    context.route(pattern, handle)
    return seen


def test_a_fetch_that_fails_once_is_retried(context: BrowserContext, base_url: str) -> None:
    # two failures: the shell's <link rel=preload> asks first, then boot.js's own fetch fails once
    seen = _fail_first("**/parley-app-*.zip", 2, context)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(base_url + "/")
    page.wait_for_selector(
        "body[data-python=ready], body[data-python=failed]", timeout=PYTHON_READY_TIMEOUT_MS
    )
    state = page.evaluate("document.body.dataset.python")
    assert state == "ready", (page.evaluate("window.parleyBoot.error"), seen)
    assert len(seen) >= 3, seen  # it failed, then it was fetched again
    assert page.evaluate("window.parleyBoot.retries") >= 1
    assert page.evaluate("window.parleyBoot.error") is None
    assert errors == []


def test_failing_for_good_offers_retry(context: BrowserContext, base_url: str) -> None:
    """Every attempt fails: the page says so and its Retry button starts the app."""
    blocked = {"on": True}

    def handle(route: Route) -> None:
        if blocked["on"]:
            route.abort("failed")
        else:
            route.continue_()

    context.route("**/parley-app-*.zip", handle)
    page = context.new_page()
    page.goto(base_url + "/")
    page.wait_for_selector("body[data-python=failed]", timeout=PYTHON_READY_TIMEOUT_MS)
    retry = page.locator("#boot-retry")
    expect(retry).to_be_visible()
    expect(page.locator("#auth-message")).to_have_class("message error")
    screenshot(page, "startup-failed-retry")
    blocked["on"] = False
    retry.click()
    page.wait_for_selector(READY, timeout=PYTHON_READY_TIMEOUT_MS)
    expect(page.locator("#boot-retry")).to_have_count(0)


def test_sign_up_before_python_is_ready_waits_and_goes_through(
    context: BrowserContext, base_url: str
) -> None:
    held: list[Route] = []
    context.route("**/parley-app-*.zip", lambda route: held.append(route))
    page = context.new_page()
    page.goto(base_url + "/", wait_until="domcontentloaded")
    page.fill("#username", unique_name("early"))
    page.fill("#password", PASSWORD)
    page.click("#register")
    # the action is kept, with progress shown, while Python cannot be ready yet
    expect(page.locator("#auth-message")).to_contain_text("%")
    for _ in range(400):  # bounded: 20 s for the page to ask for the app (Playwright dispatch)
        if held:
            break
        page.wait_for_timeout(50)
    assert held, "the app archive was never requested"
    assert page.evaluate("document.body.dataset.python") == "loading"
    for route in held:
        route.continue_()
    context.unroute("**/parley-app-*.zip")
    wait_online(page)
    expect(page.locator("#app")).to_be_visible()


def test_a_snapshot_that_does_not_fit_starts_python_afresh(
    context: BrowserContext, base_url: str
) -> None:
    """The build's memory snapshot is an optimisation, never a dependency: one that is damaged
    (or made from another Pyodide build) is refused by Pyodide, and Python starts the slow way."""
    served: list[str] = []

    def damaged(route: Route) -> None:
        served.append(route.request.url)
        route.fulfill(body=b"\x00" * 4096, headers={"content-type": "application/octet-stream"})

    context.route("**/python-snapshot-*.bin", damaged)
    page = context.new_page()
    page.goto(base_url + "/")
    page.wait_for_selector(
        "body[data-python=ready], body[data-python=failed]", timeout=PYTHON_READY_TIMEOUT_MS
    )
    assert served, "the snapshot was never requested"
    assert page.evaluate("document.body.dataset.python") == "ready"
    assert page.evaluate("window.parleyBoot.error") is None
    assert page.evaluate("window.parleyBoot.snapshot") == "none"
    page.fill("#username", unique_name("fresh"))
    page.fill("#password", PASSWORD)
    page.click("#register")
    wait_online(page)  # and the app works on the freshly started interpreter
