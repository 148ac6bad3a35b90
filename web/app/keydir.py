"""The key directory (``/api/v1/keys``) over the browser's fetch, with the session's token."""

from __future__ import annotations

from typing import TypeVar
from urllib.parse import urlencode

import msgspec
from pyodide.http import pyfetch  # type: ignore[import-not-found]

T = TypeVar("T")

BASE = "/api/v1/keys"


class KeyDirectoryError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"key directory {status}: {body[:200]}")
        self.status = status


class KeyDirectory:
    def __init__(self, token: str) -> None:
        self._token = token

    async def call(
        self,
        method: str,
        path: str,
        body: object,
        reply: type[T],
        params: list[tuple[str, str]] | None = None,
    ) -> T:
        url = BASE + path + (("?" + urlencode(params)) if params else "")
        kw: dict[str, object] = {
            "method": method,
            "headers": {
                "authorization": f"Bearer {self._token}",
                "content-type": "application/json",
            },
        }
        if body is not None:
            kw["body"] = msgspec.json.encode(body).decode()
        try:
            r = await pyfetch(url, **kw)
        except Exception as exc:  # offline: a network error, not a reply
            raise KeyDirectoryError(0, str(exc)) from exc
        data = bytes(await r.bytes())
        if r.status >= 400:
            raise KeyDirectoryError(r.status, data.decode(errors="replace"))
        return msgspec.json.decode(data, type=reply)
