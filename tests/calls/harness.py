"""A loopback for call state machines: devices of several users, signals routed between them
as the pairwise layer would (encoded to text and back), a fake clock, and a fake WebRTC layer
that answers MakeOffer/MakeAnswer with SDP text. No I/O."""

from __future__ import annotations

from dataclasses import dataclass, field

from parley.client import call as cm
from parley.client import call_signal as cs
from parley.crypto.b64 import b64e


def cid(i: int) -> str:
    return b64e(i.to_bytes(16, "big"))


@dataclass
class Dev:
    user: str
    device: int
    m: cm.CallManager
    effects: list[cm.Effect] = field(default_factory=list)
    ringing: set[str] = field(default_factory=set)
    media: set[str] = field(default_factory=set)
    applied: list[tuple[str, str]] = field(default_factory=list)
    candidates: list[cs.Candidate] = field(default_factory=list)
    entries: list[cm.PostEntry] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    @property
    def state(self) -> cm.CallState:
        c = self.m.current
        return cm.CallState.IDLE if c is None else c.state

    @property
    def reason(self) -> cm.EndReason | None:
        c = self.m.current
        return None if c is None else c.end_reason


@dataclass
class Net:
    """``auto_sdp``: MakeOffer/MakeAnswer are answered at once with a local description.
    ``hold``: signals are queued in ``wire`` until ``deliver()``."""

    now: int = 1_000_000
    devs: dict[tuple[str, int], Dev] = field(default_factory=dict)
    contacts: set[frozenset[str]] = field(default_factory=set)
    wire: list[tuple[str, int, cm.SendSignal, int]] = field(default_factory=list)
    hold: bool = False
    auto_sdp: bool = True

    def add(self, user: str, device: int) -> Dev:
        d = self.devs[(user, device)] = Dev(user, device, cm.CallManager(user, device))
        return d

    def befriend(self, a: str, b: str) -> None:
        self.contacts.add(frozenset((a, b)))

    def devices_of(self, user: str) -> list[int]:
        return sorted(d for (u, d) in self.devs if u == user)

    def run(self, d: Dev, fx: list[cm.Effect]) -> list[cm.Effect]:
        d.effects += fx
        for e in fx:
            if isinstance(e, cm.SendSignal):
                self.wire.append((d.user, d.device, e, self.now))
            elif isinstance(e, cm.Ring):
                d.ringing.add(e.call_id)
            elif isinstance(e, cm.StopRinging):
                d.ringing.discard(e.call_id)
            elif isinstance(e, cm.StartMedia):
                d.media.add(e.call_id)
            elif isinstance(e, cm.StopMedia):
                d.media.discard(e.call_id)
            elif isinstance(e, cm.ApplyRemote):
                d.applied.append((e.kind, e.sdp))
            elif isinstance(e, cm.AddCandidates):
                d.candidates += e.candidates
            elif isinstance(e, cm.PostEntry):
                d.entries.append(e)
            elif isinstance(e, cm.Ignored):
                d.ignored.append(e.reason)
        for e in fx:
            if self.auto_sdp and isinstance(e, cm.MakeOffer):
                sdp = f"v=0 offer {d.user}/{d.device} restart={e.ice_restart}"
                self.run(d, d.m.local_description("offer", sdp, self.now))
            elif self.auto_sdp and isinstance(e, cm.MakeAnswer):
                self.run(d, d.m.local_description("answer", f"v=0 answer {d.user}", self.now))
        if not self.hold:
            self.deliver()
        return fx

    def deliver(self) -> None:
        while self.wire:
            self.deliver_one(0)

    def deliver_one(self, i: int) -> None:
        """Deliver the i-th signal on the wire (signals it causes join the wire)."""
        user, device, e, sent = self.wire.pop(i)
        to = self.devs.get((e.user_id, e.device_id))
        if to is None:
            return
        contact = frozenset((user, e.user_id)) in self.contacts
        text = cs.encode(e.signal)
        self.run(to, to.m.on_signal(user, device, text, sent, self.now, contact=contact))

    def advance(self, ms: int) -> None:
        self.now += ms
        for d in list(self.devs.values()):
            dl = d.m.next_deadline()
            if dl is not None and dl <= self.now:
                self.run(d, d.m.tick(self.now))

    # user actions
    def call(self, d: Dev, peer: str, video: bool = False, call_id: str = cid(1)) -> None:
        self.run(d, d.m.place(peer, self.devices_of(peer), video, call_id, self.now))

    def accept(self, d: Dev, video: bool = False) -> None:
        self.run(d, d.m.accept(video, self.now))

    def connect(self, *devs: Dev) -> None:
        for d in devs:
            self.run(d, d.m.ice_state("connected", self.now))
