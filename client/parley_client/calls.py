"""Calls from CPython: an aiortc ``MediaPeer`` for ``parley.client.call_driver`` and the glue
that binds a ``CallDriver`` to an ``E2EClient`` (signalling as pairwise to-device contents, TURN
credentials from ``GET /api/v1/turn``, contacts from the server).

    calls = Calls(e2e, play="hello.wav")        # or echo=True: send back what arrives
    calls.start()
    await calls.driver.place(bob_id, video=False)

aiortc specifics: no trickle ICE (its candidates are inside its SDP), only the first TURN URL is
used, and an ICE restart is a plain re-offer. Needs the ``calls`` extra (``aiortc``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import math
import time
from collections.abc import Sequence
from typing import Any

import httpx
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaPlayer, MediaRelay
from aiortc.rtcconfiguration import RTCIceTransportPolicy
from aiortc.sdp import candidate_from_sdp
from av import AudioFrame

from parley.client import call as cm
from parley.client import call_signal as cs
from parley.client.call_driver import CallDriver, IceConfig, IceServer, MediaPeer
from parley.protocol.social import ContactList, Contacts
from parley_client.e2e_client import E2EClient

log = logging.getLogger("parley.calls")

SAMPLE_RATE = 48_000
FRAME_SAMPLES = 960  # 20 ms


class ToneTrack(MediaStreamTrack):
    """A 440 Hz tone, paced in real time (aiortc's AudioStreamTrack has no pacing helper)."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._t0: float | None = None
        self._n = 0

    async def recv(self) -> AudioFrame:
        if self._t0 is None:
            self._t0 = time.monotonic()
        due = self._t0 + self._n * FRAME_SAMPLES / SAMPLE_RATE
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        frame = AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
        base = self._n * FRAME_SAMPLES
        pcm = bytearray()
        for i in range(FRAME_SAMPLES):
            v = int(8000 * math.sin(2 * math.pi * 440 * (base + i) / SAMPLE_RATE))
            pcm += v.to_bytes(2, "little", signed=True)
        frame.planes[0].update(bytes(pcm))
        frame.pts = base
        frame.sample_rate = SAMPLE_RATE
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        self._n += 1
        return frame


class AiortcPeer:
    """One call's RTCPeerConnection. Sends ``play`` (a media file) or a tone; ``echo``: sends
    back the tracks that arrive. Counts received frames per kind (``received``)."""

    def __init__(
        self, call_id: str, driver: CallDriver, *, play: str | None = None, echo: bool = False
    ) -> None:
        self.call_id = call_id
        self.driver = driver
        self.play = play
        self.echo = echo
        self.pc: RTCPeerConnection | None = None
        self.received: dict[str, int] = {"audio": 0, "video": 0}
        self._relay = MediaRelay()
        self._player: MediaPlayer | None = None
        self._sinks: list[asyncio.Task[None]] = []
        self._reported = ""

    async def start(self, video: bool, ice: IceConfig) -> None:
        servers = [
            RTCIceServer(urls=s.urls[0], username=s.username or None,
                         credential=s.credential or None)
            for s in ice.servers if s.urls
        ][:1]  # fmt: skip  # aiortc uses only the first TURN server
        policy = RTCIceTransportPolicy.RELAY if ice.relay_only else RTCIceTransportPolicy.ALL
        pc = self.pc = RTCPeerConnection(RTCConfiguration(iceServers=servers,
                                                          iceTransportPolicy=policy))  # fmt: skip

        @pc.on("connectionstatechange")
        def _state() -> None:
            st = pc.connectionState
            if st != self._reported:
                self._reported = st
                self.driver.ice_state(st)

        @pc.on("track")
        def _track(track: MediaStreamTrack) -> None:
            self._sinks.append(asyncio.ensure_future(self._sink(track)))
            if self.echo:
                pc.addTrack(self._relay.subscribe(track))

        if self.echo:
            return  # the answer sends back what the offer brings
        if self.play:
            self._player = MediaPlayer(self.play)
            if self._player.audio is not None:
                pc.addTrack(self._player.audio)
            if self._player.video is not None:
                pc.addTrack(self._player.video)
        else:
            pc.addTrack(ToneTrack())

    async def _sink(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(Exception):  # MediaStreamError when the call ends
            while True:
                await track.recv()
                self.received[track.kind] = self.received.get(track.kind, 0) + 1

    async def make_offer(self, ice_restart: bool) -> str:
        assert self.pc is not None
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def make_answer(self) -> str:
        assert self.pc is not None
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return str(self.pc.localDescription.sdp)

    async def apply_remote(self, kind: str, sdp: str) -> None:
        assert self.pc is not None
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=kind))

    async def add_candidates(self, candidates: Sequence[cs.Candidate]) -> None:
        assert self.pc is not None
        for c in candidates:
            text = c.candidate.removeprefix("candidate:")
            if not text:
                continue
            try:
                cand = candidate_from_sdp(text)
            except (ValueError, IndexError):
                log.info("call: unparsable remote candidate ignored")
                continue
            cand.sdpMid = c.mid
            cand.sdpMLineIndex = c.mline
            await self.pc.addIceCandidate(cand)

    async def set_local(self, muted: bool, video: bool) -> None:
        """aiortc has no track enable flag; muting is left to the media source."""

    async def stop(self) -> None:
        for t in self._sinks:
            t.cancel()
        if self.pc is not None:
            await self.pc.close()
        if self._player is not None:
            for tr in (self._player.audio, self._player.video):
                if tr is not None:
                    tr.stop()


