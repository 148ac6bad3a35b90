"""Double Ratchet properties (hypothesis): any order decrypts once, tamper leaves state
unchanged, replays dropped, serialize/restore mid-conversation."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parley.crypto import ratchet, x3dh
from parley.crypto.constants import MAX_SKIP, MAX_STORED_SKIPPED, SKIPPED_KEY_TTL
from parley.crypto.errors import CryptoError, DuplicateMessage, TooManySkipped
from parley.crypto.keys import Ed25519KeyPair, X25519KeyPair

SETTINGS = settings(max_examples=40, deadline=None)
NOW = 1_700_000_000_000


def _pair() -> tuple[ratchet.RatchetState, ratchet.RatchetState]:
    ik_a, ik_b = Ed25519KeyPair.generate(), Ed25519KeyPair.generate()
    spk = X25519KeyPair.generate()
    a = x3dh.initiate(ik_a, ik_b.pub, spk.pub, None)
    b = x3dh.respond(ik_b, spk.priv, None, ik_a.pub, a.ek_pub)
    return ratchet.init_alice(a.sk, a.ad, spk.pub), ratchet.init_bob(b.sk, b.ad, spk)


def _state_bytes(s: ratchet.RatchetState) -> bytes:
    return msgspec.msgpack.encode(s)


def _restore(b: bytes) -> ratchet.RatchetState:
    return msgspec.msgpack.decode(b, type=ratchet.RatchetState)


@SETTINGS
@given(
    st.lists(st.integers(min_value=1, max_value=6), min_size=1, max_size=5),
    st.randoms(use_true_random=False),
)
def test_any_order_decrypts_exactly_once(bursts: list[int], rnd: object) -> None:
    """Alternating bursts from both sides (several DH ratchet steps), each delivered in a
    random order: every message decrypts exactly once; every replay, on the current chain
    or an earlier one, is a duplicate and leaves the state unchanged."""
    import random

    assert isinstance(rnd, random.Random)
    alice, bob = _pair()
    sides = [(alice, bob), (bob, alice)]
    delivered: list[tuple[ratchet.RatchetState, bytes]] = []
    # Bob cannot send before receiving: Alice starts.
    for turn, count in enumerate(bursts):
        sender, receiver = sides[turn % 2]
        msgs = [(i, ratchet.encrypt(sender, f"m{turn}.{i}".encode())) for i in range(count)]
        rnd.shuffle(msgs)
        for i, m in msgs:
            assert ratchet.decrypt(receiver, m, now=NOW) == f"m{turn}.{i}".encode()
            delivered.append((receiver, m))
    assert not alice.skipped and not bob.skipped
    rnd.shuffle(delivered)
    for receiver, m in delivered:
        before = _state_bytes(receiver)
        with pytest.raises(DuplicateMessage):
            ratchet.decrypt(receiver, m, now=NOW)
        assert _state_bytes(receiver) == before


@SETTINGS
@given(st.data())
def test_bit_flip_rejected_state_unchanged(data: st.DataObject) -> None:
    alice, bob = _pair()
    m0 = ratchet.encrypt(alice, b"first")
    ratchet.decrypt(bob, m0, now=NOW)
    n = data.draw(st.integers(min_value=1, max_value=4))
    msgs = [ratchet.encrypt(alice, b"msg %d" % i) for i in range(n)]
    target = data.draw(st.sampled_from(msgs))
    bit = data.draw(st.integers(min_value=0, max_value=len(target) * 8 - 1))
    flipped = bytearray(target)
    flipped[bit // 8] ^= 1 << (bit % 8)
    before = _state_bytes(bob)
    with pytest.raises(CryptoError):
        ratchet.decrypt(bob, bytes(flipped), now=NOW)
    assert _state_bytes(bob) == before
    # the genuine messages still decrypt afterwards
    for i, m in enumerate(msgs):
        assert ratchet.decrypt(bob, m, now=NOW) == b"msg %d" % i


@SETTINGS
@given(st.integers(min_value=1, max_value=8), st.integers(min_value=0, max_value=8))
def test_serialize_restore_mid_conversation(k: int, j: int) -> None:
    alice, bob = _pair()
    pending = [ratchet.encrypt(alice, b"a%d" % i) for i in range(k)]
    ratchet.decrypt(bob, pending[-1], now=NOW)  # leaves k-1 skipped keys
    alice = _restore(_state_bytes(alice))
    bob = _restore(_state_bytes(bob))
    for i, m in enumerate(pending[:-1]):
        assert ratchet.decrypt(bob, m, now=NOW) == b"a%d" % i
    replies = [ratchet.encrypt(bob, b"b%d" % i) for i in range(j + 1)]
    bob = _restore(_state_bytes(bob))
    for i, m in enumerate(replies):
        assert ratchet.decrypt(alice, m, now=NOW) == b"b%d" % i
    assert _restore(_state_bytes(alice)) == alice


def test_max_skip_enforced() -> None:
    alice, bob = _pair()
    msgs = [ratchet.encrypt(alice, b"") for _ in range(MAX_SKIP + 2)]
    before = _state_bytes(bob)
    with pytest.raises(TooManySkipped):
        ratchet.decrypt(bob, msgs[MAX_SKIP + 1], now=NOW)
    assert _state_bytes(bob) == before
    assert ratchet.decrypt(bob, msgs[MAX_SKIP], now=NOW) == b""
    assert len(bob.skipped) == MAX_SKIP


def test_stored_skipped_bounded_fifo() -> None:
    alice, bob = _pair()
    first = ratchet.encrypt(alice, b"oldest")
    second = ratchet.encrypt(alice, b"second")
    for round_, skip in enumerate((MAX_SKIP - 2, MAX_SKIP, 10)):
        if round_:  # a new sending chain for Alice after a reply from Bob
            ratchet.decrypt(alice, ratchet.encrypt(bob, b"r"), now=NOW)
        for _ in range(skip):
            ratchet.encrypt(alice, b"")
        ratchet.decrypt(bob, ratchet.encrypt(alice, b""), now=NOW)
    assert len(bob.skipped) == MAX_STORED_SKIPPED
    with pytest.raises(CryptoError):  # evicted first (FIFO)
        ratchet.decrypt(bob, first, now=NOW)
    with pytest.raises(CryptoError):
        ratchet.decrypt(bob, second, now=NOW)


def test_skipped_key_ttl() -> None:
    alice, bob = _pair()
    late = ratchet.encrypt(alice, b"late")
    ratchet.decrypt(bob, ratchet.encrypt(alice, b"x"), now=NOW)
    with pytest.raises(CryptoError):
        ratchet.decrypt(bob, late, now=NOW + SKIPPED_KEY_TTL + 1)
    # a later successful decrypt expires it for good
    ratchet.decrypt(bob, ratchet.encrypt(alice, b"y"), now=NOW + SKIPPED_KEY_TTL + 1)
    assert not bob.skipped


def test_duplicate_on_current_chain() -> None:
    alice, bob = _pair()
    m = ratchet.encrypt(alice, b"x")
    ratchet.decrypt(bob, m, now=NOW)
    with pytest.raises(DuplicateMessage):
        ratchet.decrypt(bob, m, now=NOW)


def test_responder_cannot_send_first() -> None:
    _, bob = _pair()
    with pytest.raises(CryptoError):
        ratchet.encrypt(bob, b"x")
