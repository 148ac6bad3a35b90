"""HMAC-SHA-256 and HKDF-SHA-256 (RFC 2104 / RFC 5869) from the stdlib."""

from __future__ import annotations

import hashlib
import hmac

_sha256 = hashlib.sha256
_hmac_digest = hmac.digest


def hmac_sha256(key: bytes, msg: bytes) -> bytes:
    return _hmac_digest(key, msg, _sha256)


def hkdf(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 HKDF-SHA-256; ``salt`` is always explicit."""
    if not 0 < length <= 255 * 32:
        raise ValueError("invalid HKDF output length")
    prk = _hmac_digest(salt, ikm, _sha256)
    t = _hmac_digest(prk, info + b"\x01", _sha256)
    if length <= 32:
        return t[:length]
    out = t
    i = 2
    while len(out) < length:
        t = _hmac_digest(prk, t + info + bytes((i,)), _sha256)
        out += t
        i += 1
    return out[:length]


def ct_eq(a: bytes, b: bytes) -> bool:
    """Constant-time comparison."""
    return hmac.compare_digest(a, b)
