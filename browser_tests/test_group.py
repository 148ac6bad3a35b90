"""A group of three: create (the name travels only inside the encrypted group update), the two
invitees (not the creator's contacts) see the invitation and join, every member reads every
message, the member list shows roles, a member leaves and is invited back."""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect

from browser_tests.conftest import Contexts, screenshot
from browser_tests.ui import expect_message, open_chat, send, sign_up
from tests.support.accounts import unique_name


def accept_invitation(page: Page, inviter: str) -> None:
    invite = page.locator("#group-invites .invite", has_text=inviter)
    expect(invite).to_have_count(1, timeout=30_000)
    invite.locator("button[data-accept]").click()
    expect(invite).to_have_count(0, timeout=30_000)


def joined(page: Page, name: str) -> Locator:
    return page.locator("#conv-rows .msg.system", has_text=f"{name} joined")


def test_group_of_three(contexts: Contexts, base_url: str) -> None:
    names = [unique_name(n) for n in ("ann", "ben", "cat")]
    ann, ben, cat = (sign_up(contexts.new(), base_url, n) for n in names)
    group = "Trio 三人"

    ann.click("#new-group")
    ann.fill("#group-name", group)
    ann.fill("#group-members", f"{names[1]}, {names[2]}")
    ann.click("#group-create")
    expect(ann.locator("#conv-title")).to_have_text(group)
    # strangers are asked, not added: each sees the invitation and joins
    for page, name in ((ben, names[1]), (cat, names[2])):
        accept_invitation(page, names[0])
        expect(joined(ann, name)).to_have_count(1, timeout=30_000)
    screenshot(ann, "group-joined")
    send(ann, "hello both")
    for page in (ben, cat):
        open_chat(page, group)  # the title comes from the decrypted group update
        expect_message(page, "hello both")
    send(ben, "ben here")
    send(cat, "cat here")
    for page, texts in (
        (ann, ("ben here", "cat here")),
        (ben, ("cat here",)),
        (cat, ("ben here",)),
    ):
        for text in texts:
            expect_message(page, text)

    ann.click("#conv-details")
    members = ann.locator("#member-list .person")
    expect(members).to_have_count(3)
    expect(ann.locator("#member-list .person[data-user] .name", has_text=names[0])).to_have_count(1)
    expect(ann.locator("#member-list")).to_contain_text("owner")
    expect(ann.locator("#member-list")).to_contain_text("member")
    screenshot(ann, "group-details")

    cat.click("#conv-details")
    cat.click("#group-leave")
    expect(cat.locator(".chat", has_text=group)).to_have_count(0)
    expect(ann.locator("#conv-rows .msg.system").last).to_contain_text("left", timeout=30_000)
    expect(members).to_have_count(2, timeout=30_000)
    send(ann, "just us now")
    expect_message(ben, "just us now")

    # ben replies to it and mentions ann: ann sees the quote and the mention
    row = ben.locator("#conv-rows .msg", has_text="just us now")
    row.hover()
    row.locator("button[data-reply]").click()
    expect(ben.locator("#composer-reply")).to_contain_text("just us now")
    ben.fill("#composer-input", f"@{names[0]} got it")
    ben.press("#composer-input", "Enter")
    reply = ann.locator("#conv-rows .msg.decrypted", has_text="got it")
    expect(reply).to_have_count(1, timeout=30_000)
    expect(reply.locator(".quote")).to_have_text("↪ just us now")
    expect(reply).to_have_class(re.compile(r"\bmention\b"))
    screenshot(ann, "group-reply-mention")

    # ann invites cat back: cat's chat returns and new messages decrypt there
    ann.fill("#invite-name", names[2])
    ann.press("#invite-name", "Enter")
    accept_invitation(cat, names[0])
    expect(members).to_have_count(3, timeout=30_000)
    expect(joined(ann, names[2])).to_have_count(2, timeout=30_000)
    open_chat(cat, group)
    send(ann, "welcome back cat")
    expect_message(cat, "welcome back cat")
    expect_message(ben, "welcome back cat")
    assert not contexts.wire.contains("hello both")
    assert not contexts.wire.contains(group), "the group name must travel encrypted only"
