"""The async call driver with fake signalling and media (no network): effects run in order, a
media failure hangs up and the UI ends up showing the ended call, calls from strangers never
ring. (Async: CPython only.)"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from parley.client import call as cm
from parley.client import call_signal as cs
from parley.client.call_driver import CallDriver, IceConfig, MediaError
from parley.crypto import content as content_mod


class Contacts:
    def __init__(self, devices: dict[str, list[int]]) -> None:
        self.contacts = {u: type("C", (), {"devices": {d: b"" for d in ds}})() for u, ds in
                         devices.items()}  # fmt: skip


class FakeSignals:
    def __init__(self) -> None:
        self.st = Contacts({"bob": [1, 2]})
        self.sent: list[tuple[str, list[int], cs.Signal]] = []
        self.posted: list[content_mod.Content] = []
        self.handler: Callable[[str, int, content_mod.Content], Any] | None = None

    async def send_to_devices(
        self, user_id: str, content: content_mod.Content, devices: Sequence[int] | None = None
    ) -> int:
        assert isinstance(content, content_mod.Call)
        self.sent.append((user_id, list(devices or []), cs.decode(content.sig)))
        return len(devices or [])

    def on_to_device(
        self,
        content_type: str,
        handler: Callable[[str, int, content_mod.Content], Awaitable[None] | None],
    ) -> None:
        assert content_type == "call"
        self.handler = handler

    async def refresh_devlist(self, user_id: str) -> None:
        return None

    async def open_direct(self, user_id: str) -> bytes:
        return b"c" * 16

    async def send_content(self, cid: bytes, c: content_mod.Content) -> str:
        self.posted.append(c)
        return "x"


class Ui:
    def __init__(self) -> None:
        self.views: list[cm.CallView] = []
        self.rings: list[bool] = []
        self.errors: list[str] = []

    def changed(self, view: cm.CallView) -> None:
        self.views.append(view)

    def ring(self, on: bool, peer: str, video: bool) -> None:
        self.rings.append(on)

    def media_error(self, kind: str) -> None:
        self.errors.append(kind)


class NoMic:
    def __init__(self, call_id: str, driver: CallDriver) -> None:
        self.stopped = False

    async def start(self, video: bool, ice: IceConfig) -> None:
        raise MediaError("denied", "NotAllowedError")

    async def stop(self) -> None:
        self.stopped = True


def _driver(media: Any, contact: bool = True) -> tuple[CallDriver, FakeSignals, Ui]:
    sig, ui = FakeSignals(), Ui()

    async def ice() -> IceConfig:
        return IceConfig()

    d = CallDriver(sig, media, ui, user_id="alice", device_id=1,
                   is_contact=lambda _u: contact, ice_servers=ice)  # fmt: skip
    return d, sig, ui


async def test_no_microphone_hangs_up_and_the_ui_shows_it_ended() -> None:
    d, sig, ui = _driver(NoMic)
    d.start()
    await d.place("bob", video=False)
    await asyncio.wait_for(d.idle(), 10)
    assert ui.errors == ["denied"]
    assert ui.views[-1].state == cm.CallState.ENDED
    assert ui.views[-1].end_reason == cm.EndReason.CANCELLED
    # the invite never left; nothing rings anywhere
    assert not any(isinstance(s, cs.Invite) for _, _, s in sig.sent)
    await d.close()


async def test_an_invite_rings_only_from_a_contact() -> None:
    for contact in (True, False):
        d, sig, ui = _driver(NoMic, contact=contact)
        d.start()
        assert sig.handler is not None
        inv = cs.Invite(call=cs_id(), n=1, video=True)
        c = content_mod.Call(id="A" * 22, ts=d.now(), sig=cs.encode(inv))
        sig.handler("bob", 1, c)
        await asyncio.wait_for(d.idle(), 10)
        assert ui.rings == ([True] if contact else [])
        if not contact:
            assert d.ignored == ["invite from someone who is not a contact"]
        await d.close()


def cs_id() -> str:
    from parley.crypto.b64 import b64e

    return b64e(bytes(range(16)))
