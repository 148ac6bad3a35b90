"""Key lifecycle through the real server: a removed device gets no new keys; a message that
arrives before its key waits and then decrypts; an AIK change produces a notice and, for a
VERIFIED contact, blocks sending until accepted."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import httpx
import msgspec
import pytest

from parley.crypto.errors import SendingBlocked
from parley.protocol import keys as kproto
from tests.integration.e2e_support import T, has_texts, link, make
from tests.support.accounts import login, new_user
from tests.support.server import ServerProcess


async def test_e2e_removed_device_cannot_decrypt_new_messages(
    server: ServerProcess, tmp_path: Path
) -> None:
    (al,) = new_user(server.http_url, "rma")
    (bl,) = new_user(server.http_url, "rmb")
    a1, b1 = make(server, al, tmp_path, "rm-a1"), make(server, bl, tmp_path, "rm-b1")
    b2 = None
    try:
        for c in (a1, b1):
            await c.start()
            await c.wait_online(T)
        b2 = await link(server, b1, tmp_path, "rm-b2")
        cid = await a1.open_direct(bl.user_id)
        await a1.wait_sent(await a1.send_text(cid, "everyone reads this"), T)
        await b2.wait_for(has_texts("everyone reads this"), cid, T)
        await b1.remove_device(b2.device_id)
        s_a = await a1.wait_sent(await a1.send_text(cid, "not for b2"), T)
        s_b = await b1.wait_sent(await b1.send_text(cid, "b2 is gone"), T)
        await b1.wait_for(has_texts("not for b2", "b2 is gone"), cid, T)
        await a1.wait_for(has_texts("not for b2", "b2 is gone"), cid, T)
        # b2 still gets the entries (the server routes to it) but never the keys, even after
        # asking the sender (skdm_req) and its former sibling (key_req) again
        msgs = await b2.wait_for(
            lambda ms: {s_a, s_b} <= {m.seq for m in ms if m.state == "waiting"}, cid, T
        )
        await b2.retry_requests()
        await asyncio.sleep(1.0)  # bounded: give any (wrong) answer time to arrive
        msgs = await b2.messages(cid)
        states = {m.seq: m.state for m in msgs}
        assert states[s_a] == "waiting" and states[s_b] == "waiting"
        assert "not for b2" not in await b2.texts(cid)
        assert "everyone reads this" in await b2.texts(cid)
    finally:
        for c in (a1, b1, b2):
            if c is not None:
                await c.close()


async def test_e2e_message_before_its_key_waits_then_decrypts(
    server: ServerProcess, tmp_path: Path
) -> None:
    (al,) = new_user(server.http_url, "wka")
    (bl,) = new_user(server.http_url, "wkb")
    a1 = make(server, al, tmp_path, "wk-a1")
    b1 = make(server, bl, tmp_path, "wk-b1", process_to_device=False)
    try:
        for c in (a1, b1):
            await c.start()
            await c.wait_online(T)
        cid = await a1.open_direct(bl.user_id)
        seq = await a1.wait_sent(await a1.send_text(cid, "key comes later"), T)
        msgs = await b1.wait_for(lambda ms: any(m.seq == seq for m in ms), cid, T)
        assert [m.state for m in msgs if m.seq == seq] == ["waiting"]
        assert "key comes later" not in await b1.texts(cid)
        b1.set_process_to_device(True)  # the SKDM (held in the to-device queue) arrives now
        msgs = await b1.wait_for(has_texts("key comes later"), cid, T)
        assert [m.state for m in msgs if m.seq == seq] == ["decrypted"]
    finally:
        for c in (a1, b1):
            await c.close()


def _reset_account_key(server: ServerProcess, user_id: str) -> None:
    """What an operator's account reset (or a malicious server) does: forget the pinned AIK
    and device list of ``user_id`` in the server's key directory."""
    dbs = [p for p in server.data_dir.rglob("*") if p.is_file() and p.suffix in (".db", ".sqlite",
           ".sqlite3")]  # fmt: skip
    n = 0
    for p in dbs:
        db = sqlite3.connect(p, timeout=10)
        try:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
            if "kd_devlists" in tables:
                n += db.execute("DELETE FROM kd_devlists WHERE user_id = ?", (user_id,)).rowcount
                db.commit()
        finally:
            db.close()
    assert n == 1, f"no device list of {user_id} in {dbs}"


