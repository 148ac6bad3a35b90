"""Two users with two devices each, over the real server: sends both ways, pushes to every
device, history, a device that goes offline and resyncs, and a send retried across a dropped
connection that returns the original seq."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from parley.client import ClientEngine, ConnectionState
from parley.client import effects as fx
from parley.protocol.records import Message
from parley_client import Client, HttpAccounts, SqliteLocalStore
from parley_client.transport import WebSocketTransport
from tests.integration.client_support import (
    assert_local_matches_server,
    envelope,
    make_client,
    server_entries,
    wait_until,
)
from tests.support.accounts import PASSWORD, Login, new_user, unique_name
from tests.support.server import ServerProcess

T = 15.0


async def test_two_users_two_devices_send_receive_and_resync(
    server: ServerProcess, tmp_path: Path
) -> None:
    alice = new_user(server.http_url, "alice", devices=2)
    bob = new_user(server.http_url, "bob", devices=2)
    a1, a2 = (make_client(server.ws_url, lg, tmp_path, f"a{i}") for i, lg in enumerate(alice))
    b1, b2 = (make_client(server.ws_url, lg, tmp_path, f"b{i}") for i, lg in enumerate(bob))
    clients = [a1, a2, b1, b2]
    try:
        for c in clients:
            await c.start()
        for c in clients:
            await c.wait_online(T)
        conv = (await a1.open_direct(bob[0].user_id)).conversation_id

        sent: list[fx.MessageSent] = []
        for sender, count in ((a1, 4), (b1, 4), (a2, 3), (b2, 3)):
            cmids = [await sender.send(conv, envelope(conv)) for _ in range(count)]
            sent += [await sender.wait_sent(m, T) for m in cmids]
        assert not any(s.duplicate for s in sent)
        assert len({s.seq for s in sent}) == len(sent)

        history = await server_entries(a1, conv)
        n = history[-1].seq
        assert n == 1 + len(sent)  # the CREATED membership entry, then every message
        for c in clients:  # every device got every entry, stored once
            await assert_local_matches_server(c, a1, conv)
        # ... by push: each device was pushed at least the messages it did not send itself
        # (the sender's own entry comes from its Sent reply).
        for c, own in ((a1, 4), (b1, 4), (a2, 3), (b2, 3)):
            assert c.engine.stats.entries_pushed >= len(sent) - own

        # b2 goes offline; messages are sent meanwhile; it comes back on the same store.
        b2_db = b2.store.path
        await b2.close()
        clients.remove(b2)
        offline = [await a1.send(conv, envelope(conv)) for _ in range(5)]
        offline += [await b1.send(conv, envelope(conv)) for _ in range(5)]
        for m in offline[:5]:
            await a1.wait_sent(m, T)
        for m in offline[5:]:
            await b1.wait_sent(m, T)
        b2 = Client(server.ws_url, bob[1].token, b2_db)
        clients.append(b2)
        assert b2.cursor(conv) == 0  # cursors load on start
        await b2.start()
        await b2.wait_online(T)
        final = await assert_local_matches_server(b2, a1, conv)
        assert final[-1].seq == n + 10

        # a2 loses its connection (no restart): it reconnects by itself and catches up.
        states = a2.subscribe()
        await a2.drop_connection()
        during = [await b1.send(conv, envelope(conv)) for _ in range(3)]
        for m in during:
            await b1.wait_sent(m, T)
        await assert_local_matches_server(a2, a1, conv)
        await a2.wait_online(T)
        seen = [states.get_nowait() for _ in range(states.qsize())]
        online = [x for x in seen if isinstance(x, fx.ConnectionChanged)]
        assert [x.state for x in online][-1] is ConnectionState.ONLINE
        assert any(x.state is ConnectionState.DISCONNECTED for x in online)
        for c in clients:
            await assert_local_matches_server(c, a1, conv)
    finally:
        for c in clients:
            await c.close()


async def _drive(
    engine: ClientEngine, transport: WebSocketTransport, store: SqliteLocalStore
) -> None:
    """Carry out the engine's commands that matter for a bare send (frames and the outbox)."""
    for e in engine.take_effects():
        if isinstance(e, fx.SendFrame):
            await transport.send(e.data)
        elif isinstance(e, fx.OutboxPut):
            await store.outbox_put(e.item)


