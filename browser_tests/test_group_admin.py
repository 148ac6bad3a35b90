"""Groups people can run: members show by name (never ids, also when they are not contacts),
each with a role; only owners/admins are offered rename, invite and remove; a rename reaches
every member; read receipts say who read; a removed member's chat goes away."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from browser_tests.conftest import Contexts, screenshot
from browser_tests.ui import (
    MESSAGE_TIMEOUT_MS,
    become_contacts,
    expect_message,
    open_chat,
    send,
    sign_up,
)
from tests.support.accounts import unique_name

HEX_ID = re.compile(r"\b[0-9a-f]{8}\b")


def test_names_roles_rename_remove_receipts(contexts: Contexts, base_url: str) -> None:
    names = [unique_name(n) for n in ("ivy", "jon", "kim")]
    ivy, jon, kim = (sign_up(contexts.new(), base_url, n) for n in names)
    # ivy's contacts join her group at once (the server invites anyone else); jon and kim
    # are not contacts of each other
    become_contacts(ivy, jon, names[1], names[0])
    become_contacts(ivy, kim, names[2], names[0])
    ivy.click("#tab-chats")
    group = "Crew"
    ivy.click("#new-group")
    ivy.fill("#group-name", group)
    ivy.fill("#group-members", f"{names[1]}, {names[2]}")
    ivy.click("#group-create")
    expect(ivy.locator("#conv-title")).to_have_text(group)
    send(ivy, "welcome, crew")
    for page in (jon, kim):
        open_chat(page, group)
        expect_message(page, "welcome, crew")
    send(kim, "kim says hi")

    # jon is a plain member and knows neither of them as a contact: names, not ids
    expect_message(jon, "kim says hi")
    who = jon.locator("#conv-rows .msg.theirs .who")
    expect(who.filter(has_text=names[2])).to_have_count(1, timeout=MESSAGE_TIMEOUT_MS)
    jon.click("#conv-details")
    members = jon.locator("#member-list .person")
    expect(members).to_have_count(3)
    for n in names:
        expect(jon.locator("#member-list .name", has_text=n)).to_have_count(1)
    assert not HEX_ID.search(jon.locator("#member-list").inner_text())
    expect(jon.locator("#member-list .person[data-role=owner] .name")).to_have_text(names[0])
    expect(jon.locator("#member-list .role").first).to_have_text("owner")
    # ...and is offered neither rename, invite nor remove
    expect(jon.locator("#rename-form")).to_have_count(0)
    expect(jon.locator("#invite-form")).to_have_count(0)
    expect(jon.locator("#member-list button[data-remove]")).to_have_count(0)
    expect(jon.locator("#group-leave")).to_be_visible()
    screenshot(jon, "group-member-view")

    # the owner is offered all of them
    ivy.click("#conv-details")
    expect(ivy.locator("#member-list .person")).to_have_count(3)
    expect(ivy.locator("#invite-form")).to_be_visible()
    expect(ivy.locator("#member-list button[data-remove]")).to_have_count(2)
    for name in ivy.locator("#member-list .person .name").all():  # not squeezed by the buttons
        expect(name).to_be_visible()
        assert name.evaluate("n => n.getBoundingClientRect().width") >= 48

    # group receipts say who read
    expect(ivy.locator("#conv-rows .msg.mine .read").first).to_contain_text(
        names[1], timeout=MESSAGE_TIMEOUT_MS
    )
    expect(ivy.locator("#conv-rows .msg.mine .read").first).to_contain_text(names[2])
    screenshot(ivy, "group-owner-view")

    # a rebuild of the details pane (a member event arrives) keeps what is being typed
    rename = ivy.locator("#rename-name")
    rename.fill("Crew 新")
    rename.focus()
    ivy.evaluate(
        "window.parleyBoot.pyodide.runPythonAsync("
        "'from parley_web import main\\nawait main.ui.groups.render_details()')"
    )
    expect(rename).to_have_value("Crew 新")
    assert ivy.evaluate("document.activeElement.id") == "rename-name"

    # rename: every member sees the new name (it travels inside the encrypted group update)
    ivy.fill("#rename-name", "Crew 新名")
    ivy.press("#rename-name", "Enter")
    expect(ivy.locator("#conv-title")).to_have_text("Crew 新名", timeout=MESSAGE_TIMEOUT_MS)
    expect(jon.locator("#conv-title")).to_have_text("Crew 新名", timeout=MESSAGE_TIMEOUT_MS)
    expect(kim.locator("#conv-title")).to_have_text("Crew 新名", timeout=MESSAGE_TIMEOUT_MS)
    assert not contexts.wire.contains("新名"), "the group name must travel encrypted only"

    # remove kim: her chat goes, the list shrinks, the others keep talking
    ivy.locator("#member-list .person[data-role=member]", has_text=names[2]).locator(
        "button[data-remove]"
    ).click()
    expect(ivy.locator("#member-list .person")).to_have_count(2, timeout=MESSAGE_TIMEOUT_MS)
    expect(kim.locator(".chat", has_text="Crew")).to_have_count(0, timeout=MESSAGE_TIMEOUT_MS)
    send(ivy, "just the two of us")
    expect_message(jon, "just the two of us")

    # someone who is not ivy's contact gets an invitation: a badge on their Chats tab
    lou_name = unique_name("lou")
    lou = sign_up(contexts.new(), base_url, lou_name)
    ivy.fill("#invite-name", lou_name)
    ivy.press("#invite-name", "Enter")
    expect(lou.locator("#tab-chats .tab-badge")).to_have_text("1", timeout=MESSAGE_TIMEOUT_MS)
    screenshot(lou, "group-invitation-badge")
