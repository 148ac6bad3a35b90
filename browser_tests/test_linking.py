"""Linking a second browser from the first: the new one signs in with the password (the server
refuses its device list), shows a link code and a check code; the first pastes the code, sees
the same check code, confirms; the new browser can then send, and reads the old history (the
first answers its key requests)."""

from __future__ import annotations

from playwright.sync_api import expect

from browser_tests.conftest import Contexts, screenshot
from browser_tests.ui import (
    MESSAGE_TIMEOUT_MS,
    become_contacts,
    expect_message,
    open_app,
    open_chat,
    open_direct,
    send,
    sign_up,
    wait_online,
)
from tests.support.accounts import PASSWORD, unique_name


def test_link_a_second_browser_from_the_first(contexts: Contexts, base_url: str) -> None:
    n_name, o_name = unique_name("nia"), unique_name("oli")
    nia = sign_up(contexts.new(), base_url, n_name)
    oli = sign_up(contexts.new(), base_url, o_name)
    nia.click("#recovery-ok")
    become_contacts(nia, oli, o_name, n_name)
    open_direct(nia, o_name)
    send(nia, "said before the second browser")
    open_chat(oli, n_name)
    expect_message(oli, "said before the second browser")
    send(oli, "oli answered before it too")

    # the second browser: password sign-in makes a further device, which must be linked
    nia2 = open_app(contexts.new(), base_url)
    nia2.fill("#username", n_name)
    nia2.fill("#password", PASSWORD)
    nia2.click("#login")
    wait_online(nia2)
    expect(nia2.locator("#recovery-offer")).to_be_visible(timeout=MESSAGE_TIMEOUT_MS)
    nia2.click("#restore-link")
    code_el = nia2.locator("#link-code")
    expect(code_el).to_contain_text("imlink:1:", timeout=MESSAGE_TIMEOUT_MS)
    code = code_el.inner_text().strip()
    # the same code as a QR code for a phone to scan (an SVG data URL image)
    qr = nia2.locator("#link-qr")
    expect(qr).to_be_visible()
    import segno

    want = segno.make(code, error="m", micro=False).svg_data_uri(scale=5, border=3)
    assert qr.get_attribute("src") == want  # it encodes exactly the link code
    assert qr.evaluate("img => img.complete && img.naturalWidth > 0")
    check = nia2.locator("#link-check").inner_text()
    # on a phone (one pane at a time) the offer is on screen, not hidden behind the chat list
    size = nia2.viewport_size
    nia2.set_viewport_size({"width": 390, "height": 844})
    expect(nia2.locator("#link-code")).to_be_in_viewport()
    if size is not None:
        nia2.set_viewport_size(size)
    screenshot(nia2, "link-new-device")

    # the first browser: paste, compare the check code, confirm
    nia.click("#tab-settings")
    nia.fill("#link-input", code)
    nia.locator("#link-settings button[data-link]").click()
    expect(nia.locator("#link-message")).to_have_text(check)
    screenshot(nia, "link-existing-device")
    nia.click("#link-confirm")

    # linked: the offer goes, encryption is ready, the history reads, and it can send
    expect(nia2.locator("#recovery-offer")).to_have_count(0, timeout=MESSAGE_TIMEOUT_MS)
    nia2.click("#tab-settings")
    expect(nia2.locator("#e2e-state")).to_have_attribute("data-ready", "1")
    open_chat(nia2, o_name)
    expect_message(nia2, "oli answered before it too")
    expect_message(nia2, "said before the second browser")
    send(nia2, "from the linked browser")
    expect_message(oli, "from the linked browser")


def test_a_settings_rebuild_keeps_the_field_being_typed_in(
    contexts: Contexts, base_url: str
) -> None:
    """The settings pane is rebuilt when the device list arrives; a rebuild that lands between
    focusing the link field and typing into it must not swallow the text (this test made the
    race certain: it rebuilds the pane right after the focus)."""
    page = sign_up(contexts.new(), base_url, unique_name("ray"))
    page.click("#recovery-ok")
    page.click("#tab-settings")
    expect(page.locator("#e2e-state")).to_have_attribute("data-ready", "1")
    field = page.locator("#link-input")
    field.click()
    field.press_sequentially("imlink:1:ab")
    before = field.element_handle()
    page.evaluate(
        "window.parleyBoot.pyodide.runPython('from parley_web import main; main.ui.settings.render()')"
    )
    assert before.evaluate("node => node.isConnected") is False  # the field was rebuilt...
    page.keyboard.insert_text("cd")
    expect(field).to_have_value("imlink:1:abcd")  # ...and kept both the draft and the caret
    assert page.evaluate("document.activeElement.id") == "link-input"
