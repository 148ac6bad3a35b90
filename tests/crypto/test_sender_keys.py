"""Sender keys: properties (hypothesis) and rules (§7, §P.1, §P.3)."""

from __future__ import annotations

import random

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parley.crypto import sender_keys as sk
from parley.crypto.constants import (
    MAX_GROUP_SKIP,
    MAX_GROUP_STORED_KEYS,
    MAX_SENDER_KEY_STATES,
    SK_ROTATE_AGE,
    SK_ROTATE_AGE_DIRECT,
    SK_ROTATE_MSGS,
    SK_ROTATE_MSGS_DIRECT,
)
from parley.crypto.errors import (
    BadSignature,
    CryptoError,
    DuplicateMessage,
    MalformedMessage,
    NoSession,
    TooManySkipped,
)

SETTINGS = settings(max_examples=40, deadline=None)
NOW = 1_700_000_000_000
GID = b"G" * 16


def _setup(direct: bool = False) -> tuple[sk.OutboundSenderKey, sk.SenderKeyRecord]:
    out = sk.OutboundSenderKey.create(GID, direct=direct, now=NOW)
    rec = sk.SenderKeyRecord()
    assert rec.add_skdm(out.skdm())
    return out, rec


def _snap(rec: sk.SenderKeyRecord) -> bytes:
    return msgspec.msgpack.encode(rec)


@SETTINGS
@given(st.integers(min_value=1, max_value=25), st.randoms(use_true_random=False))
def test_any_order_decrypts_exactly_once(n: int, rnd: random.Random) -> None:
    out, rec = _setup()
    msgs = [(i, sk.encrypt(out, b"m%d" % i, now=NOW)) for i in range(n)]
    rnd.shuffle(msgs)
    for i, m in msgs:
        assert sk.decrypt(rec, m) == b"m%d" % i
    for _, m in msgs:
        before = _snap(rec)
        with pytest.raises(DuplicateMessage):
            sk.decrypt(rec, m)
        assert _snap(rec) == before
    assert not rec.states[0].skipped


