"""The client engine's social support over the CPython façade against the real server:
refs and mentions through the outbox, signals as notifications, SocialState and MessageFold."""

from __future__ import annotations

import asyncio
from pathlib import Path

from parley.client import effects as fx
from parley.client.social import MessageFold, SocialState
from parley.protocol.ops import Conversation, DirectOpen
from parley.protocol.records import RefKind
from parley.protocol.social import FriendAccept, FriendRequest, Recall, Typing
from tests.integration.client_support import envelope, make_client, wait_until
from tests.support.accounts import new_user
from tests.support.server import ServerProcess

T = 10.0


async def test_client_social_flow(social_server: ServerProcess, tmp_path: Path) -> None:
    (alice,) = new_user(social_server.http_url, "alice")
    (bob,) = new_user(social_server.http_url, "bob")
    a = make_client(social_server.ws_url, alice, tmp_path, "a")
    b = make_client(social_server.ws_url, bob, tmp_path, "b")
    state = SocialState()
    purged: list[tuple[bytes, int]] = []

    def on_bob(n: fx.Notification) -> None:
        loop = asyncio.get_running_loop()
        if isinstance(n, fx.EventsStored):
            purged.extend(state.apply_events(n.events))
        elif isinstance(n, fx.SignalReceived):
            state.apply_signal(n.signal, loop.time())

    b.session.add_listener(on_bob)
    await a.start()
    await b.start()
    try:
        await a.wait_online(T)
        await b.wait_online(T)
        await a.request(FriendRequest(user_id=bob.user_id, note="hey"), T)
        await wait_until(lambda: alice.user_id in state.incoming, T, "the request event")
        assert state.incoming[alice.user_id] == "hey"
        await b.request(FriendAccept(user_id=alice.user_id), T)
        await wait_until(lambda: alice.user_id in state.contacts, T, "the contact event")
        conv = await a.request(DirectOpen(user_id=bob.user_id), T)
        assert isinstance(conv, Conversation)
        cid = conv.info.conversation_id
        first = await a.session.send_message(cid, envelope(cid), mentions=[bob.user_id])
        sent = await a.wait_sent(first, T)
        react = await b.session.send_message(
            cid, envelope(cid), ref_seq=sent.seq, ref_kind=RefKind.REACTION
        )
        reacted = await b.wait_sent(react, T)
        await wait_until(lambda: bool(state.mentions.get(cid)), T, "the mention event")
        assert state.mentions[cid] == [sent.seq]
        await a.request(Typing(conversation_id=cid, typing=True), T)
        await wait_until(
            lambda: state.typing_in(cid, asyncio.get_running_loop().time()) == [alice.user_id],
            T,
            "the typing signal",
        )
        # fold what Bob's device stored (content stands in for decrypted plaintext)
        await wait_until(lambda: b.cursor(cid) >= reacted.seq, T, "bob's entries")
        entries = await b.local_entries(cid)
        fold: MessageFold[str] = MessageFold()
        for e in entries:
            fold.add(e, "👍" if e.seq == reacted.seq else "hi")
        assert fold.messages[sent.seq].reactions == {"👍": 1}
        # Alice recalls: Bob's device is told to purge, through its event timeline
        await a.request(Recall(conversation_id=cid, seq=sent.seq), T)
        await wait_until(lambda: (cid, sent.seq) in purged, T, "the recall event")
        assert state.mentions[cid] == []
    finally:
        await a.close()
        await b.close()
