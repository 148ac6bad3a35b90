"""Known-answer tests of the primitive backend, run in BOTH runtimes.

CPython: ``.venv/bin/pytest tests/backend`` (PyNaCl via ``_nacl``).
Pyodide: ``node tests/pyodide/run.mjs tests/backend`` (libsodium.js via ``_sodiumjs``).
Everything goes through ``parley.crypto.backend``; the same expected bytes in both runtimes
are what proves the two backends interoperate.
"""

from __future__ import annotations

import sys

import pytest

from parley.crypto import backend
from parley.crypto.errors import CryptoError

h = bytes.fromhex

# From tests/crypto/imv1-vectors.json, section "keys".
ALICE_IK_SEED = h("e1fffb8d58403352251c1d492ddc83d1a90ed9a514437db3cb1b75aed2d757d6")
ALICE_IK_PUB = h("93240e042f5607778b8a0316ebf0c68703f169f6061d9bfa352b96e8590d9067")
ALICE_IK_X25519_PUB = h("3b502022406dd3ca2e6eb8805630a355231d40edc2f6acf58162d9db2f9f2577")
BOB_IK_SEED = h("daf1b4f8586ac198ad56e38a3a85af2a9f202dd0bd5057ac36b73e1e32cfa166")
BOB_IK_PUB = h("8882be41545d0d23971056852c98333ac18b8be9ae84c0a3f932b3cedf4f9ae3")
BOB_IK_X25519_PUB = h("efd7b1474452a900d0398b630df310704989dac1c91a4a381b0120aee7b3036c")
BOB_SPK_PRIV = h("6d8bb14bfe2a9817bb46d2dcec40cbfedf95cb075313df8027ef3f876e3f2fb5")
BOB_SPK_PUB = h("148beba8e2673d43c250209c3af256e4579ae241279aece115734bb8f0b10677")
BOB_SPK_SIG = h(
    "3fb87eb7b95e4cb97d9cac25d8740cd98c0e5df598e0a7d82c33e0e30d4be814"
    "2cd59d6506d4604d5bbab5297ddd3c273f567d91305bea4cc1434758900f8d09"
)
ALICE_EK_PRIV = h("15b785afd7871be35fed772cace678f71318b5eb7da2a4dd25a118f1ba7f18fe")
ALICE_EK_PUB = h("0a66ee4ca71e6e998c2aec40e083a7fd38aa7ce263fa4f2417db23d22d1fbb78")

# From imv1-vectors.json, section "device_list".
AIK_SEED = h("bbbc3fa3c17b065067338f84d1b08ef236d2d973be3d98fb9f86a77641b0221e")
AIK_PUB = h("69c48b77eed5253140b1c6a8823082746bb067e4fd6d793b62ed723b748bbccc")
DEVLIST_ENCODED = h(
    "494d76312d4465766963654c697374000005616c69636500000000000000070000018bcfe568000002"
    "00000001ed93240e042f5607778b8a0316ebf0c68703f169f6061d9bfa352b96e8590d906700000002"
    "edc7692a9797d2df9a9cccc3277116cb628f3b00221bded5ad51ea04a49e2908dc"
)
DEVLIST_SIG = h(
    "1a6740caff901264ff79cfbbca4fb1d7267ca9ac89d9227cf2e85d3a6078ce42"
    "1129b253b9271a310b68f72e958dc5594633251d672676700253d187a951940c"
)

