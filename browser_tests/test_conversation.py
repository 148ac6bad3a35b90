"""The conversation view people know, between two browsers: bubbles on two sides, a
multi-line message arrives intact and wraps, links are safe, an edit and a reaction are seen on
the other side, and a reload reopens the chat that was open."""

from __future__ import annotations

from playwright.sync_api import expect

from browser_tests.conftest import Contexts, screenshot
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
from tests.support.accounts import unique_name

MULTI = "first line\nsecond line\n\nafter a blank line"
LONG = "long " + "wordy" * 60 + " end"


def test_bubbles_multiline_links_edit_reaction_reopen(contexts: Contexts, base_url: str) -> None:
    a_name, b_name = unique_name("cara"), unique_name("dan")
    cara, dan = sign_up(contexts.new(), base_url, a_name), sign_up(contexts.new(), base_url, b_name)
    become_contacts(cara, dan, b_name, a_name)
    open_direct(cara, b_name)
    send(cara, "hello dan")
    # a multi-line message: Shift+Enter makes the new lines
    box = cara.locator("#composer-input")
    box.fill("")
    for i, line in enumerate(MULTI.split("\n")):
        if i:
            box.press("Shift+Enter")
        box.type(line)
    box.press("Enter")
    expect(cara.locator("#conv-rows .msg.mine", has_text="after a blank line")).to_have_count(1)
    send(cara, LONG)
    send(cara, "see https://example.org/a?b=1, or www.example.net.")

    open_chat(dan, a_name)
    expect_message(dan, "after a blank line")
    multi = dan.locator("#conv-rows .msg.decrypted", has_text="after a blank line")
    assert multi.locator(".text").inner_text() == MULTI  # newlines kept, nothing dropped
    # theirs on the left, mine on the right; one day separator above them; grouped
    assert dan.locator("#conv-rows .msg.theirs").count() >= 4
    assert dan.locator("#conv-rows .msg.mine").count() == 0
    expect(dan.locator("#conv-rows .day")).to_have_count(1)
    assert dan.locator("#conv-rows .msg.theirs.cont").count() >= 3
    # long text wraps inside its bubble: no ellipsis, no overflow
    long_text = dan.locator("#conv-rows .msg", has_text="wordywordy").locator(".text")
    fits = long_text.evaluate("e => e.scrollWidth <= e.clientWidth + 1")
    assert fits, "the long message overflows its bubble"
    assert long_text.inner_text().endswith(" end")
    # links: anchors, new tab, no opener, no referrer
    links = dan.locator("#conv-rows .msg", has_text="example.org").locator("a")
    expect(links).to_have_count(2)
    first = links.first
    expect(first).to_have_attribute("href", "https://example.org/a?b=1")
    expect(first).to_have_attribute("target", "_blank")
    expect(first).to_have_attribute("rel", "noopener noreferrer")
    expect(links.nth(1)).to_have_attribute("href", "https://www.example.net")
    screenshot(dan, "conversation-bubbles")

    # dan reacts to "hello dan"; cara sees the count
    hello = dan.locator("#conv-rows .msg", has_text="hello dan")
    hello.hover()
    hello.locator("button[data-picker]").click()
    hello.locator(".picker button[data-emoji='👍']").click()
    expect(hello.locator(".reactions .chip")).to_have_text("👍 1", timeout=MESSAGE_TIMEOUT_MS)
    cara_hello = cara.locator("#conv-rows .msg", has_text="hello dan")
    expect(cara_hello.locator(".reactions .chip")).to_have_text("👍 1", timeout=MESSAGE_TIMEOUT_MS)
    # the reaction made no message of its own
    expect(cara.locator("#conv-rows .msg.theirs")).to_have_count(0)

    # cara edits "hello dan"; dan sees the new text with the "edited" mark
    cara_hello.hover()
    cara_hello.locator("button[data-edit]").click()
    expect(cara.locator("#composer-input")).to_have_value("hello dan")
    cara.fill("#composer-input", "hello dan, edited")
    cara.press("#composer-input", "Enter")
    expect(hello.locator(".text")).to_have_text("hello dan, edited", timeout=MESSAGE_TIMEOUT_MS)
    expect(hello.locator(".edited")).to_be_visible()
    expect(hello.locator(".reactions .chip")).to_have_text("👍 1")  # kept through the edit
    expect(cara_hello.locator(".edited")).to_be_visible(timeout=MESSAGE_TIMEOUT_MS)
    expect(cara.locator("#conv-outgoing .out")).to_have_count(0)
    screenshot(cara, "conversation-edit-reaction")

    # dan withdraws the reaction (same emoji again)
    hello.hover()
    hello.locator(".reactions button[data-emoji='👍']").click()
    expect(cara_hello.locator(".reactions")).to_have_count(0, timeout=MESSAGE_TIMEOUT_MS)

    # a reload reopens the chat that was open, with the read ticks it had
    expect(cara.locator("#conv-rows .msg.mine .read").first).to_be_visible(
        timeout=MESSAGE_TIMEOUT_MS
    )
    cara.reload()
    wait_online(cara)
    expect(cara.locator("#conv-title")).to_have_text(b_name)
    expect(cara.locator("#conv-rows .msg.mine", has_text="hello dan, edited")).to_have_count(1)
    expect(cara.locator("#conv-rows .msg.mine .read").first).to_be_visible()
