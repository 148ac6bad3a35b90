"""Device linking through the server's relay (docs/imv1.md §3.5, /api/v1/provisioning): a linked
device is a device of the same user with the same account key, reads new messages and gets
history by key forwarding; misuse gets stable codes (wrong user, reused or unknown token,
expired window, too many registrations)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from parley.crypto import provisioning
from parley.crypto.b64 import b64e
from tests.integration.e2e_support import T, has_texts, link, make, start_link
from tests.support.accounts import Login, new_user
from tests.support.server import ServerProcess

PROV = "/api/v1/provisioning"


def _bearer(who: Login) -> dict[str, str]:
    return {"authorization": f"Bearer {who.token}"}


def _code(r: httpx.Response) -> tuple[int, str]:
    return r.status_code, str(r.json().get("code", "")) if r.content else ""


async def test_linked_device_reads_new_messages_and_forwarded_history(
    server: ServerProcess, tmp_path: Path
) -> None:
    (al,) = new_user(server.http_url, "lka")
    (bl,) = new_user(server.http_url, "lkb")
    a1, b1 = make(server, al, tmp_path, "a1"), make(server, bl, tmp_path, "b1")
    a2 = None
    try:
        for c in (a1, b1):
            await c.start()
            await c.wait_online(T)
        cid = await a1.open_direct(bl.user_id)
        await b1.wait_sent(await b1.send_text(cid, "before the link"), T)
        await a1.wait_for(has_texts("before the link"), cid, T)
        version = a1.st.contacts[al.user_id].devlist.version  # type: ignore[union-attr]

        a2 = await link(server, a1, tmp_path, "a2-linked")
        assert a2.user_id == al.user_id and a2.device_id != al.device_id
        assert a2.st.own.aik_seed == a1.st.own.aik_seed  # the same account identity key
        devices = httpx.get(f"{server.http_url}/api/v1/devices", headers=_bearer(al)).json()
        assert {"a2-linked"} <= {d["name"] for d in devices["devices"]}
        # a2 published the next device list, signed with the account key, with itself in it
        await a1.refresh_devlist(al.user_id)
        own = a1.st.contacts[al.user_id]
        assert own.devlist is not None and own.devlist.version == version + 1
        assert a2.device_id in own.devices
        # the user's other device learns it (step 4: "New device linked")
        assert any(n.kind == "device_added" and n.device_id == a2.device_id
                   for n in a1.notices(al.user_id))  # fmt: skip

        await b1.wait_sent(await b1.send_text(cid, "after the link"), T)
        for c in (a1, a2):
            await c.wait_for(has_texts("after the link"), cid, T)
        # history from before the link: a1 (online) forwards the key when a2 asks
        await a2.wait_for(has_texts("before the link", "after the link"), cid, T)
    finally:
        for c in (a2, a1, b1):
            if c is not None:
                await c.close()


async def test_link_misuse_gets_stable_codes(server: ServerProcess) -> None:
    (al,) = new_user(server.http_url, "lkm")
    (bl,) = new_user(server.http_url, "lkn")
    base = server.http_url + PROV
    async with httpx.AsyncClient(timeout=T) as http:
        prov_id = secrets.token_bytes(16)
        p = prov_id.hex()
        assert (await http.post(base + "/", json={"prov_id": p})).status_code == 201
        assert _code(await http.post(base + "/", json={"prov_id": p})) == (409, "conflict")
        assert _code(await http.post(base + "/", json={"prov_id": "xyz"})) == (400, "invalid")
        unknown = secrets.token_bytes(16).hex()
        assert _code(await http.get(f"{base}/{unknown}")) == (404, "not_found")
        # nothing there yet: the new device polls
        assert (await http.get(f"{base}/{p}")).json()["sealed"] is None
        # the existing device's routes need its session
        assert _code(await http.post(f"{base}/{p}/token"))[0] == 401
        # answering before asking for a token: refused
        put = {"sealed": b64e(b"x" * 80)}
        r = await http.put(f"{base}/{p}", json=put, headers=_bearer(al))
        assert _code(r) == (403, "forbidden")
        r = await http.post(f"{base}/{p}/token", headers=_bearer(al))
        assert r.status_code == 201
        token = r.json()["link_token"]
        # another user cannot take over alice's link request
        r = await http.post(f"{base}/{p}/token", headers=_bearer(bl))
        assert _code(r) == (403, "forbidden")
        assert _code(await http.put(f"{base}/{p}", json=put, headers=_bearer(bl))) == (
            403,
            "forbidden",
        )
        assert (await http.put(f"{base}/{p}", json=put, headers=_bearer(al))).status_code == 204
        assert (await http.get(f"{base}/{p}")).json()["sealed"] == put["sealed"]
        # answered once: a second answer is refused
        r = await http.put(f"{base}/{p}", json=put, headers=_bearer(al))
        assert _code(r) == (403, "forbidden")
        # the token logs in a new device of alice (not bob), once
        login = {"link_token": token, "device_name": "linked"}
        r = await http.post(base + "/session", json=login)
        assert r.status_code == 201 and r.json()["user_id"] == al.user_id
        assert r.json()["device_id"] != al.device_id
        assert _code(await http.post(base + "/session", json=login)) == (409, "link_used")
        assert _code(await http.get(f"{base}/{p}")) == (409, "link_used")
        bad = {"link_token": "not-a-token", "device_name": "x"}
        assert _code(await http.post(base + "/session", json=bad)) == (401, "unauthorized")


@pytest.fixture
def short_link_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """Linking window of 1 s and 4 registrations per IP: expiry and the rate limit."""
    env = {"PARLEY_PROVISIONING_TTL_S": "1", "PARLEY_PROVISIONING_IP_LIMIT": "4"}
    srv = ServerProcess(tmp_path / "data", env=env)
    srv.start()
    yield srv
    srv.stop()


async def test_link_expired_window_and_rate_limit(short_link_server: ServerProcess) -> None:
    srv = short_link_server
    (al,) = new_user(srv.http_url, "lke")
    base = srv.http_url + PROV
    async with httpx.AsyncClient(timeout=T) as http:
        p = secrets.token_bytes(16).hex()
        reply = (await http.post(base + "/", json={"prov_id": p})).json()
        r = await http.post(f"{base}/{p}/token", headers=_bearer(al))
        assert r.status_code == 201
        token = r.json()["link_token"]
        # wait (bounded) until the server's window is over: every use then says link_expired
        loop = asyncio.get_running_loop()
        deadline = loop.time() + T
        while _code(await http.get(f"{base}/{p}")) != (410, "link_expired"):
            assert loop.time() < deadline, "the link request never expired"
            await asyncio.sleep(0.2)
        assert reply["expires"] > 0
        assert _code(await http.post(f"{base}/{p}/token", headers=_bearer(al))) == (
            410,
            "link_expired",
        )
        login = {"link_token": token, "device_name": "late"}
        assert _code(await http.post(base + "/session", json=login)) == (410, "link_expired")
        # 1 registration above + 3 more = the limit of 4; the 5th is refused
        for _ in range(3):
            r = await http.post(base + "/", json={"prov_id": secrets.token_bytes(16).hex()})
            assert r.status_code == 201
        r = await http.post(base + "/", json={"prov_id": secrets.token_bytes(16).hex()})
        assert _code(r) == (429, "rate_limited") and "retry-after" in r.headers


async def test_new_device_wait_ends_with_link_expired(
    short_link_server: ServerProcess, tmp_path: Path
) -> None:
    """Nobody accepts the code: the new device's wait ends with link_expired, not a hang."""
    from parley_client.linking import LinkError

    _code_text, task = await start_link(short_link_server, tmp_path, "never")
    with pytest.raises(LinkError) as info:
        await asyncio.wait_for(task, T)
    assert info.value.code == "link_expired"


def test_link_code_carries_prov_id_and_public_key_only() -> None:
    req = provisioning.ProvisioningRequest.create(now=0)
    prov_id, e_pub = provisioning.parse_qr(req.qr_text())
    assert (prov_id, e_pub) == (req.prov_id, req.e_pub)
    assert b64e(req.e_priv) not in req.qr_text()
