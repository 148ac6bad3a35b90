"""The async driver of 1:1 calls that every shell reuses (browser: WebRTC through JS; CPython:
aiortc): it feeds ``CallManager`` with events and carries out its effects.

A shell gives it I/O hooks only:

* ``signals``: the E2E driver (``parley.client.e2e_driver.E2EDriver`` has this shape):
  pairwise to-device contents out (``send_to_devices``), in by type (``on_to_device("call")``),
  the peer's verified devices (``refresh_devlist`` + ``st.contacts``), and the 1:1 chat for the
  call entry (``open_direct`` + ``send_content``);
* ``media``: makes a ``MediaPeer`` per call (a peer connection with microphone and camera);
  the peer reports its candidates and ICE state back with ``local_candidates`` / ``ice_state``;
* ``ui``: what to show (state changes, ring on/off, media errors);
* ``is_contact(user_id)`` (sync or async): only contacts (not blocked) may make this device
  ring;
* ``ice_servers()``: TURN credentials (``GET /api/v1/turn``), fetched for each call.

Events are handled one at a time by one worker task, in order; each effect completes before the
next event (an offer is sent before its candidates). Nothing here logs SDP or candidates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from parley.client import call as cm
from parley.client import call_signal as cs
from parley.client.tasks import stop_task
from parley.crypto import content as content_mod
from parley.crypto.b64 import b64e
from parley.crypto.keys import Rng, rng_or_default

log = logging.getLogger("parley.calls")


@dataclass(frozen=True)
class IceServer:
    urls: list[str]
    username: str = ""
    credential: str = ""


@dataclass(frozen=True)
class IceConfig:
    servers: list[IceServer] = field(default_factory=list)
    relay_only: bool = False
    """Only relay candidates (privacy: the peer never learns our addresses; tests)."""


class MediaError(Exception):
    """The microphone or camera is denied (``kind`` = ``denied``) or missing (``missing``)."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


class MediaPeer(Protocol):
    async def start(self, video: bool, ice: IceConfig) -> None: ...
    async def make_offer(self, ice_restart: bool) -> str: ...
    async def make_answer(self) -> str: ...
    async def apply_remote(self, kind: str, sdp: str) -> None: ...
    async def add_candidates(self, candidates: Sequence[cs.Candidate]) -> None: ...
    async def set_local(self, muted: bool, video: bool) -> None: ...
    async def stop(self) -> None: ...


class MediaFactory(Protocol):
    def __call__(self, call_id: str, driver: CallDriver) -> MediaPeer: ...


class CallUi(Protocol):
    def changed(self, view: cm.CallView) -> None: ...
    def ring(self, on: bool, peer: str, video: bool) -> None: ...
    def media_error(self, kind: str) -> None: ...


class SignalChannel(Protocol):
    st: Any

    async def send_to_devices(
        self, user_id: str, content: content_mod.Content, devices: Sequence[int] | None = None
    ) -> int: ...
    def on_to_device(
        self,
        content_type: str,
        handler: Callable[[str, int, content_mod.Content], Awaitable[None] | None],
    ) -> None: ...
    async def refresh_devlist(self, user_id: str) -> Any: ...
    async def open_direct(self, user_id: str) -> bytes: ...
    async def send_content(self, cid: bytes, c: content_mod.Content) -> str: ...


def _wall_ms() -> int:
    return int(time.time() * 1000)


_Event = Callable[[], Awaitable[list[cm.Effect]] | list[cm.Effect]]


