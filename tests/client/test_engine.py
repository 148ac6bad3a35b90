"""The client engine, sans-IO: lifecycle, correlation, outbox idempotency, sync discipline."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from parley.client import ClientEngine, ConnectionState, Cursors, OutboxItem
from parley.client import effects as fx
from parley.protocol import frames
from parley.protocol.errors import CloseCode, ErrorCode
from parley.protocol.ops import (
    ConvCursor,
    ConversationPage,
    ConvGet,
    ConvList,
    ConvState,
    History,
    HistoryPage,
    Ok,
    Send,
    Sent,
    SyncReply,
    SyncRequest,
    ToDeviceAck,
)
from parley.protocol.records import ConvEntry, Message, ToDeviceItem
from parley.protocol.types import ConversationKind
from tests.client.engine_support import Harness

CONV = b"k" * 16
SETTINGS = settings(max_examples=50, deadline=None)


def entry(seq: int) -> ConvEntry:
    return ConvEntry(CONV, seq, seq, "u-other", 3, Message(b"e%d" % seq))


def synced(**kw: object) -> SyncReply:
    base: dict[str, object] = dict(
        events=[], events_more=False, to_device=[], to_device_more=False,
        conversations=[], conv_next=None, server_time=0,
    )  # fmt: skip
    base.update(kw)
    return SyncReply(**base)  # type: ignore[arg-type]


def test_hello_then_sync_with_the_stored_cursors() -> None:
    h = Harness(ClientEngine("tok-1"))
    h.engine.load(Cursors(events=4, to_device=9, conversations={CONV: 12}), [])
    h.engine.connecting()
    h.engine.connected(h.now)
    (hello,) = h.sent(h.effects())
    assert isinstance(hello, frames.Hello) and hello.token == "tok-1"
    after = h.feed(frames.Welcome("u-self", 7, 0, frames.Limits(1, 1, 1, 500, 25.0)))
    ((_, sync),) = h.ops(after, SyncRequest)
    assert isinstance(sync, SyncRequest)
    assert (sync.events_after, sync.to_device_after) == (4, 9)
    assert sync.conversations == [ConvCursor(CONV, 12)]
    assert h.engine.state is ConnectionState.SYNCING
    assert fx.ConnectionChanged(ConnectionState.SYNCING) in after


def test_sync_done_goes_online_and_pages_with_conv_next() -> None:
    h = Harness(ClientEngine("t"))
    ((rid, _),) = h.ops(h.connect(), SyncRequest)
    other = b"z" * 16
    more = h.reply(rid, synced(conv_next=other))
    ((rid2, op2),) = h.ops(more, SyncRequest)
    assert isinstance(op2, SyncRequest) and op2.conv_after == other
    assert h.engine.state is ConnectionState.SYNCING
    h.reply(rid2, synced())
    assert h.engine.state in (ConnectionState.ONLINE,)  # (mypy narrows `is`)


def test_auth_failures_stop_and_other_closes_reconnect_with_backoff() -> None:
    for code in (CloseCode.UNAUTHORIZED, CloseCode.DEVICE_REVOKED, CloseCode.UNSUPPORTED_VERSION):
        h = Harness(ClientEngine("t"))
        h.connect()
        h.engine.disconnected(h.now, int(code), "no")
        effects = h.effects()
        assert any(isinstance(e, fx.Stop) for e in effects)
        assert not any(isinstance(e, fx.Reconnect) for e in effects)
        assert h.engine.state is ConnectionState.STOPPED
    h = Harness(ClientEngine("t", random=lambda: 0.0))
    delays = []
    for _ in range(4):
        h.engine.connecting()
        h.engine.connect_failed(h.now, "refused")
        (rec,) = [e for e in h.effects() if isinstance(e, fx.Reconnect)]
        delays.append(rec.delay)
    assert delays == [0.25, 0.5, 1.0, 2.0]
    ((rid, _),) = h.ops(h.connect(), SyncRequest)
    h.reply(rid, synced())  # a completed sync (not the Welcome alone) resets the schedule
    h.engine.disconnected(h.now, int(CloseCode.GOING_AWAY), "bye")
    (rec,) = [e for e in h.effects() if isinstance(e, fx.Reconnect)]
    assert rec.attempt == 1


def test_a_welcome_without_a_completed_sync_keeps_backing_off() -> None:
    """Regression: a server whose sync reply the transport refuses welcomed the client, dropped
    it, and the backoff restarted at attempt 1 every time (82 reconnects in 30 s)."""
    h = Harness(ClientEngine("t", random=lambda: 0.0))
    attempts = []
    for _ in range(6):
        assert h.ops(h.connect(), SyncRequest)  # welcomed, sync asked, never answered
        h.engine.disconnected(h.now, int(CloseCode.MESSAGE_TOO_BIG), "frame too big")
        (rec,) = [e for e in h.effects() if isinstance(e, fx.Reconnect)]
        attempts.append(rec.attempt)
    assert attempts == [1, 2, 3, 4, 5, 6]


def test_error_without_id_unauthorized_stops() -> None:
    h = Harness(ClientEngine("t"))
    h.connect()
    effects = h.feed(frames.Error(id=None, code=ErrorCode.UNAUTHORIZED, message="expired"))
    assert any(isinstance(e, fx.Stop) and e.code == "unauthorized" for e in effects)


@SETTINGS
@given(st.integers(0, 5), st.booleans())
def test_outbox_resends_the_same_client_msg_id_across_reconnects(
    reconnects: int, duplicate: bool
) -> None:
    h = Harness(ClientEngine("t", new_msg_id=iter(f"id{i}" for i in range(99)).__next__))
    queued = h.engine.send_message(CONV, b"env", h.now)
    first = h.effects()
    assert first == [fx.OutboxPut(OutboxItem(queued, CONV, b"env", 0))]  # offline: no frame
    sends: list[tuple[int, Send]] = []
    for _ in range(reconnects + 1):
        after = h.connect()
        sends += [(rid, op) for rid, op in h.ops(after, Send) if isinstance(op, Send)]
        if len(sends) <= reconnects:
            h.engine.disconnected(h.now, 1006, "lost before the reply")
            h.effects()
    assert [op.client_msg_id for _, op in sends] == [queued] * (reconnects + 1)
    assert len({rid for rid, _ in sends}) == len(sends)  # fresh request ids each time
    done = h.reply(sends[-1][0], Sent(seq=1, ts=5, duplicate=duplicate))
    assert fx.OutboxDelete(queued) in done
    assert fx.MessageSent(queued, CONV, 1, 5, duplicate) in done
    assert h.engine.outbox == {}
    puts = [e for e in h.log if isinstance(e, fx.OutboxPut)]
    deletes = [e for e in h.log if isinstance(e, fx.OutboxDelete)]
    assert len(puts) == 1 and deletes == [fx.OutboxDelete(queued)]


def test_outbox_loaded_from_store_is_flushed_after_welcome() -> None:
    h = Harness(ClientEngine("t"))
    h.engine.load(Cursors(), [OutboxItem("b", CONV, b"2", 2), OutboxItem("a", CONV, b"1", 1)])
    sends = [op for _, op in h.ops(h.connect(), Send) if isinstance(op, Send)]
    assert [s.client_msg_id for s in sends] == ["a", "b"]  # oldest first


def test_send_errors_transient_keep_permanent_drop() -> None:
    h = Harness(ClientEngine("t"))
    h.connect()
    cmid = h.engine.send_message(CONV, b"env", h.now)
    ((rid, _),) = h.ops(h.effects(), Send)
    h.feed(frames.Error(id=rid, code=ErrorCode.RATE_LIMITED, message="slow down"))
    assert cmid in h.engine.outbox
    h.now += 5
    h.engine.tick(h.now)
    ((rid2, _),) = h.ops(h.effects(), Send)
    out = h.feed(frames.Error(id=rid2, code=ErrorCode.NOT_MEMBER, message="no"))
    assert fx.MessageFailed(cmid, CONV, "not_member", "no") in out
    assert fx.OutboxDelete(cmid) in out and h.engine.outbox == {}


@SETTINGS
@given(st.permutations(range(5)))
def test_replies_are_correlated_by_id_in_any_order(order: list[int]) -> None:
    h = Harness(ClientEngine("t"))
    h.connect()
    h.effects()
    ids = [h.engine.request(ConvList(limit=i + 1), h.now) for i in range(5)]
    reqs = {r.id: r.op for r in h.requests(h.effects())}
    assert sorted(reqs) == sorted(ids) and len(set(ids)) == 5
    for i in order:
        page = ConversationPage(conversations=[], next=bytes([i]) * 16)
        (got,) = [e for e in h.reply(ids[i], page) if isinstance(e, fx.ReplyReceived)]
        assert got.request_id == ids[i] and got.result == page


def test_unknown_id_wrong_type_and_error_replies() -> None:
    h = Harness(ClientEngine("t"))
    h.connect()
    assert any(isinstance(e, fx.ProtocolError) for e in h.reply(999_999, Ok()))
    rid = h.engine.request(ConvGet(conversation_id=CONV), h.now)
    out = h.reply(rid, Ok())  # ConvGet must answer with Conversation
    assert fx.RequestFailed(rid, "invalid", "unexpected result type") in out
    rid = h.engine.request(ConvGet(conversation_id=CONV), h.now)
    out = h.feed(frames.Error(id=rid, code=ErrorCode.NOT_MEMBER, message="nope"))
    assert fx.RequestFailed(rid, "not_member", "nope") in out


def test_requests_fail_when_offline_and_when_the_connection_drops() -> None:
    h = Harness(ClientEngine("t"))
    rid = h.engine.request(ConvList(), h.now)
    assert h.effects() == [fx.RequestFailed(rid, "unavailable", "not connected")]
    h.connect()
    rid = h.engine.request(ConvList(), h.now)
    h.effects()
    h.engine.disconnected(h.now, 1006, "gone")
    assert fx.RequestFailed(rid, "unavailable", "gone") in h.effects()


def test_gap_push_pulls_the_range_and_cursor_moves_only_after_storage() -> None:
    h = Harness(ClientEngine("t"))
    ((sid, _),) = h.ops(h.connect(), SyncRequest)
    h.reply(sid, synced())
    out = h.feed(frames.EntryPush(entry(3)))
    ((pid, pull),) = h.ops(out, History)
    assert isinstance(pull, History) and pull.after_seq == 0 and pull.limit == 2
    out = h.reply(pid, HistoryPage(entries=[entry(1), entry(2)], last_seq=3, more=False))
    (store,) = [e for e in out if isinstance(e, fx.StoreEntries)]
    assert [e.seq for e in store.entries] == [1, 2, 3] and store.cursor == 3
    assert h.engine.cursors.conversations[CONV] == 0  # not stored yet
    assert h.engine.conversations[CONV].frontier == 3
    assert h.store_all(out) == [fx.EntriesStored(CONV, 1, 3, 3)]
    assert h.engine.cursors.conversations[CONV] == 3
    assert h.feed(frames.EntryPush(entry(2))) == []  # a duplicate push is dropped


def test_sync_state_past_the_cursor_pulls_forward_in_pages() -> None:
    h = Harness(ClientEngine("t", page=2))
    ((sid, _),) = h.ops(h.connect(), SyncRequest)
    out = h.reply(sid, synced(conversations=[ConvState(CONV, ConversationKind.DIRECT, 3, 9)]))
    ((pid, pull),) = h.ops(out, History)
    assert isinstance(pull, History) and (pull.after_seq, pull.limit) == (0, 2)
    out = h.reply(pid, HistoryPage(entries=[entry(1), entry(2)], last_seq=3, more=True))
    ((pid, pull),) = h.ops(out, History)
    assert isinstance(pull, History) and pull.after_seq == 2
    out += h.reply(pid, HistoryPage(entries=[entry(3)], last_seq=3, more=False))
    h.store_all(out)
    assert h.engine.cursors.conversations[CONV] == 3


def test_own_sent_message_is_stored_without_a_pull() -> None:
    h = Harness(ClientEngine("t"))
    h.connect()
    h.engine.send_message(CONV, b"mine", h.now)
    ((rid, _),) = h.ops(h.effects(), Send)
    out = h.reply(rid, Sent(seq=1, ts=77))
    (store,) = [e for e in out if isinstance(e, fx.StoreEntries)]
    assert store.entries == (ConvEntry(CONV, 1, 77, "u-self", 7, Message(b"mine")),)
    assert not h.ops(out, History)


def test_to_device_acked_only_after_stored() -> None:
    h = Harness(ClientEngine("t"))
    ((sid, _),) = h.ops(h.connect(), SyncRequest)
    item = ToDeviceItem(seq=1, ts=0, sender="u-x", sender_device=1, body=b"pairwise")
    out = h.reply(sid, synced(to_device=[item]))
    assert [e for e in out if isinstance(e, fx.StoreToDevice)] == [fx.StoreToDevice((item,), 1)]
    assert not h.ops(out, ToDeviceAck)
    after = h.store_all(out)
    assert fx.ToDeviceStored((item,)) in after
    ((aid, ack),) = h.ops(after, ToDeviceAck)
    assert isinstance(ack, ToDeviceAck) and ack.upto_seq == 1
    h.reply(aid, Ok())
    push = ToDeviceItem(seq=3, ts=0, sender="u-x", sender_device=1, body=b"later")
    out = h.feed(frames.ToDevicePush(push))  # a gap (2 is missing): resync, no store yet
    assert h.ops(out, SyncRequest) and not any(isinstance(e, fx.StoreToDevice) for e in out)


def test_heartbeat_ping_and_silent_server_close() -> None:
    h = Harness(ClientEngine("t"))
    ((sid, _),) = h.ops(h.connect(), SyncRequest)
    h.reply(sid, synced())
    h.now += 26
    h.engine.tick(h.now)
    assert [type(f) for f in h.sent(h.effects())] == [frames.Ping]
    h.feed(frames.Pong())
    h.now += 80
    h.engine.tick(h.now)
    assert any(isinstance(e, fx.CloseConnection) for e in h.effects())


def test_stop_says_bye_and_never_reconnects() -> None:
    h = Harness(ClientEngine("t"))
    h.connect()
    h.engine.stop(h.now)
    out = h.effects()
    assert [type(f) for f in h.sent(out)] == [frames.Bye]
    assert any(isinstance(e, fx.Stop) for e in out)
    h.engine.disconnected(h.now, 1000, "")
    assert not any(isinstance(e, fx.Reconnect) for e in h.effects())


def test_failed_pull_is_planned_again_on_tick() -> None:
    h = Harness(ClientEngine("t"))
    ((sid, _),) = h.ops(h.connect(), SyncRequest)
    h.reply(sid, synced())
    ((pid, _),) = h.ops(h.feed(frames.EntryPush(entry(2))), History)
    assert h.feed(frames.Error(id=pid, code=ErrorCode.RATE_LIMITED, message="later")) == []
    h.now += 1
    h.engine.tick(h.now)
    ((_, again),) = h.ops(h.effects(), History)
    assert isinstance(again, History) and again.after_seq == 0
