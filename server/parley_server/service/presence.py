"""Presence: online / offline / last seen, shown to contacts only, coalesced with a timer.

Connection counts are per node; whether a user is online anywhere comes from the broker (its
connection registry on Redis, docs/scale-out.md), and pushes go through the broker to any node.
A connect or disconnect that changes a user's online state only marks the user *dirty*; a
flusher task wakes every ``presence_tick_s`` and, for each dirty user, tells each online
contact what changed, at most once per ``presence_coalesce_s`` per (watched user, watcher)
pair: a change inside that window stays dirty until the window ends, and a state that flapped
back to what the watcher last saw sends nothing. All updates due to one watcher in one tick go
in ONE frame, so a mass reconnect costs each watcher about one frame per tick, not one per
contact. The flusher stops itself when nobody is online and nothing is dirty.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from parley.protocol.codec import encode
from parley.protocol.frames import SignalPush
from parley.protocol.signals import PresenceSignal, PresenceState
from parley.protocol.social import PresenceGet, PresenceList
from parley_server.logging import get_logger
from parley_server.service.context import Services, Session, now_ms
from parley_server.store.base import StoreError
from parley_server.store.social import SocialStore

log = get_logger("parley.presence")

_Seen = tuple[bool, int | None, float]  # (online, last_seen, monotonic time it was sent)


class Presence:
    def __init__(self, services: Services, store: SocialStore) -> None:
        self.s = services
        self.store = store
        self.coalesce_s = services.settings.presence_coalesce_s
        self.tick_s = services.settings.presence_tick_s
        self._conns: dict[str, int] = {}  # user -> live connections on this node
        self._last_seen: dict[str, int] = {}  # ms, users who went offline since start
        self._dirty: set[str] = set()
        self._sent: dict[str, dict[str, _Seen]] = {}  # watcher -> watched -> what it was told
        self._task: asyncio.Task[None] | None = None
        self.frames_sent = 0  # publish calls (one per watcher per tick); for the benchmark
        self.updates_sent = 0  # PresenceState items inside them

    # --- inputs ----------------------------------------------------------------------------
    def connected(self, user_id: str) -> None:
        n = self._conns.get(user_id, 0) + 1
        self._conns[user_id] = n
        if n == 1:
            self._mark(user_id)

    def disconnected(self, user_id: str) -> None:
        n = self._conns.get(user_id, 0) - 1
        if n > 0:
            self._conns[user_id] = n
            return
        self._conns.pop(user_id, None)
        self._sent.pop(user_id, None)  # it watches nothing now; a snapshot resets it later
        self._last_seen[user_id] = now_ms()
        self._mark(user_id)

    def touch(self, user_id: str) -> None:
        """Something about the user's visible state changed (e.g. the last-seen setting)."""
        self._mark(user_id)

    def contacts_changed(self, users: Iterable[str]) -> None:
        """New contacts should see each other's state (removed ones simply stop watching)."""
        for u in users:
            self._mark(u)

    def is_online(self, user_id: str) -> bool:
        return user_id in self._conns

    # --- the op ----------------------------------------------------------------------------
    async def snapshot(self, session: Session, _: PresenceGet) -> PresenceList:
        told = self._sent.setdefault(session.user_id, {})
        states = []
        for contact in sorted(await self.store.contact_ids(session.user_id)):
            state = await self.state(contact)
            # a reply, not a push: it spends no coalescing window, but nothing it already
            # said is pushed again
            told[contact] = (state.online, state.last_seen, float("-inf"))
            states.append(state)
        return PresenceList(users=states)

    async def state(self, user_id: str) -> PresenceState:
        if user_id in self._conns or await self.s.broker.online([user_id]):
            return PresenceState(user_id=user_id, online=True)
        if not (await self.store.get_profile(user_id)).last_seen_visible:
            return PresenceState(user_id=user_id, online=False)
        seen = self._last_seen.get(user_id)
        if seen is None:  # offline since before this process started: the devices know
            devices = await self.s.store.list_devices(user_id)
            seen = max((d.last_seen for d in devices), default=None)
        return PresenceState(user_id=user_id, online=False, last_seen=seen)

    # --- the coalescing flusher ---------------------------------------------------------------
    def _mark(self, user_id: str) -> None:
        self._dirty.add(user_id)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            try:
                await self.flush()
            except StoreError:  # the store closed under us: the server is shutting down
                return
            except Exception:
                log.exception("presence_flush_failed")
            if not self._dirty and not self._conns:
                return

    async def flush(self) -> None:
        now = time.monotonic()
        dirty, self._dirty = self._dirty, set()
        batches: dict[str, list[PresenceState]] = {}
        for subject in dirty:
            contacts = await self.store.contact_ids(subject)
            watchers = [w for w in contacts if w in await self.s.broker.online([w])]
            if not watchers:
                continue
            state = await self.state(subject)
            for w in watchers:
                told = self._sent.setdefault(w, {})
                seen = told.get(subject)
                if seen is not None and seen[:2] == (state.online, state.last_seen):
                    continue
                if seen is not None and now - seen[2] < self.coalesce_s:
                    self._dirty.add(subject)  # inside the window: try again next tick
                    continue
                told[subject] = (state.online, state.last_seen, now)
                batches.setdefault(w, []).append(state)
        for watcher, states in batches.items():
            frame = encode(SignalPush(signal=PresenceSignal(users=states)))
            await self.s.broker.publish_to_users((watcher,), frame)
            self.frames_sent += 1
            self.updates_sent += len(states)
        if batches:
            log.info(
                "presence_flush",
                watchers=len(batches),
                updates=sum(len(v) for v in batches.values()),
                frames_total=self.frames_sent,
                updates_total=self.updates_sent,
            )
