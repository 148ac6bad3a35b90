"""A scripted server side for engine unit tests: decodes what the engine sends, feeds frames."""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from parley.client import ClientEngine
from parley.client import effects as fx
from parley.protocol import codec, frames
from parley.protocol.ops import Op, Result

WELCOME = frames.Welcome(
    user_id="u-self",
    device_id=7,
    server_time=0,
    limits=frames.Limits(
        max_frame=262144,
        max_envelope=98304,
        max_to_device=65536,
        history_page_max=500,
        heartbeat_s=25.0,
    ),
)


@dataclass
class Harness:
    engine: ClientEngine
    now: float = 1000.0
    log: list[fx.Effect] = field(default_factory=list)

    def effects(self) -> list[fx.Effect]:
        out = self.engine.take_effects()
        self.log += out
        return out

    def sent(
        self, effects: list[fx.Effect]
    ) -> list[frames.Hello | frames.Request | frames.Ping | frames.Bye]:
        return [codec.decode_client(e.data) for e in effects if isinstance(e, fx.SendFrame)]

    def requests(self, effects: list[fx.Effect]) -> list[frames.Request]:
        return [f for f in self.sent(effects) if isinstance(f, frames.Request)]

    def feed(self, frame: msgspec.Struct) -> list[fx.Effect]:
        self.engine.frame_received(codec.encode(frame), self.now)
        return self.effects()

    def reply(self, request_id: int, result: Result) -> list[fx.Effect]:
        return self.feed(frames.Reply(id=request_id, result=result))

    def connect(self) -> list[fx.Effect]:
        """connected + Welcome; returns the effects after the Welcome."""
        self.engine.connecting()
        self.engine.connected(self.now)
        hello = self.sent(self.effects())
        assert isinstance(hello[-1], frames.Hello)
        return self.feed(WELCOME)

    def ops(self, effects: list[fx.Effect], kind: type[Op]) -> list[tuple[int, Op]]:
        return [(r.id, r.op) for r in self.requests(effects) if isinstance(r.op, kind)]

    def store_all(self, effects: list[fx.Effect]) -> list[fx.Effect]:
        """Report every store command as done (in order); returns the follow-up effects."""
        more: list[fx.Effect] = []
        for e in effects:
            if isinstance(e, fx.StoreEntries):
                self.engine.entries_stored(e.conversation_id, e.entries[0].seq, e.entries[-1].seq)
            elif isinstance(e, fx.StoreEvents):
                self.engine.events_stored(e.cursor)
            elif isinstance(e, fx.StoreToDevice):
                self.engine.to_device_stored(e.cursor, self.now)
            else:
                continue
            more += self.effects()
        return more
