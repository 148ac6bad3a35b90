"""HKDF/HMAC (RFC 5869) and wire-format parsing, incl. the server-side framing check."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parley.crypto import sender_keys as sk
from parley.crypto import wire
from parley.crypto.b64 import b64d, b64e
from parley.crypto.errors import MalformedMessage
from parley.crypto.kdf import hkdf

H = bytes.fromhex


def test_rfc5869_a1() -> None:
    # RFC 5869 Appendix A.1 (published test case; docs/imv1.md §12 lists it)
    okm = hkdf(bytes([0x0B] * 22), H("000102030405060708090a0b0c"), H("f0f1f2f3f4f5f6f7f8f9"), 42)
    assert okm == H(
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


def _reference_hkdf(ikm: bytes, salt: bytes, info: bytes, n: int) -> bytes:
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    okm, t, i = b"", b"", 1
    while len(okm) < n:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        okm += t
        i += 1
    return okm[:n]


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=80), st.binary(max_size=40), st.binary(max_size=30), st.integers(1, 200))
def test_hkdf_matches_reference(ikm: bytes, salt: bytes, info: bytes, n: int) -> None:
    assert hkdf(ikm, salt, info, n) == _reference_hkdf(ikm, salt, info, n)


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=64))
def test_b64_round_trip(data: bytes) -> None:
    text = b64e(data)
    assert "=" not in text and "+" not in text and "/" not in text
    assert b64d(text) == data


@pytest.mark.parametrize("bad", ["AAA=", "A", "AA+/", "AB", "A A="])
def test_b64_strict(bad: str) -> None:
    with pytest.raises(MalformedMessage):
        b64d(bad)


def test_group_framing_for_server() -> None:
    out = sk.OutboundSenderKey.create(b"G" * 16, direct=False, now=0)
    msg = sk.encrypt(out, b"", now=0)
    hdr = wire.parse_group_header(msg)
    assert (hdr.group_id, hdr.distribution_id, hdr.chain_id, hdr.iteration) == (
        out.group_id, out.distribution_id, out.chain_id, 0,
    )  # fmt: skip
    assert hdr.encode() == msg[:41]
    assert len(msg) >= 41 + 16 + 64
    with pytest.raises(MalformedMessage):
        wire.parse_group_header(msg[: 41 + 16 + 63])
    with pytest.raises(MalformedMessage):
        wire.parse_group_header(b"\x02" + msg[1:])
    with pytest.raises(MalformedMessage):
        wire.parse_group_header(b"plaintext is never accepted by the server, however long it is")


def test_dr_and_prekey_parse_rejects() -> None:
    hdr = wire.encode_header(b"d" * 32, 1, 2)
    h, raw, ct = wire.parse_dr_message(hdr + b"c" * 16)
    assert (h.dh, h.pn, h.n, raw, ct) == (b"d" * 32, 1, 2, hdr, b"c" * 16)
    with pytest.raises(MalformedMessage):
        wire.parse_dr_message(hdr + b"c" * 15)
    with pytest.raises(MalformedMessage):
        wire.parse_dr_message(b"\x02" + hdr[1:] + b"c" * 16)
    pkm = wire.PreKeyMessage(b"i" * 32, b"e" * 32, 1, 0, hdr + b"c" * 16)
    assert wire.parse_prekey_message(pkm.encode()) == pkm
    with pytest.raises(MalformedMessage):
        wire.parse_prekey_message(pkm.encode()[:-1])
    with pytest.raises(MalformedMessage):
        wire.parse_prekey_message(
            wire.PreKeyMessage(b"i" * 32, b"e" * 32, 0, 0, hdr + b"c" * 16).encode()
        )


def test_prekey_message_refuses_ephemeral_key_with_top_bit() -> None:
    """X25519 masks bit 255: accepting it would make one PreKeyMessage replayable twice."""
    from parley.crypto import wire

    prefix = bytes([1]) + bytes(32) + bytes(31) + b"\x80" + (1).to_bytes(4, "big") + bytes(4)
    body = bytes([1]) + bytes(40) + bytes(16)
    with pytest.raises(wire.MalformedMessage):
        wire.parse_prekey_message(prefix + body)
    ok = wire.parse_prekey_message(prefix[:64] + b"\x7f" + prefix[65:] + body)
    assert ok.ek_a[31] == 0x7F
