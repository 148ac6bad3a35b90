"""Groups: the create form (name + member usernames), pending invitations (accept or decline:
the server adds only contacts at once, anyone else is asked), and the details panel of the open
chat (member list with roles from the server's routing list, invite, leave; for a direct chat
the safety number)."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from parley.client.session import RequestError
from parley.protocol.invites import (
    GroupInviteAccept,
    GroupInviteDecline,
    GroupInviteList,
    GroupInvites,
)
from parley.protocol.ops import Conversation, GroupRemove
from parley.protocol.records import ConversationInfo
from parley.protocol.social import MemberCards, MemberNames
from parley.protocol.types import Role
from parley_web import dom
from parley_web.contacts import LookupFailed, lookup
from parley_web.i18n import t
from parley_web.secure import EncryptionNotReady

if TYPE_CHECKING:
    from parley_web.ui import Ui


class Groups:
    def __init__(self, ui: Ui) -> None:
        self.ui = ui
        self.form = dom.el("group-form")
        self.msg = dom.el("group-message")
        self.details = dom.el("details")
        self._listeners = dom.Listeners()
        self._listeners.on(dom.el("new-group"), "click", lambda _e: self.toggle_form(True))
        self._listeners.on(dom.el("group-cancel"), "click", lambda _e: self.toggle_form(False))
        self._listeners.on(self.form, "submit", self._on_create)
        self._listeners.on(
            dom.el("conv-details"), "click", lambda _e: self.ui.spawn(self.toggle_details())
        )
        self._listeners.on(self.details, "click", self._on_details_click)
        self._listeners.on(self.details, "submit", self._on_invite)
        # pending invitations: a list above the chats, made here (not in index.html)
        self.invites = dom.h("ul", "plain invites", id="group-invites")
        self.invites.hidden = True
        chat_list = dom.el("chat-list")
        chat_list.parentNode.insertBefore(self.invites, chat_list)
        self._listeners.on(self.invites, "click", self._on_invites_click)

    # --- invitations -----------------------------------------------------------------------
    async def refresh_invites(self) -> None:
        """Pending invitations (``group_invites``), each with Accept and Decline."""
        try:
            r = await self.ui.m.session.request(GroupInvites(), 15)
        except (RequestError, TimeoutError):
            return
        if not isinstance(r, GroupInviteList):
            return
        box = self.invites
        dom.clear(box)
        for inv in r.invites:
            li = dom.h("li", "invite", data_invite=inv.conversation_id.hex())
            li.appendChild(dom.h("span", "name", t("group.invited_by", name=inv.inviter_name)))
            li.appendChild(
                dom.h("button", "small", t("group.accept"), data_accept=inv.conversation_id.hex())
            )
            li.appendChild(
                dom.h(
                    "button",
                    "small secondary",
                    t("group.decline"),
                    data_decline=inv.conversation_id.hex(),
                )
            )
            box.appendChild(li)
        dom.show(box, bool(r.invites))

    def _on_invites_click(self, event: Any) -> None:
        target = event.target
        if (cid := dom.data(target, "accept")) is not None:
            self.ui.spawn(self._answer(bytes.fromhex(cid), True))
        elif (cid := dom.data(target, "decline")) is not None:
            self.ui.spawn(self._answer(bytes.fromhex(cid), False))

    async def _answer(self, cid: bytes, accept: bool) -> None:
        op = GroupInviteAccept(conversation_id=cid) if accept else GroupInviteDecline(cid)
        try:
            r = await self.ui.m.session.request(op, 15)
        except (RequestError, TimeoutError) as e:
            self.msg.textContent = self.ui.error_text(e)
            dom.show(self.form, True)
            return
        await self.refresh_invites()
        if accept and isinstance(r, Conversation):
            self.ui.chat_list.render()

    def toggle_form(self, visible: bool) -> None:
        dom.show(self.form, visible)
        self.msg.textContent = ""
        if visible:
            dom.el("group-name").focus()

    def _on_create(self, event: Any) -> None:
        event.preventDefault()
        name = str(dom.el("group-name").value).strip()
        raw = str(dom.el("group-members").value)
        usernames = [
            u.strip().lower()
            for u in raw.replace("\uff0c", ",").split(",")  # full-width comma (Chinese IME)
            if u.strip()
        ]
        if name:
            self.ui.spawn(self._create(name, usernames))

    async def _user_ids(self, usernames: list[str]) -> list[str]:
        ids = []
        for u in usernames:
            info = await lookup(self.ui.token, u)
            await self.ui.m.remember_names({info.user_id: info.username})
            ids.append(info.user_id)
        return ids

    async def _create(self, name: str, usernames: list[str]) -> None:
        try:
            ids = await self._user_ids(usernames)
            cid = await self.ui.m.create_group(ids, name)
        except EncryptionNotReady:
            self.msg.textContent = t("err.not_ready")
            return
        except (LookupFailed, RequestError) as e:
            self.msg.textContent = self.ui.error_text(e)
            return
        dom.el("group-name").value = ""
        dom.el("group-members").value = ""
        self.toggle_form(False)
        self.ui.open_chat(cid)

    async def toggle_details(self, force: bool | None = None) -> None:
        visible = self.details.hidden if force is None else force
        dom.show(self.details, visible)
        if visible:
            await self.render_details()

    async def load_names(self, cid: bytes) -> None:
        """The members' usernames from the server (co-members may see them even when they
        are not our contacts), so no one shows as an id."""
        with contextlib.suppress(RequestError, TimeoutError):
            r = await self.ui.m.session.request(MemberNames(conversation_id=cid), 15)
            if isinstance(r, MemberCards):
                await self.ui.m.remember_names({u.user_id: u.username for u in r.users})

    async def render_details(self) -> None:
        """Fetch first, then rebuild the pane in one synchronous step: nothing typed into the
        rename or invite field is lost to a rebuild (drafts and the focus are carried over)."""
        cid = self.ui.view.cid
        if cid is None or self.details.hidden:
            return
        m = self.ui.m
        chat = m.chats.get(cid)
        info: ConversationInfo | None = None
        error = ""
        if chat is None or not chat.left:
            try:
                info = await m.info(cid)
            except RequestError as e:
                error = self.ui.error_text(e)
            else:
                if any(mem.user_id not in m.names for mem in info.members):
                    await self.load_names(cid)
        if self.ui.view.cid != cid or self.details.hidden:
            return  # the user moved on while this was fetched
        with dom.keeping_focus():
            self._build_details(cid, info, error)

    def _build_details(self, cid: bytes, info: ConversationInfo | None, error: str) -> None:
        m = self.ui.m
        box = self.details
        same = dom.data(box, "cid") == cid.hex()
        drafts = {
            key: str(field.value)
            for key in ("rename-name", "invite-name")
            if same and (field := dom.el(key))
        }
        dom.clear(box)
        box.dataset.cid = cid.hex()
        box.appendChild(dom.h("h3", "", m.title(cid), id="details-title"))
        if info is None:  # a chat we left, or the server's answer was an error
            box.appendChild(
                dom.h("p", "message error", error)
                if error
                else dom.h("p", "muted", t("group.left"))
            )
            return
        roles = {mem.user_id: mem.role for mem in info.members}
        mine = roles.get(m.user_id)
        group = info.kind.value == "group"
        manager = group and mine in (Role.OWNER, Role.ADMIN)
        box.dataset.role = mine.value if mine is not None else ""
        if manager:  # the server lets owners and admins rename
            form = dom.h("form", "inline", id="rename-form")
            name_in = dom.h("input", "", id="rename-name", maxlength="64", required="")
            name_in.value = drafts.get("rename-name", m.title(cid))
            form.appendChild(name_in)
            form.appendChild(dom.h("button", "small", t("group.rename"), type="submit"))
            box.appendChild(form)
        box.appendChild(dom.h("h3", "", t("group.member_list")))
        ul = dom.h("ul", "plain", id="member-list")
        order = {Role.OWNER: 0, Role.ADMIN: 1, Role.MEMBER: 2}
        for mem in sorted(info.members, key=lambda x: (order.get(x.role, 3), m.name(x.user_id))):
            li = dom.h("li", "person", data_user=mem.user_id, data_role=mem.role.value)
            li.appendChild(dom.h("span", "name", m.name(mem.user_id)))
            li.appendChild(dom.h("span", "role", t(f"role.{mem.role.value}")))
            if mem.user_id != m.user_id:
                li.appendChild(
                    dom.h(
                        "button", "small secondary", t("contacts.safety"), data_safety=mem.user_id
                    )
                )
                # owners remove anyone, admins only plain members (the server's rule)
                if group and (
                    mine == Role.OWNER or (mine == Role.ADMIN and mem.role == Role.MEMBER)
                ):
                    li.appendChild(
                        dom.h("button", "small danger", t("group.remove"), data_remove=mem.user_id)
                    )
            ul.appendChild(li)
        box.appendChild(ul)
        if group:
            if manager:  # invite only where the role allows it
                form = dom.h("form", "inline", id="invite-form")
                invite_in = dom.h(
                    "input", "", id="invite-name", placeholder=t("group.invite_placeholder")
                )
                invite_in.value = drafts.get("invite-name", "")
                form.appendChild(invite_in)
                form.appendChild(dom.h("button", "small", t("group.invite"), type="submit"))
                box.appendChild(form)
            box.appendChild(dom.h("p", "message", id="details-message"))
            box.appendChild(
                dom.h(
                    "button", "small secondary", t("group.leave"), id="group-leave", data_leave="1"
                )
            )

    def _on_details_click(self, event: Any) -> None:
        target = event.target
        if (user := dom.data(target, "safety")) is not None:
            self.ui.spawn(self.ui.show_safety(user))
        elif dom.data(target, "leave") is not None:
            self.ui.spawn(self._leave())
        elif (user := dom.data(target, "verify")) is not None:
            self.ui.spawn(self._verify(user))
        elif (user := dom.data(target, "remove")) is not None:
            self.ui.spawn(self._remove(user))

    async def _verify(self, user_id: str) -> None:
        await self.ui.m.mark_verified(user_id)
        await self.ui.show_safety(user_id)

    async def _leave(self) -> None:
        cid = self.ui.view.cid
        if cid is None:
            return
        try:
            await self.ui.m.leave(cid)
        except RequestError as e:
            dom.el("details-message").textContent = self.ui.error_text(e)
            return
        dom.show(self.details, False)
        self.ui.view.close()
        self.ui.chat_list.render()

    async def _remove(self, user_id: str) -> None:
        cid = self.ui.view.cid
        if cid is None:
            return
        try:
            await self.ui.m.session.request(GroupRemove(conversation_id=cid, user_id=user_id), 15)
        except (RequestError, TimeoutError) as e:
            dom.el("details-message").textContent = self.ui.error_text(e)
            return
        await self.render_details()

    async def _rename(self, cid: bytes, name: str) -> None:
        try:
            await self.ui.m.driver.rename(cid, name)
        except (RequestError, TimeoutError, EncryptionNotReady, PermissionError) as e:
            dom.el("details-message").textContent = self.ui.error_text(e)
            return
        self.ui.view.title()
        self.ui.chat_list.render()
        await self.render_details()

    def _on_invite(self, event: Any) -> None:
        event.preventDefault()
        if event.target.id == "rename-form":
            new_name = str(dom.el("rename-name").value).strip()
            cid = self.ui.view.cid
            if new_name and cid is not None:
                self.ui.spawn(self._rename(cid, new_name))
            return
        name = str(dom.el("invite-name").value).strip().lower()
        cid = self.ui.view.cid
        if name and cid is not None:
            self.ui.spawn(self._invite(cid, name))

    async def _invite(self, cid: bytes, name: str) -> None:
        try:
            ids = await self._user_ids([name])
            await self.ui.m.invite(cid, ids)
        except (LookupFailed, RequestError, EncryptionNotReady, PermissionError) as e:
            dom.el("details-message").textContent = self.ui.error_text(e)
            return
        if field := dom.el("invite-name"):  # done: the rebuild must not keep it as a draft
            field.value = ""
        await self.render_details()
