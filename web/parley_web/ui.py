"""The signed-in app: wires the messenger (``secure.Messenger``) to the screen parts and keeps
them current. UI updates from the messenger are coalesced per part, so a burst of incoming
messages costs one re-render, not one per message."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import js  # type: ignore[import-not-found]

from parley.client import effects as fx
from parley.client.model import ConnectionState
from parley.protocol.records import (
    ContactAdded,
    ContactRemoved,
    FriendRequestClosed,
    FriendRequestOpened,
    GroupInviteClosed,
    GroupInvited,
)
from parley_web import dom, i18n
from parley_web.attachment_view import AttachmentView
from parley_web.attachments import Attacher
from parley_web.calls import CallsUi
from parley_web.chat_list import ChatList
from parley_web.composer import Composer
from parley_web.contacts import ContactsPane
from parley_web.conversation_view import ConversationView
from parley_web.error_text import describe
from parley_web.groups import Groups
from parley_web.i18n import t
from parley_web.layout import Layout
from parley_web.live import Live
from parley_web.notifications import Notifier
from parley_web.recovery import Recovery
from parley_web.secure import Messenger
from parley_web.settings import Settings

TABS = ("chats", "contacts", "settings")
SOCIAL_EVENTS = (FriendRequestOpened, FriendRequestClosed, ContactAdded, ContactRemoved)
INVITE_EVENTS = (GroupInvited, GroupInviteClosed)


class Ui:
    def __init__(
        self, m: Messenger, username: str, token: str, sign_out: Callable[[], Awaitable[None]]
    ) -> None:
        self.m = m
        self.username = username
        self.token = token
        self._sign_out = sign_out
        self._tasks: set[asyncio.Task[Any]] = set()
        self._dirty: dict[str, bool] = {}
        self.live = Live(self)
        self.composer = Composer(self)
        self.view = ConversationView(self)
        self.att_view = AttachmentView(self)
        self.attacher = Attacher(self)
        self.chat_list = ChatList(self)
        self.contacts = ContactsPane(self)
        self.groups = Groups(self)
        self.notifier = Notifier(self)
        self.layout = Layout(self)
        self.recovery = Recovery(self)
        self.settings = Settings(self)
        self.calls = CallsUi(self)  # before the messenger starts: no call signal is missed
        self._listeners = dom.Listeners()
        for name in TABS:
            self._listeners.on(dom.el(f"tab-{name}"), "click", self._tab_handler(name))
        self._listeners.on(js.window, "offline", self._on_offline)
        m.on_change(self._on_change)
        m.session.add_listener(self._on_note)
        i18n.on_change(self.rerender)

    # --- plumbing --------------------------------------------------------------------------
    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            js.console.error(f"ui task failed: {task.exception()!r}")

    def _coalesce(self, key: str, fn: Callable[[], Awaitable[None]]) -> None:
        if key in self._dirty:
            self._dirty[key] = True  # running: run once more when it ends
            return
        self._dirty[key] = False

        async def run() -> None:
            try:
                while True:
                    self._dirty[key] = False
                    await asyncio.sleep(0)
                    await fn()
                    if not self._dirty[key]:
                        break
            finally:
                del self._dirty[key]

        self.spawn(run())

    def _tab_handler(self, name: str) -> Callable[[Any], None]:
        return lambda _event: self.select_tab(name)

    # --- screens ---------------------------------------------------------------------------
    def show(self) -> None:
        """The app replaces the sign-in card (cached chats render now, before any network)."""
        dom.show(dom.el("auth"), False)
        dom.show(dom.el("app"), True)
        js.document.body.dataset.signedIn = "yes"
        js.document.body.dataset.connected = "yes"
        self.chat_list.render()
        self.settings.render()
        self.notifier.chats_changed()
        self._set_conn(self.m.session.state)
        last = self.layout.last()
        chat = self.m.chats.get(last) if last is not None else None
        if chat is not None and not chat.left:
            self.open_chat(chat.cid)  # a reload reopens the chat that was open

    def error_text(self, exc: BaseException) -> str:
        """A failure as translated, readable text (never the server's raw message)."""
        return describe(exc)

    def back_to_list(self) -> None:
        """Narrow screens: from the chat back to the list (the chat is closed)."""
        self.view.close()
        dom.show(dom.el("details"), False)
        self.layout.remember(None)
        self.layout.show_list()
        self.chat_list.render()

    def visibility_changed(self, visible: bool) -> None:
        """A hidden tab reads nothing: its messages stay unread (and notify) until it shows."""
        cid = self.view.cid
        self.m.open_cid = cid if visible else None
        if visible and cid is not None:
            self.spawn(self._read_open(cid))

    async def _read_open(self, cid: bytes) -> None:
        await self.m.mark_read(cid)
        await self.m.send_read_mark(cid)

    def select_tab(self, name: str) -> None:
        self.layout.show_list()
        for n in TABS:
            dom.show(dom.el(f"pane-{n}"), n == name)
            dom.el(f"tab-{n}").setAttribute("aria-selected", "true" if n == name else "false")
        if name == "contacts":
            self.spawn(self.contacts.refresh())
        elif name == "settings":
            self.spawn(self.settings.refresh())

    def open_chat(self, cid: bytes) -> None:
        self.layout.show_chat()
        self.layout.remember(cid)
        self.spawn(self._open(cid))

    async def _open(self, cid: bytes) -> None:
        chat = self.m.chats.get(cid)
        if chat is not None and chat.kind == "group":
            self.spawn(self.groups.load_names(cid))  # senders by name, never as ids
        await self.view.open(cid)
        self.chat_list.render()
        await self.groups.render_details()

    def rerender(self) -> None:
        self.chat_list.render()
        self.settings.render()
        self.contacts.render()
        self.view.rerender()
        self._set_conn(self.m.session.state)
        self.spawn(self.groups.render_details())

    async def show_safety(self, user_id: str) -> None:
        m = self.m
        await m.refresh_devlist(user_id)
        box = dom.el("details")
        dom.show(box, True)
        dom.clear(box)
        name = m.name(user_id)
        box.appendChild(dom.h("h3", "", t("safety.title", name=name)))
        try:
            number = m.safety_number(user_id)
        except Exception as exc:
            box.appendChild(dom.h("p", "message error", describe(exc)))
            return
        digits = number.replace(" ", "")
        grouped = " ".join(digits[i : i + 5] for i in range(0, len(digits), 5))
        box.appendChild(dom.h("p", "safety", grouped, id="safety-number"))
        box.appendChild(dom.h("p", "muted", t("safety.hint", name=name)))
        box.appendChild(dom.h("button", "small", t("safety.verify"), data_verify=user_id))

    async def sign_out(self) -> None:
        await self._sign_out()

    # --- updates ---------------------------------------------------------------------------
    def _on_change(self, what: str, cid: bytes | None) -> None:
        if what == "chats":
            self._coalesce("chats", self._render_chats)
        elif what == "rows" and cid is not None and cid == self.view.cid:
            self._coalesce("rows", self.view.refresh)
        elif what == "trust":
            self.settings.render()
        elif what == "members" and cid is not None and cid == self.view.cid:
            self._coalesce("details", self.groups.render_details)
        elif what == "outgoing" and (cid is None or cid == self.view.cid):
            self.view.render_outgoing()

    async def _render_chats(self) -> None:
        self.chat_list.render()
        self.view.title()
        self.notifier.chats_changed()

    def _on_note(self, n: fx.Notification) -> None:
        signal = getattr(n, "signal", None)  # SignalReceived: typing, receipts, presence
        if signal is not None:
            self.live.signal(signal)
        elif isinstance(n, fx.ConnectionChanged):
            self._set_conn(n.state)
            if n.state is ConnectionState.STOPPED:
                self._stopped()
        elif isinstance(n, fx.EventsStored) and any(
            isinstance(e.body, SOCIAL_EVENTS) for e in n.events
        ):
            self._coalesce("contacts", self.contacts.refresh)
        if isinstance(n, fx.EventsStored) and any(
            isinstance(e.body, INVITE_EVENTS) for e in n.events
        ):
            self._coalesce("invite-list", self.groups.refresh_invites)  # accept / decline
        if isinstance(n, fx.EventsStored) and any(
            isinstance(e.body, (GroupInvited, GroupInviteClosed)) for e in n.events
        ):
            self._coalesce("invites", self.notifier.refresh_invites)

    def _stopped(self) -> None:
        self.spawn(self._after_stop())

    async def _after_stop(self) -> None:
        """The server ended this device's session for good (revoked, logged out): back to the
        sign-in form. (The Stop command follows the state change: wait for it, bounded.)"""
        s = self.m.session
        for _ in range(100):
            if s.stop_reason is not None:
                break
            await asyncio.sleep(0.02)
        if s.stop_reason is None or s.stop_reason.code not in ("unauthorized", "device_revoked"):
            return
        from parley_web import main, profile

        main.ui = None
        await profile.forget(self.username)
        dom.show(dom.el("app"), False)
        dom.show(dom.el("auth"), True)
        js.document.body.dataset.signedIn = "no"
        msg = dom.el("auth-message")
        msg.textContent = t("auth.signed_out_elsewhere")
        msg.classList.add("error")
        await self.m.close()

    def _set_conn(self, state: ConnectionState) -> None:
        key = {
            ConnectionState.ONLINE: "status.online",
            ConnectionState.SYNCING: "status.syncing",
            ConnectionState.CONNECTING: "status.connecting",
            ConnectionState.AUTHENTICATING: "status.connecting",
            ConnectionState.STOPPED: "status.stopped",
        }.get(state, "status.offline")
        dom.el("status").textContent = t(key)
        net = dom.el("net")
        offline = state in (ConnectionState.DISCONNECTED, ConnectionState.CONNECTING)
        net.textContent = t("status.offline")
        dom.show(net, offline)
        dom.show(dom.el("status"), not offline)  # one "offline" line, not two
        was_online = getattr(js.document.body.dataset, "conn", "") == ConnectionState.ONLINE.value
        js.document.body.dataset.conn = state.value
        if state is ConnectionState.ONLINE and not was_online:
            # errors from while the connection was gone ("unavailable: server shutting down")
            # are stale now
            self.composer.say("")
            self.contacts.say("")
            self._coalesce("contacts", self.contacts.refresh)  # friend-request badge
            self.spawn(self.recovery.check())  # a browser without this account's keys?
            self.spawn(self.groups.refresh_invites())  # pending group invitations
            self.spawn(self.notifier.refresh_invites())  # group-invitation badge

    def _on_offline(self, _event: Any) -> None:
        """The browser says the network is gone: drop the socket now (it may look alive for
        a while); the session reconnects with jittered backoff once it can."""
        self.spawn(self.m.session.drop_connection())
