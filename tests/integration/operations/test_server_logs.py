"""The server's log never holds payloads, metadata, tokens or passwords."""

from __future__ import annotations

import base64
import secrets

import httpx

from parley.protocol.ops import (
    Conversation,
    GroupCreate,
    GroupRename,
    Send,
    ToDeviceMessage,
    ToDeviceSend,
)
from tests.support.accounts import login, register, unique_name
from tests.support.rawclient import RawClient, envelope_for
from tests.support.server import ServerProcess


async def test_no_secrets_or_payloads_in_logs(fresh_server: ServerProcess) -> None:
    marker = secrets.token_hex(12).encode()
    password = "log-test " + secrets.token_hex(8)
    name = unique_name("logs")
    register(fresh_server.http_url, name, password)
    me = login(fresh_server.http_url, name, password)
    # A failed login with a different password is logged (as a failure) without the password.
    wrong = "wrong " + secrets.token_hex(8)
    r = httpx.post(
        f"{fresh_server.http_url}/api/v1/sessions",
        json={"username": name, "password": wrong, "device_name": "x"},
    )
    assert r.status_code == 401
    c = await RawClient.login(fresh_server.ws_url, me.token)
    conv: Conversation = await c.call(GroupCreate(meta=b"meta" + marker))
    cid = conv.info.conversation_id
    env = envelope_for(cid)[:60] + marker + envelope_for(cid)[60:]
    await c.call(Send(conversation_id=cid, client_msg_id="m", envelope=env))
    bad = b"\x02" + env[1:]  # an error path too
    assert (
        await c.fail(Send(conversation_id=cid, client_msg_id="b", envelope=bad))
    ).code == "bad_envelope"
    await c.call(GroupRename(conversation_id=cid, meta=b"name" + marker))
    await c.call(
        ToDeviceSend(
            messages=[
                ToDeviceMessage(user_id=me.user_id, device_id=me.device_id, body=b"td" + marker)
            ]
        )
    )
    await c.close()
    fresh_server.stop()
    log = fresh_server.log()
    assert "ws_open" in log and "request_error" in log and "login_failed" in log  # it does log
    forbidden = [
        marker.decode(),
        marker.hex(),
        base64.b64encode(marker).decode(),
        me.token,
        password,
        wrong,
        env.hex()[:40],
    ]
    for needle in forbidden:
        assert needle not in log, needle
