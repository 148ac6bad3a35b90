"""The key directory (``/api/v1/keys``) over the browser's fetch, with the session's token: the
E2E driver's key-directory caller (requests are built by ``parley.client.e2e.keys_api``)."""

from __future__ import annotations

from typing import TypeVar
from urllib.parse import urlencode

import msgspec
from pyodide.http import pyfetch  # type: ignore[import-not-found]

from parley.client.e2e.keys_api import BASE, KeyDirectoryError

__all__ = ["KeyDirectory", "KeyDirectoryError"]

T = TypeVar("T")


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
