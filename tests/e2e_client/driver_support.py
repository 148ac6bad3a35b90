"""A small in-memory world for unit tests of the E2E driver: a key directory, a server that
routes conversation entries and to-device items into each device's ``MemoryLocalStore``, and a
session per device with the ``Session`` surface the driver uses. Real crypto throughout.

Everything runs on the virtual-time loop (``virtual_loop.run``), so the same tests run in
CPython and inside Pyodide; the devices are "browser-shaped": the driver is started without
``publish_first`` and records results in a sink, as ``web/parley_web/secure.py`` does. (Integration
tests use the real server; these exist so the driver itself is tested in both runtimes.)
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from parley.client import effects as fx
from parley.client.e2e import groups
from parley.client.e2e import state as st_mod
from parley.client.e2e.keys_api import KeyDirectoryError
from parley.client.e2e.state import PendingSend
from parley.client.e2e_driver import E2EDriver, Handled, ResultSink
from parley.client.memory_store import MemoryLocalStore
from parley.client.model import ConnectionState, Cursors
from parley.crypto import content as content_mod
from parley.crypto import devicelist
from parley.crypto.b64 import b64d
from parley.protocol import keys as kp
from parley.protocol.ops import (
    Conversation,
    ConvGet,
    DirectOpen,
    Op,
    ToDeviceSend,
    ToDeviceSent,
)
from parley.protocol.records import ConvEntry, ConversationInfo, Member, Message, ToDeviceItem
from parley.protocol.types import ConversationKind, Role

T = TypeVar("T")

BASE_MS = 1_700_000_000_000


def wall_ms() -> int:
    """Wall time on the virtual loop: it starts at BASE_MS and moves with the loop's clock."""
    return BASE_MS + int(asyncio.get_running_loop().time() * 1000)


