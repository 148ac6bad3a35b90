"""WebRTC in the browser for ``parley.client.call_driver``: one ``RTCPeerConnection`` per call,
the microphone and camera from ``getUserMedia``, the remote stream into a ``<video>``.

Both sides always negotiate one audio and one video transceiver (the caller adds them, the
callee takes them from the offer), so turning the camera on or off (a voice call upgraded to
video and back) is a ``replaceTrack`` with no renegotiation. The camera's track is stopped when
it is off (its light goes out). ``relay_only``: only TURN relay candidates, so the peer never
learns our addresses.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import js  # type: ignore[import-not-found]
from pyodide.ffi import create_proxy, to_js  # type: ignore[import-not-found]

from parley.client.call_driver import IceConfig, MediaError
from parley.client.call_signal import Candidate

if TYPE_CHECKING:
    from parley.client.call_driver import CallDriver


def _opt(v: Any) -> Any:
    """JS ``null`` (``JsNull`` in newer Pyodide) or ``undefined`` as None."""
    return None if v is None or type(v).__name__ == "JsNull" else v


def _obj(d: dict[str, Any]) -> Any:
    return to_js(d, dict_converter=js.Object.fromEntries)


def media_error(exc: BaseException) -> MediaError:
    """A getUserMedia rejection as ``denied`` or ``missing`` (anything else: ``missing``)."""
    name = str(getattr(exc, "name", "") or getattr(getattr(exc, "js_error", None), "name", ""))
    text = f"{name} {exc}"
    if "NotAllowed" in text or "Security" in text or "Permission" in text:
        return MediaError("denied", name)
    return MediaError("missing", name)


class WebRtcPeer:
    """``videos()`` returns the (local preview, remote) ``<video>`` elements of the call view."""

    def __init__(
        self, call_id: str, driver: CallDriver, videos: Callable[[], tuple[Any, Any]]
    ) -> None:
        self.call_id = call_id
        self.driver = driver
        self.videos = videos
        self.pc: Any = None
        self.stream: Any = None  # our microphone (+ camera)
        self.remote: Any = None
        self.audio_tx: Any = None
        self.video_tx: Any = None
        self._proxies: list[Any] = []
        self._video = False

    def _on(self, target: Any, event: str, fn: Callable[[Any], None]) -> None:
        p = create_proxy(fn)
        target.addEventListener(event, p)
        self._proxies.append(p)

    async def _capture(self, audio: bool, video: bool) -> Any:
        md = getattr(js.navigator, "mediaDevices", None)
        if md is None or not hasattr(md, "getUserMedia"):
            raise MediaError("missing", "no mediaDevices")
        try:
            return await md.getUserMedia(_obj({"audio": audio, "video": video}))
        except Exception as exc:
            raise media_error(exc) from None

    async def start(self, video: bool, ice: IceConfig) -> None:
        self.stream = await self._capture(True, video)
        self._video = video
        servers = [
            {"urls": to_js(s.urls), "username": s.username, "credential": s.credential}
            if s.username
            else {"urls": to_js(s.urls)}
            for s in ice.servers
        ]
        config = {"iceServers": to_js([_obj(s) for s in servers])}
        if ice.relay_only:
            config["iceTransportPolicy"] = "relay"
        self.pc = pc = js.RTCPeerConnection.new(_obj(config))
        self.remote = js.MediaStream.new()
        _, remote_el = self.videos()
        if remote_el:
            remote_el.srcObject = self.remote
        self._on(pc, "icecandidate", self._on_candidate)
        self._on(pc, "iceconnectionstatechange", self._on_ice)
        self._on(pc, "track", self._on_track)
        local_el, _ = self.videos()
        if local_el:
            local_el.srcObject = self.stream

    def _on_candidate(self, event: Any) -> None:
        c = _opt(event.candidate)
        if c is None or not _opt(c.candidate):
            return  # the end of gathering
        mid, mline = _opt(c.sdpMid), _opt(c.sdpMLineIndex)
        cand = Candidate(candidate=str(c.candidate),
                         mid=None if mid is None else str(mid),
                         mline=None if mline is None else int(mline))  # fmt: skip
        self.driver.local_candidates([cand])

    def _on_ice(self, _event: Any) -> None:
        if self.pc is not None:
            self.driver.ice_state(str(self.pc.iceConnectionState))

    def _on_track(self, event: Any) -> None:
        if self.remote is not None:
            self.remote.addTrack(event.track)
        _, remote_el = self.videos()
        if remote_el:
            remote_el.srcObject = self.remote
            p = remote_el.play()
            if p is not None:
                p.catch(create_proxy(lambda _e: None))

    def _track(self, kind: str) -> Any:
        if self.stream is None:
            return None
        tracks = self.stream.getAudioTracks() if kind == "audio" else self.stream.getVideoTracks()
        return tracks[0] if tracks.length else None

    def _bind(self) -> None:
        """Our tracks onto the audio and video transceivers, both sendrecv."""
        for t in self.pc.getTransceivers():
            kind = str(t.receiver.track.kind)
            if kind == "audio" and self.audio_tx is None:
                self.audio_tx = t
            elif kind == "video" and self.video_tx is None:
                self.video_tx = t
        for kind, tx in (("audio", self.audio_tx), ("video", self.video_tx)):
            if tx is not None:
                tx.direction = "sendrecv"
                tx.sender.replaceTrack(self._track(kind))

    def _report(self) -> None:
        """After an ICE restart's answer, Chromium may keep the old pair and never change
        ``iceConnectionState``: say it is (still) connected, so the call leaves reconnecting."""
        if self.pc is not None and str(self.pc.iceConnectionState) in ("connected", "completed"):
            self.driver.ice_state(str(self.pc.iceConnectionState))

    async def make_offer(self, ice_restart: bool) -> str:
        pc = self.pc
        if ice_restart:
            body = js.document.body.dataset
            body.callRestarts = str(int(getattr(body, "callRestarts", None) or 0) + 1)
        if self.audio_tx is None:
            self.audio_tx = pc.addTransceiver("audio", _obj({"direction": "sendrecv"}))
            self.video_tx = pc.addTransceiver("video", _obj({"direction": "sendrecv"}))
            self._bind()
        offer = await pc.createOffer(_obj({"iceRestart": ice_restart}))
        await pc.setLocalDescription(offer)
        return str(pc.localDescription.sdp)

    async def make_answer(self) -> str:
        pc = self.pc
        answer = await pc.createAnswer()
        await pc.setLocalDescription(answer)
        self._report()
        return str(pc.localDescription.sdp)

    async def apply_remote(self, kind: str, sdp: str) -> None:
        await self.pc.setRemoteDescription(_obj({"type": kind, "sdp": sdp}))
        if kind == "offer":
            self._bind()
        else:
            self._report()

    async def add_candidates(self, candidates: Sequence[Candidate]) -> None:
        for c in candidates:
            init: dict[str, Any] = {"candidate": c.candidate}
            if c.mid is not None:
                init["sdpMid"] = c.mid
            if c.mline is not None:
                init["sdpMLineIndex"] = c.mline
            try:
                await self.pc.addIceCandidate(_obj(init))
            except Exception as exc:  # one bad candidate must not end the call
                js.console.warn(f"call: candidate refused: {getattr(exc, 'name', '')}")

    async def set_local(self, muted: bool, video: bool) -> None:
        audio = self._track("audio")
        if audio is not None:
            audio.enabled = not muted
        if video and self._track("video") is None:
            try:
                cam = await self._capture(False, True)
            except MediaError as exc:
                self.driver.ui.media_error(exc.kind)
                self.driver.set_camera(False)
                return
            self.stream.addTrack(cam.getVideoTracks()[0])
        elif not video:
            track = self._track("video")
            if track is not None:
                track.stop()
                self.stream.removeTrack(track)
        if self.video_tx is not None:
            await self.video_tx.sender.replaceTrack(self._track("video"))
        local_el, _ = self.videos()
        if local_el:
            local_el.srcObject = self.stream

    async def stats(self) -> dict[str, int]:
        """Inbound bytes per kind (the tests and the bench watch them grow)."""
        out = {"audio": 0, "video": 0}
        if self.pc is None:
            return out
        report = await self.pc.getStats()
        for s in report.values():
            if str(s.type) == "inbound-rtp":
                kind = str(getattr(s, "kind", "") or getattr(s, "mediaType", ""))
                out[kind] = out.get(kind, 0) + int(getattr(s, "bytesReceived", 0) or 0)
        return out

    async def relay_pair(self) -> bool:
        """The selected candidate pair is relay on our side (TURN)."""
        if self.pc is None:
            return False
        report = await self.pc.getStats()
        by_id = {str(s.id): s for s in report.values()}
        for s in report.values():
            if str(s.type) == "candidate-pair" and str(getattr(s, "state", "")) == "succeeded":
                local = by_id.get(str(s.localCandidateId))
                if local is not None and str(local.candidateType) == "relay":
                    return True
        return False

    async def stop(self) -> None:
        if self.stream is not None:
            for t in self.stream.getTracks():
                t.stop()
        if self.pc is not None:
            self.pc.close()
        local_el, remote_el = self.videos()
        for v in (local_el, remote_el):
            if v:
                v.srcObject = None
        for p in self._proxies:
            p.destroy()
        self._proxies.clear()
        self.pc = None
