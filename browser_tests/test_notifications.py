"""Being told something happened: the unread count in the tab title, a badge for a friend
request, and a system notification for a message that arrives while the tab is hidden (with the
message text only after the user opted in)."""

from __future__ import annotations

from playwright.sync_api import expect

from browser_tests.conftest import Contexts, screenshot
from browser_tests.ui import MESSAGE_TIMEOUT_MS, open_chat, open_direct, send, sign_up
from tests.support.accounts import unique_name

# Headless pages are never hidden and notifications are not observable: the init script lets a
# test hide the page (document.hidden + visibilitychange, as a browser does for a background tab)
# and records every Notification the page creates.
OBSERVE = """
(() => {
  let hidden = false;
  Object.defineProperty(Document.prototype, "hidden", { configurable: true, get: () => hidden });
  Object.defineProperty(Document.prototype, "visibilityState", {
    configurable: true, get: () => (hidden ? "hidden" : "visible") });
  window.__setHidden = (h) => { hidden = h; document.dispatchEvent(new Event("visibilitychange")); };
  window.__notes = [];
  const Real = window.Notification;
  class Observed extends Real {
    constructor(title, options) {
      window.__notes.push({ title, body: (options || {}).body || "" });
      super(title, options);
    }
  }
  window.Notification = Observed;
})();
"""


def test_title_count_badge_and_notification_while_hidden(contexts: Contexts, base_url: str) -> None:
    a_name, b_name = unique_name("gus"), unique_name("hal")
    gus = sign_up(contexts.new(), base_url, a_name)
    hctx = contexts.new(permissions=["notifications"])
    hctx.add_init_script(OBSERVE)
    hal = sign_up(hctx, base_url, b_name)

    # a friend request: a badge on hal's Contacts tab
    gus.click("#tab-contacts")
    gus.fill("#contact-name", b_name)
    gus.click("#contact-add")
    badge = hal.locator("#tab-contacts .tab-badge")
    expect(badge).to_have_text("1", timeout=MESSAGE_TIMEOUT_MS)
    screenshot(hal, "friend-request-badge")
    hal.click("#tab-contacts")
    hal.locator(
        f"#contacts-incoming .person[data-name='{a_name}'] button[data-action=accept]"
    ).click()
    expect(badge).to_have_count(0)

    # unread count in the title (hal is on another tab, the chat is not open)
    open_direct(gus, b_name)
    send(gus, "one for the title")
    expect(hal).to_have_title("(1) Parley", timeout=MESSAGE_TIMEOUT_MS)
    send(gus, "two for the title")
    expect(hal).to_have_title("(2) Parley", timeout=MESSAGE_TIMEOUT_MS)
    favicon = hal.locator("link[rel=icon]").get_attribute("href") or ""
    assert favicon.startswith("data:image/png"), favicon[:40]
    open_chat(hal, a_name)
    expect(hal).to_have_title("Parley")

    # notifications: on in settings (granted), text only after opting in
    hal.click("#tab-settings")
    expect(hal.locator("#notify-state")).to_be_visible()
    expect(hal.locator("#notify-preview")).not_to_be_checked()
    screenshot(hal, "settings")
    open_chat(hal, a_name)
    hal.evaluate("window.__setHidden(true)")
    send(gus, "secret words while hidden")
    hal.wait_for_function("window.__notes.length >= 1", timeout=MESSAGE_TIMEOUT_MS)
    note = hal.evaluate("window.__notes[0]")
    assert note == {"title": a_name, "body": "New message"}, note  # no text without opt-in
    expect(hal).to_have_title("(1) Parley")  # hidden: not read
    hal.evaluate("window.__setHidden(false)")
    expect(hal).to_have_title("Parley")

    hal.click("#tab-settings")
    hal.check("#notify-preview")
    open_chat(hal, a_name)
    hal.evaluate("window.__setHidden(true)")
    send(gus, "now with its text")
    hal.wait_for_function("window.__notes.length >= 2", timeout=MESSAGE_TIMEOUT_MS)
    assert hal.evaluate("window.__notes[1]") == {"title": a_name, "body": "now with its text"}
