"""Proof the server is blind: unique markers in a text, a caption, a file name and a group
name travel through the real server; afterwards no file under its data dir (db, -wal, -shm,
everything) and not its log contain any marker, in UTF-8 or UTF-16-LE. The clients DO show
every marker decrypted, so the search would find a leak."""

from __future__ import annotations

import secrets
from pathlib import Path

from parley.crypto.attachments import AttachmentPointer
from parley.crypto.b64 import b64e
from parley.crypto.content import Att, GroupUpdate, Text
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
        ptr = AttachmentPointer(
            id="att-" + secrets.token_hex(4), key=b64e(secrets.token_bytes(32)),
            digest=b64e(secrets.token_bytes(32)), size=1234, blob_size=1275,
            mime="application/octet-stream", name=fname,
        )  # fmt: skip
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
        markers = [text, caption, fname, gname, dtext]
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
