"""Voice and video calls in the browser: the header buttons of a 1:1 chat, the incoming-call
banner (on every open device), the in-call view, the WebAudio ringtone, and the call entries in
the chat. The call logic is ``parley.client.call`` driven by ``parley.client.call_driver``;
the media are ``call_media.WebRtcPeer``.

For tests and operators, ``document.body`` carries ``data-call-state`` (the state of the
current call) and ``data-call-end`` (why the last one ended); ``window.parleyUi.callStats()``
resolves to a JSON string of inbound bytes per kind and whether the pair is a TURN relay.
``localStorage['parley.call_relay'] = '1'`` makes calls use TURN relay candidates only.
``window.parleyUi.callMarks`` holds the wall-clock ms of the last ``clicked`` (call button),
``ring``, ``accept`` and ``connected`` (bench/calls.py --browser).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import js  # type: ignore[import-not-found]
from pyodide.ffi import create_proxy  # type: ignore[import-not-found]
from pyodide.http import pyfetch  # type: ignore[import-not-found]

from parley.client import call as cm
from parley.client.call_driver import CallDriver, IceConfig, IceServer, MediaPeer
from parley.crypto import content as content_mod
from parley.protocol.social import ContactList, Contacts
from parley_web import dom, i18n
from parley_web.call_media import WebRtcPeer
from parley_web.i18n import t

if TYPE_CHECKING:
    from parley_web.ui import Ui

ENDED_SHOWN_MS = 4000
RELAY_KEY = "parley.call_relay"


def duration_text(ms: int) -> str:
    s = max(ms, 0) // 1000
    m, s = divmod(s, 60)
    return t("call.min_s", m=m, s=s) if m else t("call.s", s=s)


def call_row(c: content_mod.CallLog) -> str:
    """A call entry as a system row (``conv.system.<action>:<who>``): the action names kind and
    outcome, ``who`` carries the duration (worded in the language of the moment it arrived)."""
    kind = "video" if c.video else "voice"
    outcome = c.outcome if c.outcome in ("completed", "declined") else (
        "missed" if c.outcome in ("missed", "cancelled", "busy") else "other"
    )  # fmt: skip
    who = duration_text(c.duration_ms) if outcome == "completed" else ""
    return f"call_{kind}_{outcome}:{who}"


class Ringtone:
    """Two tones, 1 s on and 2 s off, made by WebAudio (no sound file)."""

    def __init__(self) -> None:
        self.ctx: Any = None
        self.gain: Any = None
        self.oscs: list[Any] = []
        self._timer: Any = None
        self._tick = create_proxy(self._pulse)

    def start(self) -> None:
        if self.ctx is not None:
            return
        ctor = getattr(js.window, "AudioContext", None) or getattr(
            js.window, "webkitAudioContext", None
        )
        if ctor is None:
            return
        self.ctx = ctor.new()
        self.gain = self.ctx.createGain()
        self.gain.gain.value = 0
        self.gain.connect(self.ctx.destination)
        for freq in (440, 480):
            o = self.ctx.createOscillator()
            o.frequency.value = freq
            o.connect(self.gain)
            o.start()
            self.oscs.append(o)
        self._pulse()
        self._timer = js.setInterval(self._tick, 3000)
        js.document.body.dataset.ringing = "yes"

    def _pulse(self) -> None:
        if self.ctx is None:
            return
        now = self.ctx.currentTime
        g = self.gain.gain
        g.setValueAtTime(0.15, now)
        g.setValueAtTime(0, now + 1)

    def stop(self) -> None:
        js.document.body.dataset.ringing = "no"
        if self._timer is not None:
            js.clearInterval(self._timer)
            self._timer = None
        if self.ctx is not None:
            for o in self.oscs:
                o.stop()
            self.oscs.clear()
            self.ctx.close()
            self.ctx = None


class CallsUi:
    """Built once per signed-in app (``Ui.calls``); ``start()`` once the messenger exists."""

    def __init__(self, ui: Ui) -> None:
        self.ui = ui
        self.driver: CallDriver | None = None
        self.peer: WebRtcPeer | None = None
        self.peer_user: str | None = None  # of the open 1:1 chat
        self.view: cm.CallView | None = None
        self.tone = Ringtone()
        self._listeners = dom.Listeners()
        self._clock: Any = None
        self._hide: Any = None
        self._build()

    # --- DOM -----------------------------------------------------------------------------------
    def _build(self) -> None:
        head = js.document.querySelector(".conv-head")
        self.buttons = dom.h("span", "call-buttons", id="call-buttons")
        self.btn_voice = dom.h("button", "secondary small", "📞", id="call-voice")
        self.btn_video = dom.h("button", "secondary small", "🎥", id="call-video")
        self.buttons.append(self.btn_voice, self.btn_video)
        dom.show(self.buttons, False)
        if head:
            head.appendChild(self.buttons)
        self.banner = dom.h("div", "call-banner", id="call-banner", role="alertdialog")
        self.banner_text = dom.h("p", "call-banner-text", id="call-banner-text")
        acts = dom.h("div", "actions")
        self.btn_accept_voice = dom.h("button", "small", "", id="call-accept-voice")
        self.btn_accept_video = dom.h("button", "small", "", id="call-accept-video")
        self.btn_decline = dom.h("button", "small danger", "", id="call-decline")
        acts.append(self.btn_accept_voice, self.btn_accept_video, self.btn_decline)
        self.banner.append(self.banner_text, acts)
        dom.show(self.banner, False)
        self.box = dom.h("section", "call-view", id="call-view")
        self.remote_el = dom.h(
            "video", "call-remote", id="call-remote", autoplay="", playsinline=""
        )
        self.local_el = dom.h("video", "call-local", id="call-local", autoplay="", playsinline="")
        self.local_el.muted = True
        info = dom.h("div", "call-info")
        self.who_el = dom.h("span", "call-who", id="call-who")
        self.status_el = dom.h("span", "call-status", id="call-status", role="status")
        self.duration_el = dom.h("span", "call-duration", id="call-duration")
        self.error_el = dom.h("p", "message error", id="call-error", role="alert")
        info.append(self.who_el, self.status_el, self.duration_el)
        ctl = dom.h("div", "call-controls")
        self.btn_mute = dom.h("button", "secondary small", "", id="call-mute")
        self.btn_camera = dom.h("button", "secondary small", "", id="call-camera")
        self.btn_hangup = dom.h("button", "small danger", "", id="call-hangup")
        ctl.append(self.btn_mute, self.btn_camera, self.btn_hangup)
        self.box.append(self.remote_el, self.local_el, info, self.error_el, ctl)
        dom.show(self.box, False)
        js.document.body.append(self.banner, self.box)
        on = self._listeners.on
        on(self.btn_voice, "click", lambda _e: self._place(False))
        on(self.btn_video, "click", lambda _e: self._place(True))
        on(self.btn_accept_voice, "click", lambda _e: self._accept(False))
        on(self.btn_accept_video, "click", lambda _e: self._accept(True))
        on(self.btn_decline, "click", lambda _e: self._act("decline"))
        on(self.btn_hangup, "click", lambda _e: self._act("hangup"))
        on(self.btn_mute, "click", lambda _e: self._toggle_mute())
        on(self.btn_camera, "click", lambda _e: self._toggle_camera())
        on(js.window, "online", lambda _e: self._act("network_changed"))
        conn = getattr(js.navigator, "connection", None)
        if conn is not None and hasattr(conn, "addEventListener"):
            on(conn, "change", lambda _e: self._act("network_changed"))
        js.window.parleyUi.callStats = create_proxy(self._stats_json)
        js.window.parleyUi.callMarks = js.Object.new()
        i18n.on_change(self.render)
        self.render()
        self.start()

    # --- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        m = self.ui.m
        signals = getattr(m, "driver", None)  # the messenger's E2E driver
        if signals is None or not hasattr(signals, "on_to_device"):
            return  # no to-device API for other features: no calls
        self.driver = CallDriver(
            signals,
            self._peer,
            self,
            user_id=m.user_id,
            device_id=m.device_id,
            is_contact=self._is_contact,
            ice_servers=self._ice,
        )
        self.driver.start()

    async def close(self) -> None:
        self.tone.stop()
        if self.driver is not None:
            await self.driver.close()

    def on_chat(self, cid: bytes | None) -> None:
        """The open chat changed: call buttons only in a 1:1 chat."""
        m = self.ui.m
        c = m.chats.get(cid) if cid is not None else None
        peer = None
        if c is not None and c.kind == "direct":
            others = [u for u in c.members if u != m.user_id]
            peer = others[0] if others else None
        self.peer_user = peer
        dom.show(self.buttons, peer is not None and self.driver is not None)

    # --- CallUi (from the driver) --------------------------------------------------------------
    def changed(self, view: cm.CallView) -> None:
        if view.state == cm.CallState.CONNECTED and (
            self.view is None or self.view.state != cm.CallState.CONNECTED
        ):
            self._mark("connected")
        self.view = view
        body = js.document.body.dataset
        body.callState = view.state.value
        if view.state == cm.CallState.ENDED and view.end_reason is not None:
            body.callEnd = view.end_reason.value
        self.render()

    def _mark(self, name: str) -> None:
        setattr(js.window.parleyUi.callMarks, name, js.Date.now())

    def ring(self, on: bool, peer: str, video: bool) -> None:
        if on:
            self._mark("ring")
            self.tone.start()
        else:
            self.tone.stop()
        self.render()

    def media_error(self, kind: str) -> None:
        self.error_el.textContent = t(f"call.err.{kind}")
        js.document.body.dataset.callMediaError = kind

    # --- actions -------------------------------------------------------------------------------
    def _place(self, video: bool) -> None:
        if self.driver is None or self.peer_user is None:
            return
        self.error_el.textContent = ""
        self._mark("clicked")
        self.ui.spawn(self.driver.place(self.peer_user, video))

    def _accept(self, video: bool) -> None:
        if self.driver is not None:
            self.error_el.textContent = ""
            self._mark("accept")
            self.driver.accept(video)

    def _act(self, name: str) -> None:
        if self.driver is not None:
            getattr(self.driver, name)()

    def _toggle_mute(self) -> None:
        if self.driver is not None and self.view is not None:
            self.driver.set_muted(not self.view.muted)

    def _toggle_camera(self) -> None:
        if self.driver is not None and self.view is not None:
            self.driver.set_camera(not self.view.camera)

    # --- hooks for the driver ------------------------------------------------------------------
    def _peer(self, call_id: str, driver: CallDriver) -> MediaPeer:
        self.peer = WebRtcPeer(call_id, driver, lambda: (self.local_el, self.remote_el))
        return self.peer

    async def _is_contact(self, user_id: str) -> bool:
        r = await self.ui.m.session.request(ContactList(), 15)
        assert isinstance(r, Contacts)
        return user_id in {c.user_id for c in r.contacts} and user_id not in r.blocked

    async def _ice(self) -> IceConfig:
        relay = str(js.localStorage.getItem(RELAY_KEY) or "") == "1"
        r = await pyfetch("/api/v1/turn", headers={"authorization": f"Bearer {self.ui.token}"})
        if not r.ok:
            return IceConfig(relay_only=False)
        body = json.loads(await r.string())
        if not body["uris"]:
            return IceConfig(relay_only=False)
        return IceConfig([IceServer(body["uris"], body["username"], body["credential"])],
                         relay_only=relay)  # fmt: skip

    async def _stats(self) -> dict[str, Any]:
        p = self.peer
        if p is None or p.pc is None:
            return {"audio": 0, "video": 0, "relay": False}
        got: dict[str, Any] = dict(await p.stats())
        got["relay"] = await p.relay_pair()
        return got

    def _stats_json(self) -> Any:
        import asyncio

        async def go() -> str:
            return json.dumps(await self._stats())

        return asyncio.ensure_future(go())

    # --- rendering -----------------------------------------------------------------------------
    def render(self) -> None:
        self.btn_voice.title = t("call.voice")
        self.btn_video.title = t("call.video")
        self.btn_voice.setAttribute("aria-label", t("call.voice"))
        self.btn_video.setAttribute("aria-label", t("call.video"))
        self.btn_accept_voice.textContent = t("call.accept_voice")
        self.btn_accept_video.textContent = t("call.accept_video")
        self.btn_decline.textContent = t("call.decline")
        self.btn_hangup.textContent = t("call.hangup")
        v = self.view
        if v is None:
            dom.show(self.banner, False)
            dom.show(self.box, False)
            return
        name = self.ui.m.name(v.peer)
        ringing = v.state == cm.CallState.INCOMING
        dom.show(self.banner, ringing)
        if ringing:
            key = "call.incoming_video" if v.video else "call.incoming_voice"
            self.banner_text.textContent = t(key, name=name)
        in_view = v.state not in (cm.CallState.INCOMING, cm.CallState.IDLE)
        if v.state == cm.CallState.ENDED and v.connected_ms is None and not v.outgoing:
            in_view = False  # a ringing call that ended elsewhere: just stop ringing
        dom.show(self.box, in_view)
        self.box.dataset.state = v.state.value
        self.box.classList.toggle("with-video", v.remote_video)
        self.box.classList.toggle("camera", v.camera)
        self.who_el.textContent = name
        self.btn_mute.textContent = t("call.unmute") if v.muted else t("call.mute")
        self.btn_camera.textContent = t("call.camera_off") if v.camera else t("call.camera_on")
        self.btn_mute.setAttribute("aria-pressed", "true" if v.muted else "false")
        if v.state == cm.CallState.ENDED:
            reason = v.end_reason.value if v.end_reason else "hung_up"
            if reason == "missed" and v.outgoing:
                reason = "unavailable"
            self.status_el.textContent = t(f"call.end.{reason}")
            self._stop_clock()
            self._schedule_hide()
        else:
            self.status_el.textContent = t(f"call.state.{v.state.value}")
            if v.remote_muted:
                self.status_el.textContent += " · " + t("call.remote_muted", name=name)
            if v.state == cm.CallState.CONNECTED:
                self._start_clock()
        self._tick_clock()

    def _start_clock(self) -> None:
        if self._clock is None:
            self._clock_proxy = create_proxy(lambda: self._tick_clock())
            self._clock = js.setInterval(self._clock_proxy, 1000)

    def _stop_clock(self) -> None:
        if self._clock is not None:
            js.clearInterval(self._clock)
            self._clock = None

    def _tick_clock(self) -> None:
        v = self.view
        if v is None or v.connected_ms is None:
            self.duration_el.textContent = ""
            return
        import time

        end = int(time.time() * 1000) if v.state != cm.CallState.ENDED else None
        if end is None:
            return  # ended: keep the last figure
        self.duration_el.textContent = duration_text(end - v.connected_ms)

    def _schedule_hide(self) -> None:
        if self._hide is not None:
            return

        def hide() -> None:
            self._hide = None
            if self.view is not None and self.view.state == cm.CallState.ENDED:
                self.view = None
                if self.driver is not None:
                    self.driver.dismiss()
                self.render()

        self._hide_proxy = create_proxy(hide)
        self._hide = js.setTimeout(self._hide_proxy, ENDED_SHOWN_MS)
