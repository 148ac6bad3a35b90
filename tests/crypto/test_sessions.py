"""§4.1/§4.5 session management: PreKeyMessages, replays, archive, resets."""

from __future__ import annotations

import pytest
from _helpers import NOW, connect, make_user, peer_record, receive, send, snapshot
from hypothesis import given, settings
from hypothesis import strategies as st

from parley.crypto import sessions
from parley.crypto.constants import (
    ARCHIVED_SESSIONS_MAX,
    MAX_UNACKED_SESSION_AGE,
    RESET_MIN_INTERVAL,
)
from parley.crypto.errors import (
    CryptoError,
    DuplicateMessage,
    MalformedMessage,
    NoSession,
    ReplayedPreKey,
    UnknownPreKey,
    UntrustedIdentity,
)
from parley.crypto.wire import ENVELOPE_DR, ENVELOPE_PREKEY, parse_prekey_message


def test_prekey_then_dr_round_trip() -> None:
    alice, bob = make_user("alice"), make_user("bob")
    connect(alice, 1, bob, 1)
    e1 = send(alice, 1, bob, 1, b"hello")
    e2 = send(alice, 1, bob, 1, b"again")
    assert e1[0] == e2[0] == ENVELOPE_PREKEY
    opks_before = set(bob.devices[1].store.opks)
    assert receive(bob, 1, alice, 1, e2) == b"again"  # out of order
    used = parse_prekey_message(e2[1]).opk_id
    assert used not in bob.devices[1].store.opks
    assert set(bob.devices[1].store.opks) == opks_before - {used}
    # the repeated PreKeyMessage (same IK_A, EK_A) goes to the existing session
    assert receive(bob, 1, alice, 1, e1) == b"hello"
    r = send(bob, 1, alice, 1, b"reply")
    assert r[0] == ENVELOPE_DR
    assert receive(alice, 1, bob, 1, r) == b"reply"
    # once answered, Alice stops sending PreKeyMessages
    assert send(alice, 1, bob, 1, b"x")[0] == ENVELOPE_DR


def test_prekey_without_opk() -> None:
    alice, bob = make_user("alice"), make_user("bob")
    connect(alice, 1, bob, 1, with_opk=False)
    env = send(alice, 1, bob, 1, b"no opk")
    assert parse_prekey_message(env[1]).opk_id == 0
    assert receive(bob, 1, alice, 1, env) == b"no opk"


def test_duplicate_is_dropped_and_state_unchanged() -> None:
    alice, bob = make_user("alice"), make_user("bob")
    connect(alice, 1, bob, 1)
    env = send(alice, 1, bob, 1, b"one")
    receive(bob, 1, alice, 1, env)
    rec = bob.devices[1].peers[("alice", 1)]
    before = snapshot(rec)
    with pytest.raises(DuplicateMessage):
        receive(bob, 1, alice, 1, env)
    assert snapshot(rec) == before


def test_seen_ek_replay_on_fresh_record_is_rejected() -> None:
    # An attacker replays a PreKeyMessage (no OPK) after the session was deleted.
    alice, bob = make_user("alice"), make_user("bob")
    connect(alice, 1, bob, 1, with_opk=False)
    env = send(alice, 1, bob, 1, b"once")
    receive(bob, 1, alice, 1, env)
    bob.devices[1].peers.clear()
    with pytest.raises(ReplayedPreKey):
        receive(bob, 1, alice, 1, env)


def test_used_opk_is_unknown_afterwards() -> None:
    alice, bob = make_user("alice"), make_user("bob")
    connect(alice, 1, bob, 1)
    env = send(alice, 1, bob, 1, b"x")
    receive(bob, 1, alice, 1, env)
    bob.devices[1].peers.clear()
    store_before = snapshot(bob.devices[1].store)
    with pytest.raises(UnknownPreKey):
        receive(bob, 1, alice, 1, env)
    assert snapshot(bob.devices[1].store) == store_before


def test_unknown_spk() -> None:
    alice, bob = make_user("alice"), make_user("bob")
    connect(alice, 1, bob, 1)
    env = send(alice, 1, bob, 1, b"x")
    bob.devices[1].store.spks.clear()
    with pytest.raises(UnknownPreKey):
        receive(bob, 1, alice, 1, env)


def test_prekey_ik_must_match_verified_device() -> None:
    alice, bob, mallory = make_user("alice"), make_user("bob"), make_user("mallory")
    connect(mallory, 1, bob, 1)
    env = send(mallory, 1, bob, 1, b"i am alice")
    bd = bob.devices[1]
    rec = peer_record(alice, 1)  # server claims the sender is alice/1
    with pytest.raises(UntrustedIdentity):
        sessions.decrypt(rec, bd.ik, bd.store, env[0], env[1], now=NOW)
    assert rec.active is None