async def test_send_retried_after_reply_was_lost_returns_the_original_seq(
    server: ServerProcess, tmp_path: Path
) -> None:
    accounts = HttpAccounts(server.http_url)
    names = [unique_name("ret") for _ in range(2)]
    logins: list[Login] = []
    for name in names:
        reg = await accounts.register(name, PASSWORD)
        lg = await accounts.login(name, PASSWORD, "dev")
        assert lg.user_id == reg.user_id
        logins.append(Login(name, lg.user_id, lg.device_id, lg.token))
    db = tmp_path / "sender.db"
    async with Client(accounts.ws_url, logins[1].token, tmp_path / "peer.db") as peer:
        await peer.wait_online(T)
        conv = (await peer.open_direct(logins[0].user_id)).conversation_id

        # Attempt 1: the engine persists the outbox item and sends it; the connection is
        # closed without reading the reply (as if the device lost the network there).
        store = SqliteLocalStore(db)
        engine = ClientEngine(logins[0].token)
        engine.load(await store.load_cursors(), await store.outbox_all())
        transport = await WebSocketTransport.open(accounts.ws_url)
        engine.connected(time.monotonic())
        await _drive(engine, transport, store)
        engine.frame_received(await asyncio.wait_for(transport.recv(), T), time.monotonic())
        await _drive(engine, transport, store)  # Welcome → Sync
        body = envelope(conv)
        cmid = engine.send_message(conv, body, time.monotonic())
        await _drive(engine, transport, store)
        # The server stored it (seen from the other user) ...
        loop = asyncio.get_running_loop()
        deadline = loop.time() + T
        while True:
            hist = await server_entries(peer, conv)
            mine = [e for e in hist if e.body == Message(body)]
            if mine or loop.time() > deadline:
                break
            await asyncio.sleep(0.05)
        assert len(mine) == 1
        original_seq = mine[0].seq
        await transport.close()  # ... but its Sent reply is never read.
        await store.close()
        assert [i.client_msg_id for i in await SqliteLocalStore(db).outbox_all()] == [cmid]

        # Attempt 2: the device restarts on its store and flushes the outbox by itself.
        async with Client(accounts.ws_url, logins[0].token, db) as sender:
            result = await sender.wait_sent(cmid, T)
            assert result.duplicate is True
            assert result.seq == original_seq
            await wait_until(lambda: sender.outbox_size() == 0, T, "outbox drained")
            assert await sender.store.outbox_all() == []
            hist = await server_entries(sender, conv)
            assert [e.seq for e in hist if e.body == Message(body)] == [original_seq]
            await assert_local_matches_server(sender, peer, conv)


async def test_bad_token_stops_instead_of_reconnecting(
    server: ServerProcess, tmp_path: Path
) -> None:
    async with Client(server.ws_url, "not-a-token", tmp_path / "x.db") as c:
        q = c.subscribe()
        await wait_until(lambda: c.session.stopped, T, "stop after the auth failure")
        assert c.session.stop_reason is not None
        assert c.session.stop_reason.code == "unauthorized"
        assert c.engine.attempt == 0  # no reconnect attempt was counted
        seen = [q.get_nowait() for _ in range(q.qsize())]
        assert not any(
            isinstance(n, fx.ConnectionChanged) and n.state is ConnectionState.ONLINE for n in seen
        )


async def test_lazy_client_pulls_recent_page_in_view_then_older_on_scroll(
    server: ServerProcess, tmp_path: Path
) -> None:
    (alice,) = new_user(server.http_url, "lz_a")
    (bob,) = new_user(server.http_url, "lz_b")
    async with make_client(server.ws_url, alice, tmp_path, "lz_a") as a:
        await a.wait_online(T)
        conv = (await a.open_direct(bob.user_id)).conversation_id
        for _ in range(12):
            await a.wait_sent(await a.send(conv, envelope(conv)), T)  # seqs 2..13
        async with Client(server.ws_url, bob.token, tmp_path / "lz_b.db", eager=False, page=5) as b:
            await b.wait_online(T)
            assert await b.local_entries(conv) == []  # not in view: nothing pulled
            await b.set_in_view(conv)
            await wait_until(lambda: b.cursor(conv) == 13, T, "recent page stored")
            assert [e.seq for e in await b.local_entries(conv)] == [9, 10, 11, 12, 13]
            await b.load_older(conv, 9)
            await wait_until(
                lambda: b.store.db.execute("SELECT count(*) FROM entries").fetchone()[0] == 10,
                T,
                "older page stored",
            )
            local = await b.local_entries(conv)
            assert [e.seq for e in local] == list(range(4, 14))
            server_side = await server_entries(a, conv)
            assert local == server_side[3:]
            assert b.cursor(conv) == 13  # older pages never move the cursor