async def until(pred: Callable[[], bool], timeout: float = 120.0) -> None:
    """Wait (virtual seconds, bounded) until ``pred()`` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    step = 0.05
    while not pred():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(step)
        step = min(step * 1.5, 60.0)  # long virtual waits in few steps


class Directory:
    """The key directory: device lists, uploaded keys, OPKs handed out one per bundle."""

    def __init__(self) -> None:
        self.devlists: dict[str, kp.DeviceListReply] = {}
        self.spks: dict[tuple[str, int], kp.SignedPreKeyBody] = {}
        self.iks: dict[tuple[str, int], str] = {}
        self.opks: dict[tuple[str, int], list[kp.OneTimePreKeyBody]] = {}
        self.calls: list[tuple[str, str, str]] = []  # (user, method, path)

    def count(self, user: str, device: int) -> int:
        return len(self.opks.get((user, device), []))

    def _count_reply(self, key: tuple[str, int]) -> kp.OpkCountReply:
        n = self.count(*key)
        return kp.OpkCountReply(count=n, low=n < kp.OPK_LOW_WATER)

    def bundles(self, user: str) -> kp.BundlesReply:
        """What GET /users/{user}/bundles returns (claims one OPK per device)."""
        dl = self.devlists.get(user)
        if dl is None:
            return kp.BundlesReply(bundles=[])
        out = []
        for d in devicelist.parse(b64d(dl.devlist)).devices:
            key = (user, d.device_id)
            if key not in self.spks:
                continue
            spk = self.spks[key]
            left = self.opks.get(key, [])
            opk = left.pop(0) if left else None
            out.append(kp.Bundle(
                user_id=user, device_id=d.device_id, aik=dl.aik, devlist=dl.devlist,
                devlist_sig=dl.devlist_sig, ik=self.iks[key],
                spk=kp.BundleSpk(spk.id, spk.pub, spk.sig),
                opk=kp.BundleOpk(opk.id, opk.pub) if opk is not None else None,
            ))  # fmt: skip
        return kp.BundlesReply(bundles=out)

    def caller(self, user: str, device: int) -> Callable[..., Any]:
        """The ``call(method, path, body, reply, params)`` of one authenticated device."""

        async def call(
            method: str,
            path: str,
            body: object,
            reply: type[T],
            params: list[tuple[str, str]] | None = None,
        ) -> Any:
            await asyncio.sleep(0)  # a real caller yields to the loop
            self.calls.append((user, method, path))
            key = (user, device)
            if method == "PUT" and path == "/devicelist":
                assert isinstance(body, kp.PutDeviceListBody)
                old = self.devlists.get(user)
                if old is not None and old.aik != body.aik:
                    raise KeyDirectoryError(409, '{"code":"account_key_changed"}')
                version = devicelist.parse(b64d(body.devlist)).version
                self.devlists[user] = kp.DeviceListReply(
                    user, body.aik, body.devlist, body.devlist_sig, version
                )
                return self.devlists[user]
            if method == "PUT" and path == "/device":
                assert isinstance(body, kp.UploadKeysBody)
                self.iks[key], self.spks[key] = body.ik, body.spk
                held = self.opks.setdefault(key, [])
                ids = {o.id for o in held}
                held += [o for o in body.opks if o.id not in ids]
                return self._count_reply(key)
            if method == "GET" and path == "/count":
                return self._count_reply(key)
            if method == "GET" and path.endswith("/devicelist"):
                who = path.split("/")[2]
                if who not in self.devlists:
                    raise KeyDirectoryError(404, '{"code":"not_found"}')
                return self.devlists[who]
            if method == "GET" and path.endswith("/bundles"):
                return self.bundles(path.split("/")[2])
            raise KeyDirectoryError(404, f"no fake for {method} {path}")

        return call


class World:
    """The server: conversations, their entries, to-device queues; and the key directory."""

    def __init__(self) -> None:
        self.directory = Directory()
        self.sessions: list[FakeSession] = []
        self.convs: dict[bytes, ConversationInfo] = {}
        self.entries: dict[bytes, list[ConvEntry]] = {}
        self._td_seq = itertools.count(1)
        self._cid = itertools.count(1)
        self._jobs: set[asyncio.Future[None]] = set()
        self.drop_to_device: Callable[[str, int, str, int], bool] = lambda *_: False
        """``(sender, sender_device, user, device)`` -> True: lose that to-device message."""

    def deliver(self, job: Coroutine[Any, Any, None]) -> None:
        """Run a delivery in the background, as the network would (kept until it is done)."""
        task = asyncio.ensure_future(job)
        self._jobs.add(task)
        task.add_done_callback(self._jobs.discard)

    def session(self, user: str, device: int, store: MemoryLocalStore | None = None) -> FakeSession:
        s = FakeSession(self, user, device, store or MemoryLocalStore())
        self.sessions.append(s)
        return s

    def _devices(self, user: str) -> list[FakeSession]:
        return [s for s in self.sessions if s.user == user]

    def direct(self, a: str, b: str) -> ConversationInfo:
        for info in self.convs.values():
            if info.kind == ConversationKind.DIRECT and {m.user_id for m in info.members} == {a, b}:
                return info
        cid = next(self._cid).to_bytes(16, "big")
        members = [Member(a, Role.OWNER), Member(b, Role.MEMBER)]
        info = ConversationInfo(cid, ConversationKind.DIRECT, members, 0, BASE_MS)
        self.convs[cid], self.entries[cid] = info, []
        return info

    async def post(self, sender: FakeSession, cid: bytes, envelope: bytes, cmid: str,
                   mentions: Sequence[str], ref: int | None) -> None:  # fmt: skip
        await asyncio.sleep(0)
        info = self.convs[cid]
        seq = len(self.entries[cid]) + 1
        e = ConvEntry(cid, seq, wall_ms(), sender.user, sender.device,
                      Message(envelope, ref_seq=ref, mentions=list(mentions)))  # fmt: skip
        self.entries[cid].append(e)
        sender.notify(fx.MessageSent(cmid, cid, seq, e.ts, False))
        for m in info.members:
            for s in self._devices(m.user_id):
                await s.store.store_entries(cid, [e], seq)
                s.notify(fx.EntriesStored(cid, seq, seq, seq))

    async def to_device(self, sender: FakeSession, msgs: Sequence[Any]) -> None:
        await asyncio.sleep(0)
        for m in msgs:
            if self.drop_to_device(sender.user, sender.device, m.user_id, m.device_id):
                continue
            for s in self._devices(m.user_id):
                if s.device != m.device_id:
                    continue
                seq = next(self._td_seq)
                item = ToDeviceItem(seq, wall_ms(), sender.user, sender.device, m.body)
                await s.store.store_to_device([item], seq)
                s.notify(fx.ToDeviceStored((item,)))


class FakeSession:
    """The part of ``parley.client.session.Session`` the driver uses, over the ``World``."""

    def __init__(self, world: World, user: str, device: int, store: MemoryLocalStore) -> None:
        self.world, self.user, self.device, self.store = world, user, device, store
        self.state = ConnectionState.DISCONNECTED
        self._listeners: list[Callable[[fx.Notification], None]] = []

    @property
    def engine(self) -> FakeSession:
        return self  # the driver reads ``session.engine.cursors``

    @property
    def cursors(self) -> Cursors:
        return self.store.cursors

    def add_listener(self, fn: Callable[[fx.Notification], None]) -> None:
        self._listeners.append(fn)

    def notify(self, n: fx.Notification) -> None:
        if self.state is ConnectionState.ONLINE:  # offline: stored only (handled by re-scan)
            for fn in self._listeners:
                fn(n)

    async def start(self) -> None:
        self.state = ConnectionState.ONLINE
        self.notify(fx.ConnectionChanged(ConnectionState.ONLINE))

    async def stop(self, timeout: float = 5.0) -> None:
        self.state = ConnectionState.STOPPED

    async def request(self, op: Op, timeout: float = 30.0) -> Any:
        await asyncio.sleep(0)
        if isinstance(op, DirectOpen):
            return Conversation(self.world.direct(self.user, op.user_id))
        if isinstance(op, ConvGet):
            return Conversation(self.world.convs[op.conversation_id])
        if isinstance(op, ToDeviceSend):
            self.world.deliver(self.world.to_device(self, op.messages))
            return ToDeviceSent(len(op.messages))
        raise AssertionError(f"no fake for {op!r}")

    async def send_message(self, cid: bytes, envelope: bytes, *, client_msg_id: str | None = None,
                           mentions: Sequence[str] = (), ref_seq: int | None = None,
                           **_: object) -> str:  # fmt: skip
        assert client_msg_id is not None
        self.world.deliver(self.world.post(self, cid, envelope, client_msg_id, mentions, ref_seq))
        return client_msg_id


class Recorder(ResultSink):
    """A browser-shaped sink: rows by (conversation, seq), our sent messages, failures."""

    def __init__(self) -> None:
        self.rows: dict[bytes, dict[int, str]] = {}
        self.history: list[tuple[int, str]] = []  # every (seq, row) written, in order
        self.sent_seqs: list[int] = []
        self.errors: list[BaseException] = []
        self.notified: list[fx.Notification] = []

    async def entries(self, conversation_id: bytes, batch: Sequence[Handled]) -> None:
        held = self.rows.setdefault(conversation_id, {})
        for h in batch:
            r = h.result
            if isinstance(r, groups.Received) and isinstance(r.content, content_mod.Text):
                held[r.seq] = r.content.body
            elif isinstance(r, groups.Failed):
                held[r.seq] = f"failed:{r.reason}"
            elif isinstance(r, st_mod.Waiting):
                held[r.seq] = "waiting"
            if r is not None and r.seq in held:
                self.history.append((r.seq, held[r.seq]))

    async def handled_seqs(self, conversation_id: bytes) -> set[int]:
        return set(self.rows.get(conversation_id, {}))

    async def sent(self, p: PendingSend, n: fx.MessageSent) -> None:
        self.sent_seqs.append(n.seq)

    async def notification(self, n: fx.Notification) -> None:
        self.notified.append(n)

    def error(self, exc: BaseException) -> None:
        self.errors.append(exc)

    def texts(self, cid: bytes) -> list[str]:
        held = self.rows.get(cid, {})
        return [held[s] for s in sorted(held)]


class MemoryState:
    """A ``StateStore`` in memory (what the browser seals into IndexedDB)."""

    def __init__(self) -> None:
        self.blob: bytes | None = None
        self.saves = 0

    async def load_state(self) -> bytes | None:
        return self.blob

    async def save_state(self, blob: bytes) -> None:
        self.blob = blob
        self.saves += 1


class Device:
    """One browser-shaped device: its driver, sink, state and store in the world."""

    def __init__(self, world: World, user: str, device: int = 1,
                 store: MemoryLocalStore | None = None,
                 state: MemoryState | None = None) -> None:  # fmt: skip
        self.world = world
        self.user, self.device = user, device
        self.session = world.session(user, device, store)
        self.state = state or MemoryState()
        self.sink = Recorder()
        self.driver = E2EDriver(self.session, world.directory.caller(user, device),  # type: ignore[arg-type]
                                self.state, self.sink, user, device, wall_ms=wall_ms)  # fmt: skip

    async def start(self) -> Device:
        await self.driver.load()
        await self.driver.start()
        return self

    async def close(self) -> None:
        await self.driver.close()
        self.world.sessions.remove(self.session)