class CallDriver:
    def __init__(
        self,
        signals: SignalChannel,
        media: MediaFactory,
        ui: CallUi,
        *,
        user_id: str,
        device_id: int,
        is_contact: Callable[[str], bool | Awaitable[bool]],
        ice_servers: Callable[[], Awaitable[IceConfig]],
        now: Callable[[], int] = _wall_ms,
        rng: Rng | None = None,
    ) -> None:
        self.signals = signals
        self.media = media
        self.ui = ui
        self.m = cm.CallManager(user_id, device_id)
        self.is_contact = is_contact
        self.ice_servers = ice_servers
        self.now = now
        self._rng = rng_or_default(rng)
        self.peer: MediaPeer | None = None
        self._queue: asyncio.Queue[_Event] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.ignored: list[str] = []
        """Reasons of input that changed nothing (bounded; also logged)."""
        self.errors: list[BaseException] = []
        self.entries: list[cm.PostEntry] = []
        signals.on_to_device("call", self._on_content)

    # --- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._work())

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.peer is not None:
            with contextlib.suppress(Exception):
                await self.peer.stop()
            self.peer = None
        if self._worker is not None:
            await stop_task(self._worker, 3.0)
            self._worker = None

    # --- user actions (queued) -----------------------------------------------------------------
    def new_call_id(self) -> str:
        return b64e(self._rng(cs.CALL_ID_LEN))

    async def place(self, peer: str, video: bool) -> str:
        """Ring every verified device of ``peer``. Returns the call id."""
        call_id = self.new_call_id()

        async def ev() -> list[cm.Effect]:
            devices: list[int] = []
            try:
                await self.signals.refresh_devlist(peer)
                c = self.signals.st.contacts.get(peer)
                devices = sorted(c.devices) if c is not None else []
            except Exception as exc:  # directory unreachable: the call is unavailable
                log.info("call: device list of the callee unavailable (%s)", type(exc).__name__)
            return self.m.place(peer, devices, video, call_id, self.now())

        self._put(ev)
        return call_id

    def accept(self, video: bool) -> None:
        self._put(lambda: self.m.accept(video, self.now()))

    def decline(self) -> None:
        self._put(lambda: self.m.decline(self.now()))

    def hangup(self) -> None:
        self._put(lambda: self.m.hangup(self.now()))

    def set_muted(self, muted: bool) -> None:
        self._put(lambda: self.m.set_muted(muted, self.now()))

    def set_camera(self, on: bool) -> None:
        self._put(lambda: self.m.set_camera(on, self.now()))

    def network_changed(self) -> None:
        self._put(lambda: self.m.network_changed(self.now()))

    def dismiss(self) -> None:
        self._put(lambda: self.m.dismiss())

    # --- media events (from the MediaPeer) -----------------------------------------------------
    def local_candidates(self, candidates: list[cs.Candidate]) -> None:
        self._put(lambda: self.m.local_candidates(candidates, self.now()))

    def ice_state(self, state: str) -> None:
        self._put(lambda: self.m.ice_state(state, self.now()))

    async def idle(self) -> None:
        """Wait until every queued event is handled (tests, benchmarks)."""
        await self._queue.join()

    # --- internals -----------------------------------------------------------------------------
    def _on_content(self, sender: str, device: int, c: content_mod.Content) -> None:
        if not isinstance(c, content_mod.Call):
            return
        sig, ts = c.sig, c.ts

        async def ev() -> list[cm.Effect]:
            try:
                got = self.is_contact(sender)
                contact = await got if not isinstance(got, bool) else got
            except Exception as exc:  # unknown: treat as a stranger (nothing rings)
                log.info("call: contact check failed (%s)", type(exc).__name__)
                contact = False
            return self.m.on_signal(sender, device, sig, ts, self.now(), contact=contact)

        self._put(ev)

    def _put(self, ev: _Event) -> None:
        self._queue.put_nowait(ev)

    async def _work(self) -> None:
        while True:
            ev = await self._queue.get()
            try:
                out = ev()
                fx = await out if not isinstance(out, list) else out
                await self._run(fx)
            except Exception as exc:  # a failing effect must not stop the calls
                self.errors.append(exc)
                log.warning("call: effect failed (%s)", type(exc).__name__)
            finally:
                self._queue.task_done()
            self._arm()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        due = self.m.next_deadline()
        if due is None:
            return
        delay = max(due - self.now(), 0) / 1000
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(delay, lambda: self._put(lambda: self.m.tick(self.now())))

    async def _run(self, fx: list[cm.Effect]) -> None:
        i = 0
        while i < len(fx):
            e = fx[i]
            if isinstance(e, cm.SendSignal):
                # one signal to several devices of one user goes in one batch
                devices = [e.device_id]
                while (
                    i + 1 < len(fx)
                    and isinstance(fx[i + 1], cm.SendSignal)
                    and fx[i + 1].signal is e.signal  # type: ignore[union-attr]
                ):
                    i += 1
                    devices.append(fx[i].device_id)  # type: ignore[union-attr]
                await self._send(e.user_id, devices, e.signal)
            else:
                await self._effect(e)
            i += 1

    async def _send(self, user_id: str, devices: list[int], sig: cs.Signal) -> None:
        cur = self.m.current
        if isinstance(sig, cs.Invite) and (
            cur is None or cur.call_id != sig.call or cur.state != cm.CallState.OUTGOING
        ):
            return  # the call ended before its invite left (e.g. no microphone)
        c = content_mod.Call(id=b64e(self._rng(16)), ts=self.now(), sig=cs.encode(sig))
        try:
            n = await self.signals.send_to_devices(user_id, c, devices)
        except Exception as exc:  # refused by the server (not allowed to reach them), offline
            log.info("call: signal not delivered (%s)", type(exc).__name__)
            n = 0
        if n == 0 and isinstance(sig, cs.Invite):
            await self._run(self.m.delivery_failed(sig.call, self.now()))

    async def _effect(self, e: cm.Effect) -> None:
        if isinstance(e, cm.Changed):
            # an effect run in between (e.g. no microphone: hung up) may have moved the call on
            cur = self.m.current
            same = cur is not None and cur.call_id == e.view.call_id
            self.ui.changed(cur.view() if same and cur is not None else e.view)
        elif isinstance(e, cm.Ring):
            self.ui.ring(True, e.peer, e.video)
        elif isinstance(e, cm.StopRinging):
            c = self.m.current
            self.ui.ring(False, c.peer if c else "", False)
        elif isinstance(e, cm.Ignored):
            self.ignored.append(e.reason)
            del self.ignored[:-100]
            log.info("call: ignored: %s", e.reason)
        elif isinstance(e, cm.StartMedia):
            await self._start_media(e)
        elif isinstance(e, cm.StopMedia):
            peer, self.peer = self.peer, None
            if peer is not None:
                await peer.stop()
        elif isinstance(e, cm.PostEntry):
            self.entries.append(e)
            cid = await self.signals.open_direct(e.peer)
            entry = content_mod.CallLog(id=b64e(self._rng(16)), ts=self.now(), call=e.call_id,
                                        video=e.video, outcome=e.outcome,
                                        duration_ms=e.duration_ms)  # fmt: skip
            await self.signals.send_content(cid, entry)
        elif self.peer is None:
            log.info("call: %s with no media", type(e).__name__)
        elif isinstance(e, cm.MakeOffer):
            sdp = await self.peer.make_offer(e.ice_restart)
            await self._run(self.m.local_description("offer", sdp, self.now()))
        elif isinstance(e, cm.MakeAnswer):
            sdp = await self.peer.make_answer()
            await self._run(self.m.local_description("answer", sdp, self.now()))
        elif isinstance(e, cm.ApplyRemote):
            await self.peer.apply_remote(e.kind, e.sdp)
        elif isinstance(e, cm.AddCandidates):
            await self.peer.add_candidates(e.candidates)
        elif isinstance(e, cm.SetLocalMedia):
            await self.peer.set_local(e.muted, e.video)

    async def _start_media(self, e: cm.StartMedia) -> None:
        if self.peer is not None:
            with contextlib.suppress(Exception):
                await self.peer.stop()
        try:
            ice = await self.ice_servers()
        except Exception as exc:  # no TURN credentials: host candidates only
            log.info("call: no TURN credentials (%s)", type(exc).__name__)
            ice = IceConfig()
        peer = self.media(e.call_id, self)
        self.peer = peer
        try:
            await peer.start(e.video, ice)
        except MediaError as exc:
            self.ui.media_error(exc.kind)
            self.peer = None
            with contextlib.suppress(Exception):
                await peer.stop()
            await self._run(self.m.hangup(self.now()))
