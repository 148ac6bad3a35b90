"""Account setup over the real HTTP API: register users and log in devices, in parallel.

Every login is an Argon2id verification on the server (about 75 ms of CPU here), so setup
of many devices is slow by design; it is parallelised and its duration reported, never
bypassed.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass

import httpx
import msgspec

from parley.protocol.http import LoginBody, LoginReply, RegisterBody, RegisterReply

PASSWORD = "load-" + secrets.token_hex(8) + "-bench"


@dataclass(frozen=True)
class Device:
    username: str
    user_id: str
    device_id: int
    token: str


@dataclass
class SetupTimes:
    users: int = 0
    devices: int = 0
    register_s: float = 0.0
    login_s: float = 0.0


async def _post(
    http: httpx.AsyncClient, path: str, body: msgspec.Struct, attempts: int = 5
) -> bytes:
    for attempt in range(attempts):
        try:
            r = await http.post(
                path,
                content=msgspec.json.encode(body),
                headers={"content-type": "application/json"},
            )
        except httpx.TransportError:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.2 * (attempt + 1))
            continue
        if r.status_code >= 400:
            raise RuntimeError(f"{path}: HTTP {r.status_code} {r.text[:200]}")
        return r.content
    raise RuntimeError("unreachable")


async def make_devices(
    http_url: str,
    users: int,
    devices_per_user: int,
    *,
    concurrency: int = 8,
    timeout_s: float = 1800.0,
    progress: bool = False,
) -> tuple[list[list[Device]], SetupTimes]:
    """Register ``users`` users and log each in ``devices_per_user`` times (one token each)."""
    tag = secrets.token_hex(3)
    names = [f"lt{tag}u{i}" for i in range(users)]
    times = SetupTimes(users=users, devices=users * devices_per_user)
    sem = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=http_url, timeout=120.0, limits=limits) as http:

        async def register(name: str) -> str:
            async with sem:
                raw = await _post(http, "/api/v1/accounts", RegisterBody(name, PASSWORD))
            return msgspec.json.decode(raw, type=RegisterReply).user_id

        done = 0

        async def login(name: str, d: int) -> Device:
            nonlocal done
            async with sem:
                raw = await _post(http, "/api/v1/sessions", LoginBody(name, PASSWORD, f"load{d}"))
            r = msgspec.json.decode(raw, type=LoginReply)
            done += 1
            if progress and done % 500 == 0:
                print(f"  logged in {done}/{times.devices} devices", flush=True)
            return Device(name, r.user_id, r.device_id, r.token)

        t0 = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*(register(n) for n in names)), timeout_s)
        t1 = time.monotonic()
        flat = await asyncio.wait_for(
            asyncio.gather(*(login(n, d) for n in names for d in range(devices_per_user))),
            timeout_s,
        )
        t2 = time.monotonic()
    times.register_s, times.login_s = t1 - t0, t2 - t1
    grouped = [flat[i * devices_per_user : (i + 1) * devices_per_user] for i in range(users)]
    return grouped, times
