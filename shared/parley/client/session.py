"""A runtime-agnostic async driver: runs a ``ClientEngine`` over a ``Transport`` and a
``LocalStore``, reconnecting with the engine's backoff, until stopped.

Shared by the CPython shell, the browser shell and the benchmarks. Only asyncio primitives
that exist in Pyodide are used; time and sleep are injectable.

Usage::

    session = Session(ClientEngine(token), connect, store)
    await session.start()                         # loads state, connects in the background
    cmid = await session.send_message(cid, envelope)
    sent = await session.wait_sent(cmid, timeout=10)      # MessageSent (or raises SendFailed)
    result = await session.request(DirectOpen(user_id=...), timeout=10)
    q = session.subscribe()                       # asyncio.Queue of every Notification
    await session.stop()

Effects are executed one batch at a time under a lock, in order; store reports are fed back to
the engine right after each store completes, so cursors never run ahead of the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence

from parley.client import effects as fx
from parley.client.engine import ClientEngine
from parley.client.interfaces import Connector, LocalStore, Transport, TransportClosed
from parley.client.model import ConnectionState
from parley.client.tasks import stop_task, wait_future
from parley.protocol.ops import Op, Result
from parley.protocol.records import RefKind

CONNECT_TIMEOUT_S = 10.0
TICK_S = 1.0


class RequestError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class SendFailed(RequestError):
    pass


class Session:
    def __init__(
        self,
        engine: ClientEngine,
        connect: Connector,
        store: LocalStore,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        tick_s: float = TICK_S,
    ) -> None:
        self.engine = engine
        self.store = store
        self._connect = connect
        self._clock = clock
        self._wall_ms = wall_ms
        self._sleep = sleep
        self._tick_s = tick_s
        self._lock = asyncio.Lock()
        self._transport: Transport | None = None
        self._stopped = asyncio.Event()
        self._reconnect_delay = 0.0
        self._task: asyncio.Task[None] | None = None
        self._requests: dict[int, asyncio.Future[Result]] = {}
        self._sends: dict[str, asyncio.Future[fx.MessageSent]] = {}
        self._queues: list[asyncio.Queue[fx.Notification]] = []
        self._listeners: list[Callable[[fx.Notification], None]] = []
        self.stop_reason: fx.Stop | None = None
        self.error: Exception | None = None

    # --- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Load the stored state and start connecting in the background."""
        cursors = await self.store.load_cursors()
        outbox = await self.store.outbox_all()
        self.engine.load(cursors, outbox)
        for item in outbox:
            self._sends.setdefault(item.client_msg_id, asyncio.get_running_loop().create_future())
        self._task = asyncio.ensure_future(self._run())

    async def stop(self, timeout: float = 5.0) -> None:
        """Say Bye, close, and wait for the background task to end."""
        if not self._stopped.is_set():
            self.engine.stop(self._clock())
            await self._pump()
        if self._task is not None:
            # bounded, and a cancellation of our caller is not swallowed (stop_task)
            await asyncio.wait({self._task}, timeout=timeout)
            await stop_task(self._task, timeout)

    @property
    def state(self) -> ConnectionState:
        return self.engine.state

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def subscribe(self) -> asyncio.Queue[fx.Notification]:
        """A queue receiving every notification from now on (unbounded: drain it)."""
        q: asyncio.Queue[fx.Notification] = asyncio.Queue()
        self._queues.append(q)
        return q

    def add_listener(self, fn: Callable[[fx.Notification], None]) -> None:
        self._listeners.append(fn)

    async def drop_connection(self) -> None:
        """Abort the current connection (tests, network changes); the session reconnects."""
        t = self._transport
        if t is not None:
            await t.close(1001, "dropped by the client")

    # --- user actions ------------------------------------------------------------------------
    async def send_message(
        self,
        conversation_id: bytes,
        envelope: bytes,
        *,
        track: bool = True,
        client_msg_id: str | None = None,
        created_ms: int | None = None,
        ref_seq: int | None = None,
        ref_kind: RefKind | None = None,
        mentions: Sequence[str] = (),
        blobs: Sequence[str] = (),
    ) -> str:
        """Queue (persisted before it is sent) and return the client_msg_id. With
        ``track=False`` there is no ``wait_sent`` for it (watch MessageSent notifications);
        use that for long-running senders so results do not pile up. A caller that keeps its
        own send queue passes its ``client_msg_id`` (and original ``created_ms``): queueing
        the same id again after a crash is a no-op here and deduplicated by the server."""
        cmid = self.engine.send_message(
            conversation_id,
            envelope,
            self._clock(),
            client_msg_id=client_msg_id,
            created_ms=self._wall_ms() if created_ms is None else created_ms,
            ref_seq=ref_seq,
            ref_kind=ref_kind,
            mentions=mentions,
            blobs=blobs,
        )
        if track:
            self._sends.setdefault(cmid, asyncio.get_running_loop().create_future())
        await self._pump()
        return cmid

    async def wait_sent(self, client_msg_id: str, timeout: float) -> fx.MessageSent:
        """The MessageSent of that message (across reconnects); raises SendFailed."""
        fut = self._sends.get(client_msg_id)
        if fut is None:
            raise KeyError(client_msg_id)
        result = await asyncio.wait_for(asyncio.shield(fut), timeout)
        self._sends.pop(client_msg_id, None)
        return result

    async def request(self, op: Op, timeout: float = 30.0) -> Result:
        """Send an op and await its result; raises RequestError (code ``unavailable`` when not
        connected: wait for ONLINE and retry)."""
        if self._stopped.is_set():
            raise RequestError("stopped", str(self.stop_reason))
        rid = self.engine.request(op, self._clock())
        fut: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._requests[rid] = fut
        await self._pump()
        try:
            return await wait_future(fut, timeout)  # not wait_for: see parley.client.tasks
        finally:
            self._requests.pop(rid, None)

    async def wait_state(self, state: ConnectionState, timeout: float) -> None:
        deadline = self._clock() + timeout
        while self.engine.state is not state:
            if self._clock() > deadline:
                raise TimeoutError(f"state {self.engine.state} is not {state}")
            if self._stopped.is_set() and state is not ConnectionState.STOPPED:
                raise RequestError("stopped", str(self.stop_reason))
            await asyncio.sleep(0.01)

    async def set_in_view(self, conversation_id: bytes, in_view: bool) -> None:
        self.engine.set_in_view(conversation_id, in_view, self._clock())
        await self._pump()

    async def load_older(self, conversation_id: bytes, before_seq: int) -> None:
        self.engine.load_older(conversation_id, before_seq, self._clock())
        await self._pump()

    # --- the loop ----------------------------------------------------------------------------
    async def _run(self) -> None:
        while not self._stopped.is_set():
            self.engine.connecting()
            await self._pump()
            try:
                transport = await asyncio.wait_for(self._connect(), CONNECT_TIMEOUT_S)
            except Exception as exc:
                self.engine.connect_failed(self._clock(), f"{type(exc).__name__}: {exc}")
                await self._pump()
                await self._wait_reconnect()
                continue
            self._transport = transport
            self.engine.connected(self._clock())
            await self._pump()
            ticker = asyncio.ensure_future(self._ticker())
            code: int | None = None
            reason = ""
            try:
                while True:
                    data = await transport.recv()
                    self.engine.frame_received(data, self._clock())
                    await self._pump()
            except TransportClosed as exc:
                code, reason = exc.code, exc.reason
            except Exception as exc:  # a LocalStore or shell failure: stop, do not guess
                await self._fatal(exc)
                return
            finally:
                ticker.cancel()
                self._transport = None
            if self.error is not None:
                return
            self.engine.disconnected(self._clock(), code, reason)
            await self._pump()
            await self._wait_reconnect()

    async def _wait_reconnect(self) -> None:
        if self._stopped.is_set():
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), self._reconnect_delay)

    async def _ticker(self) -> None:
        try:
            while True:
                await self._sleep(self._tick_s)
                self.engine.tick(self._clock())
                await self._pump()
        except Exception as exc:
            await self._fatal(exc)

    async def _fatal(self, exc: Exception) -> None:
        """A failure outside the network (e.g. the LocalStore): stop rather than risk a cursor
        or frontier that no longer matches what is stored. The error is in ``self.error``."""
        if self.error is not None:
            return
        self.error = exc
        self.engine.stop(self._clock())  # fails pending requests, no reconnect
        with contextlib.suppress(Exception):
            await self._pump()
        stop = fx.Stop("client_error", f"{type(exc).__name__}: {exc}")
        with contextlib.suppress(Exception):
            await self._execute(stop)
        self.stop_reason = stop
        self._stopped.set()

    async def _pump(self) -> None:
        async with self._lock:
            while effects := self.engine.take_effects():
                for e in effects:
                    await self._execute(e)

    async def _execute(self, e: fx.Effect) -> None:
        eng = self.engine
        if isinstance(e, fx.SendFrame):
            t = self._transport
            if t is not None:
                with contextlib.suppress(TransportClosed):
                    await t.send(e.data)
        elif isinstance(e, fx.CloseConnection):
            t = self._transport
            if t is not None:
                await t.close(e.code, e.reason)
        elif isinstance(e, fx.Reconnect):
            self._reconnect_delay = e.delay
        elif isinstance(e, fx.Stop):
            self.stop_reason = e
            self._stopped.set()
            t = self._transport
            if t is not None:
                await t.close(1000, e.reason)
            futures: list[asyncio.Future[Result] | asyncio.Future[fx.MessageSent]] = [
                *self._requests.values(),
                *self._sends.values(),
            ]
            for fut in futures:
                if not fut.done():
                    fut.set_exception(RequestError(e.code, e.reason))
                    fut.exception()  # mark retrieved: nobody may be waiting
        elif isinstance(e, fx.StoreEntries):
            await self.store.store_entries(e.conversation_id, e.entries, e.cursor)
            eng.entries_stored(e.conversation_id, e.entries[0].seq, e.entries[-1].seq)
        elif isinstance(e, fx.StoreEvents):
            await self.store.store_events(e.events, e.cursor)
            eng.events_stored(e.cursor)
        elif isinstance(e, fx.StoreToDevice):
            await self.store.store_to_device(e.items, e.cursor)
            eng.to_device_stored(e.cursor, self._clock())
        elif isinstance(e, fx.OutboxPut):
            await self.store.outbox_put(e.item)
        elif isinstance(e, fx.OutboxDelete):
            await self.store.outbox_delete(e.client_msg_id)
        else:
            self._notify(e)

    def _notify(self, n: fx.Notification) -> None:
        if isinstance(n, fx.ReplyReceived):
            fut = self._requests.get(n.request_id)
            if fut is not None and not fut.done():
                fut.set_result(n.result)
        elif isinstance(n, fx.RequestFailed):
            rfut = self._requests.get(n.request_id)
            if rfut is not None and not rfut.done():
                rfut.set_exception(RequestError(n.code, n.message))
        elif isinstance(n, fx.MessageSent):
            sfut = self._sends.get(n.client_msg_id)
            if sfut is not None and not sfut.done():
                sfut.set_result(n)
        elif isinstance(n, fx.MessageFailed):
            ffut = self._sends.get(n.client_msg_id)
            if ffut is not None and not ffut.done():
                ffut.set_exception(SendFailed(n.code, n.message))
        for q in self._queues:
            q.put_nowait(n)
        for fn in self._listeners:
            fn(n)
