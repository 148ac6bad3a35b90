"""Device linking through the server's relay (docs/imv1.md §3.5, docs/protocol.md "Device
linking"): the HTTP calls of both sides, and the new device's wait for its sealed box.

New device:   req, code = await register(...)   # show ``code`` (imlink:1:...)
              login, res = await wait_linked(...) # polls; logs in with the link token
Existing:     await answer(api, st, code)         # E2EClient.accept_link does this
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx
import msgspec

from parley.crypto import provisioning
from parley.crypto.b64 import b64d, b64e
from parley.crypto.keys import Rng
from parley.protocol import provisioning as proto
from parley.protocol.http import ErrorBody

T = TypeVar("T")

POLL_S = 0.25
"""How often the new device asks whether its sealed box is there."""


def _wall_ms() -> int:
    """The wall clock, read here at the edge: the provisioning core takes time as an argument."""
    return int(time.time() * 1000)


class LinkError(Exception):
    """The relay refused: ``code`` is the stable error code (``link_expired``, ``link_used``,
    ``forbidden``, ``not_found``, ``unauthorized``, ``rate_limited``...)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class ProvisioningApi:
    def __init__(self, http_url: str, token: str | None = None) -> None:
        headers = {"content-type": "application/json"}
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        self.http = httpx.AsyncClient(
            base_url=http_url.rstrip("/") + "/api/v1/provisioning", headers=headers, timeout=10.0
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _send(self, method: str, path: str, body: object) -> httpx.Response:
        content = None if body is None else msgspec.json.encode(body)
        r = await self.http.request(method, path, content=content)
        if r.status_code >= 400:
            try:
                err = msgspec.json.decode(r.content, type=ErrorBody)
                code, message = err.code.value, err.message
            except (msgspec.DecodeError, msgspec.ValidationError):
                code, message = "internal", r.text[:200]
            raise LinkError(r.status_code, code, message)
        return r

    async def _call(self, method: str, path: str, body: object, reply: type[T]) -> T:
        r = await self._send(method, path, body)
        return msgspec.json.decode(r.content, type=reply)

    # --- new device (no session) -------------------------------------------------------------
    async def register(self, prov_id: bytes) -> proto.ProvisioningReply:
        body = proto.RegisterProvisioningBody(prov_id=prov_id.hex())
        return await self._call("POST", "/", body, proto.ProvisioningReply)

    async def fetch(self, prov_id: bytes) -> proto.ProvisionMessageReply:
        return await self._call("GET", f"/{prov_id.hex()}", None, proto.ProvisionMessageReply)

    async def login(self, link_token: str, device_name: str) -> proto.LinkLoginReply:
        body = proto.LinkLoginBody(link_token=link_token, device_name=device_name)
        return await self._call("POST", "/session", body, proto.LinkLoginReply)

    # --- existing device (Bearer session) ----------------------------------------------------
    async def mint_token(self, prov_id: bytes) -> proto.LinkTokenReply:
        return await self._call("POST", f"/{prov_id.hex()}/token", None, proto.LinkTokenReply)

    async def answer(self, prov_id: bytes, sealed: bytes) -> None:
        await self._send("PUT", f"/{prov_id.hex()}", proto.PutProvisionBody(sealed=b64e(sealed)))


async def wait_linked(
    http_url: str,
    device_name: str,
    on_code: Callable[[str], Awaitable[None] | None],
    *,
    timeout: float,
    rng: Rng | None = None,
) -> tuple[proto.LinkLoginReply, provisioning.ProvisionResult]:
    """New device: register a prov_id, hand the ``imlink:1:...`` code to ``on_code`` (print or
    show it as a QR code), wait (bounded) for the existing device's sealed box, open and check
    it (the AIK verifies the device list), and log in with its link token."""
    req = provisioning.ProvisioningRequest.create(now=_wall_ms(), rng=rng)
    api = ProvisioningApi(http_url)
    try:
        await api.register(req.prov_id)
        shown = on_code(req.qr_text())
        if shown is not None:
            await shown
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            reply = await api.fetch(req.prov_id)  # link_expired ends the wait
            if reply.sealed is not None:
                break
            if loop.time() >= deadline:
                raise TimeoutError("no device answered the link request in time")
            await asyncio.sleep(POLL_S)
        res = provisioning.open_sealed(req, b64d(reply.sealed), now=_wall_ms())
        login = await api.login(res.link_token, device_name)
        if login.user_id != res.user_id:
            raise LinkError(403, "forbidden", "the link token is for another account")
        return login, res
    finally:
        await api.aclose()
