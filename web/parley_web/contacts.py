"""Contacts and friend requests (the social layer's ops), and the safety-number view.

Adding a contact: the username is looked up (``GET /api/v1/users/{name}``), then a
``friend_request`` goes out; the other side sees it under "Friend requests" and accepts.
Direct chats are between contacts (the server enforces it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
from pyodide.http import pyfetch  # type: ignore[import-not-found]

from parley.client.session import RequestError
from parley.protocol.http import UserInfo
from parley.protocol.social import (
    ContactList,
    Contacts,
    FriendAccept,
    FriendReject,
    FriendRequest,
    FriendRequested,
    FriendRequestList,
    FriendRequests,
    PresenceGet,
    PresenceList,
)
from parley_web import dom
from parley_web.i18n import t

if TYPE_CHECKING:
    from parley_web.ui import Ui


class LookupFailed(Exception):
    pass


async def lookup(token: str, username: str) -> UserInfo:
    r = await pyfetch(f"/api/v1/users/{username}", headers={"authorization": f"Bearer {token}"})
    if r.status == 404:
        raise LookupFailed(t("contacts.not_found", name=username))
    if not r.ok:
        raise LookupFailed(f"HTTP {r.status}")
    return msgspec.json.decode(bytes(await r.bytes()), type=UserInfo)


class ContactsPane:
    def __init__(self, ui: Ui) -> None:
        self.ui = ui
        self.body = dom.el("contacts-body")
        self.msg = dom.el("contact-message")
        self.requests: FriendRequestList | None = None
        self.contacts: Contacts | None = None
        self.online: dict[str, bool] = {}  # contact -> online (presence)
        self._listeners = dom.Listeners()
        self._listeners.on(dom.el("contact-form"), "submit", self._on_add)
        self._listeners.on(self.body, "click", self._on_click)

    def say(self, text: str, error: bool = False) -> None:
        self.msg.textContent = text
        self.msg.classList.toggle("error", error)

    async def refresh(self) -> None:
        s = self.ui.m.session
        try:
            reqs = await s.request(FriendRequests(), 15)
            cons = await s.request(ContactList(), 15)
        except RequestError as e:
            if e.code in ("unknown_op", "invalid"):
                self.say(t("contacts.unavailable"), True)
            return
        assert isinstance(reqs, FriendRequestList) and isinstance(cons, Contacts)
        try:
            pres = await s.request(PresenceGet(), 15)
            if isinstance(pres, PresenceList):
                self.online = {p.user_id: p.online for p in pres.users}
        except RequestError:
            pass  # presence is optional: the list shows without it
        self.requests, self.contacts = reqs, cons
        self.ui.notifier.requests_changed(len(reqs.incoming))
        names = {r.user_id: r.username for r in [*reqs.incoming, *reqs.outgoing]}
        names |= {c.user_id: c.username for c in cons.contacts}
        await self.ui.m.remember_names(names)
        self.render()

    def render(self) -> None:
        dom.clear(self.body)
        r, c = self.requests, self.contacts
        self.body.appendChild(dom.h("h3", "", t("contacts.incoming")))
        self.body.appendChild(
            self._people(
                [(p.user_id, p.username) for p in (r.incoming if r else [])],
                ("accept", "reject"),
                "incoming",
            )
        )
        self.body.appendChild(dom.h("h3", "", t("contacts.outgoing")))
        self.body.appendChild(
            self._people(
                [(p.user_id, p.username) for p in (r.outgoing if r else [])], (), "outgoing"
            )
        )
        self.body.appendChild(dom.h("h3", "", t("contacts.list")))
        self.body.appendChild(
            self._people(
                [(x.user_id, x.username) for x in (c.contacts if c else [])],
                ("chat", "safety"),
                "contacts",
            )
        )

    def _people(self, people: list[tuple[str, str]], actions: tuple[str, ...], kind: str) -> Any:
        ul = dom.h("ul", "plain", id=f"contacts-{kind}")
        if not people:
            ul.appendChild(dom.h("li", "muted", t("contacts.none")))
        for user_id, name in people:
            li = dom.h("li", "person", data_user=user_id, data_name=name)
            if kind == "contacts":
                on = self.online.get(user_id, False)
                li.appendChild(
                    dom.h("span", "dot on" if on else "dot", "●", data_online="1" if on else "0")
                )
            li.appendChild(dom.h("span", "name", name))
            for a in actions:
                li.appendChild(
                    dom.h("button", "small secondary", t(f"contacts.{a}"), data_action=a)
                )
            ul.appendChild(li)
        return ul

    def presence(self, users: list[Any]) -> None:
        """A presence signal: contacts came online or went away."""
        for p in users:
            self.online[p.user_id] = bool(p.online)
        self.render()

    def _on_add(self, event: Any) -> None:
        event.preventDefault()
        name = str(dom.el("contact-name").value).strip().lower()
        if name:
            self.ui.spawn(self._add(name))

    async def _add(self, name: str) -> None:
        try:
            user = await lookup(self.ui.token, name)
            await self.ui.m.remember_names({user.user_id: user.username})
            r = await self.ui.m.session.request(FriendRequest(user_id=user.user_id), 15)
        except (LookupFailed, RequestError) as e:
            self.say(self.ui.error_text(e), True)
            return
        dom.el("contact-name").value = ""
        done = isinstance(r, FriendRequested) and r.contact
        self.say(t("contacts.now_contacts" if done else "contacts.requested", name=name))
        await self.refresh()

    def _on_click(self, event: Any) -> None:
        button = event.target.closest("button")
        if not button:
            return
        person = button.closest(".person")
        user_id, name = dom.data(person, "user"), dom.data(person, "name")
        action = dom.data(button, "action")
        if user_id is None or name is None or action is None:
            return
        self.ui.spawn(self._act(action, user_id, name))

    async def _act(self, action: str, user_id: str, name: str) -> None:
        s = self.ui.m.session
        try:
            if action == "accept":
                await s.request(FriendAccept(user_id=user_id), 15)
                self.say(t("contacts.now_contacts", name=name))
            elif action == "reject":
                await s.request(FriendReject(user_id=user_id), 15)
            elif action == "chat":
                cid = await self.ui.m.open_direct(user_id)
                self.ui.select_tab("chats")
                self.ui.open_chat(cid)
                return
            elif action == "safety":
                await self.ui.show_safety(user_id)
                return
        except RequestError as e:
            self.say(self.ui.error_text(e), True)
            return
        await self.refresh()