class _Ui:
    """Prints state changes (the CLI) and wakes waiters."""

    def __init__(self, verbose: bool) -> None:
        self.verbose = verbose
        self.views: list[cm.CallView] = []
        self.changed_ev = asyncio.Event()

    def changed(self, view: cm.CallView) -> None:
        self.views.append(view)
        if self.verbose:
            reason = f" ({view.end_reason.value})" if view.end_reason else ""
            print(f"call {view.state.value}{reason}", flush=True)
        self.changed_ev.set()

    def ring(self, on: bool, peer: str, video: bool) -> None:
        if on and self.verbose:
            print(f"incoming {'video' if video else 'voice'} call from {peer}", flush=True)

    def media_error(self, kind: str) -> None:
        print(f"media error: {kind}", flush=True)


class Calls:
    """A ``CallDriver`` over an ``E2EClient`` with aiortc media. ``auto_answer``: accept
    every incoming call (a bot); ``relay_only``: only TURN relay candidates."""

    def __init__(
        self,
        e2e: E2EClient,
        *,
        play: str | None = None,
        echo: bool = False,
        auto_answer: bool = False,
        relay_only: bool = False,
        verbose: bool = False,
    ) -> None:
        self.e2e = e2e
        self.play = play
        self.echo = echo
        self.auto_answer = auto_answer
        self.relay_only = relay_only
        self.ui = _Ui(verbose)
        self.peers: list[AiortcPeer] = []
        self.driver = CallDriver(
            e2e.driver,
            self._peer,
            self,
            user_id=e2e.user_id,
            device_id=e2e.device_id,
            is_contact=self._is_contact,
            ice_servers=self._ice,
        )

    def start(self) -> None:
        self.driver.start()

    async def close(self) -> None:
        await self.driver.close()

    # CallUi
    def changed(self, view: cm.CallView) -> None:
        self.ui.changed(view)

    def ring(self, on: bool, peer: str, video: bool) -> None:
        self.ui.ring(on, peer, video)
        if on and self.auto_answer:
            self.driver.accept(video)

    def media_error(self, kind: str) -> None:
        self.ui.media_error(kind)

    def _peer(self, call_id: str, driver: CallDriver) -> MediaPeer:
        p = AiortcPeer(call_id, driver, play=self.play, echo=self.echo)
        self.peers.append(p)
        return p

    async def _is_contact(self, user_id: str) -> bool:
        r = await self.e2e.client.request(ContactList(), 15)
        assert isinstance(r, Contacts)
        return user_id in {c.user_id for c in r.contacts} and user_id not in r.blocked

    async def _ice(self) -> IceConfig:
        async with httpx.AsyncClient(timeout=10) as h:
            r = await h.get(f"{self.e2e.http_url}/api/v1/turn",
                            headers={"authorization": self.e2e.http.headers["authorization"]})  # fmt: skip
            r.raise_for_status()
            body: dict[str, Any] = r.json()
        if not body["uris"]:
            return IceConfig(relay_only=False)
        server = IceServer(body["uris"], body["username"], body["credential"])
        return IceConfig([server], relay_only=self.relay_only)

    async def wait_state(self, *states: cm.CallState, timeout: float = 60.0) -> cm.CallView:
        """Until the current call is in one of ``states`` (raises TimeoutError)."""
        async with asyncio.timeout(timeout):
            while True:
                c = self.driver.m.current
                if c is not None and c.state in states:
                    return c.view()
                self.ui.changed_ev.clear()
                await self.ui.changed_ev.wait()
