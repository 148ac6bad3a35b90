"""RFC 4648 §5 base64url without padding (JSON fields), strict decoding."""

from __future__ import annotations

import base64
import binascii

from parley.crypto.errors import MalformedMessage


def b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64d(text: str, length: int | None = None) -> bytes:
    """Decode unpadded base64url; reject padding, foreign characters, non-canonical input
    and (if given) a wrong decoded length."""
    if not isinstance(text, str) or "=" in text or len(text) % 4 == 1:
        raise MalformedMessage("invalid base64url")
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise MalformedMessage("invalid base64url") from None
    if b64e(raw) != text:
        raise MalformedMessage("non-canonical base64url")
    if length is not None and len(raw) != length:
        raise MalformedMessage("decoded value has the wrong length")
    return raw
