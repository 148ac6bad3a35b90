"""Safety numbers/QR scan compare and TOFU states (§9); repr hygiene; persistence."""

from __future__ import annotations

import msgspec
import pytest
from _helpers import connect, make_user, receive, send

from parley.crypto import (
    attachments,
    backup,
    keys,
    provisioning,
    ratchet,
    safety,
    sessions,
    x3dh,
)
from parley.crypto import sender_keys as sk
from parley.crypto.errors import KeyChanged, MalformedMessage, SendingBlocked
from parley.crypto.keys import Ed25519KeyPair

# --- safety numbers -------------------------------------------------------------------


def test_scan_compare() -> None:
    a, b, m = Ed25519KeyPair.generate(), Ed25519KeyPair.generate(), Ed25519KeyPair.generate()
    fa, fb = safety.fingerprint(a.pub, "alice"), safety.fingerprint(b.pub, "bob")
    fm = safety.fingerprint(m.pub, "bob")  # MITM key under Bob's id
    shown_by_alice = safety.qr_payload(fa, fb)
    assert safety.scan_matches(shown_by_alice, fb, fa)
    # Bob sees a MITM key for Alice (or Alice sees a MITM key for Bob): no match
    assert not safety.scan_matches(shown_by_alice, fb, safety.fingerprint(m.pub, "alice"))
    assert not safety.scan_matches(safety.qr_payload(fa, fm), fb, fa)
    with pytest.raises(MalformedMessage):
        safety.scan_matches(shown_by_alice[:-1], fb, fa)
    wrong_version = shown_by_alice[:1] + b"\x02" + shown_by_alice[2:]
    with pytest.raises(MalformedMessage):
        safety.scan_matches(wrong_version, fb, fa)
    number = safety.safety_number(fa, fb)
    assert number == safety.safety_number(fb, fa) and len(number) == 60 and number.isdigit()
    assert len(safety.display(number).split(" ")) == 12
    assert safety.safety_number(fa, fm) != number
    # the user id is bound into the fingerprint
    assert safety.fingerprint(a.pub, "alice2") != fa


def test_trust_state_machine() -> None:
    k1, k2, k3 = (Ed25519KeyPair.generate().pub for _ in range(3))
    e, obs = safety.observe(None, "bob", k1)
    assert obs is safety.Observation.PINNED and e.state is safety.TrustState.UNVERIFIED
    e2, obs = safety.observe(e, "bob", k1)
    assert obs is safety.Observation.SAME and e2 is e
    # unverified + change: re-pin and continue (notice shown)
    e3, obs = safety.observe(e, "bob", k2)
    assert obs is safety.Observation.CHANGED and e3.aik_pub == k2 and safety.may_send(e3)
    # verified + change: blocked until accepted
    v = safety.mark_verified(e3, k2)
    assert v.state is safety.TrustState.VERIFIED
    with pytest.raises(KeyChanged):
        safety.mark_verified(e3, k1)
    b, obs = safety.observe(v, "bob", k3)
    assert obs is safety.Observation.CHANGED and not safety.may_send(b)
    with pytest.raises(SendingBlocked):
        safety.require_may_send(b)
    # still blocked if it changes again before acceptance
    b2, _ = safety.observe(b, "bob", k1)
    assert not safety.may_send(b2)
    ok = safety.accept_change(b2)
    assert safety.may_send(ok) and ok.state is safety.TrustState.UNVERIFIED
    # strict mode blocks even an unverified contact
    s, _ = safety.observe(ok, "bob", k2, strict=True)
    assert not safety.may_send(s)
    # entries persist
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(b2), type=safety.TrustEntry) == b2


# --- no secrets in repr ---------------------------------------------------------------


def _secret_objects() -> list[tuple[object, list[bytes]]]:
    ik = Ed25519KeyPair.generate()
    spk = keys.SignedPreKey.generate(ik, 1)
    opk = keys.OneTimePreKey.generate(1)
    eph = keys.X25519KeyPair.generate()
    res = x3dh.initiate(ik, Ed25519KeyPair.generate().pub, spk.pub, None)
    st = ratchet.init_alice(res.sk, res.ad, spk.pub)
    out = sk.OutboundSenderKey.create(b"G" * 16, direct=False, now=0)
    rec = sk.SenderKeyRecord()
    rec.add_skdm(out.skdm())
    inbound = rec.states[0]
    att = attachments.encrypt(b"secret file")
    req = provisioning.ProvisioningRequest.create(now=0)
    store = sessions.PreKeyStore()
    store.add_spk(spk)
    store.add_opks([opk])
    bk = backup.generate_backup_key()
    return [
        (ik, [ik.seed, ik.sk64]),
        (spk, [spk.priv]),
        (opk, [opk.priv]),
        (eph, [eph.priv]),
        (res, [res.sk]),
        (st, [st.rk, st.dhs_priv, st.cks or b""]),
        (out, [out.ck, out.ssk_seed, out.ssk_sk64]),
        (inbound, [inbound.ck, inbound.first_ck]),
        (rec, [inbound.ck]),
        (sk.parse_skdm(out.skdm()), [out.ck]),
        (att, [att.key]),
        (req, [req.e_priv]),
        (store, [spk.priv, opk.priv]),
        (
            backup.encrypt_record(
                bk, backup.RecordKey("c", "u", 1, out.distribution_id, out.chain_id), inbound
            ),
            [bk],
        ),
    ]


def test_no_secret_in_repr() -> None:
    for obj, secrets in _secret_objects():
        text = repr(obj) + str(obj)
        assert "hidden" in text or "encrypted" in text, type(obj).__name__
        for s in secrets:
            assert s and repr(s) not in text and s.hex() not in text, type(obj).__name__


def test_exception_messages_carry_no_secret() -> None:
    alice, bob = make_user("alice"), make_user("bob")
    connect(alice, 1, bob, 1)
    env = send(alice, 1, bob, 1, b"x")
    bad = (env[0], env[1][:-1] + bytes([env[1][-1] ^ 1]))
    with pytest.raises(Exception) as ei:
        receive(bob, 1, alice, 1, bad)
    text = str(ei.value) + repr(ei.value)
    for s in (bob.devices[1].ik.seed, bob.devices[1].store.spks[1].priv):
        assert s.hex() not in text and repr(s) not in text


# --- persistence: every state object round-trips through msgpack mid-conversation -----


def test_sessions_serialize_restore_mid_conversation() -> None:
    alice, bob = make_user("alice"), make_user("bob")
    connect(alice, 1, bob, 1)
    e1, e2, e3 = (send(alice, 1, bob, 1, b"m%d" % i) for i in range(3))
    assert receive(bob, 1, alice, 1, e3) == b"m2"

    def roundtrip(u: object) -> None:
        for d in u.devices.values():  # type: ignore[attr-defined]
            d.store = msgspec.msgpack.decode(
                msgspec.msgpack.encode(d.store), type=sessions.PreKeyStore
            )
            d.peers = {
                k: msgspec.msgpack.decode(msgspec.msgpack.encode(v), type=sessions.DeviceSessions)
                for k, v in d.peers.items()
            }

    roundtrip(alice)
    roundtrip(bob)
    assert receive(bob, 1, alice, 1, e1) == b"m0"
    r = send(bob, 1, alice, 1, b"reply")
    roundtrip(bob)
    assert receive(alice, 1, bob, 1, r) == b"reply"
    roundtrip(alice)
    assert receive(bob, 1, alice, 1, e2) == b"m1"
    assert receive(bob, 1, alice, 1, send(alice, 1, bob, 1, b"after")) == b"after"