def test_simultaneous_initiation_converges() -> None:
    alice, bob = make_user("alice"), make_user("bob")
    connect(alice, 1, bob, 1)
    connect(bob, 1, alice, 1)
    ea = send(alice, 1, bob, 1, b"from a")
    eb = send(bob, 1, alice, 1, b"from b")
    assert receive(bob, 1, alice, 1, ea) == b"from a"
    assert receive(alice, 1, bob, 1, eb) == b"from b"
    # both made the peer-initiated session active and archived their own
    ra = alice.devices[1].peers[("bob", 1)]
    rb = bob.devices[1].peers[("alice", 1)]
    assert ra.active is not None and not ra.active.initiator and len(ra.archived) == 1
    assert rb.active is not None and not rb.active.initiator and len(rb.archived) == 1
    # Both now send on peer-initiated sessions; archived sessions still decrypt.
    x = send(alice, 1, bob, 1, b"after")
    assert receive(bob, 1, alice, 1, x) == b"after"
    y = send(bob, 1, alice, 1, b"after too")
    assert receive(alice, 1, bob, 1, y) == b"after too"
    # and then they converge on one session
    z = send(alice, 1, bob, 1, b"converged")
    assert z[0] == ENVELOPE_DR
    assert receive(bob, 1, alice, 1, z) == b"converged"


def test_archive_is_bounded() -> None:
    alice, bob = make_user("alice"), make_user("bob")
    bob.devices[1].store.add_opks([])
    for _ in range(ARCHIVED_SESSIONS_MAX + 3):
        connect(alice, 1, bob, 1, with_opk=False)
    rec = alice.devices[1].peers[("bob", 1)]
    assert rec.active is not None
    assert len(rec.archived) == ARCHIVED_SESSIONS_MAX


def test_no_session_for_type2() -> None:
    alice, bob = make_user("alice"), make_user("bob")
    connect(alice, 1, bob, 1)
    receive(bob, 1, alice, 1, send(alice, 1, bob, 1, b"x"))
    env = send(bob, 1, alice, 1, b"y")
    alice.devices[1].peers[("bob", 1)] = peer_record(bob, 1)
    with pytest.raises(NoSession):
        receive(alice, 1, bob, 1, env)


def test_auto_reset_rate_limit() -> None:
    bob = make_user("bob")
    rec = peer_record(bob, 1)
    assert rec.begin_auto_reset(NOW)
    assert not rec.begin_auto_reset(NOW + RESET_MIN_INTERVAL - 1)
    assert rec.begin_auto_reset(NOW + RESET_MIN_INTERVAL)


def test_unanswered_session_goes_stale() -> None:
    alice, bob = make_user("alice"), make_user("bob")
    connect(alice, 1, bob, 1)
    rec = alice.devices[1].peers[("bob", 1)]
    with pytest.raises(sessions.SessionStale):
        sessions.encrypt(rec, b"x", now=NOW + MAX_UNACKED_SESSION_AGE + 1)


def test_spk_retention() -> None:
    from parley.crypto.keys import SignedPreKey

    bob = make_user("bob")
    d = bob.devices[1]
    d.store.add_spk(SignedPreKey.generate(d.ik, 2, now=NOW + 1))
    assert d.store.erase_expired_spks(NOW + 1) == []
    from parley.crypto.constants import SPK_RETENTION

    assert d.store.erase_expired_spks(NOW + SPK_RETENTION + 1) == [1]
    assert set(d.store.spks) == {2}


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_prekey_bit_flip_leaves_records_unchanged(data: st.DataObject) -> None:
    alice, bob = make_user("alice"), make_user("bob")
    connect(alice, 1, bob, 1)
    env = send(alice, 1, bob, 1, b"hello")
    bit = data.draw(st.integers(min_value=0, max_value=len(env[1]) * 8 - 1))
    flipped = bytearray(env[1])
    flipped[bit // 8] ^= 1 << (bit % 8)
    bd = bob.devices[1]
    rec = peer_record(alice, 1)
    bd.peers[("alice", 1)] = rec
    before = (snapshot(rec), snapshot(bd.store))
    with pytest.raises(CryptoError):
        sessions.decrypt(rec, bd.ik, bd.store, env[0], bytes(flipped), now=NOW)
    assert (snapshot(rec), snapshot(bd.store)) == before
    assert receive(bob, 1, alice, 1, env) == b"hello"


def test_derr_info() -> None:
    alice, bob = make_user("alice"), make_user("bob")
    connect(alice, 1, bob, 1)
    env = send(alice, 1, bob, 1, b"x")
    session = alice.devices[1].peers[("bob", 1)].active
    assert session is not None
    assert sessions.derr_info(*env) == (session.ratchet.dhs_pub, 0)
    with pytest.raises(MalformedMessage):
        sessions.derr_info(7, env[1])
