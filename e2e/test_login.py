"""Register and sign in through the form: HTTP API, then the WebSocket Hello/Welcome."""

from __future__ import annotations

import httpx
from playwright.sync_api import BrowserContext, expect

from e2e.conftest import PYTHON_READY_TIMEOUT_MS, screenshot, settle
from tests.support.accounts import PASSWORD, login, register, unique_name


def test_register_then_login_shows_welcome(context: BrowserContext, base_url: str) -> None:
    name = unique_name("web")
    page = context.new_page()
    page.goto(base_url + "/")
    page.wait_for_selector("body[data-python=ready]", timeout=PYTHON_READY_TIMEOUT_MS)
    page.fill("#username", name)
    page.fill("#password", PASSWORD)
    page.click("#register")
    expect(page.locator("#welcome")).to_be_visible()
    registered_id = page.locator("#welcome-user-id").inner_text()
    assert registered_id == login(base_url, name).user_id  # the server's id for that name
    screenshot(page, "welcome-after-register")

    # The first start saved an interpreter snapshot: the second signs in from a restored one.
    assert settle(page, "window.parleyBoot.snapshotSaved") is True
    again = context.new_page()
    again.goto(base_url + "/")
    again.wait_for_selector("body[data-python=ready]", timeout=PYTHON_READY_TIMEOUT_MS)
    assert again.evaluate("window.parleyBoot.snapshot") == "loaded"
    again.fill("#username", name)
    again.fill("#password", PASSWORD)
    again.click("#login")
    expect(again.locator("#welcome")).to_be_visible()
    assert again.locator("#welcome-user-id").inner_text() == registered_id
    first_device = page.locator("#welcome-device-id").inner_text()
    assert again.locator("#welcome-device-id").inner_text() != first_device  # a new session


def test_wrong_password_shows_error(context: BrowserContext, base_url: str) -> None:
    name = unique_name("web")
    register(base_url, name)
    page = context.new_page()
    page.goto(base_url + "/")
    page.wait_for_selector("body[data-python=ready]", timeout=PYTHON_READY_TIMEOUT_MS)
    page.fill("#username", name)
    page.fill("#password", "not the password")
    page.click("#login")
    direct = httpx.post(
        f"{base_url}/api/v1/sessions",
        json={"username": name, "password": "not the password", "device_name": "x"},
        timeout=10,
    )
    assert direct.status_code >= 400
    expect(page.locator("#auth-message.error")).to_have_text(direct.json()["message"])
    expect(page.locator("#welcome")).to_be_hidden()
    screenshot(page, "login-error")
