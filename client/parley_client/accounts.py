"""Register and log in over the HTTP accounts API (httpx)."""

from __future__ import annotations

from typing import TypeVar

import httpx
import msgspec

from parley.protocol.http import ErrorBody, LoginBody, LoginReply, RegisterBody, RegisterReply

T = TypeVar("T")


class AccountError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class HttpAccounts:
    """``base_url`` is the server's HTTP root, e.g. ``http://127.0.0.1:8080``."""

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    async def register(self, username: str, password: str) -> RegisterReply:
        body = RegisterBody(username=username, password=password)
        return await self._post("/api/v1/accounts", body, RegisterReply)

    async def login(self, username: str, password: str, device_name: str = "") -> LoginReply:
        body = LoginBody(username=username, password=password, device_name=device_name)
        return await self._post("/api/v1/sessions", body, LoginReply)

    @property
    def ws_url(self) -> str:
        return "ws" + self.base_url.removeprefix("http") + "/ws"

    async def _post(self, path: str, body: msgspec.Struct, reply: type[T]) -> T:
        async with httpx.AsyncClient(timeout=self.timeout) as http:
            r = await http.post(
                self.base_url + path,
                content=msgspec.json.encode(body),
                headers={"content-type": "application/json"},
            )
        if r.status_code >= 400:
            try:
                err = msgspec.json.decode(r.content, type=ErrorBody)
                raise AccountError(r.status_code, err.code.value, err.message)
            except msgspec.DecodeError:
                raise AccountError(r.status_code, "http", r.text[:200]) from None
        return msgspec.json.decode(r.content, type=reply)
