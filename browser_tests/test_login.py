"""Register and sign in through the form: HTTP API, then the WebSocket Hello/Welcome."""

from __future__ import annotations

import httpx
from playwright.sync_api import BrowserContext, expect

from browser_tests.conftest import PYTHON_READY_TIMEOUT_MS, Contexts, screenshot
from tests.support.accounts import PASSWORD, login, register, unique_name


def test_register_then_login_shows_welcome(
    context: BrowserContext, contexts: Contexts, base_url: str
) -> None:
    name = unique_name("web")
    page = context.new_page()
    page.goto(base_url + "/")
    page.wait_for_selector("body[data-python=ready]", timeout=PYTHON_READY_TIMEOUT_MS)
    page.fill("#username", name)
    page.fill("#password", PASSWORD)
    page.click("#register")
    expect(page.locator("#app")).to_be_visible()
    page.click("#tab-settings")
    expect(page.locator("#welcome")).to_be_visible()
    registered_id = page.locator("#welcome-user-id").inner_text()
    assert registered_id == login(base_url, name).user_id  # the server's id for that name
    first_device = page.locator("#welcome-device-id").inner_text()
    expect(page.locator("#e2e-state[data-ready='1']")).to_be_visible(timeout=30_000)
    screenshot(page, "settings-after-register")

    # A second tab of this browser profile resumes the remembered profile (same device, no
    # password), its interpreter restored from the build's memory snapshot.
    assert page.evaluate("window.parleyBoot.snapshot") == "restored"
    page.close()
    again = context.new_page()
    again.goto(base_url + "/")
    again.wait_for_selector("body[data-python=ready]", timeout=PYTHON_READY_TIMEOUT_MS)
    assert again.evaluate("window.parleyBoot.snapshot") == "restored"
    expect(again.locator("#app")).to_be_visible()
    expect(again.locator("#auth")).to_be_hidden()
    again.click("#tab-settings")
    assert again.locator("#welcome-user-id").inner_text() == registered_id
    assert again.locator("#welcome-device-id").inner_text() == first_device

    # ...but only one tab at a time: a third one says so instead of running the profile twice
    third = context.new_page()
    third.goto(base_url + "/")
    third.wait_for_selector("body[data-python=ready]", timeout=PYTHON_READY_TIMEOUT_MS)
    expect(third.locator("#auth-message.error")).to_contain_text("another tab")
    expect(third.locator("#app")).to_be_hidden()
    third.close()

    # Another browser signs in with the password: a new device of the same account.
    other = contexts.new().new_page()
    other.goto(base_url + "/")
    other.wait_for_selector("body[data-python=ready]", timeout=PYTHON_READY_TIMEOUT_MS)
    other.fill("#username", name)
    other.fill("#password", PASSWORD)
    other.click("#login")
    expect(other.locator("#app")).to_be_visible()
    other.click("#tab-settings")
    assert other.locator("#welcome-user-id").inner_text() == registered_id
    other_device = other.locator("#welcome-device-id").inner_text()
    # an unlinked second device cannot take part in E2E (and says so; sending is refused)
    expect(other.locator("#e2e-state[data-ready='0']")).to_contain_text("linked", timeout=30_000)
    assert other_device != first_device  # a new session
    # the first browser, the test's own HTTP login above, and this one
    expect(other.locator("#device-list li")).to_have_count(3)
    expect(other.locator("#device-list")).to_contain_text(f"#{other_device}")

    # The new device removes the first one: the first browser is signed out on the spot.
    other.click(f"#device-list [data-remove='{first_device}']")
    expect(other.locator("#device-list li")).to_have_count(2)
    expect(again.locator("#auth-message.error")).to_contain_text("signed out", timeout=30_000)
    expect(again.locator("#app")).to_be_hidden()
    screenshot(again, "signed-out-elsewhere")


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
    # the stable code as a readable sentence in the UI language, not the server's raw text
    assert direct.json()["code"] == "bad_credentials"
    expect(page.locator("#auth-message.error")).to_have_text("Wrong username or password.")
    expect(page.locator("#app")).to_be_hidden()
    screenshot(page, "login-error")
