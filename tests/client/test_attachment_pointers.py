"""parley.client.attachments (sans-IO): a blob and its pointer round-trip through an E2E
content; the ids a send lists; size and digest are checked before anything is decrypted."""

from __future__ import annotations

import hashlib

import pytest

from parley.client import attachments as att
from parley.crypto import content as content_mod
from parley.crypto.b64 import b64e
from parley.crypto.errors import CryptoError
from parley.protocol.blobs import BlobKind


def _att(pointer: att.AttachmentPointer) -> content_mod.Att:
    return content_mod.Att(id=b64e(bytes(16)), ts=1, att=pointer, caption="hi")


def test_prepare_announces_the_ciphertext() -> None:
    data = b"x" * 100_000
    p = att.prepare(data, BlobKind.IMAGE)
    assert p.begin.size == len(p.blob) == att.att.blob_len(len(data))
    assert p.begin.sha256 == hashlib.sha256(p.blob).digest()
    assert p.begin.md5 == hashlib.md5(p.blob).digest()
    assert p.begin.kind is BlobKind.IMAGE
    assert data not in p.blob


def test_pointer_round_trips_in_content_and_opens() -> None:
    data = bytes(range(256)) * 1000
    main, thumb = att.prepare(data), att.prepare(b"thumbnail")
    preview = att.pointer("T" * 24, thumb, mime="image/jpeg", width=640, height=480)
    pointer = att.pointer(
        "M" * 24, main, mime="image/png", name="a.png", width=640, height=480,
        placeholder=b"\xff\xd8tiny", preview=preview,
    )  # fmt: skip
    decoded = content_mod.decode(content_mod.encode(_att(pointer)), group=True)
    assert isinstance(decoded, content_mod.Att)
    assert att.blob_ids(decoded) == ["M" * 24, "T" * 24]
    assert att.blob_ids(content_mod.Sync(id=b64e(bytes(16)), ts=1, to="u", content=decoded)) == [
        "M" * 24, "T" * 24,
    ]  # fmt: skip
    assert att.open_blob(decoded.att, main.blob) == data
    assert decoded.att.preview is not None
    assert att.open_blob(decoded.att.preview, thumb.blob) == b"thumbnail"
    assert att.placeholder_bytes(decoded.att) == b"\xff\xd8tiny"
    shown = att.describe(decoded.att)
    assert shown == {
        "blob_id": "M" * 24, "name": "a.png", "mime": "image/png", "size": len(data),
        "width": 640, "height": 480, "thumbnail_blob_id": "T" * 24,
    }  # fmt: skip
    assert att.blob_ids_of_json(content_mod._encoder.encode(_att(pointer))) == ["M" * 24, "T" * 24]
    assert att.blob_ids_of_json(b"not json") == []


@pytest.mark.parametrize("change", ["byte", "shorter", "longer"])
def test_a_changed_blob_is_refused_before_decryption(change: str) -> None:
    p = att.prepare(b"secret" * 1000)
    pointer = att.pointer("M" * 24, p, mime="application/octet-stream")
    blob = {
        "byte": p.blob[:-1] + bytes([p.blob[-1] ^ 1]),
        "shorter": p.blob[:-1],
        "longer": p.blob + b"\x00",
    }[change]
    with pytest.raises(CryptoError):
        att.open_blob(pointer, blob)


def test_fit_scales_down_only() -> None:
    assert att.fit(100, 50, 320) == (100, 50)
    assert att.fit(640, 480, 320) == (320, 240)
    assert att.fit(480, 640, 320) == (240, 320)
    assert att.fit(10_000, 1, 16) == (16, 1)
    assert att.resolve_url("http://h:1/", "/api/v1/blobs/x?y") == "http://h:1/api/v1/blobs/x?y"
    assert att.resolve_url("http://h:1", "https://s3/x") == "https://s3/x"
