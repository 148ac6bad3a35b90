"""IMv1 vectors: safety numbers (libsignal + IMv1), QR, device list, attachment sizes."""

from __future__ import annotations

from typing import Any

from parley.crypto import attachments, devicelist, safety
from parley.crypto.keys import Ed25519KeyPair

H = bytes.fromhex

# Inputs of libsignal's NumericFingerprintGeneratorTest (public constants); the expected
# output is taken from the vectors file.
LIBSIGNAL_ALICE = H("0506863bc66d02b40d27b8d49ca7c09e9239236f9d7d25d6fcca5ce13c7064d868")
LIBSIGNAL_BOB = H("05f781b6fb32fed9ba1cf2de978d4d5da28dc34046ae814402b5c0dbd96fda907b")


def test_libsignal_vector(vectors: dict[str, Any]) -> None:
    a = safety.fingerprint_raw(LIBSIGNAL_ALICE, "+14152222222")
    b = safety.fingerprint_raw(LIBSIGNAL_BOB, "+14153333333")
    expected = vectors["safety_number"]["signal_vector_ok"]
    assert safety.safety_number(a, b) == expected
    assert safety.safety_number(b, a) == expected


def test_imv1_safety_number_and_qr(vectors: dict[str, Any]) -> None:
    ex = vectors["safety_number"]["imv1_example"]
    fa = safety.fingerprint(H(ex["alice_aik"]), ex["alice_id"])
    fb = safety.fingerprint(H(ex["bob_aik"]), ex["bob_id"])
    assert safety.display(safety.safety_number(fa, fb)) == ex["display"]
    assert safety.display(safety.safety_number(fb, fa)) == ex["display"]
    qr = safety.qr_payload(fa, fb)
    assert qr == H(ex["qr"])
    assert len(qr) == 74
    # Bob scans Alice's QR: his local is bob, remote is alice.
    assert safety.scan_matches(qr, fb, fa)
    assert not safety.scan_matches(qr, fa, fb)


def test_device_list(vectors: dict[str, Any]) -> None:
    v = vectors["device_list"]
    aik = Ed25519KeyPair.from_seed(H(v["aik_seed"]))
    assert aik.pub == H(v["aik_pub"])
    parsed = devicelist.parse(H(v["encoded"]))
    assert parsed.user_id == v["user_id"]
    assert parsed.version == v["version"]
    assert parsed.timestamp_ms == v["timestamp_ms"]
    assert parsed.encode() == H(v["encoded"])
    data, sig = devicelist.sign(parsed, aik)
    assert data == H(v["encoded"])
    assert sig == H(v["signature"])
    assert devicelist.verify(data, sig, aik.pub, user_id="alice") == parsed
    # The vector's first device is Alice's IK from the keys section.
    assert parsed.devices[0].ik_pub == H(vectors["keys"]["alice_ik_pub"])


def test_attachment_sizes(vectors: dict[str, Any]) -> None:
    v = vectors["attachment"]
    assert attachments.padme(v["size"]) == v["padded"]
    assert attachments.blob_len(v["size"]) == v["blob_len"]
    enc = attachments.encrypt(bytes(range(256)) * (v["size"] // 256))
    assert len(enc.blob) == v["blob_len"]
