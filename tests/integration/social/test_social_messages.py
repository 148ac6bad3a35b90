"""Recall, references (edit / reaction / reply), mentions, read positions and receipts, typing,
presence: against the real server, with two or three users."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from parley.protocol.frames import SignalPush
from parley.protocol.invites import GroupInviteAccept
from parley.protocol.ops import (
    GroupCreate,
    History,
    HistoryPage,
    Send,
    Sent,
    SyncReply,
    SyncRequest,
)
from parley.protocol.records import (
    Mentioned,
    Message,
    MessageRecalled,
    ReadPosition,
    Recalled,
    RefKind,
)
from parley.protocol.signals import PresenceSignal, ReceiptSignal, TypingSignal
from parley.protocol.social import (
    PresenceGet,
    PresenceList,
    ProfileSet,
    ReadMark,
    ReadMarked,
    Recall,
    RecallDone,
    ReceiptList,
    Receipts,
    Typing,
    TypingAck,
)
from tests.integration.social_support import befriend, connect, direct, next_event, users
from tests.support.rawclient import RawClient, envelope_for, still_serves
from tests.support.server import ServerProcess


async def _send(c: RawClient, cid: bytes, mid: str, **extra: object) -> Sent:
    result: Sent = await c.call(
        Send(conversation_id=cid, client_msg_id=mid, envelope=envelope_for(cid), **extra)  # type: ignore[arg-type]
    )
    return result


async def _signal(c: RawClient, kind: type[object], timeout: float = 5.0) -> object:
    for _ in range(50):
        push: SignalPush = await c.next_push(SignalPush, timeout)
        if isinstance(push.signal, kind):
            return push.signal
    raise AssertionError(f"no {kind.__name__}")


async def _group(social_server: ServerProcess) -> tuple[list[RawClient], list[str], bytes]:
    alice, bob, carol = users(social_server, "alice", "bob", "carol")
    clients = [await connect(social_server, u) for u in (alice, bob, carol)]
    ids = [alice.user_id, bob.user_id, carol.user_id]
    conv = await clients[0].call(GroupCreate(members=ids[1:]))
    cid = conv.info.conversation_id
    for client in clients[1:]:  # strangers to alice: invited (the default policy), they accept
        await client.call(GroupInviteAccept(conversation_id=cid))
    return clients, ids, cid


async def test_recall_tombstones_envelope_and_reaches_every_timeline(
    social_server: ServerProcess,
) -> None:
    (a, b, c), (alice, _bob, _carol), cid = await _group(social_server)
    try:
        m = await _send(b, cid, "m1")
        edit = await _send(b, cid, "m1-edit", ref_seq=m.seq, ref_kind=RefKind.EDIT)
        other = await _send(c, cid, "c1")
        # a plain member cannot recall someone else's message; the owner can, Carol her own
        assert (await b.fail(Recall(conversation_id=cid, seq=other.seq))).code == "forbidden"
        done: RecallDone = await a.call(Recall(conversation_id=cid, seq=m.seq))
        assert done.also == [edit.seq]
        again: RecallDone = await b.call(Recall(conversation_id=cid, seq=m.seq))
        assert again.seq == m.seq  # idempotent
        event = await next_event(c, MessageRecalled)
        assert event == MessageRecalled(conversation_id=cid, seq=m.seq, by=alice, also=[edit.seq])
        page: HistoryPage = await c.call(History(conversation_id=cid))
        bodies = {e.seq: e.body for e in page.entries}
        assert isinstance(bodies[m.seq], Recalled) and bodies[m.seq].by == alice
        assert isinstance(bodies[edit.seq], Recalled)
        assert isinstance(bodies[other.seq], Message)
        # an offline device learns it at sync
        synced: SyncReply = await b.call(SyncRequest())
        assert any(isinstance(e.body, MessageRecalled) for e in synced.events)
        # references to a tombstone, membership entries, missing seqs: not_found
        for seq in (m.seq, 1, 999):
            err = await c.fail(Send(conversation_id=cid, client_msg_id=f"r{seq}",
                                    envelope=envelope_for(cid), ref_seq=seq,
                                    ref_kind=RefKind.REPLY))  # fmt: skip
            assert err.code == "not_found"
        assert (await a.fail(Recall(conversation_id=cid, seq=1))).code == "not_found"
        assert (await a.fail(Recall(conversation_id=cid, seq=999))).code == "not_found"
        outsider = (await _group(social_server))[0]
        try:
            err = await outsider[1].fail(Recall(conversation_id=cid, seq=other.seq))
            assert err.code == "not_member"
        finally:
            for x in outsider:
                await x.close()
    finally:
        for x in (a, b, c):
            await x.close()
    # the envelope bytes are gone from storage, not just hidden
    db = sqlite3.connect(f"{(social_server.data_dir / 'parley.db').as_uri()}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT seq, recalled, length(body) FROM entries WHERE conversation_id = ?", (cid,)
        ).fetchall()
    finally:
        db.close()
    by_seq = {seq: (recalled, size) for seq, recalled, size in rows}
    assert by_seq[m.seq][0] == 1 and by_seq[m.seq][1] < 100  # envelopes are > 120 bytes
    assert by_seq[other.seq][0] == 0 and by_seq[other.seq][1] > 120


async def test_recall_window(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "data", env={"PARLEY_RECALL_WINDOW_S": "0.3"})
    srv.start()
    try:
        alice, bob = users(srv, "alice", "bob")
        a, b = await connect(srv, alice), await connect(srv, bob)
        await befriend(a, b, alice.user_id, bob.user_id)
        cid = await direct(a, bob.user_id)
        sent = await _send(a, cid, "late")
        await asyncio.sleep(0.6)
        assert (await a.fail(Recall(conversation_id=cid, seq=sent.seq))).code == "too_late"
        await a.close()
        await b.close()
    finally:
        srv.stop()


async def test_references_and_mentions(social_server: ServerProcess) -> None:
    (a, b, c), (alice, bob, carol), cid = await _group(social_server)
    try:
        m = await _send(a, cid, "hello", mentions=[bob, carol, bob, alice])
        mb = await next_event(b, Mentioned)
        assert mb == Mentioned(conversation_id=cid, seq=m.seq, by=alice)
        assert (await next_event(c, Mentioned)).seq == m.seq
        react = await _send(b, cid, "r1", ref_seq=m.seq, ref_kind=RefKind.REACTION)
        reply = await _send(c, cid, "re1", ref_seq=m.seq, ref_kind=RefKind.REPLY)
        page: HistoryPage = await b.call(History(conversation_id=cid, after_seq=m.seq - 1))
        refs = {e.seq: (e.body.ref_seq, e.body.ref_kind) for e in page.entries
                if isinstance(e.body, Message)}  # fmt: skip
        assert refs[react.seq] == (m.seq, RefKind.REACTION)
        assert refs[reply.seq] == (m.seq, RefKind.REPLY)
        first = next(e for e in page.entries if e.seq == m.seq)
        assert isinstance(first.body, Message) and sorted(first.body.mentions) == sorted(
            [bob, carol]
        )
        # only the sender edits; no reactions to reactions; both ref fields or neither
        bad = Send(conversation_id=cid, client_msg_id="e", envelope=envelope_for(cid),
                   ref_seq=m.seq, ref_kind=RefKind.EDIT)  # fmt: skip
        assert (await b.fail(bad)).code == "forbidden"
        bad = Send(conversation_id=cid, client_msg_id="rr", envelope=envelope_for(cid),
                   ref_seq=react.seq, ref_kind=RefKind.REACTION)  # fmt: skip
        assert (await c.fail(bad)).code == "forbidden"
        half = Send(conversation_id=cid, client_msg_id="h", envelope=envelope_for(cid), ref_seq=1)
        assert (await a.fail(half)).code == "invalid"
        # mentions: members only, bounded
        outsider = Send(conversation_id=cid, client_msg_id="o", envelope=envelope_for(cid),
                        mentions=["no-such-user"])  # fmt: skip
        assert (await a.fail(outsider)).code == "invalid"
        many = Send(conversation_id=cid, client_msg_id="many", envelope=envelope_for(cid),
                    mentions=[bob] * 51)  # fmt: skip
        assert (await a.fail(many)).code == "too_large"
    finally:
        for x in (a, b, c):
            await x.close()


async def test_read_positions_receipts_and_unread(social_server: ServerProcess) -> None:
    (a, b, c), (_alice, bob, _carol), cid = await _group(social_server)
    try:
        for i in range(3):
            last = await _send(a, cid, f"m{i}")
        synced: SyncReply = await b.call(SyncRequest())
        state = next(s for s in synced.conversations if s.conversation_id == cid)
        assert (state.read_seq, state.unread) == (0, 3)
        marked: ReadMarked = await b.call(ReadMark(conversation_id=cid, seq=last.seq - 1))
        assert marked.seq == last.seq - 1
        # monotonic: a lower mark changes nothing
        assert (await b.call(ReadMark(conversation_id=cid, seq=1))).seq == last.seq - 1
        receipt = await _signal(a, ReceiptSignal)
        assert receipt == ReceiptSignal(conversation_id=cid, user_id=bob, seq=last.seq - 1)
        synced = await b.call(SyncRequest())
        state = next(s for s in synced.conversations if s.conversation_id == cid)
        assert (state.read_seq, state.unread) == (last.seq - 1, 1)
        assert any(
            e.body == ReadPosition(conversation_id=cid, seq=last.seq - 1) for e in synced.events
        )
        # Carol turns read receipts off: her position is not shown to others
        await c.call(ProfileSet(read_receipts=False))
        await c.call(ReadMark(conversation_id=cid, seq=last.seq))
        got: ReceiptList = await a.call(Receipts(conversation_id=cid))
        assert [(r.user_id, r.seq) for r in got.reads] == [(bob, last.seq - 1)]
        assert (await c.call(Receipts(conversation_id=cid))).own == last.seq
        # bad input and outsiders
        err = await b.fail(ReadMark(conversation_id=cid, seq=last.seq + 5))
        assert err.code == "invalid"
        (x, *_), _, _ = others = await _group(social_server)
        try:
            assert (await x.fail(ReadMark(conversation_id=cid, seq=1))).code == "not_member"
            assert (await x.fail(Receipts(conversation_id=cid))).code == "not_member"
            assert (await x.fail(Typing(conversation_id=cid, typing=True))).code == "not_member"
        finally:
            for y in others[0]:
                await y.close()
    finally:
        for x in (a, b, c):
            await x.close()


async def test_typing_is_relayed_coalesced_and_rate_limited(social_server: ServerProcess) -> None:
    (a, b, c), (alice, _bob, _carol), cid = await _group(social_server)
    try:
        first: TypingAck = await a.call(Typing(conversation_id=cid, typing=True))
        assert first.forwarded
        repeat: TypingAck = await a.call(Typing(conversation_id=cid, typing=True))
        assert not repeat.forwarded  # an unchanged refresh inside TYPING_REFRESH_S
        sig = await _signal(b, TypingSignal)
        assert sig == TypingSignal(conversation_id=cid, user_id=alice, typing=True)
        assert (await a.call(Typing(conversation_id=cid, typing=False))).forwarded
        assert await _signal(c, TypingSignal) == TypingSignal(
            conversation_id=cid, user_id=alice, typing=True
        )
        assert (await _signal(c, TypingSignal)).typing is False  # type: ignore[attr-defined]
        codes = []
        for i in range(12):
            ans = await a.request(Typing(conversation_id=cid, typing=i % 2 == 0))
            codes.append(getattr(ans, "code", "ok"))
        assert "rate_limited" in codes
        # the typing user's own devices get nothing
        assert not [p for p in a.pushes if isinstance(p, SignalPush)]
    finally:
        for x in (a, b, c):
            await x.close()
    await still_serves(social_server.ws_url, users(social_server, "z")[0].token)


async def test_presence_contacts_only_coalesced_and_last_seen_privacy(
    social_server: ServerProcess,
) -> None:
    alice, bob, carol = users(social_server, "alice", "bob", "carol")
    a = await connect(social_server, alice)
    b = await connect(social_server, bob)
    c = await connect(social_server, carol)  # not a contact of anyone
    try:
        await befriend(a, b, alice.user_id, bob.user_id)
        snap: PresenceList = await a.call(PresenceGet())
        assert [(p.user_id, p.online) for p in snap.users] == [(bob.user_id, True)]
        assert (await c.call(PresenceGet())).users == []
        # Bob flaps 20 times: Alice gets at most 2 presence frames about it
        for _ in range(20):
            await b.close()
            b = await connect(social_server, bob)
        await b.close()
        frames = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 3.0  # > the 0.2 s tick, < the 10 s coalescing window
        while loop.time() < deadline:
            try:
                frames.append(await _signal(a, PresenceSignal, max(0.05, deadline - loop.time())))
            except (TimeoutError, AssertionError):
                break
        about_bob = [f for f in frames if any(u.user_id == bob.user_id for u in f.users)]  # type: ignore[attr-defined]
        assert 1 <= len(about_bob) <= 2
        assert not [p for p in c.pushes if isinstance(p, SignalPush)]
        # last seen: shown when offline, hidden by the setting
        snap = await a.call(PresenceGet())
        assert snap.users[0].online is False and snap.users[0].last_seen is not None
        b = await connect(social_server, bob)
        await b.call(ProfileSet(last_seen_visible=False))
        await b.close()
        for _ in range(100):  # bounded: the disconnect is noticed after the socket closes
            snap = await a.call(PresenceGet())
            if not snap.users[0].online:
                break
            await asyncio.sleep(0.05)
        assert snap.users[0].online is False and snap.users[0].last_seen is None
    finally:
        for x in (a, c):
            await x.close()