async def test_e2e_aik_change_notice_and_verified_contact_blocks(
    fresh_server: ServerProcess, tmp_path: Path
) -> None:
    server = fresh_server
    (al,) = new_user(server.http_url, "aka")
    (cl,) = new_user(server.http_url, "akc")
    a1, c1 = make(server, al, tmp_path, "ak-a1"), make(server, cl, tmp_path, "ak-c1")
    c2 = None
    try:
        for c in (a1, c1):
            await c.start()
            await c.wait_online(T)
        cid = await a1.open_direct(cl.user_id)
        await a1.wait_sent(await a1.send_text(cid, "first contact"), T)
        await c1.wait_for(has_texts("first contact"), cid, T)
        before = a1.safety_number(cl.user_id)
        assert before == c1.safety_number(al.user_id)  # both sides compute the same number
        a1.mark_verified(cl.user_id)
        await c1.close()
        _reset_account_key(server, cl.user_id)
        who = login(server.http_url, cl.username, device="reset")
        c2 = make(server, who, tmp_path, "ak-c2")  # a fresh device with a NEW account key
        await c2.start()
        await c2.wait_online(T)
        notices = await a1.refresh_devlist(cl.user_id)
        assert [n.kind for n in notices if n.kind == "key_changed"] == ["key_changed"]
        assert a1.safety_number(cl.user_id) != before
        with pytest.raises(SendingBlocked):
            await a1.send_text(cid, "blocked until accepted")
        assert "blocked until accepted" not in [
            getattr(m.content, "body", None) for m in await a1.messages(cid)
        ]
        a1.accept_key_change(cl.user_id)
        await a1.wait_sent(await a1.send_text(cid, "after accepting"), T)
        await c2.wait_for(has_texts("after accepting"), cid, T)
        assert "first contact" not in await c2.texts(cid)  # the new key never got old keys
    finally:
        for c in (a1, c2):
            if c is not None:
                await c.close()


async def test_e2e_exhausted_opks_are_refilled(server: ServerProcess, tmp_path: Path) -> None:
    """Others fetching our bundles use up our one-time prekeys; the first PreKeyMessage that
    arrives after the server reports ``low`` makes the device upload a batch."""
    (al,) = new_user(server.http_url, "opka")
    (bl,) = new_user(server.http_url, "opkb")
    (cl,) = new_user(server.http_url, "opkc")
    a1, b1 = make(server, al, tmp_path, "opk-a1"), make(server, bl, tmp_path, "opk-b1")
    keys = server.http_url + "/api/v1/keys"
    own = httpx.AsyncClient(base_url=keys, headers={"authorization": f"Bearer {al.token}"})
    other = httpx.AsyncClient(base_url=keys, headers={"authorization": f"Bearer {cl.token}"})

    async def count() -> kproto.OpkCountReply:
        r = await own.get("/count")
        r.raise_for_status()
        return msgspec.json.decode(r.content, type=kproto.OpkCountReply)

    try:
        for c in (a1, b1):
            await c.start()
            await c.wait_online(T)
        async with asyncio.timeout(T):  # a1's check on connect is done (nothing was low)
            while a1.st.own.opks_checked_ms == 0:
                await asyncio.sleep(0.05)
        first = await count()
        assert not first.low and first.count == kproto.OPK_LOW_WATER * 2
        for _ in range(first.count):  # bounded: one OPK per fetch
            if (low := await count()).low:
                break
            (await other.get(f"/users/{al.user_id}/bundles")).raise_for_status()
        assert low.low and low.count == kproto.OPK_LOW_WATER - 1
        # bob's first message: X3DH with one more of a1's OPKs, a PreKeyMessage to a1
        cid = await b1.open_direct(al.user_id)
        await b1.wait_sent(await b1.send_text(cid, "uses an opk"), T)
        await a1.wait_for(has_texts("uses an opk"), cid, T)
        async with asyncio.timeout(T):
            while (now := await count()).low:
                await asyncio.sleep(0.1)
        assert now.count == low.count - 1 + kproto.OPK_BATCH
        assert not a1.errors
    finally:
        for c in (a1, b1):
            await c.close()
        await own.aclose()
        await other.aclose()