# RFC 7748 §6.1.
RFC7748_A_PRIV = h("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
RFC7748_A_PUB = h("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
RFC7748_B_PUB = h("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
RFC7748_SHARED = h("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")

# draft-irtf-cfrg-xchacha-03 §A.3.1 (AEAD_XChaCha20_Poly1305).
XC_KEY = bytes(range(0x80, 0xA0))
XC_NONCE = bytes(range(0x40, 0x58))
XC_AD = h("50515253c0c1c2c3c4c5c6c7")
XC_PT = (
    b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for "
    b"the future, sunscreen would be it."
)
XC_CT = h(
    "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa644"
    "0bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e"
    "3f3fac2bc369488f76b2383565d3fff921f9664c97637da9768812f615c68b13b52e"
    "c0875924c1c7987947deafd8780acf49"
)

# Cross-runtime known answer, computed ONCE with PyNaCl 1.6.2 on CPython:
#   nacl.bindings.crypto_pwhash_alg(32, b"correct horse battery staple", bytes(range(16)),
#       crypto_pwhash_argon2id_OPSLIMIT_MIN, crypto_pwhash_argon2id_MEMLIMIT_MIN,
#       crypto_pwhash_ALG_ARGON2ID13)
# libsodium.js inside Pyodide must give the same bytes.
PWHASH_MIN_KAT = h("d17ea6341ca93da6079ea2f64dc4aa31dd1aaf9caa67fb42ac4afd0714706f26")

# X25519 points of small order (u = 0, u = 1, and a point of order 8): the shared secret is
# all zero, which the backend must refuse.
LOW_ORDER_POINTS = [
    bytes(32),
    b"\x01" + bytes(31),
    h("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
]


def test_backend_matches_runtime() -> None:
    expected = "libsodium.js" if sys.platform == "emscripten" else "pynacl"
    assert expected == backend.NAME


def test_constants() -> None:
    assert backend.SS_HEADER_BYTES == 24
    assert backend.SS_ABYTES == 17
    assert backend.SS_TAG_MESSAGE == 0
    assert backend.SS_TAG_FINAL == 3
    assert backend.PWHASH_OPSLIMIT_MIN == 1
    assert backend.PWHASH_MEMLIMIT_MIN == 8192
    assert backend.PWHASH_OPSLIMIT_MODERATE == 3
    assert backend.PWHASH_MEMLIMIT_MODERATE == 268435456


def test_random_bytes() -> None:
    a, b = backend.random_bytes(32), backend.random_bytes(32)
    assert isinstance(a, bytes)
    assert len(a) == 32
    assert a != b
    assert backend.random_bytes(0) == b""


@pytest.mark.parametrize(
    ("seed", "pub", "xpub"),
    [
        (ALICE_IK_SEED, ALICE_IK_PUB, ALICE_IK_X25519_PUB),
        (BOB_IK_SEED, BOB_IK_PUB, BOB_IK_X25519_PUB),
    ],
)
def test_ed25519_seed_keypair_and_conversion(seed: bytes, pub: bytes, xpub: bytes) -> None:
    pk, sk = backend.ed25519_seed_keypair(seed)
    assert pk == pub
    assert sk == seed + pub
    assert backend.ed25519_pk_to_x25519(pk) == xpub
    xpriv = backend.ed25519_sk_to_x25519(sk)
    assert len(xpriv) == 32
    assert backend.x25519_base(xpriv) == xpub


def test_ed25519_sign_known_answer() -> None:
    pk, sk = backend.ed25519_seed_keypair(AIK_SEED)
    assert pk == AIK_PUB
    sig = backend.ed25519_sign(DEVLIST_ENCODED, sk)
    assert sig == DEVLIST_SIG
    assert backend.ed25519_verify(sig, DEVLIST_ENCODED, pk) is True


def test_ed25519_verify_signed_prekey() -> None:
    # Bob's SPK signature covers EncX(SPK_pub) = 0x05 || SPK_pub.
    assert backend.ed25519_verify(BOB_SPK_SIG, b"\x05" + BOB_SPK_PUB, BOB_IK_PUB) is True


def test_ed25519_verify_rejects() -> None:
    msg = DEVLIST_ENCODED
    bad_sig = bytes([DEVLIST_SIG[0] ^ 1]) + DEVLIST_SIG[1:]
    assert backend.ed25519_verify(bad_sig, msg, AIK_PUB) is False
    assert backend.ed25519_verify(DEVLIST_SIG, msg + b"x", AIK_PUB) is False
    assert backend.ed25519_verify(DEVLIST_SIG, msg, ALICE_IK_PUB) is False
    assert backend.ed25519_verify(DEVLIST_SIG[:63], msg, AIK_PUB) is False
    assert backend.ed25519_verify(DEVLIST_SIG, msg, AIK_PUB[:31]) is False


def test_ed25519_bad_inputs_raise() -> None:
    with pytest.raises(CryptoError):
        backend.ed25519_seed_keypair(b"short")
    with pytest.raises(CryptoError):
        backend.ed25519_sign(b"m", b"\x00" * 63)


def test_x25519_known_answers() -> None:
    assert backend.x25519_base(ALICE_EK_PRIV) == ALICE_EK_PUB
    assert backend.x25519_base(BOB_SPK_PRIV) == BOB_SPK_PUB
    assert backend.x25519_base(RFC7748_A_PRIV) == RFC7748_A_PUB
    assert backend.x25519(RFC7748_A_PRIV, RFC7748_B_PUB) == RFC7748_SHARED
    assert backend.x25519(ALICE_EK_PRIV, BOB_SPK_PUB) == backend.x25519(BOB_SPK_PRIV, ALICE_EK_PUB)


@pytest.mark.parametrize("point", LOW_ORDER_POINTS)
def test_x25519_rejects_low_order_point(point: bytes) -> None:
    with pytest.raises(CryptoError):
        backend.x25519(RFC7748_A_PRIV, point)


def test_x25519_bad_length_raises() -> None:
    with pytest.raises(CryptoError):
        backend.x25519(RFC7748_A_PRIV, RFC7748_B_PUB[:31])


def test_aead_known_answer() -> None:
    assert backend.aead_encrypt(XC_PT, XC_AD, XC_NONCE, XC_KEY) == XC_CT
    assert backend.aead_decrypt(XC_CT, XC_AD, XC_NONCE, XC_KEY) == XC_PT


def test_aead_round_trip_and_tamper() -> None:
    key, nonce = backend.random_bytes(32), backend.random_bytes(24)
    for msg, ad in [(b"", b""), (b"hello", b""), (b"x" * 70000, b"ad" * 40)]:
        ct = backend.aead_encrypt(msg, ad, nonce, key)
        assert len(ct) == len(msg) + 16
        assert backend.aead_decrypt(ct, ad, nonce, key) == msg
    ct = backend.aead_encrypt(b"hello", b"ad", nonce, key)
    tampered = bytes([ct[0] ^ 0x80]) + ct[1:]
    for args in [
        (tampered, b"ad", nonce, key),
        (ct, b"aD", nonce, key),
        (ct, b"ad", bytes(24), key),
        (ct, b"ad", nonce, bytes(32)),
        (ct[:-1], b"ad", nonce, key),
        (b"", b"ad", nonce, key),
    ]:
        with pytest.raises(CryptoError):
            backend.aead_decrypt(*args)
    with pytest.raises(CryptoError):
        backend.aead_encrypt(b"m", b"", nonce[:12], key)


def test_secretstream_round_trip_and_tags() -> None:
    key = backend.random_bytes(32)
    state, header = backend.ss_init_push(key)
    assert len(header) == backend.SS_HEADER_BYTES
    chunks = [b"a" * 65536, b"", b"tail"]
    tags = [backend.SS_TAG_MESSAGE, backend.SS_TAG_MESSAGE, backend.SS_TAG_FINAL]
    cts = [backend.ss_push(state, c, t) for c, t in zip(chunks, tags, strict=True)]
    for c, ct in zip(chunks, cts, strict=True):
        assert len(ct) == len(c) + backend.SS_ABYTES
    pull = backend.ss_init_pull(header, key)
    got = [backend.ss_pull(pull, ct) for ct in cts]
    assert got == list(zip(chunks, tags, strict=True))


def test_secretstream_rejects_tamper_reorder_and_wrong_key() -> None:
    key = backend.random_bytes(32)
    state, header = backend.ss_init_push(key)
    c1 = backend.ss_push(state, b"one", backend.SS_TAG_MESSAGE)
    c2 = backend.ss_push(state, b"two", backend.SS_TAG_FINAL)

    pull = backend.ss_init_pull(header, key)
    with pytest.raises(CryptoError):
        backend.ss_pull(pull, c2)  # out of order
    pull = backend.ss_init_pull(header, key)
    with pytest.raises(CryptoError):
        backend.ss_pull(pull, c1[:-1] + bytes([c1[-1] ^ 1]))
    pull = backend.ss_init_pull(header, backend.random_bytes(32))
    with pytest.raises(CryptoError):
        backend.ss_pull(pull, c1)
    with pytest.raises(CryptoError):
        backend.ss_init_pull(header[:23], key)


def test_box_seal_round_trip() -> None:
    pk, sk = backend.box_keypair()
    assert len(pk) == 32
    assert len(sk) == 32
    assert backend.x25519_base(sk) == pk
    ct = backend.box_seal(b"provisioning secret", pk)
    assert len(ct) == len(b"provisioning secret") + 48
    assert backend.box_seal_open(ct, pk, sk) == b"provisioning secret"
    pk2, sk2 = backend.box_keypair()
    with pytest.raises(CryptoError):
        backend.box_seal_open(ct, pk2, sk2)
    with pytest.raises(CryptoError):
        backend.box_seal_open(ct[:-1] + bytes([ct[-1] ^ 1]), pk, sk)


def test_pad_unpad() -> None:
    assert backend.pad(b"abc", 16) == b"abc\x80" + bytes(12)
    assert backend.pad(b"", 4) == b"\x80\x00\x00\x00"
    assert backend.pad(b"abcd", 4) == b"abcd\x80\x00\x00\x00"
    for n in [0, 1, 159, 160, 161, 1000]:
        data = bytes(range(256))[: n % 256] * (n // 256 + 1)
        data = data[:n]
        padded = backend.pad(data, 160)
        assert len(padded) % 160 == 0
        assert len(padded) > len(data)
        assert backend.unpad(padded, 160) == data
    with pytest.raises(CryptoError):
        backend.unpad(bytes(16), 16)  # no 0x80 marker
    with pytest.raises(CryptoError):
        backend.unpad(b"abc\x80" + b"\x01" + bytes(11), 16)


def test_pwhash_argon2id_min_known_answer() -> None:
    out = backend.pwhash_argon2id(
        32,
        b"correct horse battery staple",
        bytes(range(16)),
        backend.PWHASH_OPSLIMIT_MIN,
        backend.PWHASH_MEMLIMIT_MIN,
    )
    assert out == PWHASH_MIN_KAT
    with pytest.raises(CryptoError):
        backend.pwhash_argon2id(32, b"pw", b"short salt", 1, 8192)


# Cross-runtime known answer, computed ONCE with PyNaCl 1.6.2 on CPython:
#   crypto_pwhash_alg(32, b"pw", bytes(16), crypto_pwhash_argon2id_OPSLIMIT_MODERATE,
#       crypto_pwhash_argon2id_MEMLIMIT_MODERATE, crypto_pwhash_ALG_ARGON2ID13)
PWHASH_MODERATE_KAT = h("3777d9a67f04bac5dc2fb9b1f8638fd454b8539b62ecd6871214d2991d35cf75")


def test_pwhash_argon2id_moderate_known_answer() -> None:
    """The §13 passphrase setting (256 MiB): libsodium.js's wasm heap must grow to it.
    About 0.4 s on CPython, 1 s in Pyodide on Node."""
    out = backend.pwhash_argon2id(
        32, b"pw", bytes(16), backend.PWHASH_OPSLIMIT_MODERATE, backend.PWHASH_MEMLIMIT_MODERATE
    )
    assert out == PWHASH_MODERATE_KAT


def test_str_arguments_are_refused() -> None:
    """libsodium.js would silently UTF-8 encode a JS string; both backends must refuse."""
    key, nonce = bytes(32), bytes(24)
    with pytest.raises(CryptoError):
        backend.aead_encrypt("text", b"", nonce, key)  # type: ignore[arg-type]
    with pytest.raises(CryptoError):
        backend.box_seal("text", backend.box_keypair()[0])  # type: ignore[arg-type]
    with pytest.raises(CryptoError):
        pw: bytes = "pw"  # type: ignore[assignment]
        backend.pwhash_argon2id(32, pw, bytes(16), 1, 8192)
