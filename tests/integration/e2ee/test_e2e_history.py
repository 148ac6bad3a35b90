"""A device linked LATER reads earlier history: through the key backup (recovery key,
passphrase) and through key forwarding (key_req -> key_fwd) from the first device."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from parley.crypto.backend import PWHASH_MEMLIMIT_MIN, PWHASH_OPSLIMIT_MIN
from parley.crypto.errors import DecryptionFailed
from tests.integration.e2e_support import T, has_texts, link, make, start_link
from tests.support.accounts import new_user
from tests.support.server import ServerProcess

HISTORY = ("before the link 1", "before the link 2 from bob", "before the link 3")


async def _history(server: ServerProcess, tmp: Path, prefix: str):  # type: ignore[no-untyped-def]
    (al,) = new_user(server.http_url, prefix + "a")
    (bl,) = new_user(server.http_url, prefix + "b")
    a1, b1 = make(server, al, tmp, prefix + "a1"), make(server, bl, tmp, prefix + "b1")
    for c in (a1, b1):
        await c.start()
        await c.wait_online(T)
    cid = await a1.open_direct(bl.user_id)
    await a1.wait_sent(await a1.send_text(cid, HISTORY[0]), T)
    await b1.wait_for(has_texts(HISTORY[0]), cid, T)
    await b1.wait_sent(await b1.send_text(cid, HISTORY[1]), T)
    await a1.wait_sent(await a1.send_text(cid, HISTORY[2]), T)
    await a1.wait_for(has_texts(*HISTORY), cid, T)
    return al, a1, b1, cid


@pytest.mark.parametrize("mode", ["recovery_key", "passphrase"])
async def test_e2e_new_device_reads_history_from_backup(
    server: ServerProcess, tmp_path: Path, mode: str
) -> None:
    _, a1, b1, cid = await _history(server, tmp_path, "bk" + mode[:2])
    a2 = None
    try:
        if mode == "passphrase":
            text = await a1.create_backup(passphrase="pass phrase 1", opslimit=PWHASH_OPSLIMIT_MIN,
                                          memlimit=PWHASH_MEMLIMIT_MIN)  # fmt: skip
        else:
            text = await a1.create_backup()
        # a1 links a2, then goes offline for good: no key can be forwarded, only the backup
        # helps (bob answers skdm_req with his CURRENT iteration only: no history)
        code, linking = await start_link(server, tmp_path, "bk-a2" + mode)
        await a1.accept_link(code)
        await a1.close()
        a2 = await asyncio.wait_for(linking, T)
        await a2.start()
        await a2.wait_online(T)
        msgs = await a2.wait_for(lambda ms: sum(m.state == "waiting" for m in ms) >= 3, cid, T)
        assert not [m for m in msgs if m.state == "decrypted" and m.seq <= 3]
        if mode == "passphrase":
            with pytest.raises(DecryptionFailed):
                await a2.restore_backup([cid], passphrase="wrong phrase")
            n = await a2.restore_backup([cid], passphrase="pass phrase 1")
        else:
            n = await a2.restore_backup([cid], recovery_key=text)
        assert n >= 2
        await a2.wait_for(has_texts(*HISTORY), cid, T)
    finally:
        for c in (a2, b1):
            if c is not None:
                await c.close()


async def test_e2e_new_device_reads_history_by_key_forwarding(
    server: ServerProcess, tmp_path: Path
) -> None:
    al, a1, b1, cid = await _history(server, tmp_path, "kf")
    a2 = None
    try:
        a2 = await link(server, a1, tmp_path, "kf-a2")
        # no backup exists: the history keys come from a1 answering a2's key_req
        msgs = await a2.wait_for(has_texts(*HISTORY), cid, T)
        assert {m.sender for m in msgs if m.state == "decrypted"} == {al.user_id, b1.user_id}
        # and the new device is a full member from now on
        await b1.wait_sent(await b1.send_text(cid, "after the link"), T)
        await a2.wait_for(has_texts("after the link"), cid, T)
    finally:
        for c in (a2, a1, b1):
            if c is not None:
                await c.close()
