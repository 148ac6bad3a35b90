"""IMv1 vectors: sender keys (SKDM, iteration-0 keys, the three GroupMessages)."""

from __future__ import annotations

from typing import Any

import pytest

from parley.crypto import sender_keys as sk
from parley.crypto.errors import DuplicateMessage
from parley.crypto.wire import parse_group_header

H = bytes.fromhex


def _outbound(v: dict[str, Any]) -> sk.OutboundSenderKey:
    return sk.OutboundSenderKey.from_parts(
        H(v["group_id"]),
        distribution_id=H(v["distribution_id"]),
        chain_id=v["chain_id"],
        ck=H(v["chain_key_0"]),
        signing_seed=H(v["signing_seed"]),
        direct=False,
        now=0,
    )


def test_iteration0_keys(vectors: dict[str, Any]) -> None:
    v = vectors["sender_keys"]
    ck0 = H(v["chain_key_0"])
    it0 = v["iteration0"]
    seed = sk.message_seed(ck0)
    assert seed == H(it0["mk_seed"])
    key, nonce = sk.message_key_material(seed)
    assert key == H(it0["key"])
    assert nonce == H(it0["nonce"])
    assert sk.next_chain_key(ck0) == H(it0["next_chain_key"])


def test_skdm(vectors: dict[str, Any]) -> None:
    v = vectors["sender_keys"]
    out = _outbound(v)
    assert out.skdm() == H(v["skdm"])
    parsed = sk.parse_skdm(H(v["skdm"]))
    assert parsed.encode() == H(v["skdm"])
    assert parsed.ssk_pub == out.ssk_pub
    assert parsed.chain_id == v["chain_id"] and parsed.iteration == 0


def test_three_messages_decrypt_and_reencrypt(vectors: dict[str, Any]) -> None:
    v = vectors["sender_keys"]
    rec = sk.SenderKeyRecord()
    assert rec.add_skdm(H(v["skdm"]))
    out = _outbound(v)
    for i, hexmsg in enumerate(v["messages"]):
        msg = H(hexmsg)
        hdr = parse_group_header(msg)
        assert hdr.iteration == i
        assert hdr.group_id == H(v["group_id"])
        pt = sk.decrypt(rec, msg)
        # Encryption is deterministic given the state (Ed25519 too): same bytes again.
        assert sk.encrypt(out, pt, now=0) == msg
    assert rec.states[0].iteration == 3
    with pytest.raises(DuplicateMessage):
        sk.decrypt(rec, H(v["messages"][1]))
