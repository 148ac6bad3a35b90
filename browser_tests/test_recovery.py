"""Never locked out of your history: registration sets up key backup and shows the recovery key
once; sign-out says what will happen; signing in again on the same browser (a new device with
no keys for the past) offers restore from backup, and after it the old history decrypts."""

from __future__ import annotations

from playwright.sync_api import expect

from browser_tests.conftest import PYTHON_READY_TIMEOUT_MS, Contexts, screenshot
from browser_tests.ui import (
    MESSAGE_TIMEOUT_MS,
    become_contacts,
    expect_message,
    open_chat,
    open_direct,
    send,
    sign_up,
    wait_online,
)
from tests.support.accounts import PASSWORD, unique_name


def test_backup_sign_out_sign_in_restore(contexts: Contexts, base_url: str) -> None:
    l_name, m_name = unique_name("lia"), unique_name("max")
    lia = sign_up(contexts.new(), base_url, l_name)
    mx = sign_up(contexts.new(), base_url, m_name)
    # registration: the key backup is on and the recovery key is shown once
    key_el = lia.locator("#recovery-key")
    expect(key_el).to_be_visible(timeout=MESSAGE_TIMEOUT_MS)
    recovery_key = key_el.inner_text().strip()
    assert len(recovery_key.replace(" ", "")) >= 40, recovery_key
    screenshot(lia, "recovery-key")
    lia.click("#recovery-ok")
    expect(lia.locator("#recovery-dialog")).to_have_count(0)

    become_contacts(lia, mx, m_name, l_name)
    open_direct(lia, m_name)
    send(lia, "from lia before signing out")
    open_chat(mx, l_name)
    expect_message(mx, "from lia before signing out")
    send(mx, "max answers before it")
    expect_message(lia, "max answers before it")

    # sign-out says what happens (a backup exists) and asks first
    lia.click("#tab-settings")
    expect(lia.locator("#backup-state")).to_have_attribute("data-on", "1")
    lia.click("#sign-out")
    warning = lia.locator("#signout-confirm")
    expect(warning).to_contain_text("recovery key")
    screenshot(lia, "sign-out-warning")
    lia.locator("#signout-confirm button[data-signout-yes]").click()
    lia.wait_for_selector(
        "body[data-python=ready]", timeout=PYTHON_READY_TIMEOUT_MS, state="attached"
    )
    expect(lia.locator("#auth")).to_be_visible()

    # sign in again: a new device without the old keys; restore is offered
    lia.fill("#username", l_name)
    lia.fill("#password", PASSWORD)
    lia.click("#login")
    wait_online(lia)
    offer = lia.locator("#recovery-offer")
    expect(offer).to_be_visible(timeout=MESSAGE_TIMEOUT_MS)
    open_chat(lia, m_name)
    waiting = lia.locator("#conv-rows .msg.waiting")
    expect(waiting).to_have_count(2, timeout=MESSAGE_TIMEOUT_MS)  # not readable yet
    screenshot(lia, "restore-offer")
    # continuing without the old history asks first, with a plain warning
    lia.click("#restore-skip")
    expect(lia.locator("#restore-message.error")).to_contain_text("unreadable")
    expect(lia.locator("#restore-skip")).to_have_attribute("data-confirm", "1")
    expect(offer).to_be_visible()  # not skipped yet: a second click would
    lia.fill("#restore-key", "AAAA BBBB CCCC DDDD")
    lia.press("#restore-key", "Enter")
    expect(lia.locator("#restore-message.error")).to_be_visible(timeout=MESSAGE_TIMEOUT_MS)
    lia.fill("#restore-key", recovery_key)
    lia.press("#restore-key", "Enter")
    # the old history decrypts
    expect_message(lia, "max answers before it")
    expect_message(lia, "from lia before signing out")
    expect(waiting).to_have_count(0)
    expect(offer).to_have_count(0)
