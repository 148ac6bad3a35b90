"""Account helpers over the real HTTP API."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import httpx

PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class Login:
    username: str
    user_id: str
    device_id: int
    token: str


def unique_name(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(4)}"


def register(base_url: str, username: str, password: str = PASSWORD) -> str:
    r = httpx.post(f"{base_url}/api/v1/accounts", json={"username": username, "password": password})
    r.raise_for_status()
    return str(r.json()["user_id"])


def login(base_url: str, username: str, password: str = PASSWORD, device: str = "test") -> Login:
    r = httpx.post(
        f"{base_url}/api/v1/sessions",
        json={"username": username, "password": password, "device_name": device},
    )
    r.raise_for_status()
    body = r.json()
    return Login(username, body["user_id"], body["device_id"], body["token"])


def new_user(base_url: str, prefix: str = "user", devices: int = 1) -> list[Login]:
    """Register a fresh user and log in ``devices`` times (one device per login)."""
    name = unique_name(prefix)
    register(base_url, name)
    return [login(base_url, name, device=f"dev{i}") for i in range(devices)]
