"""libsodium.js implementation of the backend contract (Pyodide). Only backend.py imports this.

The host (the web shell in the browser, ``tests/pyodide/boot.mjs`` on Node) loads
``libsodium-wrappers-sumo``, awaits ``sodium.ready`` and registers the instance with
``pyodide.registerJsModule("sodium", sodium)`` BEFORE any Parley module is imported.

FFI rules (docs/browser.md, "Pyodide runtime rules"): a Python ``bytes`` reaches JS as a PyProxy, which
libsodium rejects, so every byte argument is copied into a fresh ``Uint8Array`` with
``to_js``; results come back with ``Uint8Array.to_bytes()``. Every crossing costs about 5 us,
so the JS functions are looked up once, here, and each primitive does only the crossings it
needs (arguments in, one call, result out). libsodium.js argument order differs from PyNaCl
for the AEAD (``(m, ad, null, nonce, key)`` / ``(null, c, ad, nonce, key)``) and
``crypto_sign_verify_detached`` returns a bool instead of raising. JS errors arrive as
``pyodide.ffi.JsException`` and are turned into :class:`CryptoError`, with the same messages
as ``_nacl``, so both backends behave alike.
"""

from __future__ import annotations

from os import urandom as _urandom
from typing import Any, cast

import sodium  # type: ignore[import-not-found]
from pyodide.ffi import JsException, jsnull, to_js  # type: ignore[import-not-found]

from parley.crypto.errors import CryptoError

NAME = "libsodium.js"

_S: Any = sodium

PWHASH_OPSLIMIT_MODERATE: int = int(_S.crypto_pwhash_OPSLIMIT_MODERATE)
PWHASH_MEMLIMIT_MODERATE: int = int(_S.crypto_pwhash_MEMLIMIT_MODERATE)
PWHASH_OPSLIMIT_MIN: int = int(_S.crypto_pwhash_OPSLIMIT_MIN)
PWHASH_MEMLIMIT_MIN: int = int(_S.crypto_pwhash_MEMLIMIT_MIN)
_ALG_ARGON2ID13: int = int(_S.crypto_pwhash_ALG_ARGON2ID13)

SS_HEADER_BYTES = 24
SS_ABYTES = 17
SS_TAG_MESSAGE: int = int(_S.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE)
SS_TAG_FINAL: int = int(_S.crypto_secretstream_xchacha20poly1305_TAG_FINAL)

# JS functions, looked up once (each attribute access on a JsProxy is a crossing).
_scalarmult: Any = _S.crypto_scalarmult
_scalarmult_base: Any = _S.crypto_scalarmult_base
_sign_seed_keypair: Any = _S.crypto_sign_seed_keypair
_sign_detached: Any = _S.crypto_sign_detached
_sign_verify_detached: Any = _S.crypto_sign_verify_detached
_pk_to_curve: Any = _S.crypto_sign_ed25519_pk_to_curve25519
_sk_to_curve: Any = _S.crypto_sign_ed25519_sk_to_curve25519
_aead_enc: Any = _S.crypto_aead_xchacha20poly1305_ietf_encrypt
_aead_dec: Any = _S.crypto_aead_xchacha20poly1305_ietf_decrypt
_box_keypair: Any = _S.crypto_box_keypair
_box_seal: Any = _S.crypto_box_seal
_box_seal_open: Any = _S.crypto_box_seal_open
_pad: Any = _S.pad
_unpad: Any = _S.unpad
_pwhash: Any = _S.crypto_pwhash
_ss_init_push: Any = _S.crypto_secretstream_xchacha20poly1305_init_push
_ss_push: Any = _S.crypto_secretstream_xchacha20poly1305_push
_ss_init_pull: Any = _S.crypto_secretstream_xchacha20poly1305_init_pull
_ss_pull: Any = _S.crypto_secretstream_xchacha20poly1305_pull

_ZERO32 = bytes(32)

# JS errors, and _u8's TypeError for a non-bytes argument: all become CryptoError.
_Errors = (JsException, TypeError, ValueError)
_BYTES_LIKE = (bytes, bytearray, memoryview)


def _u8(b: bytes) -> Any:
    """A fresh JS ``Uint8Array`` holding a copy of ``b``. A ``str`` would reach libsodium.js
    as a JS string, which it silently UTF-8 encodes (PyNaCl raises): refuse it here."""
    if not isinstance(b, _BYTES_LIKE):
        raise TypeError("expected bytes")
    return to_js(b)


def _b(u8: Any) -> bytes:
    """A JS ``Uint8Array`` back to Python ``bytes``."""
    return cast(bytes, u8.to_bytes())


def random_bytes(n: int) -> bytes:
    """CSPRNG bytes from the same source libsodium.js uses: in Pyodide ``os.urandom`` is
    Emscripten's ``getentropy`` = ``crypto.getRandomValues`` (browser) or
    ``crypto.randomFillSync`` (Node). It does not cross the FFI per call and is much faster
    than libsodium.js's ``randombytes_buf`` (which asks for 4 bytes at a time: about 84 us
    for 32 B, 2.5 ms for 1 KiB, against 3 us and 8 us)."""
    if n < 0:
        raise CryptoError("negative length")
    return _urandom(n)