@SETTINGS
@given(st.data())
def test_bit_flip_rejected_state_unchanged(data: st.DataObject) -> None:
    out, rec = _setup()
    sk.decrypt(rec, sk.encrypt(out, b"warm up", now=NOW))
    msgs = [sk.encrypt(out, b"m%d" % i, now=NOW) for i in range(3)]
    sk.decrypt(rec, msgs[2])  # msgs 0 and 1 now come from the skipped store
    target = data.draw(st.sampled_from([*msgs[:2], sk.encrypt(out, b"next", now=NOW)]))
    region = data.draw(st.sampled_from(["header", "ct", "sig"]))
    lo, hi = {
        "header": (0, 41),
        "ct": (41, len(target) - 64),
        "sig": (len(target) - 64, len(target)),
    }[region]
    bit = data.draw(st.integers(min_value=lo * 8, max_value=hi * 8 - 1))
    flipped = bytearray(target)
    flipped[bit // 8] ^= 1 << (bit % 8)
    before = _snap(rec)
    with pytest.raises(CryptoError):
        sk.decrypt(rec, bytes(flipped))
    assert _snap(rec) == before
    assert sk.decrypt(rec, target)  # the genuine one still decrypts


@SETTINGS
@given(st.integers(min_value=0, max_value=10), st.integers(min_value=1, max_value=10))
def test_serialize_restore_mid_conversation(k: int, j: int) -> None:
    out, rec = _setup()
    first = [sk.encrypt(out, b"a%d" % i, now=NOW) for i in range(k + 1)]
    sk.decrypt(rec, first[-1])
    out = msgspec.msgpack.decode(msgspec.msgpack.encode(out), type=sk.OutboundSenderKey)
    rec = msgspec.msgpack.decode(msgspec.msgpack.encode(rec), type=sk.SenderKeyRecord)
    for i, m in enumerate(first[:-1]):
        assert sk.decrypt(rec, m) == b"a%d" % i
    for i in range(j):
        assert sk.decrypt(rec, sk.encrypt(out, b"b%d" % i, now=NOW)) == b"b%d" % i


def test_signature_checked_first_with_wrong_key() -> None:
    # A message signed by another key with valid framing: BadSignature, not an AEAD error,
    # and no ratcheting happened even though the iteration is far ahead.
    out, rec = _setup()
    forged = sk.OutboundSenderKey.from_parts(
        GID, distribution_id=out.distribution_id, chain_id=out.chain_id, ck=out.ck,
        signing_seed=b"\x07" * 32, direct=False, now=NOW, iteration=50,
    )  # fmt: skip
    before = _snap(rec)
    with pytest.raises(BadSignature):
        sk.decrypt(rec, sk.encrypt(forged, b"x", now=NOW))
    assert _snap(rec) == before


def test_group_id_must_match_state() -> None:
    out, rec = _setup()
    other = sk.OutboundSenderKey.from_parts(
        b"H" * 16, distribution_id=out.distribution_id, chain_id=out.chain_id, ck=out.ck,
        signing_seed=out.ssk_seed, direct=False, now=NOW,
    )  # fmt: skip
    with pytest.raises(MalformedMessage):
        sk.decrypt(rec, sk.encrypt(other, b"x", now=NOW))


def test_unknown_distribution() -> None:
    out, _ = _setup()
    with pytest.raises(NoSession):
        sk.decrypt(sk.SenderKeyRecord(), sk.encrypt(out, b"x", now=NOW))


def test_max_group_skip() -> None:
    out2, rec2 = _setup()
    for _ in range(MAX_GROUP_SKIP + 1):
        out2.ck, out2.iteration = sk.next_chain_key(out2.ck), out2.iteration + 1
    before = _snap(rec2)
    with pytest.raises(TooManySkipped):
        sk.decrypt(rec2, sk.encrypt(out2, b"far", now=NOW))
    assert _snap(rec2) == before


def test_stored_seeds_bounded() -> None:
    out, rec = _setup()
    for _ in range(3):
        for _ in range(MAX_GROUP_SKIP):
            out.ck, out.iteration = sk.next_chain_key(out.ck), out.iteration + 1
        sk.decrypt(rec, sk.encrypt(out, b"x", now=NOW))
    s = rec.states[0]
    assert len(s.skipped) == MAX_GROUP_STORED_KEYS
    # rounds skip 0..1999, 2001..4000, 4002..6001: only the newest 2000 seeds remain
    assert min(s.skipped) == 2 * MAX_GROUP_SKIP + 2
    assert max(s.skipped) == 3 * MAX_GROUP_SKIP + 1
    assert list(s.skipped) == sorted(s.skipped)  # oldest evicted first


def test_inbound_states_bounded_and_no_rewind() -> None:
    rec = sk.SenderKeyRecord()
    outs = [sk.OutboundSenderKey.create(GID, direct=False, now=NOW) for _ in range(7)]
    for o in outs:
        assert rec.add_skdm(o.skdm())
    assert len(rec.states) == MAX_SENDER_KEY_STATES
    assert rec.find(outs[0].distribution_id, outs[0].chain_id) is None
    latest = outs[-1]
    sk.decrypt(rec, sk.encrypt(latest, b"x", now=NOW))
    rewind = sk.SKDM(GID, latest.distribution_id, latest.chain_id, 0, b"\0" * 32, latest.ssk_pub)
    assert not rec.add_skdm(rewind)
    assert rec.find(latest.distribution_id, latest.chain_id) is not None
    assert rec.states[-1].iteration == 1


@pytest.mark.parametrize(
    ("direct", "msgs", "age"),
    [(True, SK_ROTATE_MSGS_DIRECT, SK_ROTATE_AGE_DIRECT), (False, SK_ROTATE_MSGS, SK_ROTATE_AGE)],
)
def test_rotation_rules(direct: bool, msgs: int, age: int) -> None:
    out = sk.OutboundSenderKey.create(GID, direct=direct, now=NOW)
    assert not out.needs_rotation(NOW + age - 1)
    assert out.needs_rotation(NOW + age)
    with pytest.raises(sk.RotationRequired):
        sk.encrypt(out, b"x", now=NOW + age)
    for _ in range(msgs):
        sk.encrypt(out, b"", now=NOW)
    assert out.needs_rotation(NOW)
    with pytest.raises(sk.RotationRequired):
        sk.encrypt(out, b"x", now=NOW)


def test_key_forwarding_at_iteration() -> None:
    out, rec = _setup()
    msgs = [sk.encrypt(out, b"m%d" % i, now=NOW) for i in range(5)]
    for m in msgs:
        sk.decrypt(rec, m)
    # own new device asks from iteration 2 (key_req) and gets a key_fwd SKDM
    fwd = rec.states[0].skdm_at(2)
    newdev = sk.SenderKeyRecord()
    newdev.add_skdm(sk.parse_skdm(fwd.encode()))
    assert [sk.decrypt(newdev, m) for m in msgs[2:]] == [b"m2", b"m3", b"m4"]
    with pytest.raises(DuplicateMessage):  # before the forwarded iteration: no key
        sk.decrypt(newdev, msgs[0])
    with pytest.raises(NoSession):
        newdev.states[0].skdm_at(1)


def test_skdm_parse_rejects() -> None:
    out, _ = _setup()
    good = out.skdm()
    with pytest.raises(MalformedMessage):
        sk.parse_skdm(good[:-1])
    with pytest.raises(MalformedMessage):
        sk.parse_skdm(b"\x02" + good[1:])
