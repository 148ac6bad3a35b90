"""``GET /api/v1/turn``: short-lived TURN credentials for WebRTC calls (coturn's REST scheme,
``use-auth-secret``). ``uris`` is empty when the server has no TURN configured: clients then
use host candidates only (calls work on one LAN)."""

from __future__ import annotations

import base64
import hashlib
import hmac

import msgspec


class TurnReply(msgspec.Struct):
    uris: list[str]
    username: str
    """``<unix expiry>:<user_id>``"""
    credential: str
    """base64(HMAC-SHA1(shared secret, username))"""
    ttl_s: int
    expires_at: int
    """Unix seconds; the TURN server refuses the username after it."""


def rest_username(expires_at: int, user_id: str) -> str:
    return f"{expires_at}:{user_id}"


def rest_password(secret: str, username: str) -> str:
    """coturn ``use-auth-secret``: base64(HMAC-SHA1(static-auth-secret, username))."""
    mac = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(mac).decode("ascii")
