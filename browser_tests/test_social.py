"""Recall, read receipts and the typing indicator between two browsers."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from browser_tests.conftest import Contexts, screenshot
from browser_tests.ui import become_contacts, expect_message, open_chat, open_direct, send, sign_up
from parley.client import effects as fx
from tests.support.accounts import unique_name


def test_recall_receipts_typing(contexts: Contexts, base_url: str) -> None:
    a_name, b_name = unique_name("ada"), unique_name("bea")
    ada, bea = sign_up(contexts.new(), base_url, a_name), sign_up(contexts.new(), base_url, b_name)
    become_contacts(ada, bea, b_name, a_name)
    # presence: bea is online in ada's contact list
    ada.click("#tab-chats")
    ada.click("#tab-contacts")
    bea_dot = ada.locator(f"#contacts-contacts .person[data-name='{b_name}'] .dot")
    expect(bea_dot).to_have_attribute("data-online", "1")
    open_direct(ada, b_name)
    send(ada, "a message to keep")
    send(ada, "a message to take back")
    expect(ada.locator("#conv-rows .msg.mine .sent")).to_have_count(2)  # sent, not read yet
    open_chat(bea, a_name)
    expect_message(bea, "a message to take back")

    # bea has read both: ada sees it (live signal, or from the receipts op on reopening)
    open_chat(ada, b_name)
    expect(ada.locator("#conv-rows .msg.mine .read")).to_have_count(2, timeout=30_000)

    mine = ada.locator("#conv-rows .msg.mine", has_text="a message to take back")
    mine.hover()
    mine.locator("button[data-recall]").click()
    # recall asks first (it removes the message for everyone)
    expect(ada.locator("#conv-rows .msg.recalled")).to_have_count(0)
    mine.locator("button[data-recall-yes]").click()
    expect(ada.locator("#conv-rows .msg.recalled")).to_have_count(1, timeout=30_000)
    expect(bea.locator("#conv-rows .msg.recalled")).to_have_count(1, timeout=30_000)
    expect(bea.locator("#conv-rows")).not_to_contain_text("a message to take back")
    expect_message(bea, "a message to keep")
    screenshot(bea, "recalled")

    # the safety number: the same digits on both sides
    numbers = []
    for page, peer in ((ada, b_name), (bea, a_name)):
        page.click("#tab-contacts")
        person = page.locator(f"#contacts-contacts .person[data-name='{peer}']")
        person.locator("button[data-action=safety]").click()
        expect(page.locator("#safety-number")).to_have_text(re.compile(r"^[0-9 ]{20,}$"))
        numbers.append(page.locator("#safety-number").inner_text())
        page.click("#tab-chats")
    assert numbers[0] == numbers[1]
    screenshot(bea, "safety-number")

    if not hasattr(fx, "SignalReceived"):
        pytest.skip("the client engine does not deliver signals yet (typing)")
    bea.locator("#composer-input").press_sequentially("typ", delay=50)
    expect(ada.locator("#conv-typing")).to_contain_text(b_name, timeout=30_000)
    screenshot(ada, "typing")
    bea.press("#composer-input", "Enter")
    expect(ada.locator("#conv-typing")).to_have_text("", timeout=30_000)
