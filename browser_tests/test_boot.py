"""The shell renders before Python; Python (Pyodide + msgspec + libsodium + parley) gets ready."""

from __future__ import annotations

from playwright.sync_api import BrowserContext, Route, expect

from browser_tests.conftest import PYTHON_READY_TIMEOUT_MS, RequestLog, screenshot

READY = "body[data-python=ready]"


def test_shell_renders_before_python(context: BrowserContext, base_url: str) -> None:
    """Hold back the wasm: the form must be usable while Python cannot possibly be ready."""
    held: list[Route] = []
    context.route("**/pyodide.asm.wasm", lambda route: held.append(route))
    page = context.new_page()
    page.goto(base_url + "/", wait_until="domcontentloaded")
    expect(page.locator("#auth-form")).to_be_visible()
    expect(page.locator("#username")).to_be_editable()
    expect(page.locator("#progress")).to_be_visible()
    for _ in range(200):  # bounded: 10 s for the page to ask for the wasm
        if held:
            break
        page.wait_for_timeout(50)  # lets Playwright dispatch the route event
    assert held, "the wasm request never started"
    assert page.evaluate("document.body.dataset.python") == "loading"
    screenshot(page, "shell-before-python")
    for route in held:
        route.continue_()
    page.wait_for_selector(READY, timeout=PYTHON_READY_TIMEOUT_MS)
    expect(page.locator("#progress")).to_be_hidden()


def test_python_ready_with_shared_package(
    context: BrowserContext, base_url: str, request_log: RequestLog
) -> None:
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(base_url + "/")
    page.wait_for_selector(
        "body[data-python=ready], body[data-python=failed]", timeout=PYTHON_READY_TIMEOUT_MS
    )
    assert page.evaluate("window.parleyBoot.error") is None
    assert page.evaluate("document.body.dataset.python") == "ready"
    # the interpreter came from the build's memory snapshot, not a cold start
    assert page.evaluate("window.parleyBoot.snapshot") == "restored"
    probe = page.evaluate(
        """window.parleyBoot.pyodide.runPython(`
import sys, msgspec, parley.protocol, parley.crypto.backend as b
f"{msgspec.__version__} {b.NAME} {sys.version_info[:2]}"
`)"""
    )
    assert probe == "0.22.0 libsodium.js (3, 14)"
    assert errors == []  # includes Content-Security-Policy violations
    assert any(url.endswith(".whl") for url in request_log.urls), "msgspec came from our wheel"
    screenshot(page, "python-ready")
