"""The client engine: a sans-IO state machine for one device's session with the server.

No asyncio, sockets, sqlite or ``js`` here. The shell calls the input methods and then carries
out ``take_effects()`` in order (see ``parley.client.effects``); ``parley.client.session``
is a ready-made async driver that does exactly that.

Lifecycle (inputs → effects)::

    load(cursors, outbox)            state restored from the LocalStore, before connecting
    connecting()                     → ConnectionChanged(CONNECTING)
    connected(now)                   → SendFrame(Hello)
    frame_received(data, now)        Welcome → SendFrame(SyncRequest), outbox flushed
                                     SyncReply → Store* commands, history pulls; ONLINE when done
                                     Reply/Error → correlated by request id
                                     EntryPush/EventPush/ToDevicePush → parley.sync
    disconnected(now, code)          4001/4003/4010 → Stop; else → Reconnect(delay)
    connect_failed(now, reason)      → Reconnect(delay)
    tick(now)                        heartbeat Ping, dead-connection and request timeouts
    entries_stored / events_stored / to_device_stored    after the shell committed a Store*
    send_message(cid, envelope)      → OutboxPut, and SendFrame(Send) when connected
    request(op) → id                 any other op; → ReplyReceived / RequestFailed
    set_in_view(cid, bool), load_older(cid, before_seq)  lazy history (see parley.sync)
    stop()                           → Bye, CloseConnection, Stop

The outbox: a message gets its ``client_msg_id`` once, is persisted (OutboxPut) before it is
sent, is resent with the SAME id after every reconnect and leaves the outbox (OutboxDelete)
only on a ``Sent`` reply (``duplicate=True`` is success) or a permanent error. Envelopes are
opaque bytes here: the E2E layer above produces them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum

import msgspec

from parley.client import effects as fx
from parley.client.backoff import backoff_delay, unit_random
from parley.client.model import ConnectionState, Cursors, OutboxItem
from parley.crypto.backend import random_bytes
from parley.protocol import codec, frames
from parley.protocol.errors import CloseCode, ErrorCode
from parley.protocol.limits import HEARTBEAT_S, HELLO_TIMEOUT_S, HISTORY_PAGE_MAX
from parley.protocol.ops import (
    RESULT_OF,
    ConvCursor,
    HistoryPage,
    Op,
    Send,
    Sent,
    SyncReply,
    SyncRequest,
    ToDeviceAck,
)
from parley.protocol.records import (
    ConvEntry,
    ConversationAdded,
    ConversationChanged,
    ConversationRemoved,
    Message,
    RefKind,
    ToDeviceItem,
    UserEvent,
)
from parley.sync import Classification, ConversationSync, Pull, StoreRange, StreamSync

STOP_CLOSE_CODES = frozenset(
    {
        CloseCode.UNAUTHORIZED,
        CloseCode.DEVICE_REVOKED,
        CloseCode.UNSUPPORTED_VERSION,
        CloseCode.ACCOUNT_DISABLED,
    }
)
"""Close codes after which reconnecting cannot help: the shell must stop (and re-login)."""

STOP_ERROR_CODES = frozenset(
    {
        ErrorCode.UNAUTHORIZED,
        ErrorCode.DEVICE_REVOKED,
        ErrorCode.UNSUPPORTED_VERSION,
        ErrorCode.ACCOUNT_DISABLED,
    }
)
TRANSIENT_SEND_ERRORS = frozenset(
    {ErrorCode.RATE_LIMITED, ErrorCode.UNAVAILABLE, ErrorCode.INTERNAL}
)
"""Send errors that keep the message in the outbox for a later retry (same client_msg_id)."""

REQUEST_TIMEOUT_S = 30.0
SEND_RETRY_S = 2.0
SEND_WINDOW = 64
"""Most Send requests in flight at once (the rest wait in the outbox, in order)."""


@dataclass
class EngineStats:
    """Counters for tests and benchmarks (never reset)."""

    entries_pushed: int = 0  # EntryPush frames received
    pulls: int = 0  # History requests sent by sync
    sends: int = 0  # Send requests sent (retries included)


class _Kind(Enum):
    """What a request in flight is for: how its reply or error is handled."""

    SEND = "send"  # a message from the outbox (client_msg_id)
    PULL = "pull"  # a history page sync asked for
    SYNC = "sync"  # the catch-up after connecting
    ACK = "ack"  # to-device items acknowledged up to ack_upto
    USER = "user"  # any other op of the shell: ReplyReceived / RequestFailed


@dataclass
class _Pending:
    kind: _Kind
    op: Op
    sent_at: float
    pull: Pull | None = None
    client_msg_id: str = ""
    ack_upto: int = 0


@dataclass
class _Session:
    """What is valid for one connection only."""

    user_id: str = ""
    device_id: int = 0
    heartbeat_s: float = HEARTBEAT_S
    connected_at: float = 0.0
    last_recv: float = 0.0
    last_sent: float = 0.0
    pending: dict[int, _Pending] = field(default_factory=dict)
    sync_in_flight: bool = False
    sync_again: bool = False


class ClientEngine:
    def __init__(
        self,
        token: str,
        *,
        client_name: str = "parley",
        eager: bool = True,
        page: int = HISTORY_PAGE_MAX,
        new_msg_id: Callable[[], str] = lambda: random_bytes(16).hex(),
        random: Callable[[], float] = lambda: unit_random(random_bytes),
        backoff: Callable[..., float] = backoff_delay,
        request_timeout: float = REQUEST_TIMEOUT_S,
        send_window: int = SEND_WINDOW,
    ) -> None:
        self.token = token
        self.client_name = client_name
        self.eager = eager
        self.page = page
        self._new_msg_id = new_msg_id
        self._random = random
        self._backoff = backoff
        self.request_timeout = request_timeout
        self.send_window = send_window
        self.state = ConnectionState.DISCONNECTED
        self.attempt = 0  # consecutive failed connection attempts
        self.user_id = ""
        self.device_id = 0
        self.conversations: dict[bytes, ConversationSync] = {}
        self.events = StreamSync()
        self.to_device = StreamSync()
        self.outbox: dict[str, OutboxItem] = {}  # insertion order = send order
        self._in_flight: set[str] = set()
        self._send_retry_at = 0.0
        self._acked_to_device = 0
        self._pending_events: list[UserEvent] = []
        self._pending_to_device: list[ToDeviceItem] = []
        self._next_id = 1
        self._s = _Session()
        self._effects: list[fx.Effect] = []
        self.stats = EngineStats()

    # --- state restore -----------------------------------------------------------------------
    def load(self, cursors: Cursors, outbox: Iterable[OutboxItem]) -> None:
        """Restore what the LocalStore holds. Call before the first ``connected``."""
        self.events = StreamSync(cursors.events)
        self.to_device = StreamSync(cursors.to_device)
        self._acked_to_device = 0  # re-ack once: harmless, and covers a crash before the ack
        for cid, seq in cursors.conversations.items():
            self.conversations[cid] = ConversationSync(cid, seq, eager=self.eager, page=self.page)
        for item in sorted(outbox, key=lambda i: i.created_ms):
            self.outbox[item.client_msg_id] = item

    def take_effects(self) -> list[fx.Effect]:
        out, self._effects = self._effects, []
        return out

    @property
    def cursors(self) -> Cursors:
        return Cursors(
            self.events.cursor,
            self.to_device.cursor,
            {cid: c.cursor for cid, c in self.conversations.items()},
        )

    @property
    def authenticated(self) -> bool:
        return self.state in (ConnectionState.SYNCING, ConnectionState.ONLINE)

    # --- connection lifecycle ----------------------------------------------------------------
    def connecting(self) -> None:
        if self.state is not ConnectionState.STOPPED:
            self._set_state(ConnectionState.CONNECTING)

    def connected(self, now: float) -> None:
        """The transport is open: authenticate."""
        if self.state is ConnectionState.STOPPED:
            self._emit(fx.CloseConnection(CloseCode.NORMAL, "stopped"))
            return
        self._s = _Session(connected_at=now, last_recv=now, last_sent=now)
        self._set_state(ConnectionState.AUTHENTICATING)
        self._send(frames.Hello(token=self.token, client=self.client_name), now)

    def connect_failed(self, now: float, reason: str = "") -> None:
        self._lost(None, reason or "connect failed")

    def disconnected(self, now: float, code: int | None = None, reason: str = "") -> None:
        """The transport closed (by either side). ``code`` is the close code if known."""
        self._lost(code, reason)

    def stop(self, now: float) -> None:
        """End for good: say Bye when connected, and do not reconnect."""
        if self._s.connected_at and self.state not in (
            ConnectionState.DISCONNECTED,
            ConnectionState.STOPPED,
        ):
            self._send(frames.Bye(reason="client stop"), now)
            self._emit(fx.CloseConnection(CloseCode.NORMAL, "client stop"))
        self._fail_pending("stopped")
        self._set_state(ConnectionState.STOPPED, "stopped by the client")
        self._emit(fx.Stop("stopped", "stopped by the client"))

    def tick(self, now: float) -> None:
        """Call about once a second: heartbeat, timeouts, delayed send retries."""
        s = self._s
        if self.state in (ConnectionState.DISCONNECTED, ConnectionState.STOPPED):
            return
        if self.state is ConnectionState.CONNECTING:
            return
        if self.state is ConnectionState.AUTHENTICATING:
            if now - s.connected_at > HELLO_TIMEOUT_S + 5:
                self._emit(fx.CloseConnection(CloseCode.GOING_AWAY, "no Welcome"))
            return
        if now - s.last_recv > 3 * s.heartbeat_s:
            self._emit(fx.CloseConnection(CloseCode.GOING_AWAY, "server silent"))
            return
        oldest = min((p.sent_at for p in s.pending.values()), default=now)
        if now - oldest > self.request_timeout:
            self._emit(fx.CloseConnection(CloseCode.GOING_AWAY, "request timed out"))
            return
        if now - s.last_sent >= s.heartbeat_s:
            self._send(frames.Ping(), now)
        self._flush(now)
        for conv in self.conversations.values():  # pulls that failed (e.g. rate_limited)
            if conv.pulling is None and conv.behind:
                self._run(conv.plan(), now)

    # --- frames ------------------------------------------------------------------------------
    def frame_received(self, data: bytes, now: float) -> None:
        self._s.last_recv = now
        try:
            frame = codec.decode_server(data)
        except codec.FrameError as exc:
            self._emit(fx.ProtocolError(exc.code.value, exc.message))
            return
        if isinstance(frame, frames.Welcome):
            self._on_welcome(frame, now)
        elif isinstance(frame, frames.Reply):
            self._on_reply(frame, now)
        elif isinstance(frame, frames.Error):
            self._on_error(frame, now)
        elif isinstance(frame, frames.EntryPush):
            self._on_entry(frame.entry, now)
        elif isinstance(frame, frames.EventPush):
            self._on_event_push(frame.event, now)
        elif isinstance(frame, frames.ToDevicePush):
            self._on_to_device_push(frame.item, now)
        elif isinstance(frame, frames.SignalPush):
            self._emit(fx.SignalReceived(frame.signal))
        elif isinstance(frame, frames.Bye):
            self._emit(fx.CloseConnection(CloseCode.NORMAL, frame.reason or "server bye"))

    def _on_welcome(self, w: frames.Welcome, now: float) -> None:
        self.user_id, self.device_id = w.user_id, w.device_id
        self._s.user_id, self._s.device_id = w.user_id, w.device_id
        self._s.heartbeat_s = max(1.0, min(w.limits.heartbeat_s, HEARTBEAT_S))
        self.page = min(self.page, w.limits.history_page_max)
        for conv in self.conversations.values():
            conv.page = min(conv.page, self.page)
        # ``attempt`` is not reset here: a server that welcomes and then drops us (e.g. a reply
        # the transport refuses) must not get a reconnect storm. It resets once a sync completed.
        self._set_state(ConnectionState.SYNCING)
        self._sync(now)
        if self.to_device.cursor > self._acked_to_device:
            self._ack_to_device(self.to_device.cursor, now)
        self._send_retry_at = 0.0
        self._flush(now)

    def _on_reply(self, reply: frames.Reply, now: float) -> None:
        p = self._s.pending.pop(reply.id, None)
        if p is None:
            self._emit(fx.ProtocolError(ErrorCode.INVALID.value, f"reply to unknown id {reply.id}"))
            return
        expected = RESULT_OF.get(type(p.op))
        if expected is not None and not isinstance(reply.result, expected):
            self._on_failure(p, reply.id, ErrorCode.INVALID, "unexpected result type", now)
            return
        result = reply.result
        if p.kind is _Kind.SEND and isinstance(result, Sent):
            self._on_sent(p.client_msg_id, result, now)
        elif p.kind is _Kind.PULL and isinstance(result, HistoryPage) and p.pull is not None:
            conv = self._conv(p.pull.conversation_id)
            self._run(conv.page_received(p.pull, result), now)
        elif p.kind is _Kind.SYNC and isinstance(result, SyncReply):
            self._on_synced(result, now)
        elif p.kind is _Kind.ACK:
            self._acked_to_device = max(self._acked_to_device, p.ack_upto)
        elif p.kind is _Kind.USER:
            self._emit(fx.ReplyReceived(reply.id, result))

    def _on_error(self, err: frames.Error, now: float) -> None:
        if err.id is None:
            self._emit(fx.ProtocolError(err.code.value, err.message))
            if err.code in STOP_ERROR_CODES:
                self._give_up(err.code.value, err.message)
            return
        p = self._s.pending.pop(err.id, None)
        if p is None:
            self._emit(fx.ProtocolError(err.code.value, err.message))
            return
        self._on_failure(p, err.id, err.code, err.message, now)

    def _on_failure(
        self, p: _Pending, request_id: int, code: ErrorCode, message: str, now: float
    ) -> None:
        if p.kind is _Kind.SEND:
            self._in_flight.discard(p.client_msg_id)
            item = self.outbox.get(p.client_msg_id)
            if item is None:
                return
            if code in TRANSIENT_SEND_ERRORS:
                self._send_retry_at = now + SEND_RETRY_S
                return
            del self.outbox[p.client_msg_id]
            self._emit(fx.OutboxDelete(p.client_msg_id))
            self._emit(fx.MessageFailed(p.client_msg_id, item.conversation_id, code.value, message))
        elif p.kind is _Kind.PULL and p.pull is not None:
            conv = self._conv(p.pull.conversation_id)
            conv.pull_failed(p.pull)
            if code in (ErrorCode.NOT_MEMBER, ErrorCode.NOT_FOUND, ErrorCode.DISBANDED):
                conv.removed = True
        elif p.kind is _Kind.SYNC:
            self._s.sync_in_flight = False
            self._emit(fx.ProtocolError(code.value, f"sync failed: {message}"))
        elif p.kind is _Kind.USER:
            self._emit(fx.RequestFailed(request_id, code.value, message))

    # --- pushes and sync ---------------------------------------------------------------------
    def _on_entry(self, entry: ConvEntry, now: float) -> None:
        self.stats.entries_pushed += 1
        self._run(self._conv(entry.conversation_id).push(entry), now)

    def _on_event_push(self, event: UserEvent, now: float) -> None:
        kind = self.events.push(event.seq)
        if kind is Classification.NEXT:
            self._store_events([event], now)
        elif kind is Classification.GAP:
            self._sync(now)

    def _on_to_device_push(self, item: ToDeviceItem, now: float) -> None:
        kind = self.to_device.push(item.seq)
        if kind is Classification.NEXT:
            self._pending_to_device.append(item)
            self._emit(fx.StoreToDevice((item,), self.to_device.frontier))
        elif kind is Classification.GAP:
            self._sync(now)

    def _sync(self, now: float, conv_after: bytes | None = None) -> None:
        s = self._s
        if not self.authenticated:
            return
        if s.sync_in_flight:
            s.sync_again = True
            return
        op = SyncRequest(
            events_after=self.events.frontier,
            to_device_after=self.to_device.frontier,
            conversations=[ConvCursor(cid, c.frontier) for cid, c in self.conversations.items()],
            conv_after=conv_after,
        )
        s.sync_in_flight = True
        self._request(_Pending(_Kind.SYNC, op, now), now)

    def _on_synced(self, r: SyncReply, now: float) -> None:
        self._s.sync_in_flight = False
        events = self.events.page(r.events)
        if events:
            self._store_events(events, now)
        items = self.to_device.page(r.to_device)
        if items:
            self._pending_to_device.extend(items)
            self._emit(fx.StoreToDevice(tuple(items), self.to_device.frontier))
        for st in r.conversations:
            conv = self._conv(st.conversation_id)
            self._emit(fx.ConversationUpdated(st.conversation_id, st.last_seq, st.last_ts))
            self._run(conv.server_last_seq(st.last_seq), now)
        if r.conv_next is not None or r.events_more or r.to_device_more or self._s.sync_again:
            self._s.sync_again = False
            self._sync(now, r.conv_next)
        elif self.state is ConnectionState.SYNCING:
            self.attempt = 0  # this connection proved healthy
            self._set_state(ConnectionState.ONLINE)

    def _store_events(self, events: Sequence[UserEvent], now: float) -> None:
        self._pending_events.extend(events)
        self._emit(fx.StoreEvents(tuple(events), self.events.frontier))
        for ev in events:  # conversation bookkeeping can happen at once; UI waits for storage
            body = ev.body
            if isinstance(body, ConversationAdded):
                conv = self._conv(body.conversation_id)
                conv.removed = False
                self._run(conv.plan() if conv.known_last else conv.server_last_seq(1), now)
            elif isinstance(body, ConversationRemoved):
                self._conv(body.conversation_id).removed = True
            elif isinstance(body, ConversationChanged):
                self._run(self._conv(body.conversation_id).server_last_seq(body.seq), now)

    # --- store reports -----------------------------------------------------------------------
    def entries_stored(self, conversation_id: bytes, first: int, last: int) -> None:
        conv = self._conv(conversation_id)
        conv.range_stored(first, last)
        self._emit(fx.EntriesStored(conversation_id, first, last, conv.cursor))

    def events_stored(self, upto: int) -> None:
        self.events.stored(upto)
        done = [e for e in self._pending_events if e.seq <= upto]
        self._pending_events = [e for e in self._pending_events if e.seq > upto]
        if done:
            self._emit(fx.EventsStored(tuple(done)))
        for ev in done:
            b = ev.body
            if isinstance(b, ConversationAdded):
                self._emit(fx.ConversationAdded(b.conversation_id, b.kind, b.by))
            elif isinstance(b, ConversationRemoved):
                self._emit(fx.ConversationRemoved(b.conversation_id, b.action.value, b.by))
            elif isinstance(b, ConversationChanged):
                self._emit(fx.ConversationChanged(b.conversation_id, b.seq))

    def to_device_stored(self, upto: int, now: float) -> None:
        """Items up to ``upto`` are stored: tell the UI, then acknowledge to the server."""
        self.to_device.stored(upto)
        done = [i for i in self._pending_to_device if i.seq <= upto]
        self._pending_to_device = [i for i in self._pending_to_device if i.seq > upto]
        if done:
            self._emit(fx.ToDeviceStored(tuple(done)))
        if self.authenticated and self.to_device.cursor > self._acked_to_device:
            self._ack_to_device(self.to_device.cursor, now)

    def _ack_to_device(self, upto: int, now: float) -> None:
        self._request(_Pending(_Kind.ACK, ToDeviceAck(upto_seq=upto), now, ack_upto=upto), now)

    # --- user actions ------------------------------------------------------------------------
    def send_message(
        self,
        conversation_id: bytes,
        envelope: bytes,
        now: float,
        *,
        client_msg_id: str | None = None,
        created_ms: int = 0,
        ref_seq: int | None = None,
        ref_kind: RefKind | None = None,
        mentions: Sequence[str] = (),
        blobs: Sequence[str] = (),
    ) -> str:
        """Queue an envelope; returns its client_msg_id. The OutboxPut comes before the Send.
        ``ref_seq``/``ref_kind``/``mentions``: clear metadata of edits, reactions, replies and
        mentions (see parley.client.social)."""
        item = OutboxItem(
            client_msg_id or self._new_msg_id(),
            conversation_id,
            envelope,
            created_ms,
            ref_seq,
            ref_kind,
            list(mentions),
            list(blobs),
        )
        if item.client_msg_id in self.outbox:
            return item.client_msg_id
        self.outbox[item.client_msg_id] = item
        self._emit(fx.OutboxPut(item))
        self._flush(now)
        return item.client_msg_id

    def request(self, op: Op, now: float) -> int:
        """Send any op; its answer comes as ReplyReceived/RequestFailed with the returned id.
        When not authenticated it fails at once (``unavailable``): retry after reconnecting."""
        if not self.authenticated:
            rid = self._alloc_id()
            self._emit(fx.RequestFailed(rid, fx.UNAVAILABLE, "not connected"))
            return rid
        return self._request(_Pending(_Kind.USER, op, now), now)

    def set_in_view(self, conversation_id: bytes, in_view: bool, now: float) -> None:
        """A lazy client's chat came into (or left) view: pull its recent page if behind."""
        self._run(self._conv(conversation_id).set_in_view(in_view), now)

    def load_older(
        self, conversation_id: bytes, before_seq: int, now: float, limit: int | None = None
    ) -> None:
        """Pull the page just before ``before_seq`` (stored with ``cursor=None``)."""
        self._run([self._conv(conversation_id).older(before_seq, limit)], now)

    # --- internals ---------------------------------------------------------------------------
    def _conv(self, cid: bytes) -> ConversationSync:
        conv = self.conversations.get(cid)
        if conv is None:
            conv = ConversationSync(cid, 0, eager=self.eager, page=self.page)
            self.conversations[cid] = conv
        return conv

    def _run(self, actions: Sequence[Pull | StoreRange], now: float) -> None:
        for a in actions:
            if isinstance(a, StoreRange):
                self._emit(fx.StoreEntries(a.conversation_id, a.entries, a.cursor))
            elif self.authenticated:
                self.stats.pulls += 1
                self._request(_Pending(_Kind.PULL, a.op(), now, pull=a), now)
            else:
                self._conv(a.conversation_id).pull_failed(a)

    def _on_sent(self, client_msg_id: str, sent: Sent, now: float) -> None:
        self._in_flight.discard(client_msg_id)
        item = self.outbox.pop(client_msg_id, None)
        if item is None:
            return
        self._emit(fx.OutboxDelete(client_msg_id))
        self._emit(
            fx.MessageSent(client_msg_id, item.conversation_id, sent.seq, sent.ts, sent.duplicate)
        )
        # Our own entry, as the server stored it: saves a pull when it is the next one.
        own = ConvEntry(
            item.conversation_id, sent.seq, sent.ts, self.user_id, self.device_id,
            Message(item.envelope, item.ref_seq, item.ref_kind,
                    [u for u in dict.fromkeys(item.mentions) if u != self.user_id]),
        )  # fmt: skip
        self._run(self._conv(item.conversation_id).push(own), now)

    def _flush(self, now: float) -> None:
        if not self.authenticated or now < self._send_retry_at:
            return
        for cmid, item in self.outbox.items():
            if len(self._in_flight) >= self.send_window:
                break
            if cmid in self._in_flight:
                continue
            self._in_flight.add(cmid)
            self.stats.sends += 1
            op = Send(
                item.conversation_id,
                item.client_msg_id,
                item.envelope,
                ref_seq=item.ref_seq,
                ref_kind=item.ref_kind,
                mentions=item.mentions,
                blobs=item.blobs,
            )
            self._request(_Pending(_Kind.SEND, op, now, client_msg_id=cmid), now)

    def _alloc_id(self) -> int:
        rid = self._next_id
        self._next_id = 1 if rid >= 2**53 else rid + 1
        return rid

    def _request(self, p: _Pending, now: float) -> int:
        rid = self._alloc_id()
        self._s.pending[rid] = p
        self._send(frames.Request(id=rid, op=p.op), now)
        return rid

    def _send(self, frame: msgspec.Struct, now: float) -> None:
        self._s.last_sent = now
        self._emit(fx.SendFrame(codec.encode(frame)))

    def _emit(self, effect: fx.Effect) -> None:
        self._effects.append(effect)

    def _set_state(self, state: ConnectionState, detail: str = "") -> None:
        if state is not self.state:
            self.state = state
            self._emit(fx.ConnectionChanged(state, detail))

    def _fail_pending(self, why: str) -> None:
        pending, self._s.pending = self._s.pending, {}
        self._in_flight.clear()
        self._s.sync_in_flight = False
        for rid, p in sorted(pending.items()):
            if p.kind is _Kind.PULL and p.pull is not None:
                self._conv(p.pull.conversation_id).pull_failed(p.pull)
            elif p.kind is _Kind.USER:
                self._emit(fx.RequestFailed(rid, fx.UNAVAILABLE, why))
        for conv in self.conversations.values():  # pulls not yet sent
            if conv.pulling is not None:
                conv.pull_failed(conv.pulling)

    def _give_up(self, code: str, reason: str) -> None:
        self._fail_pending(reason)
        self._set_state(ConnectionState.STOPPED, reason)
        self._emit(fx.CloseConnection(CloseCode.NORMAL, reason))
        self._emit(fx.Stop(code, reason))

    def _lost(self, code: int | None, reason: str) -> None:
        if self.state is ConnectionState.STOPPED:
            return
        if code is not None and code in STOP_CLOSE_CODES:
            self._fail_pending(reason or "closed")
            self._set_state(ConnectionState.STOPPED, f"closed {code}: {reason}")
            self._emit(fx.Stop(CloseCode(code).name.lower(), reason or f"closed {code}"))
            return
        self._fail_pending(reason or "connection lost")
        self.attempt += 1
        self._set_state(ConnectionState.DISCONNECTED, reason)
        self._emit(fx.Reconnect(self._backoff(self.attempt, random=self._random), self.attempt))
