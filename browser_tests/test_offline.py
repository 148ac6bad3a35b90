"""A warm start works offline: the service worker serves the shell and the hashed assets, and the
interpreter comes back from the build's memory snapshot, which the service worker precached."""

from __future__ import annotations

from playwright.sync_api import BrowserContext, expect

from browser_tests.conftest import PYTHON_READY_TIMEOUT_MS, screenshot, settle


def test_warm_reload_offline(context: BrowserContext, base_url: str) -> None:
    page = context.new_page()
    page.goto(base_url + "/")
    page.wait_for_selector("body[data-python=ready]", timeout=PYTHON_READY_TIMEOUT_MS)
    # boot.js registers the worker once Python is ready; its install precaches everything.
    page.wait_for_function("window.parleyBoot.sw !== undefined")
    assert settle(page, "window.parleyBoot.sw") is True
    page.wait_for_function("navigator.serviceWorker.controller !== null")

    context.set_offline(True)
    offline_error = None
    try:
        page.reload()
    except Exception as exc:  # pragma: no cover - the assertion below reports it
        offline_error = exc
    assert offline_error is None, f"offline reload failed: {offline_error}"
    expect(page.locator("#auth-form")).to_be_visible()
    page.wait_for_selector(
        "body[data-python=ready], body[data-python=failed]", timeout=PYTHON_READY_TIMEOUT_MS
    )
    assert page.evaluate("window.parleyBoot.error") is None
    assert page.evaluate("document.body.dataset.python") == "ready"
    assert page.evaluate("window.parleyBoot.snapshot") == "restored"  # from the precached snapshot
    probe = "window.parleyBoot.pyodide.runPython('import parley.crypto.backend as b; b.NAME')"
    assert page.evaluate(probe) == "libsodium.js"
    screenshot(page, "offline-warm-start")
    context.set_offline(False)
