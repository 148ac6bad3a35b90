"""IMv1 vectors: keys, X3DH, Double Ratchet, PreKeyMessage A0 (byte for byte)."""

from __future__ import annotations

from typing import Any

from parley.crypto import backend, ratchet, x3dh
from parley.crypto.constants import PAD_BLOCK
from parley.crypto.keys import Ed25519KeyPair, X25519KeyPair, enc_x, verify_spk
from parley.crypto.wire import PreKeyMessage, parse_dr_message, parse_prekey_message

H = bytes.fromhex


def test_keys(vectors: dict[str, Any]) -> None:
    k = vectors["keys"]
    alice = Ed25519KeyPair.from_seed(H(k["alice_ik_seed"]))
    bob = Ed25519KeyPair.from_seed(H(k["bob_ik_seed"]))
    assert alice.pub == H(k["alice_ik_pub"])
    assert bob.pub == H(k["bob_ik_pub"])
    assert alice.x25519_pub() == H(k["alice_ik_x25519_pub"])
    assert bob.x25519_pub() == H(k["bob_ik_x25519_pub"])
    # DH form: pub derived from converted secret equals converted public
    assert backend.x25519_base(alice.x25519_priv()) == alice.x25519_pub()
    spk = X25519KeyPair.from_priv(H(k["bob_spk_priv"]))
    assert spk.pub == H(k["bob_spk_pub"])
    assert bob.sign(enc_x(spk.pub)) == H(k["bob_spk_sig"])
    assert verify_spk(bob.pub, spk.pub, H(k["bob_spk_sig"]))
    assert not verify_spk(alice.pub, spk.pub, H(k["bob_spk_sig"]))
    assert X25519KeyPair.from_priv(H(k["bob_opk_priv"])).pub == H(k["bob_opk_pub"])
    assert X25519KeyPair.from_priv(H(k["alice_ek_priv"])).pub == H(k["alice_ek_pub"])


def _x3dh(vectors: dict[str, Any], with_opk: bool) -> tuple[x3dh.X3DHResult, x3dh.X3DHResult]:
    k = vectors["keys"]
    alice = Ed25519KeyPair.from_seed(H(k["alice_ik_seed"]))
    bob = Ed25519KeyPair.from_seed(H(k["bob_ik_seed"]))
    ek = X25519KeyPair.from_priv(H(k["alice_ek_priv"]))
    a = x3dh.initiate(
        alice, bob.pub, H(k["bob_spk_pub"]), H(k["bob_opk_pub"]) if with_opk else None, ek=ek
    )
    b = x3dh.respond(
        bob, H(k["bob_spk_priv"]), H(k["bob_opk_priv"]) if with_opk else None, alice.pub, ek.pub
    )
    return a, b


def test_x3dh_with_opk(vectors: dict[str, Any]) -> None:
    a, b = _x3dh(vectors, True)
    assert a.sk == b.sk == H(vectors["x3dh"]["SK"])
    assert a.ad == b.ad == H(vectors["x3dh"]["AD"])
    assert a.ek_pub == H(vectors["keys"]["alice_ek_pub"])


def test_x3dh_without_opk(vectors: dict[str, Any]) -> None:
    a, b = _x3dh(vectors, False)
    assert a.sk == b.sk == H(vectors["x3dh"]["SK_without_opk"])
    assert a.ad == b.ad == H(vectors["x3dh"]["AD"])


def test_x3dh_constants(vectors: dict[str, Any]) -> None:
    from parley.crypto.constants import X3DH_F, X3DH_INFO

    assert vectors["x3dh"]["info"].encode() == X3DH_INFO
    assert vectors["x3dh"]["hash"] == "SHA-256"
    assert H(vectors["x3dh"]["F"]) == X3DH_F


class _Party:
    def __init__(self, state: ratchet.RatchetState, privs: list[str]) -> None:
        self.state = state
        self.privs = [X25519KeyPair.from_priv(H(p)) for p in privs]
        self.next = 0

    def take_dh(self) -> X25519KeyPair:
        kp = self.privs[self.next]
        self.next += 1
        return kp


def _check_state(st: ratchet.RatchetState, exp: dict[str, str | None]) -> None:
    assert st.rk == H(exp["RK"] or "")
    assert st.cks == (None if exp["CKs"] is None else H(exp["CKs"]))
    assert st.ckr == (None if exp["CKr"] is None else H(exp["CKr"]))
    assert st.dhs_priv == H(exp["DHs_priv"] or "")


