"""Two users in two browser contexts: sign up, become contacts, chat both ways, end to end
encrypted (the message text never appears in anything the pages sent); a reload with the
network off shows the history from IndexedDB."""

from __future__ import annotations

from playwright.sync_api import expect

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

# Every record of every IndexedDB database of the page, decoded as latin-1 text (so any UTF-8
# plaintext shows up as its bytes), keys included.
DUMP_IDB = """async () => {
  const dec = new TextDecoder("latin1");
  const asText = (v) => v instanceof Uint8Array ? dec.decode(v)
    : v instanceof ArrayBuffer ? dec.decode(new Uint8Array(v)) : JSON.stringify(v) || "";
  let text = "", records = 0;
  for (const info of await indexedDB.databases()) {
    const db = await new Promise((ok, no) => {
      const r = indexedDB.open(info.name); r.onsuccess = () => ok(r.result); r.onerror = () => no(r.error);
    });
    for (const name of db.objectStoreNames) {
      const store = db.transaction(name).objectStore(name);
      const [keys, values] = await Promise.all([store.getAllKeys(), store.getAll()].map((r) =>
        new Promise((ok, no) => { r.onsuccess = () => ok(r.result); r.onerror = () => no(r.error); })));
      records += values.length;
      text += keys.map(asText).join("\\n") + values.map(asText).join("\\n");
    }
    db.close();
  }
  return { text, records };
}"""


def test_two_users_chat_both_ways_then_reload(contexts: Contexts, base_url: str) -> None:
    alice_name, bob_name = unique_name("alice"), unique_name("bob")
    actx, bctx = contexts.new(), contexts.new()
    alice = sign_up(actx, base_url, alice_name)
    bob = sign_up(bctx, base_url, bob_name)
    become_contacts(alice, bob, bob_name, alice_name)
    screenshot(bob, "contacts")

    open_direct(alice, bob_name)
    send(alice, "first words from alice 🌱")
    # bob's chat list shows the new chat with its last message and an unread badge
    bob.click("#tab-chats")
    item = bob.locator(".chat", has_text=alice_name)
    expect(item.locator(".chat-last")).to_have_text("first words from alice 🌱", timeout=30_000)
    expect(item.locator(".badge")).to_have_text("1")
    screenshot(bob, "chat-list-unread")
    open_chat(bob, alice_name)
    expect_message(bob, "first words from alice 🌱")
    expect(item.locator(".badge")).to_have_count(0)  # read once opened
    send(bob, "bob answers\non two lines")
    expect_message(alice, "bob answers")
    send(alice, "third")
    expect_message(bob, "third")
    screenshot(alice, "conversation-alice")
    screenshot(bob, "conversation-bob")

    for text in ("first words from alice", "bob answers", "on two lines"):
        assert not contexts.wire.contains(text), f"plaintext {text!r} left the browser"
    assert contexts.wire.sent, "the wire recorder saw nothing: the check above would be vacuous"

    # At rest: nothing in this browser's IndexedDB holds the texts or the token in the clear.
    dump = alice.evaluate(DUMP_IDB)
    assert dump["records"] > 10, dump  # the dump saw the stores (else the check is vacuous)
    assert alice_name in dump["text"]  # ...and finds clear text (the profile's name is clear)
    for text in ("first words from alice", "bob answers", "third"):
        assert text not in dump["text"], f"{text!r} is stored unsealed in IndexedDB"

    # Reload with the network OFF: the service worker serves the shell, IndexedDB the history.
    alice.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=30_000)
    actx.set_offline(True)
    alice.reload()
    alice.wait_for_selector("body[data-signed-in=yes]", timeout=60_000, state="attached")
    expect(alice.locator("#auth")).to_be_hidden()
    expect(alice.locator(".chat", has_text=bob_name).locator(".chat-last")).to_have_text("third")
    open_chat(alice, bob_name)
    expect_message(alice, "first words from alice 🌱")
    expect_message(alice, "bob answers")
    expect(alice.locator("#net")).to_be_visible()  # the loss is shown
    expect(alice.locator("#status")).to_be_hidden()  # ...once, not twice
    screenshot(alice, "reload-offline-history")
    actx.set_offline(False)
    wait_online(alice, 60_000)
    expect(alice.locator("#net")).to_be_hidden()
    expect(alice.locator("#status")).to_have_text("Online")
    send(alice, "back online")
    expect_message(bob, "back online")
