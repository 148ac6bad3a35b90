"""The 1:1 call state machine of one device, sans-IO.

``CallManager`` takes events (user actions, decrypted signals from ``call_signal``, WebRTC
events, time) and returns effects for its shell: signals to send pairwise, media to start and
stop, SDP to create or apply, a ringtone, the chat entry to post, and ``Ignored`` reasons to log.
Time is always an argument (ms); the shell calls ``tick(now)`` at ``next_deadline()``.

Flow: the caller sends ``invite`` to every device of the callee (each rings). The first device
that accepts is selected: the caller sends it the offer and tells the others
``answered_elsewhere``. Offers only come from the caller (also ICE restarts; the callee asks with
``restart``), so two offers never cross. Glare (both users call each other before either
accepts): the call with the greater id wins on both sides; the loser's caller drops its own
call and answers the winner's. Invites from anyone who is not a contact never ring.

Bad input never ends or takes over a call: malformed signals, replayed or reordered ones,
answers with no offer, another call's id and devices that are not in the call are ignored,
each with an ``Ignored`` reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from parley.client import call_signal as cs
from parley.client.call_signal import HangupReason

RING_TIMEOUT_MS = 45_000
"""An unanswered call ends as missed after this long."""
CONNECT_TIMEOUT_MS = 30_000
"""ICE that does not (re)connect within this long ends the call as failed."""
MAX_PENDING_CANDIDATES = 64
ENDED_IDS_KEPT = 256


class CallState(StrEnum):
    IDLE = "idle"
    OUTGOING = "outgoing"
    INCOMING = "incoming"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    ENDED = "ended"


class EndReason(StrEnum):
    HUNG_UP = "hung_up"
    DECLINED = "declined"
    BUSY = "busy"
    MISSED = "missed"
    ANSWERED_ELSEWHERE = "answered_elsewhere"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNAVAILABLE = "unavailable"
    """The callee has no device, or the server refused the invite (then only at the ring
    timeout, like an unanswered call, so that a block is not told apart by timing)."""
    REPLACED = "replaced"
    """Glare: this device's own call lost to the peer's call, which it answered instead."""


ACTIVE = (CallState.CONNECTING, CallState.CONNECTED, CallState.RECONNECTING)


# --- effects -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SendSignal:
    """Encrypt this signal pairwise (``content.Call``) for one device and send it."""

    user_id: str
    device_id: int
    signal: cs.Signal


@dataclass(frozen=True)
class StartMedia:
    """Open the microphone (and the camera if ``video``) and create the peer connection."""

    call_id: str
    video: bool


@dataclass(frozen=True)
class MakeOffer:
    """Create an offer (``ice_restart``: with new ICE credentials), set it as the local
    description and report it with ``local_description``."""

    call_id: str
    ice_restart: bool


@dataclass(frozen=True)
class MakeAnswer:
    call_id: str


@dataclass(frozen=True)
class ApplyRemote:
    call_id: str
    kind: str  # "offer" | "answer"
    sdp: str


@dataclass(frozen=True)
class AddCandidates:
    call_id: str
    candidates: tuple[cs.Candidate, ...]


@dataclass(frozen=True)
class SetLocalMedia:
    """Mute or unmute the microphone; send the camera's track or none."""

    call_id: str
    muted: bool
    video: bool


@dataclass(frozen=True)
class StopMedia:
    """Close the peer connection and release the microphone and camera."""

    call_id: str


@dataclass(frozen=True)
class Ring:
    call_id: str
    peer: str
    video: bool


@dataclass(frozen=True)
class StopRinging:
    call_id: str


@dataclass(frozen=True)
class PostEntry:
    """The caller's device posts this as an ordinary E2E message in the 1:1 chat, so both
    sides see it. ``outcome``: ``completed`` (with ``duration_ms``) or the end reason."""

    peer: str
    call_id: str
    video: bool
    outcome: str
    duration_ms: int


@dataclass(frozen=True)
class Ignored:
    """Input that changed nothing; the shell logs the reason (never the content)."""

    reason: str


