"""CLI failures as one human sentence plus an exit code, and the server-code -> sentence map.

Exit codes are part of the scripting contract (docs/cli.md): 0 ok, 1 a user-level error (bad
credentials, unknown user, refused by the server), 2 usage, 3 network (server unreachable,
timed out, or failing on its side), 130 interrupted.
"""

from __future__ import annotations

USER = 1
USAGE = 2
NETWORK = 3
INTERRUPTED = 130


class CliError(Exception):
    """Printed as ``parley: error: <message>`` on stderr, then ``exit(code)``."""

    def __init__(self, message: str, code: int = USER, server_code: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.server_code = server_code  # the server's ErrorCode value, when it said one


class NetworkError(CliError):
    def __init__(self, message: str) -> None:
        super().__init__(message, NETWORK)


# Stable server codes (parley.protocol.errors.ErrorCode values) -> what a person should read.
_SENTENCES: dict[str, str] = {
    "bad_credentials": "wrong username or password",
    "username_taken": "that username is already taken",
    "weak_password": (
        "password too weak: use at least 10 characters, not a common password and not your username"
    ),
    "unauthorized": "you are not logged in (or your session expired): run 'parley login'",
    "device_revoked": "this device was logged out or revoked: run 'parley login' again",
    "not_member": "no such chat, or you are not a member of it",
    "forbidden": "the server does not allow that",
    "unknown_user": "no such user",
    "unknown_device": "no such device",
    "not_found": "not found",
    "conflict": "that conflicts with the current state (e.g. a chat with yourself)",
    "disbanded": "that group was disbanded",
    "already_member": "already a member",
    "too_large": "too large for the server's limits",
    "rate_limited": "too many attempts: wait a little and try again",
    "invalid": "the server refused the request as invalid",
    "bad_envelope": "the server refused the message envelope",
    "not_contact": "the server only allows chats between contacts: send 'parley request USER'",
    "blocked": "not possible: one of you blocked the other",
    "too_late": "too late for that",
    "link_expired": "that link code expired: run 'parley link' again on the new device",
    "link_used": "that link code was already used: run 'parley link' again on the new device",
    "unknown_op": "the server does not support that operation (older server?)",
    "internal": "the server had an internal error: try again later",
    "unavailable": "the server is unavailable: try again later",
}

_NETWORK_CODES = frozenset({"internal", "unavailable"})


def from_server(code: str, detail: str = "", *, what: str = "") -> CliError:
    """A CliError for a server error code; ``what`` names the subject (e.g. ``user 'bob'``)."""
    sentence = _SENTENCES.get(code)
    if sentence is None:
        sentence = f"the server refused the request ({code}{': ' + detail if detail else ''})"
    elif code in ("unknown_user", "not_found") and what:
        sentence = f"no such {what}"
    elif code == "invalid" and detail:
        sentence = f"the server refused the request: {detail}"
    exit_code = NETWORK if code in _NETWORK_CODES else USER
    return CliError(sentence, exit_code, code)
