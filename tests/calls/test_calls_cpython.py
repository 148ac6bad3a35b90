"""Calls between CPython devices (parley_client.calls, aiortc) through the real server
(parley_server) and a real coturn, relay candidates only: signalling is pairwise E2E to-device,
media flows, hang-up ends both sides, the call entry appears in both chats; a second device of
the callee stops ringing when the first answers; a stranger's call rings nowhere."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from parley.client.call import CallState as S
from parley.client.call import EndReason as R
from parley.crypto import content as content_mod
from parley_client.calls import Calls
from parley_client.e2e_client import E2EClient
from tests.integration.e2e_support import T, link, make
from tests.integration.social_support import befriend, connect
from tests.support.accounts import Login, new_user
from tests.support.server import ServerProcess

pytest.importorskip("aiortc")


async def _until(pred, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.05)


class Party:
    def __init__(self, login: Login, e2e: E2EClient, calls: Calls) -> None:
        self.login, self.e2e, self.calls = login, e2e, calls


@pytest.fixture
async def parties(turn_server: ServerProcess, tmp_path: Path) -> AsyncIterator[dict[str, Party]]:
    (a,) = new_user(turn_server.http_url, "calla")
    (b1,) = new_user(turn_server.http_url, "callb")
    (eve,) = new_user(turn_server.http_url, "calle")
    ra, rb = await connect(turn_server, a), await connect(turn_server, b1)
    await befriend(ra, rb, a.user_id, b1.user_id)
    await ra.close()
    await rb.close()
    out: dict[str, Party] = {}
    for name, who in (("a", a), ("b1", b1), ("eve", eve)):
        e2e = make(turn_server, who, tmp_path, name)
        await e2e.start()
        await e2e.wait_online(T)
        out[name] = Party(who, e2e, Calls(e2e, relay_only=True))
    # bob's second device, linked through the relay
    e2e = await link(turn_server, out["b1"].e2e, tmp_path, "b2")
    b2 = Login(b1.username, b1.user_id, e2e.device_id, "")
    out["b2"] = Party(b2, e2e, Calls(e2e, relay_only=True))
    for p in out.values():
        p.calls.start()
    try:
        yield out
    finally:
        for p in out.values():
            await p.calls.close()
            await p.e2e.close()


async def test_voice_call_through_the_relay(parties: dict[str, Party]) -> None:
    a, b1, b2 = parties["a"], parties["b1"], parties["b2"]
    await a.calls.driver.place(b1.login.user_id, video=False)
    for b in (b1, b2):
        await b.calls.wait_state(S.INCOMING, timeout=30)
    b2.calls.driver.accept(False)
    await a.calls.wait_state(S.CONNECTED, timeout=60)
    await b2.calls.wait_state(S.CONNECTED, timeout=60)
    v = await b1.calls.wait_state(S.ENDED, timeout=30)
    assert v.end_reason == R.ANSWERED_ELSEWHERE
    # media flows both ways through coturn
    await _until(lambda: a.calls.peers[-1].received["audio"] > 50, 60)
    await _until(lambda: b2.calls.peers[-1].received["audio"] > 50, 60)
    pa = a.calls.peers[-1].pc
    assert pa is not None
    ice = pa.getTransceivers()[0].sender.transport.transport
    assert {c.type for c in ice.iceGatherer.getLocalCandidates()} == {"relay"}
    a.calls.driver.hangup()
    assert (await a.calls.wait_state(S.ENDED)).end_reason == R.HUNG_UP
    assert (await b2.calls.wait_state(S.ENDED)).end_reason == R.HUNG_UP
    # the entry is an ordinary E2E message in the 1:1 chat, seen by both users
    cid = await a.e2e.open_direct(b1.login.user_id)

    def has_entry(msgs: list) -> bool:  # type: ignore[type-arg]
        return any(isinstance(m.content, content_mod.CallLog) and m.content.outcome == "completed"
                   for m in msgs)  # fmt: skip

    await a.e2e.wait_for(has_entry, cid, 30)
    await b1.e2e.wait_for(has_entry, cid, 30)


REFUSED = "invite not delivered: ringing out until the timeout"
IGNORED = "invite from someone who is not a contact"


async def _rings_nowhere(caller: Party, callee: str, devices: list[Party]) -> None:
    """Nothing rings on ``devices``; the invite was refused by the server or dropped by each
    device, and the caller goes on ringing out, as for a callee who does not answer."""
    await caller.calls.driver.place(callee, video=False)

    def settled() -> bool:
        return REFUSED in caller.calls.driver.ignored or all(
            IGNORED in p.calls.driver.ignored for p in devices
        )

    await _until(settled, 30)
    for p in devices:
        assert p.calls.driver.m.current is None
    cur = caller.calls.driver.m.current
    assert cur is not None and cur.state == S.OUTGOING
    caller.calls.driver.hangup()
    await caller.calls.wait_state(S.ENDED)


async def test_a_stranger_rings_nowhere(parties: dict[str, Party]) -> None:
    await _rings_nowhere(
        parties["eve"], parties["b1"].login.user_id, [parties["b1"], parties["b2"]]
    )


async def test_a_blocked_caller_rings_nowhere(parties: dict[str, Party]) -> None:
    from parley.protocol.social import Block

    a, b1, b2 = parties["a"], parties["b1"], parties["b2"]
    await b1.e2e.client.request(Block(user_id=a.login.user_id), 15)
    await _rings_nowhere(a, b1.login.user_id, [b1, b2])
