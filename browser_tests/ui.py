"""Driving the browser UI like a user: sign up, add a contact, open a chat, send, wait.

Every wait is bounded (Playwright timeouts); a failing step names what it waited for.
"""

from __future__ import annotations

from playwright.sync_api import BrowserContext, Page, expect

from browser_tests.conftest import PYTHON_READY_TIMEOUT_MS
from tests.support.accounts import PASSWORD

ONLINE_TIMEOUT_MS = 30_000
MESSAGE_TIMEOUT_MS = 30_000


def open_app(ctx: BrowserContext, base_url: str) -> Page:
    page = ctx.new_page()
    page.goto(base_url + "/")
    page.wait_for_selector(
        "body[data-python=ready]", timeout=PYTHON_READY_TIMEOUT_MS, state="attached"
    )
    return page


def sign_up(ctx: BrowserContext, base_url: str, name: str) -> Page:
    """Register through the form and wait until the session is online."""
    page = open_app(ctx, base_url)
    page.fill("#username", name)
    page.fill("#password", PASSWORD)
    page.click("#register")
    wait_online(page)
    return page


def wait_online(page: Page, timeout_ms: int = ONLINE_TIMEOUT_MS) -> None:
    page.wait_for_selector("body[data-conn=online]", timeout=timeout_ms, state="attached")


def become_contacts(a: Page, b: Page, b_name: str, a_name: str) -> None:
    """``a`` sends a friend request to ``b``; ``b`` accepts it."""
    a.click("#tab-contacts")
    a.fill("#contact-name", b_name)
    a.click("#contact-add")
    expect(a.locator("#contacts-outgoing")).to_contain_text(b_name)
    b.click("#tab-contacts")
    incoming = b.locator(f"#contacts-incoming .person[data-name='{a_name}']")
    expect(incoming).to_be_visible(timeout=MESSAGE_TIMEOUT_MS)
    incoming.locator("button[data-action=accept]").click()
    expect(b.locator("#contacts-contacts")).to_contain_text(a_name)


def open_direct(page: Page, peer: str) -> None:
    page.click("#tab-contacts")
    person = page.locator(f"#contacts-contacts .person[data-name='{peer}']")
    expect(person).to_be_visible(timeout=MESSAGE_TIMEOUT_MS)
    person.locator("button[data-action=chat]").click()
    expect(page.locator("#conv-title")).to_have_text(peer)


def open_chat(page: Page, title: str) -> None:
    page.click("#tab-chats")
    item = page.locator(".chat", has_text=title).first
    expect(item).to_be_visible(timeout=MESSAGE_TIMEOUT_MS)
    item.click()
    expect(page.locator("#conv-title")).to_have_text(title)


def send(page: Page, text: str) -> None:
    """Type and press Enter; wait until the server stored it (the row has left 'sending')."""
    page.fill("#composer-input", text)
    page.press("#composer-input", "Enter")
    expect(page.locator("#conv-rows .msg.mine", has_text=text)).to_have_count(
        1, timeout=MESSAGE_TIMEOUT_MS
    )


def expect_message(page: Page, text: str, timeout_ms: int = MESSAGE_TIMEOUT_MS) -> None:
    """Exactly one decrypted row with ``text`` in the open conversation."""
    expect(page.locator("#conv-rows .msg.decrypted", has_text=text)).to_have_count(
        1, timeout=timeout_ms
    )
