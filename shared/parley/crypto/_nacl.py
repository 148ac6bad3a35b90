"""PyNaCl implementation of the backend contract (CPython). Only backend.py imports this."""

from __future__ import annotations

from typing import Any, cast

import nacl.bindings as _b
import nacl.exceptions as _ex

from parley.crypto.errors import CryptoError

NAME = "pynacl"

PWHASH_OPSLIMIT_MODERATE: int = int(_b.crypto_pwhash_argon2id_OPSLIMIT_MODERATE)
PWHASH_MEMLIMIT_MODERATE: int = int(_b.crypto_pwhash_argon2id_MEMLIMIT_MODERATE)
PWHASH_OPSLIMIT_MIN: int = int(_b.crypto_pwhash_argon2id_OPSLIMIT_MIN)
PWHASH_MEMLIMIT_MIN: int = int(_b.crypto_pwhash_argon2id_MEMLIMIT_MIN)

SS_HEADER_BYTES = 24
SS_ABYTES = 17
SS_TAG_MESSAGE: int = int(_b.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE)
SS_TAG_FINAL: int = int(_b.crypto_secretstream_xchacha20poly1305_TAG_FINAL)

_Errors = (_ex.CryptoError, ValueError, TypeError, RuntimeError)

_scalarmult = _b.crypto_scalarmult
_scalarmult_base = _b.crypto_scalarmult_base
_aead_enc = _b.crypto_aead_xchacha20poly1305_ietf_encrypt
_aead_dec = _b.crypto_aead_xchacha20poly1305_ietf_decrypt
_sign = _b.crypto_sign
_sign_open = _b.crypto_sign_open
_randombytes = _b.randombytes


def _need(value: bytes, length: int, what: str) -> None:
    # PyNaCl 1.6.2 does not check these lengths itself and would read past the buffer.
    if len(value) != length:
        raise CryptoError(f"{what} must be {length} bytes")


def random_bytes(n: int) -> bytes:
    return bytes(_randombytes(n))


def x25519(priv: bytes, pub: bytes) -> bytes:
    _need(priv, 32, "X25519 private key")
    _need(pub, 32, "X25519 public key")
    try:
        out = bytes(_scalarmult(priv, pub))
    except _Errors:
        raise CryptoError("X25519 failed (invalid or low-order point)") from None
    if out == bytes(32):
        raise CryptoError("X25519 produced the all-zero output")
    return out


def x25519_base(priv: bytes) -> bytes:
    _need(priv, 32, "X25519 private key")
    try:
        return bytes(_scalarmult_base(priv))
    except _Errors:
        raise CryptoError("X25519 base multiplication failed") from None


def ed25519_seed_keypair(seed: bytes) -> tuple[bytes, bytes]:
    _need(seed, 32, "Ed25519 seed")
    try:
        pk, sk = _b.crypto_sign_seed_keypair(seed)
    except _Errors:
        raise CryptoError("Ed25519 key generation failed") from None
    return bytes(pk), bytes(sk)


def ed25519_sign(msg: bytes, sk64: bytes) -> bytes:
    _need(sk64, 64, "Ed25519 secret key")
    try:
        return bytes(_sign(msg, sk64)[:64])
    except _Errors:
        raise CryptoError("Ed25519 signing failed") from None


def ed25519_verify(sig: bytes, msg: bytes, pk: bytes) -> bool:
    if len(sig) != 64 or len(pk) != 32:
        return False
    try:
        _sign_open(sig + msg, pk)
    except _Errors:
        return False
    return True


def ed25519_pk_to_x25519(pk: bytes) -> bytes:
    _need(pk, 32, "Ed25519 public key")
    try:
        return bytes(_b.crypto_sign_ed25519_pk_to_curve25519(pk))
    except _Errors:
        raise CryptoError("Ed25519 public key conversion failed") from None


def ed25519_sk_to_x25519(sk64: bytes) -> bytes:
    _need(sk64, 64, "Ed25519 secret key")
    try:
        return bytes(_b.crypto_sign_ed25519_sk_to_curve25519(sk64))
    except _Errors:
        raise CryptoError("Ed25519 secret key conversion failed") from None


def aead_encrypt(msg: bytes, ad: bytes, nonce: bytes, key: bytes) -> bytes:
    try:
        return bytes(_aead_enc(msg, ad, nonce, key))
    except _Errors:
        raise CryptoError("AEAD encryption failed") from None


def aead_decrypt(ct: bytes, ad: bytes, nonce: bytes, key: bytes) -> bytes:
    try:
        return bytes(_aead_dec(ct, ad, nonce, key))
    except _Errors:
        raise CryptoError("AEAD decryption failed") from None


def box_keypair() -> tuple[bytes, bytes]:
    pk, sk = _b.crypto_box_keypair()
    return bytes(pk), bytes(sk)


def box_seal(msg: bytes, pk: bytes) -> bytes:
    try:
        return bytes(_b.crypto_box_seal(msg, pk))
    except _Errors:
        raise CryptoError("sealed box failed") from None


def box_seal_open(ct: bytes, pk: bytes, sk: bytes) -> bytes:
    try:
        return bytes(_b.crypto_box_seal_open(ct, pk, sk))
    except _Errors:
        raise CryptoError("sealed box open failed") from None


def pad(data: bytes, block: int) -> bytes:
    try:
        return bytes(_b.sodium_pad(data, block))
    except _Errors:
        raise CryptoError("padding failed") from None


def unpad(data: bytes, block: int) -> bytes:
    try:
        return bytes(_b.sodium_unpad(data, block))
    except _Errors:
        raise CryptoError("invalid padding") from None


def pwhash_argon2id(outlen: int, passwd: bytes, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    try:
        return bytes(
            _b.crypto_pwhash_alg(
                outlen, passwd, salt, opslimit, memlimit, _b.crypto_pwhash_ALG_ARGON2ID13
            )
        )
    except _Errors:
        raise CryptoError("Argon2id failed") from None


def ss_init_push(key: bytes) -> tuple[object, bytes]:
    state: Any = _b.crypto_secretstream_xchacha20poly1305_state()
    try:
        header = _b.crypto_secretstream_xchacha20poly1305_init_push(state, key)
    except _Errors:
        raise CryptoError("secretstream init failed") from None
    return state, bytes(header)


def ss_push(state: object, msg: bytes, tag: int) -> bytes:
    try:
        return bytes(
            _b.crypto_secretstream_xchacha20poly1305_push(cast(Any, state), msg, None, tag)
        )
    except _Errors:
        raise CryptoError("secretstream push failed") from None


def ss_init_pull(header: bytes, key: bytes) -> object:
    state: Any = _b.crypto_secretstream_xchacha20poly1305_state()
    try:
        _b.crypto_secretstream_xchacha20poly1305_init_pull(state, header, key)
    except _Errors:
        raise CryptoError("secretstream init failed") from None
    return state


def ss_pull(state: object, ct: bytes) -> tuple[bytes, int]:
    try:
        msg, tag = _b.crypto_secretstream_xchacha20poly1305_pull(cast(Any, state), ct, None)
    except _Errors:
        raise CryptoError("secretstream chunk failed to authenticate") from None
    return bytes(msg), int(tag)
