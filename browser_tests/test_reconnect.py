"""Network loss and server restart: the loss is shown, the socket comes back by itself (the
engine's jittered backoff), sync resumes and the outbox is flushed; nothing is lost or
duplicated."""

from __future__ import annotations

from playwright.sync_api import BrowserContext, Page, expect

from browser_tests.conftest import Contexts, screenshot
from browser_tests.ui import (
    become_contacts,
    expect_message,
    open_chat,
    open_direct,
    send,
    sign_up,
    wait_online,
)
from tests.support.accounts import unique_name
from tests.support.server import ServerProcess

RECONNECT_TIMEOUT_MS = 60_000


def _pair(contexts: Contexts, url: str) -> tuple[BrowserContext, Page, Page, str, str]:
    a_name, b_name = unique_name("amy"), unique_name("bo")
    actx = contexts.new()
    amy, bo = sign_up(actx, url, a_name), sign_up(contexts.new(), url, b_name)
    become_contacts(amy, bo, b_name, a_name)
    open_direct(amy, b_name)
    send(amy, "before the trouble")
    open_chat(bo, a_name)
    expect_message(bo, "before the trouble")
    return actx, amy, bo, a_name, b_name


def test_server_restart_reconnects(contexts: Contexts, own_server: ServerProcess) -> None:
    _, amy, bo, _, _ = _pair(contexts, own_server.http_url)
    own_server.stop()
    expect(amy.locator("#net")).to_be_visible(timeout=RECONNECT_TIMEOUT_MS)
    screenshot(amy, "server-down")
    amy.fill("#composer-input", "written while the server was down")
    amy.press("#composer-input", "Enter")
    expect(amy.locator("#conv-outgoing .out")).to_have_count(1)  # visibly not sent yet
    own_server.start()
    wait_online(amy, RECONNECT_TIMEOUT_MS)
    wait_online(bo, RECONNECT_TIMEOUT_MS)
    expect(amy.locator("#net")).to_be_hidden()
    expect_message(bo, "written while the server was down", RECONNECT_TIMEOUT_MS)
    expect(amy.locator("#conv-outgoing .out")).to_have_count(0)
    send(bo, "after the restart")
    expect_message(amy, "after the restart")
    expect_message(bo, "before the trouble")  # still exactly one of each


def test_offline_then_back_delivers_queued(contexts: Contexts, base_url: str) -> None:
    actx, amy, bo, _, _ = _pair(contexts, base_url)
    actx.set_offline(True)
    expect(amy.locator("#net")).to_be_visible(timeout=RECONNECT_TIMEOUT_MS)
    for i in range(3):
        amy.fill("#composer-input", f"queued offline {i}")
        amy.press("#composer-input", "Enter")
    expect(amy.locator("#conv-outgoing .out")).to_have_count(3)
    screenshot(amy, "offline-queued")
    actx.set_offline(False)
    wait_online(amy, RECONNECT_TIMEOUT_MS)
    for i in range(3):
        expect_message(bo, f"queued offline {i}", RECONNECT_TIMEOUT_MS)
    expect(amy.locator("#conv-outgoing .out")).to_have_count(0, timeout=RECONNECT_TIMEOUT_MS)
    expect(amy.locator("#conv-rows .msg.mine", has_text="queued offline")).to_have_count(3)
    rows = bo.locator("#conv-rows .msg.decrypted", has_text="queued offline")
    expect(rows).to_have_count(3)
    assert rows.all_inner_texts() == sorted(rows.all_inner_texts())  # in the order written
