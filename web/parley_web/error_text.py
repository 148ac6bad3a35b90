"""Readable, translated text for a failure: a server error code (``RequestError`` over the
WebSocket, ``ApiError`` over HTTP, both carry ``code``) becomes ``err.code.<code>`` in the
current language; never the server's raw English ``message``."""

from __future__ import annotations

from parley_web.i18n import EN, t


def for_code(code: str) -> str:
    key = f"err.code.{code}"
    return t(key) if key in EN else t("err.unknown", code=code)


def describe(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    if isinstance(code, str) and code:
        return for_code(code)
    if isinstance(exc, (TimeoutError, ConnectionError)):
        return t("err.network")
    if type(exc).__name__ == "EncryptionNotReady":
        return t("err.not_ready")
    text = str(exc)
    # our own exceptions (LookupFailed, ...) already carry translated text
    return (
        text
        if text and type(exc).__module__.startswith("parley_web.")
        else t("err.unknown", code=type(exc).__name__)
    )