@dataclass(frozen=True)
class CallView:
    """What the UI shows."""

    call_id: str
    peer: str
    outgoing: bool
    state: CallState
    video: bool
    muted: bool
    camera: bool
    remote_muted: bool
    remote_video: bool
    started_ms: int
    connected_ms: int | None
    end_reason: EndReason | None


@dataclass(frozen=True)
class Changed:
    view: CallView


Effect = (
    SendSignal
    | StartMedia
    | MakeOffer
    | MakeAnswer
    | ApplyRemote
    | AddCandidates
    | SetLocalMedia
    | StopMedia
    | Ring
    | StopRinging
    | PostEntry
    | Ignored
    | Changed
)


# --- one call --------------------------------------------------------------------------------


@dataclass
class Call:
    call_id: str
    peer: str
    outgoing: bool
    video: bool
    devices: list[int]
    """Outgoing: the callee devices invited; incoming: the caller's device."""
    started_ms: int
    state: CallState
    ring_deadline: int
    selected: int | None = None
    """The one peer device in the call (outgoing: set on the first accept)."""
    connect_deadline: int | None = None
    connected_ms: int | None = None
    ended_ms: int | None = None
    end_reason: EndReason | None = None
    muted: bool = False
    camera: bool = False
    remote_muted: bool = False
    remote_video: bool = False
    media_started: bool = False
    offer_out: bool = False
    """Caller: an offer was sent and its answer not applied yet."""
    remote_applied: bool = False
    pending: list[cs.Candidate] = field(default_factory=list)
    undelivered: bool = False
    """The server refused the invite: ends as unavailable at the ring deadline."""
    sent_n: int = 0
    last_n: dict[int, int] = field(default_factory=dict)

    def view(self) -> CallView:
        return CallView(self.call_id, self.peer, self.outgoing, self.state, self.video,
                        self.muted, self.camera, self.remote_muted, self.remote_video,
                        self.started_ms, self.connected_ms, self.end_reason)  # fmt: skip


_PEER_REASON = {
    HangupReason.HUNG_UP: EndReason.HUNG_UP,
    HangupReason.DECLINED: EndReason.DECLINED,
    HangupReason.BUSY: EndReason.BUSY,
    HangupReason.MISSED: EndReason.MISSED,
    HangupReason.CANCELLED: EndReason.CANCELLED,
    HangupReason.ANSWERED_ELSEWHERE: EndReason.ANSWERED_ELSEWHERE,
    HangupReason.FAILED: EndReason.FAILED,
    HangupReason.GLARE: EndReason.CANCELLED,
}


