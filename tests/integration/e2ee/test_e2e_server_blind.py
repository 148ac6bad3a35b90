"""Proof the server is blind: unique markers in a text, a caption, a file's name and content (a
real upload to the server's blob store) and a group name travel through the real server; afterwards no file under its data dir (db, -wal, -shm,
everything) and not its log contain any marker, in UTF-8 or UTF-16-LE. The clients DO show
every marker decrypted, so the search would find a leak."""

from __future__ import annotations

import secrets
from pathlib import Path

from parley.crypto.content import Att, GroupUpdate, Text
from parley_client import attachments
from tests.integration.e2e_support import T, make
from tests.support.accounts import new_user
from tests.support.server import ServerProcess


def _marker(kind: str) -> str:
    return f"MARK{kind}{secrets.token_hex(8)}"


async def test_e2e_server_never_sees_content(fresh_server: ServerProcess, tmp_path: Path) -> None:
    server = fresh_server
    text, caption, fname, gname = (_marker(k) for k in ("text", "cap", "file", "group"))
    dtext = _marker("direct")
    users = [new_user(server.http_url, f"bl{i}")[0] for i in range(3)]
    cs = [make(server, u, tmp_path, f"bl{i}") for i, u in enumerate(users)]
    try:
        for c in cs:
            await c.start()
            await c.wait_online(T)
        direct = await cs[0].open_direct(users[1].user_id)
        await cs[0].wait_sent(await cs[0].send_text(direct, dtext), T)
        gid = await cs[0].create_group([users[1].user_id, users[2].user_id], gname)
        await cs[1].wait_for(lambda ms: any(isinstance(m.content, GroupUpdate) for m in ms),
                             gid, T)  # fmt: skip
        await cs[1].wait_sent(await cs[1].send_text(gid, text), T)
        fbody = _marker("body")
        upload = tmp_path / fname
        upload.write_text(f"{fbody}\n" * 50)
        ptr = await attachments.upload_file(cs[2].client.session, server.http_url, upload)
        await cs[2].wait_for(lambda ms: any(isinstance(m.content, GroupUpdate) for m in ms),
                             gid, T)  # fmt: skip
        await cs[2].wait_sent(await cs[2].send_attachment(gid, ptr, caption), T)
        seen: set[str] = set()
        for c in cs:
            msgs = await c.wait_for(
                lambda ms: any(isinstance(m.content, Att) for m in ms)
                and any(isinstance(m.content, Text) and m.content.body == text for m in ms),
                gid, T,
            )  # fmt: skip
            for m in msgs:
                if isinstance(m.content, Text):
                    seen.add(m.content.body)
                elif isinstance(m.content, Att):
                    seen.update({m.content.caption or "", m.content.att.name or ""})
                elif isinstance(m.content, GroupUpdate):
                    seen.add(m.content.name)
        seen.update(await cs[1].texts(direct))
        got = await attachments.fetch_blob(cs[1].client.session, server.http_url, gid, ptr)
        assert got == upload.read_bytes(), "a member downloads the file byte-identical"
        seen.add(got.decode().splitlines()[0])
        markers = [text, caption, fname, gname, dtext, fbody]
        assert set(markers) <= seen, "the clients must show every marker decrypted"
    finally:
        for c in cs:
            await c.close()
    server.stop()  # flush everything the server would write
    blobs = [(str(p), p.read_bytes()) for p in server.data_dir.rglob("*") if p.is_file()]
    assert any(name.endswith(".db") or "sqlite" in name for name, _ in blobs), blobs
    blobs.append(("server log", server.log().encode("utf-8")))
    for name, data in blobs:
        for m in markers:
            for enc in ("utf-8", "utf-16-le"):
                assert m.encode(enc) not in data, f"{m} ({enc}) leaked into {name}"


async def test_e2e_server_never_sees_call_signalling(
    fresh_server: ServerProcess, tmp_path: Path
) -> None:
    """A real aiortc call (parley_client.calls, host candidates: this server has no TURN)
    signalled through the server: the ICE passwords, DTLS fingerprints and candidate addresses
    of both SDPs appear nowhere in its files or log."""
    import re

    import pytest

    pytest.importorskip("aiortc")
    from parley.client.call import CallState
    from parley_client.calls import Calls
    from tests.integration.social_support import befriend, connect

    server = fresh_server
    a, b = (new_user(server.http_url, f"blc{i}")[0] for i in range(2))
    ra, rb = await connect(server, a), await connect(server, b)
    await befriend(ra, rb, a.user_id, b.user_id)
    await ra.close()
    await rb.close()
    cs = [make(server, u, tmp_path, f"blc{i}") for i, u in enumerate((a, b))]
    calls = [Calls(c) for c in cs]
    sdps: list[str] = []
    try:
        for c, k in zip(cs, calls, strict=True):
            await c.start()
            await c.wait_online(T)
            k.start()
        await calls[0].driver.place(b.user_id, video=False)
        await calls[1].wait_state(CallState.INCOMING, timeout=T)
        calls[1].driver.accept(False)
        for k in calls:
            await k.wait_state(CallState.CONNECTED, timeout=60)
            pc = k.peers[-1].pc
            assert pc is not None
            sdps.append(str(pc.localDescription.sdp))
        calls[0].driver.hangup()
        await calls[1].wait_state(CallState.ENDED, timeout=T)
    finally:
        for k in calls:
            await k.close()
        for c in cs:
            await c.close()
    secrets_of_call: list[str] = []
    for sdp in sdps:
        secrets_of_call += re.findall(r"a=ice-pwd:(\S+)", sdp)
        secrets_of_call += re.findall(r"a=fingerprint:\S+ (\S+)", sdp)
        # "<address> <port> typ host": the address with its port, as the candidate carries it
        secrets_of_call += [f"{ip} {port} typ" for ip, port in
                            re.findall(r"a=candidate:\S+ \d \S+ \d+ (\S+) (\d+) typ", sdp)]  # fmt: skip
    assert len(secrets_of_call) >= 6, sdps
    server.stop()
    blobs = [(str(p), p.read_bytes()) for p in server.data_dir.rglob("*") if p.is_file()]
    blobs.append(("server log", server.log().encode("utf-8")))
    for name, data in blobs:
        for m in secrets_of_call:
            for enc in ("utf-8", "utf-16-le"):
                assert m.encode(enc) not in data, (
                    f"call signalling {m!r} ({enc}) leaked into {name}"
                )