def x25519(priv: bytes, pub: bytes) -> bytes:
    try:
        out = _b(_scalarmult(_u8(priv), _u8(pub)))
    except _Errors:
        raise CryptoError("X25519 failed (invalid or low-order point)") from None
    if out == _ZERO32:
        raise CryptoError("X25519 produced the all-zero output")
    return out


def x25519_base(priv: bytes) -> bytes:
    try:
        return _b(_scalarmult_base(_u8(priv)))
    except _Errors:
        raise CryptoError("X25519 base multiplication failed") from None


def ed25519_seed_keypair(seed: bytes) -> tuple[bytes, bytes]:
    try:
        kp = _sign_seed_keypair(_u8(seed))
    except _Errors:
        raise CryptoError("Ed25519 key generation failed") from None
    return _b(kp.publicKey), _b(kp.privateKey)


def ed25519_sign(msg: bytes, sk64: bytes) -> bytes:
    try:
        return _b(_sign_detached(_u8(msg), _u8(sk64)))
    except _Errors:
        raise CryptoError("Ed25519 signing failed") from None


def ed25519_verify(sig: bytes, msg: bytes, pk: bytes) -> bool:
    if len(sig) != 64 or len(pk) != 32:
        return False
    try:
        return bool(_sign_verify_detached(_u8(sig), _u8(msg), _u8(pk)))
    except _Errors:
        return False


def ed25519_pk_to_x25519(pk: bytes) -> bytes:
    try:
        return _b(_pk_to_curve(_u8(pk)))
    except _Errors:
        raise CryptoError("Ed25519 public key conversion failed") from None


def ed25519_sk_to_x25519(sk64: bytes) -> bytes:
    try:
        return _b(_sk_to_curve(_u8(sk64)))
    except _Errors:
        raise CryptoError("Ed25519 secret key conversion failed") from None


def aead_encrypt(msg: bytes, ad: bytes, nonce: bytes, key: bytes) -> bytes:
    try:
        return _b(_aead_enc(_u8(msg), _u8(ad), jsnull, _u8(nonce), _u8(key)))
    except _Errors:
        raise CryptoError("AEAD encryption failed") from None


def aead_decrypt(ct: bytes, ad: bytes, nonce: bytes, key: bytes) -> bytes:
    try:
        return _b(_aead_dec(jsnull, _u8(ct), _u8(ad), _u8(nonce), _u8(key)))
    except _Errors:
        raise CryptoError("AEAD decryption failed") from None


def box_keypair() -> tuple[bytes, bytes]:
    kp = _box_keypair()
    return _b(kp.publicKey), _b(kp.privateKey)


def box_seal(msg: bytes, pk: bytes) -> bytes:
    try:
        return _b(_box_seal(_u8(msg), _u8(pk)))
    except _Errors:
        raise CryptoError("sealed box failed") from None


def box_seal_open(ct: bytes, pk: bytes, sk: bytes) -> bytes:
    try:
        return _b(_box_seal_open(_u8(ct), _u8(pk), _u8(sk)))
    except _Errors:
        raise CryptoError("sealed box open failed") from None


def pad(data: bytes, block: int) -> bytes:
    try:
        return _b(_pad(_u8(data), block))
    except _Errors:
        raise CryptoError("padding failed") from None


def unpad(data: bytes, block: int) -> bytes:
    try:
        return _b(_unpad(_u8(data), block))
    except _Errors:
        raise CryptoError("invalid padding") from None


def pwhash_argon2id(outlen: int, passwd: bytes, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    try:
        return _b(_pwhash(outlen, _u8(passwd), _u8(salt), opslimit, memlimit, _ALG_ARGON2ID13))
    except _Errors:
        raise CryptoError("Argon2id failed") from None


def ss_init_push(key: bytes) -> tuple[object, bytes]:
    """Returns (state, header). The state is libsodium.js's opaque handle: an address in its
    wasm heap (52 bytes that libsodium.js never frees; one per attachment, negligible).
    It is only meaningful inside this page: never persist it."""
    try:
        r = _ss_init_push(_u8(key))
    except _Errors:
        raise CryptoError("secretstream init failed") from None
    state: object = r.state
    return state, _b(r.header)


def ss_push(state: object, msg: bytes, tag: int) -> bytes:
    try:
        return _b(_ss_push(state, _u8(msg), jsnull, tag))
    except _Errors:
        raise CryptoError("secretstream push failed") from None


def ss_init_pull(header: bytes, key: bytes) -> object:
    try:
        state: object = _ss_init_pull(_u8(header), _u8(key))
    except _Errors:
        raise CryptoError("secretstream init failed") from None
    return state


def ss_pull(state: object, ct: bytes) -> tuple[bytes, int]:
    try:
        r = _ss_pull(state, _u8(ct), jsnull)
    except _Errors:
        raise CryptoError("secretstream chunk failed to authenticate") from None
    if r is False or r is None:  # libsodium.js returns false when the chunk does not verify
        raise CryptoError("secretstream chunk failed to authenticate")
    return _b(r.message), int(r.tag)
