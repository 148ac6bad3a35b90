"""The server is SIGKILLed while clients send continuously, then restarted on the same data
dir: every acknowledged message survives, seqs stay gap-free, and the clients reconnect by
themselves and finish their outboxes without duplicates."""

from __future__ import annotations

import asyncio
from pathlib import Path

from parley.client import effects as fx
from parley.protocol.records import Message
from parley_client import Client
from tests.integration.client_support import (
    assert_local_matches_server,
    envelope,
    make_client,
    server_entries,
    wait_until,
)
from tests.support.accounts import new_user
from tests.support.server import ServerProcess

T = 30.0
PER_SENDER = 40


async def test_sigkill_mid_stream_loses_no_acknowledged_message(
    fresh_server: ServerProcess, tmp_path: Path
) -> None:
    users = [new_user(fresh_server.http_url, f"k{i}")[0] for i in range(3)]
    clients = [make_client(fresh_server.ws_url, u, tmp_path, f"k{i}") for i, u in enumerate(users)]
    acked: dict[str, fx.MessageSent] = {}  # Sent replies received, across the crash

    def on_note(n: fx.Notification) -> None:
        if isinstance(n, fx.MessageSent):
            acked[n.client_msg_id] = n

    try:
        for c in clients:
            c.session.add_listener(on_note)
            await c.start()
        for c in clients:
            await c.wait_online(T)
        group = await clients[0].create_group([u.user_id for u in users[1:]])
        conv = group.conversation_id
        await wait_until(lambda: all(c.cursor(conv) >= 1 for c in clients), T, "group seen")

        bodies: dict[str, bytes] = {}
        acked_before_kill: dict[str, fx.MessageSent] = {}

        async def sender(c: Client) -> None:
            for _ in range(PER_SENDER):
                body = envelope(conv)
                bodies[await c.send(conv, body)] = body
                await asyncio.sleep(0.01)

        senders = [asyncio.ensure_future(sender(c)) for c in clients]
        await wait_until(lambda: len(acked) >= 20, T, "some acknowledged sends")
        await asyncio.to_thread(fresh_server.kill)
        acked_before_kill.update(acked)
        assert any(not t.done() for t in senders), "the kill should land mid-stream"
        await asyncio.sleep(0.3)  # clients notice and start backing off
        await asyncio.to_thread(fresh_server.start)
        await asyncio.wait_for(asyncio.gather(*senders), T)

        # Every client finishes its outbox by itself.
        await wait_until(lambda: all(c.outbox_size() == 0 for c in clients), T, "outboxes drained")
        assert set(acked) == set(bodies)
        for c in clients:
            assert await c.store.outbox_all() == []

        history = await server_entries(clients[0], conv)
        n = len(bodies) + 1  # the CREATED entry, then each message exactly once
        assert [e.seq for e in history] == list(range(1, n + 1))
        by_body = {e.body.envelope: e.seq for e in history if isinstance(e.body, Message)}
        assert len(by_body) == len(bodies), "a message is missing or duplicated"
        for cmid, body in bodies.items():
            assert by_body[body] == acked[cmid].seq
        for cmid, sent in acked_before_kill.items():  # acknowledged before the crash: kept
            assert by_body[bodies[cmid]] == sent.seq
        for c in clients:
            await assert_local_matches_server(c, clients[0], conv, timeout=T)
        dups = sum(s.duplicate for s in acked.values())
        print(
            f"acked before kill {len(acked_before_kill)}, total {len(acked)}, retried duplicates {dups}"
        )
    finally:
        for c in clients:
            await c.close()