class CallManager:
    """At most one call per device. ``current`` stays set (state ``ended``) after a call ends
    until ``dismiss()``, so the UI can show why; a new call replaces an ended one."""

    def __init__(self, user_id: str, device_id: int) -> None:
        self.user_id = user_id
        self.device_id = device_id
        self.current: Call | None = None
        self._ended_ids: list[str] = []

    # --- queries -----------------------------------------------------------------------------
    def live(self) -> Call | None:
        c = self.current
        return c if c is not None and c.state != CallState.ENDED else None

    def next_deadline(self) -> int | None:
        c = self.live()
        if c is None:
            return None
        if c.state in (CallState.OUTGOING, CallState.INCOMING):
            return c.ring_deadline
        return c.connect_deadline if c.state != CallState.CONNECTED else None

    # --- user actions --------------------------------------------------------------------------
    def place(
        self, peer: str, devices: list[int], video: bool, call_id: str, now: int
    ) -> list[Effect]:
        """Call ``peer`` on these devices (its verified device list). ``call_id``: 16 random
        bytes, base64url, from the shell's rng."""
        if self.live() is not None:
            return [Ignored("already in a call")]
        if peer == self.user_id:
            return [Ignored("cannot call yourself")]
        c = Call(call_id, peer, True, video, sorted(set(devices)), now, CallState.OUTGOING,
                 now + RING_TIMEOUT_MS, camera=video)  # fmt: skip
        self.current = c
        if not c.devices:
            return self._end(c, EndReason.UNAVAILABLE, now, notify=())
        fx: list[Effect] = [StartMedia(call_id, video)]
        fx += self._send_many(c, c.devices, cs.Invite, video=video)
        fx.append(Changed(c.view()))
        return fx

    def accept(self, video: bool, now: int) -> list[Effect]:
        c = self.live()
        if c is None or c.state != CallState.INCOMING:
            return [Ignored("no incoming call to accept")]
        return self._accept(c, video, now)

    def decline(self, now: int) -> list[Effect]:
        c = self.live()
        if c is None or c.state != CallState.INCOMING:
            return [Ignored("no incoming call to decline")]
        return self._end(c, EndReason.DECLINED, now, notify=(HangupReason.DECLINED,))

    def hangup(self, now: int) -> list[Effect]:
        c = self.live()
        if c is None:
            return [Ignored("no call to hang up")]
        if c.state == CallState.INCOMING:
            return self.decline(now)
        if c.state == CallState.OUTGOING:
            return self._end(c, EndReason.CANCELLED, now, notify=(HangupReason.CANCELLED,))
        return self._end(c, EndReason.HUNG_UP, now, notify=(HangupReason.HUNG_UP,))

    def delivery_failed(self, call_id: str, now: int) -> list[Effect]:
        """The server refused the invite (not allowed to reach that user: not a contact, or
        blocked). The call keeps ringing out and ends as unavailable at the ring timeout, as
        an unanswered call does (whose caller also reads "unavailable"), so the caller cannot
        tell a block from a callee who does not answer."""
        c = self.live()
        if c is None or c.call_id != call_id or c.state != CallState.OUTGOING:
            return [Ignored("delivery failure of no ringing call")]
        c.undelivered = True
        return [Ignored("invite not delivered: ringing out until the timeout")]

    def set_muted(self, muted: bool, now: int) -> list[Effect]:
        c = self.live()
        if c is None:
            return [Ignored("no call to mute")]
        c.muted = muted
        return self._media_changed(c)

    def set_camera(self, on: bool, now: int) -> list[Effect]:
        """Camera on/off; turning it on in a voice call upgrades the call to video."""
        c = self.live()
        if c is None:
            return [Ignored("no call for the camera")]
        c.camera = on
        c.video = c.video or on
        return self._media_changed(c)

    def dismiss(self) -> list[Effect]:
        if self.current is not None and self.current.state == CallState.ENDED:
            self.current = None
        return []

    # --- WebRTC events -------------------------------------------------------------------------
    def local_description(self, kind: str, sdp: str, now: int) -> list[Effect]:
        c = self.live()
        if c is None or c.state not in ACTIVE or c.selected is None:
            return [Ignored("local description with no call")]
        if kind == "offer" and c.outgoing:
            c.offer_out = True
            return [self._send(c, c.selected, cs.Offer, sdp=sdp, restart=c.remote_applied)]
        if kind == "answer" and not c.outgoing:
            return [self._send(c, c.selected, cs.Answer, sdp=sdp)]
        return [Ignored("unexpected local description")]

    def local_candidates(self, candidates: list[cs.Candidate], now: int) -> list[Effect]:
        c = self.live()
        if c is None or c.state not in ACTIVE or c.selected is None or not candidates:
            return [Ignored("local candidates with no call")]
        cands = candidates[: cs.MAX_CANDIDATES]
        return [self._send(c, c.selected, cs.Ice, candidates=cands)]

    def ice_state(self, state: str, now: int) -> list[Effect]:
        """``state``: the peer connection's ``iceConnectionState`` (or connectionState)."""
        c = self.live()
        if c is None or c.state not in ACTIVE:
            return [Ignored("ice state with no call")]
        if state in ("connected", "completed"):
            if c.state == CallState.CONNECTED:
                return []
            c.state = CallState.CONNECTED
            c.connect_deadline = None
            if c.connected_ms is None:
                c.connected_ms = now
            return [Changed(c.view())]
        if state in ("disconnected", "failed"):
            if c.state == CallState.CONNECTING:
                if state == "failed":
                    return self._end(c, EndReason.FAILED, now, notify=(HangupReason.FAILED,))
                return []
            if c.state == CallState.CONNECTED:
                return self._restart(c, now)
        return []

    def network_changed(self, now: int) -> list[Effect]:
        """The device's network changed (e.g. Wi-Fi to mobile): restart ICE."""
        c = self.live()
        if c is None or c.state not in (CallState.CONNECTED, CallState.RECONNECTING):
            return [Ignored("network change with no connected call")]
        return self._restart(c, now)

    def tick(self, now: int) -> list[Effect]:
        c = self.live()
        if c is None:
            return []
        if c.state in (CallState.OUTGOING, CallState.INCOMING) and now >= c.ring_deadline:
            if c.undelivered:
                return self._end(c, EndReason.UNAVAILABLE, now, notify=())
            notify = (HangupReason.MISSED,) if c.outgoing else ()
            return self._end(c, EndReason.MISSED, now, notify=notify)
        if c.state in (CallState.CONNECTING, CallState.RECONNECTING) and (
            c.connect_deadline is not None and now >= c.connect_deadline
        ):
            return self._end(c, EndReason.FAILED, now, notify=(HangupReason.FAILED,))
        return []

    # --- signals -------------------------------------------------------------------------------
    def on_signal(
        self, sender: str, device: int, text: str, sent_ms: int, now: int, *, contact: bool
    ) -> list[Effect]:
        """A decrypted ``content.Call`` from (``sender``, ``device``), as the session that
        decrypted it asserts. ``sent_ms``: the content's timestamp. ``contact``: the sender is
        a contact of ours and not blocked (only contacts can make a device ring)."""
        try:
            s = cs.decode(text)
        except cs.MalformedSignal as e:
            return [Ignored(f"malformed signal: {e}")]
        if sender == self.user_id:
            return [Ignored("signal from our own account")]
        c = self.live()
        if c is not None and s.call == c.call_id:
            return self._in_call(c, sender, device, s, now)
        if isinstance(s, cs.Invite):
            return self._invite(c, sender, device, s, sent_ms, now, contact)
        if self.current is not None and s.call == self.current.call_id:
            return [Ignored("signal for an ended call")]
        return [Ignored("signal naming another call's id")]

    # --- internals -----------------------------------------------------------------------------
    def _invite(
        self,
        c: Call | None,
        sender: str,
        device: int,
        s: cs.Invite,
        sent_ms: int,
        now: int,
        contact: bool,
    ) -> list[Effect]:
        if not contact:
            return [Ignored("invite from someone who is not a contact")]
        if s.call in self._ended_ids:
            return [Ignored("invite of an ended call (replay)")]
        age = min(max(now - sent_ms, 0), RING_TIMEOUT_MS)
        if age >= RING_TIMEOUT_MS:
            return [Ignored("invite too old to ring")]
        fx: list[Effect] = []
        if c is not None:
            if c.peer == sender and c.state == CallState.OUTGOING:
                # glare: both called each other; the greater call id wins on both sides
                if c.call_id > s.call:
                    return [Ignored("glare: our call wins")]
                fx += self._end(c, EndReason.REPLACED, now, notify=(HangupReason.GLARE,))
                new = self._incoming(sender, device, s, now, age)
                new.last_n[device] = s.n
                return fx + self._accept(new, c.camera, now, ring=False)
            if c.peer == sender and c.state == CallState.INCOMING:
                # the same caller called again (a new call from another of its devices)
                fx += self._end(c, EndReason.CANCELLED, now, notify=())
            else:
                busy = cs.Hangup(call=s.call, n=1, reason=HangupReason.BUSY)
                return [SendSignal(sender, device, busy), Ignored("busy: in another call")]
        new = self._incoming(sender, device, s, now, age)
        new.last_n[device] = s.n
        fx += [Ring(new.call_id, sender, s.video), Changed(new.view())]
        return fx

    def _incoming(self, sender: str, device: int, s: cs.Invite, now: int, age: int) -> Call:
        c = Call(s.call, sender, False, s.video, [device], now, CallState.INCOMING,
                 now + RING_TIMEOUT_MS - age, selected=device, remote_video=s.video)  # fmt: skip
        self.current = c
        return c

    def _accept(self, c: Call, video: bool, now: int, *, ring: bool = True) -> list[Effect]:
        assert c.selected is not None
        c.state = CallState.CONNECTING
        c.camera = video
        c.video = c.video or video
        c.connect_deadline = now + CONNECT_TIMEOUT_MS
        c.media_started = True
        fx: list[Effect] = [StopRinging(c.call_id)] if ring else []
        fx += [StartMedia(c.call_id, video), self._send(c, c.selected, cs.Accept, video=video)]
        fx.append(Changed(c.view()))
        return fx

    def _in_call(self, c: Call, sender: str, device: int, s: cs.Signal, now: int) -> list[Effect]:
        if sender != c.peer or device not in c.devices:
            return [Ignored("signal from a device that is not in the call")]
        if c.selected is not None and device != c.selected:
            return [Ignored("signal from a device that was not selected")]
        if s.n <= c.last_n.get(device, 0):
            return [Ignored("replayed or out-of-order signal")]
        c.last_n[device] = s.n
        if isinstance(s, cs.Hangup):
            return self._peer_hangup(c, device, s, now)
        if isinstance(s, cs.Accept):
            if not c.outgoing or c.state != CallState.OUTGOING:
                return [Ignored("accept of a call that is not ringing")]
            c.selected = device
            c.state = CallState.CONNECTING
            c.connect_deadline = now + CONNECT_TIMEOUT_MS
            c.remote_video = s.video
            c.media_started = True
            fx: list[Effect] = [MakeOffer(c.call_id, ice_restart=False)]
            elsewhere = HangupReason.ANSWERED_ELSEWHERE
            others = [d for d in c.devices if d != device]
            fx += self._send_many(c, others, cs.Hangup, reason=elsewhere)
            fx.append(Changed(c.view()))
            return fx
        if c.state not in ACTIVE:
            return [Ignored(f"{s.__class__.__name__.lower()} before the call was answered")]
        if isinstance(s, cs.Offer):
            if c.outgoing:
                return [Ignored("offer from the callee")]
            c.remote_applied = True
            fx = [ApplyRemote(c.call_id, "offer", s.sdp), MakeAnswer(c.call_id)]
            return fx + self._flush_candidates(c)
        if isinstance(s, cs.Answer):
            if not c.outgoing or not c.offer_out:
                return [Ignored("answer with no offer")]
            c.offer_out = False
            c.remote_applied = True
            return [ApplyRemote(c.call_id, "answer", s.sdp), *self._flush_candidates(c)]
        if isinstance(s, cs.Ice):
            if not c.remote_applied:
                room = MAX_PENDING_CANDIDATES - len(c.pending)
                c.pending += s.candidates[: max(room, 0)]
                return []
            return [AddCandidates(c.call_id, tuple(s.candidates))]
        if isinstance(s, cs.Restart):
            if not c.outgoing:
                return [Ignored("restart request from the caller")]
            return self._restart(c, now)
        if isinstance(s, cs.Media):
            c.remote_muted = s.muted
            c.remote_video = s.video
            c.video = c.video or s.video
            return [Changed(c.view())]
        return [Ignored("unexpected signal")]

    def _peer_hangup(self, c: Call, device: int, s: cs.Hangup, now: int) -> list[Effect]:
        reason = _PEER_REASON[s.reason]
        if c.outgoing and c.state == CallState.OUTGOING:
            if s.reason not in (HangupReason.DECLINED, HangupReason.BUSY):
                return [Ignored("hang-up of a ringing callee device")]
            # declined or busy on one device ends the call: stop the others ringing
            tell = HangupReason.DECLINED if reason == EndReason.DECLINED else HangupReason.CANCELLED
            others = [d for d in c.devices if d != device]
            return self._end(c, reason, now, notify=(tell,), to=others)
        if not c.outgoing and c.state == CallState.INCOMING:
            return self._end(c, reason, now, notify=())
        if reason not in (EndReason.HUNG_UP, EndReason.FAILED, EndReason.ANSWERED_ELSEWHERE):
            reason = EndReason.HUNG_UP  # (two callee devices accepted at once: the other won)
        return self._end(c, reason, now, notify=())

    def _restart(self, c: Call, now: int) -> list[Effect]:
        was = c.state
        c.state = CallState.RECONNECTING
        if was != CallState.RECONNECTING or c.connect_deadline is None:
            c.connect_deadline = now + CONNECT_TIMEOUT_MS
        fx: list[Effect] = []
        if c.outgoing:
            fx.append(MakeOffer(c.call_id, ice_restart=True))
        elif c.selected is not None:
            fx.append(self._send(c, c.selected, cs.Restart))
        if was != CallState.RECONNECTING:
            fx.append(Changed(c.view()))
        return fx

    def _media_changed(self, c: Call) -> list[Effect]:
        fx: list[Effect] = [SetLocalMedia(c.call_id, c.muted, c.camera)]
        if c.state in ACTIVE and c.selected is not None:
            fx.append(self._send(c, c.selected, cs.Media, muted=c.muted, video=c.camera))
        fx.append(Changed(c.view()))
        return fx

    def _flush_candidates(self, c: Call) -> list[Effect]:
        if not c.pending:
            return []
        out: list[Effect] = [AddCandidates(c.call_id, tuple(c.pending))]
        c.pending = []
        return out

    def _send(self, c: Call, device: int, kind: type[cs.Signal], **kw: object) -> SendSignal:
        c.sent_n += 1
        sig = kind(call=c.call_id, n=c.sent_n, **kw)  # type: ignore[arg-type]
        return SendSignal(c.peer, device, sig)

    def _send_many(
        self, c: Call, devices: list[int], kind: type[cs.Signal], **kw: object
    ) -> list[Effect]:
        """One signal (one ``n``) to several devices: the shell may send it in one batch."""
        if not devices:
            return []
        c.sent_n += 1
        sig = kind(call=c.call_id, n=c.sent_n, **kw)  # type: ignore[arg-type]
        return [SendSignal(c.peer, d, sig) for d in devices]

    def _end(
        self,
        c: Call,
        reason: EndReason,
        now: int,
        *,
        notify: tuple[HangupReason, ...],
        to: list[int] | None = None,
    ) -> list[Effect]:
        was = c.state
        fx: list[Effect] = []
        if notify:
            targets = to if to is not None else (
                [c.selected] if c.selected is not None else list(c.devices)
            )  # fmt: skip
            fx += self._send_many(c, targets, cs.Hangup, reason=notify[0])
        if was == CallState.INCOMING:
            fx.append(StopRinging(c.call_id))
        if c.media_started or c.outgoing:
            fx.append(StopMedia(c.call_id))
        c.state = CallState.ENDED
        c.end_reason = reason
        c.ended_ms = now
        c.connect_deadline = None
        self._ended_ids.append(c.call_id)
        del self._ended_ids[:-ENDED_IDS_KEPT]
        fx.append(Changed(c.view()))
        if c.outgoing and reason != EndReason.REPLACED and (c.undelivered or reason !=
                                                            EndReason.UNAVAILABLE):  # fmt: skip
            if c.connected_ms is not None:
                outcome, dur = "completed", now - c.connected_ms
            elif c.undelivered:
                outcome, dur = EndReason.MISSED.value, 0  # the same entry as an unanswered call
            else:
                outcome, dur = reason.value, 0
            fx.append(PostEntry(c.peer, c.call_id, c.video, outcome, dur))
        return fx
