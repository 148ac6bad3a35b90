"""E2E through the real server: 1:1 both ways on every device (the sender's other device
included) and a group of three, all with real keys from the key directory."""

from __future__ import annotations

from pathlib import Path

from tests.integration.e2e_support import T, has_texts, link, make
from tests.support.accounts import new_user
from tests.support.server import ServerProcess


async def test_e2e_direct_two_users_two_devices_each(server: ServerProcess, tmp_path: Path) -> None:
    (a1l,) = new_user(server.http_url, "e2ea")
    (b1l,) = new_user(server.http_url, "e2eb")
    a1, b1 = make(server, a1l, tmp_path, "a1"), make(server, b1l, tmp_path, "b1")
    clients = [a1, b1]
    try:
        await a1.start()
        await b1.start()
        # the second device of each user is linked by the first through the server's relay
        a2 = await link(server, a1, tmp_path, "a2")
        b2 = await link(server, b1, tmp_path, "b2")
        clients += [a2, b2]
        for c in clients:
            await c.wait_online(T)
        cid = await a1.open_direct(b1l.user_id)
        m1 = await a1.send_text(cid, "hello bob from a1")
        assert await a1.wait_sent(m1, T) >= 1
        for c in clients:
            await c.wait_for(has_texts("hello bob from a1"), cid, T)
        m2 = await b2.send_text(cid, "hi alice from b2")
        await b2.wait_sent(m2, T)
        m3 = await a2.send_text(cid, "and a2 too")
        await a2.wait_sent(m3, T)
        for c in clients:
            msgs = await c.wait_for(
                has_texts("hello bob from a1", "hi alice from b2", "and a2 too"), cid, T
            )
            senders = {(m.sender, m.sender_device) for m in msgs if m.state == "decrypted"}
            assert (a1l.user_id, a1l.device_id) in senders
            assert (b1l.user_id, b2.device_id) in senders
        # what the server holds is ciphertext only
        page = await a1.client.server_history(cid)
        assert page.entries and all(b"hello bob" not in e.body.envelope for e in page.entries
                                    if hasattr(e.body, "envelope"))  # fmt: skip
    finally:
        for c in clients:
            await c.close()


async def test_e2e_group_of_three(server: ServerProcess, tmp_path: Path) -> None:
    users = [new_user(server.http_url, f"e2eg{i}")[0] for i in range(3)]
    cs = [make(server, u, tmp_path, f"g{i}") for i, u in enumerate(users)]
    try:
        for c in cs:
            await c.start()
            await c.wait_online(T)
        cid = await cs[0].create_group([u.user_id for u in users[1:]], "the three")
        await cs[0].wait_sent(await cs[0].send_text(cid, "group hello"), T)
        for c in cs:
            await c.wait_for(has_texts("group hello"), cid, T)
        await cs[2].wait_sent(await cs[2].send_text(cid, "reply from third"), T)
        for c in cs:
            await c.wait_for(has_texts("group hello", "reply from third"), cid, T)
            assert any(m.content is not None and getattr(m.content, "name", None) == "the three"
                       for m in await c.messages(cid))  # fmt: skip
    finally:
        for c in cs:
            await c.close()
