"""Attachments in Chromium, end to end: an image and a 5 MiB file, 1:1 and in a group; the
receiver sees the placeholder then the thumbnail, opens the full image and downloads the file
byte for byte; pasting an image; cancelling an upload; an over-quota file gets its error in
words. The file's bytes and name never travel in the clear (the wire check of ``contexts``)."""

from __future__ import annotations

import base64
import contextlib
import secrets
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, Route, expect

from browser_tests.conftest import PYTHON_READY_TIMEOUT_MS, Contexts, screenshot
from browser_tests.ui import (
    MESSAGE_TIMEOUT_MS,
    become_contacts,
    open_chat,
    open_direct,
    sign_up,
    wait_online,
)
from tests.support.accounts import unique_name
from tests.support.server import ServerProcess

UPLOAD_TIMEOUT_MS = 90_000


def png(width: int, height: int) -> bytes:
    """A real RGB PNG (a gradient), made without an imaging library."""
    rows = b"".join(
        b"\x00" + b"".join(bytes((x * 255 // width, y * 255 // height, 128)) for x in range(width))
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def attach(page: Page, path: Path, caption: str = "") -> None:
    page.set_input_files("#composer-file", str(path))
    expect(page.locator("#att-panel")).to_be_visible()
    if caption:
        page.fill("#att-caption", caption)
    page.click("#att-send")
    expect(page.locator("#att-panel")).to_be_hidden(timeout=UPLOAD_TIMEOUT_MS)


def expect_image(page: Page, seq_text: str | None = None) -> None:
    """The newest image: thumbnail shown (decrypted, checked), then the full one in the box."""
    box = page.locator("#conv-rows .att-image").last
    expect(box).to_be_visible(timeout=MESSAGE_TIMEOUT_MS)
    thumb = box.locator("img.att-thumb:not(.loading)")
    expect(thumb).to_be_visible(timeout=MESSAGE_TIMEOUT_MS)
    assert thumb.evaluate("i => i.naturalWidth") == 320  # the thumbnail, not the full image
    box.click()
    expect(page.locator("#att-lightbox[data-state=shown]")).to_be_visible(
        timeout=MESSAGE_TIMEOUT_MS
    )
    assert page.locator("#att-lightbox-img").evaluate("i => i.naturalWidth") == 640
    page.click("#att-lightbox")
    expect(page.locator("#att-lightbox")).to_be_hidden()


def download(page: Page, name: str, dest: Path) -> bytes:
    card = page.locator("#conv-rows .att-file", has_text=name).last
    expect(card).to_be_visible(timeout=MESSAGE_TIMEOUT_MS)
    with page.expect_download(timeout=UPLOAD_TIMEOUT_MS) as info:
        card.locator("button.att-save").click()
    info.value.save_as(dest)
    return dest.read_bytes()


@pytest.fixture
def files(tmp_path: Path) -> Iterator[tuple[Path, Path, bytes]]:
    marker = secrets.token_hex(6)
    image = tmp_path / f"photo-{marker}.png"
    image.write_bytes(png(640, 480))
    big = tmp_path / f"data-{marker}.bin"
    data = secrets.token_bytes(5 * 1024 * 1024)
    big.write_bytes(data)
    yield image, big, data


def test_image_and_big_file_one_to_one(
    contexts: Contexts, base_url: str, files: tuple[Path, Path, bytes], tmp_path: Path
) -> None:
    image, big, data = files
    alice_name, bob_name = unique_name("alice"), unique_name("bob")
    alice = sign_up(contexts.new(), base_url, alice_name)
    bob = sign_up(contexts.new(), base_url, bob_name)
    become_contacts(alice, bob, bob_name, alice_name)
    open_direct(alice, bob_name)
    attach(alice, image, "sunset 🌅")
    expect_image(alice)  # the sender sees it too (from memory, not downloaded back)
    attach(alice, big)
    open_chat(bob, alice_name)
    expect(bob.locator("#conv-rows .msg.decrypted", has_text="sunset 🌅")).to_have_count(
        1, timeout=MESSAGE_TIMEOUT_MS
    )
    expect_image(bob)
    screenshot(bob, "attachments-1to1")
    assert download(bob, big.name, tmp_path / "got.bin") == data
    for name in (image.name, big.name):
        assert not contexts.wire.contains(name), "file names travel encrypted only"

    # the decrypted thumbnail is cached (sealed) in IndexedDB: after a reload it shows with
    # every blob download refused
    bob.reload()
    bob.wait_for_selector(
        "body[data-python=ready]", timeout=PYTHON_READY_TIMEOUT_MS, state="attached"
    )
    wait_online(bob)
    bob.route("**/api/v1/blobs/**", lambda route: route.abort())
    open_chat(bob, alice_name)
    thumb = bob.locator("#conv-rows .att-image img.att-thumb:not(.loading)").last
    expect(thumb).to_be_visible(timeout=MESSAGE_TIMEOUT_MS)
    assert thumb.evaluate("i => i.naturalWidth") == 320


def test_group_image_and_file(
    contexts: Contexts, base_url: str, files: tuple[Path, Path, bytes], tmp_path: Path
) -> None:
    image, big, data = files
    names = [unique_name(n) for n in ("ann", "ben", "cat")]
    ann, ben, cat = (sign_up(contexts.new(), base_url, n) for n in names)
    become_contacts(ann, ben, names[1], names[0])
    become_contacts(ann, cat, names[2], names[0])
    group = f"Files {secrets.token_hex(2)}"
    ann.click("#tab-chats")
    ann.click("#new-group")
    ann.fill("#group-name", group)
    ann.fill("#group-members", f"{names[1]}, {names[2]}")
    ann.click("#group-create")
    expect(ann.locator("#conv-title")).to_have_text(group)
    attach(ann, image)
    attach(ann, big, "the data")
    for i, page in enumerate((ben, cat)):
        open_chat(page, group)
        expect_image(page)
        assert download(page, big.name, tmp_path / f"got{i}.bin") == data


def test_paste_an_image_and_cancel_an_upload(
    contexts: Contexts, base_url: str, files: tuple[Path, Path, bytes]
) -> None:
    image, big, _ = files
    alice_name, bob_name = unique_name("alice"), unique_name("bob")
    alice = sign_up(contexts.new(), base_url, alice_name)
    bob = sign_up(contexts.new(), base_url, bob_name)
    become_contacts(alice, bob, bob_name, alice_name)
    open_direct(alice, bob_name)
    # paste: a ClipboardEvent carrying the PNG as a File
    alice.evaluate(
        """(b64) => {
          const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
          const dt = new DataTransfer();
          dt.items.add(new File([bytes], "pasted.png", { type: "image/png" }));
          const ev = new ClipboardEvent("paste", { clipboardData: dt, bubbles: true, cancelable: true });
          document.getElementById("composer-input").dispatchEvent(ev);
        }""",
        base64.b64encode(image.read_bytes()).decode(),
    )
    expect(alice.locator("#att-panel")).to_be_visible()
    expect(alice.locator("#att-name")).to_contain_text("pasted.png")
    alice.click("#att-send")
    expect(alice.locator("#att-panel")).to_be_hidden(timeout=UPLOAD_TIMEOUT_MS)
    open_chat(bob, alice_name)
    expect_image(bob)

    # cancel: the blob PUT is held (never answered) until the user cancels
    held: list[Route] = []
    alice.route("**/api/v1/blobs/**", lambda route: held.append(route))
    alice.set_input_files("#composer-file", str(big))
    with alice.expect_request("**/api/v1/blobs/**", timeout=UPLOAD_TIMEOUT_MS):
        alice.click("#att-send")
    expect(alice.locator("#att-progress")).to_be_visible()
    alice.click("#att-cancel")
    expect(alice.locator("#att-panel")).to_be_hidden(timeout=MESSAGE_TIMEOUT_MS)
    expect(alice.locator("#composer-error")).to_have_text("Upload cancelled.")
    alice.unroute("**/api/v1/blobs/**")
    for route in held:
        with contextlib.suppress(Exception):
            route.abort()
    # nothing was sent: bob still has exactly the pasted image
    expect(bob.locator("#conv-rows .att")).to_have_count(1)


def test_over_quota_file_gets_its_error(
    contexts: Contexts, web_dist: Path, tmp_path: Path, files: tuple[Path, Path, bytes]
) -> None:
    _, big, _ = files
    srv = ServerProcess(tmp_path / "data", env={"PARLEY_BLOB_QUOTA_BYTES": str(1024 * 1024)})
    srv.start()
    try:
        alice_name, bob_name = unique_name("alice"), unique_name("bob")
        alice = sign_up(contexts.new(), srv.http_url, alice_name)
        bob = sign_up(contexts.new(), srv.http_url, bob_name)
        become_contacts(alice, bob, bob_name, alice_name)
        open_direct(alice, bob_name)
        alice.set_input_files("#composer-file", str(big))
        alice.click("#att-send")
        expect(alice.locator("#att-error")).to_have_text(
            "Your storage on this server is full: the file was not sent.",
            timeout=UPLOAD_TIMEOUT_MS,
        )
        expect(alice.locator("#att-retry")).to_be_visible()
        screenshot(alice, "attachments-quota")
    finally:
        srv.stop()
