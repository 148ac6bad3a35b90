"""Attachments (§8), content layer (§5, §P.3), key backup (§13)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parley.crypto import attachments, backend, backup, content
from parley.crypto import sender_keys as sk
from parley.crypto.b64 import b64e
from parley.crypto.constants import ATT_CHUNK, MAX_CONTENT_LEN, PAD_BLOCK
from parley.crypto.errors import CryptoError, DecryptionFailed, MalformedMessage

MID = b64e(b"\x01" * 16)


def _dec(e: attachments.EncryptedAttachment, blob: bytes | None = None, **kw: int) -> bytes:
    blob = e.blob if blob is None else blob
    args = {"size": e.size, "blob_size": len(blob)}
    args.update(kw)
    return attachments.decrypt(
        blob, key=e.key, digest=hashlib.sha256(blob).digest(), size=args["size"],
        blob_size=args["blob_size"],
    )  # fmt: skip


@pytest.mark.parametrize(
    "size", [0, 1, 2, 100, ATT_CHUNK - 1, ATT_CHUNK, ATT_CHUNK + 1, 3 * ATT_CHUNK]
)
def test_attachment_round_trip(size: int) -> None:
    data = bytes(i % 251 for i in range(size))
    e = attachments.encrypt(data)
    assert len(e.blob) == attachments.blob_len(size)
    assert (
        attachments.decrypt(e.blob, key=e.key, digest=e.digest, size=size, blob_size=len(e.blob))
        == data
    )


def test_padme() -> None:
    prev = 0
    for n in range(0, 5000):
        p = attachments.padme(n)
        assert n <= p <= max(n, n * 1.13)  # Padmé overhead is at most ~12%
        assert attachments.padme(p) == p  # idempotent
        assert p >= prev  # monotonic
        prev = p
        if n >= 2:  # only the top floor(log2 E)+1 bits may be set
            e = n.bit_length() - 1
            assert p & ((1 << (e - e.bit_length())) - 1) == 0


def test_attachment_digest_checked_before_decrypt() -> None:
    e = attachments.encrypt(b"x" * 1000)
    with pytest.raises(DecryptionFailed):
        attachments.decrypt(
            e.blob, key=e.key, digest=b"\0" * 32, size=e.size, blob_size=len(e.blob)
        )
    with pytest.raises(MalformedMessage):
        attachments.decrypt(
            e.blob, key=e.key, digest=e.digest, size=e.size, blob_size=len(e.blob) + 1
        )


def test_attachment_tamper_truncate_extend() -> None:
    e = attachments.encrypt(bytes(range(256)) * 600)  # 3 chunks
    flipped = bytearray(e.blob)
    flipped[100] ^= 1
    with pytest.raises(CryptoError):
        _dec(e, bytes(flipped), blob_size=len(flipped))
    # truncation at a chunk boundary (drop the final chunk), with matching digest/size claims
    two_chunks = e.blob[: 24 + 2 * (ATT_CHUNK + 17)]
    with pytest.raises(CryptoError):
        _dec(e, two_chunks)
    with pytest.raises(CryptoError):  # claimed size consistent with the truncated blob
        _dec(e, two_chunks, size=2 * ATT_CHUNK)
    with pytest.raises(CryptoError):  # extension
        _dec(e, e.blob + b"\0" * 17)
    # chunk reordering
    c1 = e.blob[24 : 24 + ATT_CHUNK + 17]
    c2 = e.blob[24 + ATT_CHUNK + 17 : 24 + 2 * (ATT_CHUNK + 17)]
    reordered = e.blob[:24] + c2 + c1 + e.blob[24 + 2 * (ATT_CHUNK + 17) :]
    with pytest.raises(CryptoError):
        _dec(e, reordered)
    # wrong key
    with pytest.raises(CryptoError):
        attachments.decrypt(
            e.blob, key=b"\0" * 32, digest=e.digest, size=e.size, blob_size=len(e.blob)
        )


def test_attachment_final_tag_rules() -> None:
    # a stream whose FINAL chunk comes early (more data after it) is rejected
    key = b"k" * 32
    state, header = backend.ss_init_push(key)
    blob = header + backend.ss_push(state, b"a" * 10, backend.SS_TAG_FINAL)
    blob += backend.ss_push(state, b"", backend.SS_TAG_MESSAGE)
    e = attachments.EncryptedAttachment(blob=blob, key=key, digest=b"", size=10)
    with pytest.raises(CryptoError):
        _dec(e, blob, blob_size=len(blob))
    # a stream without any FINAL chunk is rejected
    state, header = backend.ss_init_push(key)
    blob = header + backend.ss_push(state, b"a" * 10, backend.SS_TAG_MESSAGE)
    e = attachments.EncryptedAttachment(blob=blob, key=key, digest=b"", size=10)
    with pytest.raises(DecryptionFailed):
        _dec(e, blob)
    # non-zero padding is rejected: size 9 pads to padme(9) bytes, which must be zeros
    p9 = attachments.padme(9)
    assert p9 > 9
    state, header = backend.ss_init_push(key)
    blob = header + backend.ss_push(state, b"a" * p9, backend.SS_TAG_FINAL)
    e = attachments.EncryptedAttachment(blob=blob, key=key, digest=b"", size=9)
    with pytest.raises(DecryptionFailed):
        _dec(e, blob, size=9)
    state, header = backend.ss_init_push(key)
    blob = header + backend.ss_push(state, b"a" * 9 + bytes(p9 - 9), backend.SS_TAG_FINAL)
    e = attachments.EncryptedAttachment(blob=blob, key=key, digest=b"", size=9)
    assert _dec(e, blob, size=9) == b"a" * 9


def test_attachment_keys_are_fresh() -> None:
    assert attachments.encrypt(b"same").key != attachments.encrypt(b"same").key


# --- content --------------------------------------------------------------------------


def _all_contents() -> list[content.Content]:
    g = b64e(b"g" * 16)
    ptr = attachments.AttachmentPointer(
        id="a1",
        key=b64e(b"k" * 32),
        digest=b64e(b"d" * 32),
        size=5,
        blob_size=58,
        mime="text/plain",
    )
    text = content.Text(id=MID, ts=1, body="hi ✓")
    return [
        text,
        content.Att(id=MID, ts=1, att=ptr, caption="c"),
        content.Skdm(id=MID, ts=1, skdm=b64e(b"s" * 105)),
        content.SkdmReq(id=MID, ts=1, g=g, dist=g),
        content.Sync(id=MID, ts=1, to="bob", content=text),
        content.Derr(id=MID, ts=1, ratchet=b64e(b"r" * 32), n=3, orig_ts=9),
        content.Reset(id=MID, ts=1),
        content.GroupUpdate(id=MID, ts=1, g=g, epoch=2, members=["a", "b"], admins=["a"], name="n"),
        content.Receipt(id=MID, ts=1, kind="read", ids=[MID]),
        content.KeyReq(id=MID, ts=1, group_id=g, distribution_id=g, chain_id=7, from_iteration=3),
        content.KeyFwd(id=MID, ts=1, skdm=b64e(b"s" * 105)),
    ]


@pytest.mark.parametrize("c", _all_contents(), ids=lambda c: type(c).__name__)
def test_content_round_trip_and_channel(c: content.Content) -> None:
    padded = content.encode(c)
    assert len(padded) % PAD_BLOCK == 0
    assert content.decode(padded, group=False) == c
    if isinstance(c, content.PAIRWISE_ONLY):
        with pytest.raises(MalformedMessage):
            content.decode(padded, group=True)
    else:
        assert content.decode(padded, group=True) == c


@pytest.mark.parametrize(
    "raw",
    [
        b'{"v":1,"t":"text","id":"AQEBAQEBAQEBAQEBAQEBAQ","ts":1}',  # missing body
        b'{"v":2,"t":"text","id":"AQEBAQEBAQEBAQEBAQEBAQ","ts":1,"body":"x"}',
        b'{"v":1,"t":"nope","id":"AQEBAQEBAQEBAQEBAQEBAQ","ts":1}',
        b'{"v":1,"t":"text","id":"short","ts":1,"body":"x"}',
        b'{"v":1,"t":"text","id":"AQEBAQEBAQEBAQEBAQEBAQ","ts":1,"body":"x","from":"eve"}',
        b'{"v":1,"t":"skdm","id":"AQEBAQEBAQEBAQEBAQEBAQ","ts":1,"skdm":"AAAA"}',
        b'{"v":1,"t":"receipt","id":"AQEBAQEBAQEBAQEBAQEBAQ","ts":1,"kind":"seen","ids":[]}',
        b"not json",
    ],
)
def test_content_rejects(raw: bytes) -> None:
    with pytest.raises(MalformedMessage):
        content.decode(backend.pad(raw, PAD_BLOCK), group=False)


def test_content_nested_sync_and_size() -> None:
    inner = content.Sync(id=MID, ts=1, to="b", content=content.Text(id=MID, ts=1, body="x"))
    with pytest.raises(MalformedMessage):
        content.encode(content.Sync(id=MID, ts=1, to="c", content=inner))
    with pytest.raises(MalformedMessage):
        content.encode(content.Text(id=MID, ts=1, body="x" * MAX_CONTENT_LEN))
    with pytest.raises(MalformedMessage):
        content.decode(b"\x00" * 159, group=False)


# --- backup ----------------------------------------------------------------------------

LIMITS = {"opslimit": backend.PWHASH_OPSLIMIT_MIN, "memlimit": backend.PWHASH_MEMLIMIT_MIN}


@settings(max_examples=30, deadline=None)
@given(st.binary(min_size=32, max_size=32))
def test_recovery_key_format(bk: bytes) -> None:
    text = backup.format_recovery_key(bk)
    groups = text.split(" ")
    assert all(len(g) == 4 for g in groups[:-1]) and 1 <= len(groups[-1]) <= 4
    assert backup.parse_recovery_key(text) == bk
    assert backup.parse_recovery_key(text.lower().replace(" ", "-")) == bk


def test_recovery_key_rejects() -> None:
    text = backup.format_recovery_key(b"\x11" * 32)
    with pytest.raises(MalformedMessage):
        backup.parse_recovery_key(text[:-5])
    with pytest.raises(MalformedMessage):
        backup.parse_recovery_key(text.replace(text[0], "1"))


def test_backup_wrong_key_detection_passphrase() -> None:
    salt = b"s" * 16
    bk = backup.derive_backup_key("correct horse", salt, **LIMITS)
    assert len(bk) == 32
    rec = backup.make_version(bk, 1, salt=salt, **LIMITS)
    assert backup.key_matches(rec, backup.derive_backup_key("correct horse", salt, **LIMITS))
    assert not backup.key_matches(rec, backup.derive_backup_key("wrong horse", salt, **LIMITS))
    assert not backup.key_matches(
        rec, backup.derive_backup_key("correct horse", b"t" * 16, **LIMITS)
    )


def test_backup_records() -> None:
    bk, wrong = backup.generate_backup_key(), backup.generate_backup_key()
    out = sk.OutboundSenderKey.create(b"G" * 16, direct=True, now=0)
    rec = sk.SenderKeyRecord()
    rec.add_skdm(out.skdm())
    msgs = [sk.encrypt(out, b"m%d" % i, now=0) for i in range(4)]
    for m in msgs:
        sk.decrypt(rec, m)
    state = rec.states[0]
    key = backup.RecordKey("conv", "alice", 1, state.distribution_id, state.chain_id)
    r = backup.encrypt_record(bk, key, state)
    assert r.iteration == 0  # earliest known iteration, not the current one (4)
    restored = backup.decrypt_record(bk, key, r)
    fresh = sk.SenderKeyRecord(states=[restored])
    assert [sk.decrypt(fresh, m) for m in msgs] == [b"m0", b"m1", b"m2", b"m3"]
    with pytest.raises(DecryptionFailed):
        backup.decrypt_record(wrong, key, r)
    other_key = backup.RecordKey("conv2", "alice", 1, state.distribution_id, state.chain_id)
    with pytest.raises(MalformedMessage):
        backup.decrypt_record(bk, other_key, r)
    # the key bytes are the AD: a record moved under another key fails to authenticate
    moved = backup.BackupRecord(key=other_key.encode(), iteration=r.iteration, blob=r.blob)
    with pytest.raises(DecryptionFailed):
        backup.decrypt_record(bk, other_key, moved)
    # a lying iteration in the clear metadata is detected
    lying = backup.BackupRecord(key=r.key, iteration=3, blob=r.blob)
    with pytest.raises(MalformedMessage):
        backup.decrypt_record(bk, key, lying)


def test_lowest_iteration_wins() -> None:
    a = backup.BackupRecord(key=b"k", iteration=5, blob=b"a")
    b = backup.BackupRecord(key=b"k", iteration=2, blob=b"b")
    c = backup.BackupRecord(key=b"k", iteration=9, blob=b"c")
    assert backup.lowest_iteration_wins(None, a) is a
    assert backup.lowest_iteration_wins(a, b) is b
    assert backup.lowest_iteration_wins(b, c) is b
    with pytest.raises(ValueError):
        backup.lowest_iteration_wins(a, backup.BackupRecord(key=b"x", iteration=1, blob=b""))