def test_double_ratchet_all_messages(vectors: dict[str, Any]) -> None:
    dr = vectors["double_ratchet"]
    msgs = {m["label"]: m for m in dr["messages"]}
    a3dh, b3dh = _x3dh(vectors, True)
    k = vectors["keys"]
    alice = _Party(
        ratchet.RatchetState(b"", b"", None, b"", None, None, 0, 0, 0, b""), dr["alice_dh_privs"]
    )
    bob = _Party(
        ratchet.RatchetState(b"", b"", None, b"", None, None, 0, 0, 0, b""), dr["bob_dh_privs"]
    )
    alice.state = ratchet.init_alice(a3dh.sk, a3dh.ad, H(k["bob_spk_pub"]), dh=alice.take_dh())
    bob.state = ratchet.init_bob(b3dh.sk, b3dh.ad, X25519KeyPair.from_priv(H(k["bob_spk_priv"])))
    wire: dict[str, bytes] = {}

    def send(p: _Party, label: str) -> None:
        m = msgs[label]
        assert m["sender"] == ("A" if p is alice else "B")
        pt = backend.pad(label.encode(), PAD_BLOCK)
        assert pt == H(m["plaintext_padded"])
        assert p.state.cks is not None
        _, mk = ratchet.kdf_ck(p.state.cks)
        assert mk == H(m["mk"])
        key, nonce = ratchet.message_key_material(mk)
        assert key == H(m["aead_key"]) and nonce == H(m["aead_nonce"])
        out = ratchet.encrypt(p.state, pt)
        _hdr, raw, ct = parse_dr_message(out)
        assert raw == H(m["header"])
        assert p.state.ad + raw == H(m["aead_ad"])
        assert ct == H(m["ciphertext"])
        assert backend.aead_decrypt(ct, H(m["aead_ad"]), nonce, key) == pt
        _check_state(p.state, m["sender_state_after"])
        wire[label] = out

    def recv(p: _Party, label: str) -> None:
        m = msgs[label]
        hdr, _, _ = parse_dr_message(wire[label])
        needs_ratchet = hdr.dh != p.state.dhr and (
            hdr.dh + wire[label][37:41] not in p.state.skipped
        )
        dh = p.take_dh() if needs_ratchet else None
        pt = ratchet.decrypt(p.state, wire[label], dh=dh, now=0)
        assert pt == H(m["plaintext_padded"])
        assert backend.unpad(pt, PAD_BLOCK) == label.encode()
        _check_state(p.state, m["receiver_state_after"])

    order: list[str] = []
    # Encryptions happen when the sender's state allows; deliveries follow the vector order.
    for lbl in ("A0", "A1", "A2"):
        send(alice, lbl)
    for lbl in ("A0", "A2", "A1"):
        recv(bob, lbl)
        order.append(lbl)
    for lbl in ("B0", "B1", "B2"):
        send(bob, lbl)
    for lbl in ("B0", "B2"):
        recv(alice, lbl)
        order.append(lbl)
    send(alice, "A3")
    send(alice, "A3b")
    recv(bob, "A3")
    order.append("A3")
    send(bob, "B3")
    for lbl in ("B3", "B1"):
        recv(alice, lbl)
        order.append(lbl)
    send(alice, "A4")
    for lbl in ("A4", "A3b"):
        recv(bob, lbl)
        order.append(lbl)
    assert order == dr["delivery_order"]
    assert set(wire) == set(msgs)
    assert not alice.state.skipped and not bob.state.skipped


def test_prekey_message_a0(vectors: dict[str, Any]) -> None:
    v = vectors["prekey_message_A0"]
    dr = vectors["double_ratchet"]
    a0 = next(m for m in dr["messages"] if m["label"] == "A0")
    k = vectors["keys"]
    pkm = PreKeyMessage(
        ik_a=H(k["alice_ik_pub"]),
        ek_a=H(k["alice_ek_pub"]),
        spk_id=v["spk_id"],
        opk_id=v["opk_id"],
        dr_message=H(a0["header"]) + H(a0["ciphertext"]),
    )
    assert pkm.encode() == H(v["bytes"])
    assert parse_prekey_message(H(v["bytes"])) == pkm
