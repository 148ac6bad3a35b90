"""A phone-sized screen (390x844): one pane at a time (list -> chat -> back), nothing scrolls
sideways, and in a chat the composer and the last message are on screen."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from browser_tests.conftest import Contexts, screenshot
from browser_tests.ui import become_contacts, expect_message, open_direct, send, sign_up
from tests.support.accounts import unique_name

PHONE = {"width": 390, "height": 844}


def _no_sideways_scroll(page: Page) -> None:
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.body.scrollWidth, innerWidth]"
    )
    assert max(widths[0], widths[1]) <= widths[2], widths


def _on_screen(page: Page, selector: str) -> None:
    box = page.locator(selector).bounding_box()
    assert box is not None, f"{selector} is not rendered"
    assert box["y"] >= 0 and box["y"] + box["height"] <= PHONE["height"] + 1, (selector, box)
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"] + 1, (selector, box)


def test_phone_layout_one_pane_at_a_time(contexts: Contexts, base_url: str) -> None:
    a_name, b_name = unique_name("eve"), unique_name("fay")
    eve = sign_up(contexts.new(viewport=PHONE), base_url, a_name)
    fay = sign_up(contexts.new(viewport=PHONE), base_url, b_name)
    _no_sideways_scroll(eve)
    become_contacts(eve, fay, b_name, a_name)
    screenshot(eve, "contacts-phone")
    # the list pane fills the screen; no conversation beside it
    expect(eve.locator(".side")).to_be_visible()
    expect(eve.locator("#conversation")).to_be_hidden()

    open_direct(eve, b_name)  # list -> chat
    expect(eve.locator(".side")).to_be_hidden()
    expect(eve.locator("#conv-back")).to_be_visible()
    for i in range(12):
        send(eve, f"line {i} " + "with some words to wrap " * (i % 3 + 1))
    send(eve, "a link https://example.org/" + "x" * 120)
    _no_sideways_scroll(eve)
    _on_screen(eve, "#composer-input")
    _on_screen(eve, "#conv-rows .msg:last-child .bubble")

    # the other side, also on a phone: the chat from the list, the last message visible
    fay.click("#tab-chats")
    fay.locator(".chat", has_text=a_name).click()
    expect_message(fay, "example.org")
    _no_sideways_scroll(fay)
    _on_screen(fay, "#composer-input")
    _on_screen(fay, "#conv-rows .msg:last-child .bubble")
    # touch-sized targets
    send_box = fay.locator("#composer-send").bounding_box()
    assert send_box is not None and send_box["height"] >= 44
    screenshot(fay, "chat-phone")

    fay.click("#conv-back")  # chat -> back to the list
    expect(fay.locator(".side")).to_be_visible()
    expect(fay.locator("#conversation")).to_be_hidden()
    _no_sideways_scroll(fay)
