"""Switching the UI to Chinese at run time (no reload), and back; the choice survives a reload."""

from __future__ import annotations

from playwright.sync_api import expect

from browser_tests.conftest import Contexts, screenshot
from browser_tests.ui import sign_up, wait_online
from tests.support.accounts import unique_name

# the Chinese placeholder holds full-width punctuation (escaped here)
ZH = {"conv.placeholder": "输入消息\uff08Enter 发送\uff0cShift+Enter 换行\uff09"}


def test_switch_to_chinese_without_reload(contexts: Contexts, base_url: str) -> None:
    page = sign_up(contexts.new(), base_url, unique_name("lang"))
    page.evaluate("window.__sameDocument = 42")
    expect(page.locator("#tab-chats")).to_have_text("Chats")
    page.click("#tab-settings")
    page.select_option("#lang-select", "zh")
    expect(page.locator("#tab-chats")).to_have_text("聊天")
    expect(page.locator("#tab-contacts")).to_have_text("联系人")
    expect(page.locator("#status")).to_have_text("在线")
    expect(page.locator("#sign-out")).to_have_text("退出登录")
    expect(page.locator("#composer-input")).to_have_attribute("placeholder", ZH["conv.placeholder"])
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    assert page.evaluate("window.__sameDocument") == 42  # switched in place, not reloaded
    page.click("#tab-chats")
    expect(page.locator("#chat-list")).to_contain_text("还没有聊天")
    screenshot(page, "ui-chinese")

    page.reload()
    wait_online(page)
    expect(page.locator("#tab-chats")).to_have_text("聊天")
    page.click("#tab-settings")
    page.select_option("#lang-select", "en")
    expect(page.locator("#tab-chats")).to_have_text("Chats")
    expect(page.locator("#status")).to_have_text("Online")
