"""Routes a decoded ``Request.op`` to its service method; one table, checked against RESULT_OF."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from parley.protocol import blobs, invites, ops, social
from parley.protocol.ops import Result
from parley_server.fanout.base import Subscriber
from parley_server.service.accounts import Accounts
from parley_server.service.admin import Operators
from parley_server.service.attachments import make_attachments
from parley_server.service.context import Services, Session
from parley_server.service.conversations import Conversations
from parley_server.service.invites import Invitations, invite_store_of
from parley_server.service.messages import Messages
from parley_server.service.presence import Presence
from parley_server.service.reads import Reads
from parley_server.service.recall import Recalls
from parley_server.service.social import Social
from parley_server.service.sync import Sync
from parley_server.service.to_device import ToDevice
from parley_server.service.typing import TypingRelay
from parley_server.store.admin import admin_store_of

Handler = Callable[[Session, Any, Subscriber | None], Awaitable[Result]]


class Dispatcher:
    """All services of one server process, plus the op table the gateway dispatches through."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.social_store = services.stores.social
        self.accounts = Accounts(services)
        self.conversations = Conversations(services, self.social_store)
        self.invitations = Invitations(
            services, self.conversations, invite_store_of(services.stores), self.social_store
        )
        self.conversations.invitations = self.invitations
        self.messages = Messages(services, self.conversations)
        self.reads = Reads(services, self.conversations, self.social_store)
        self.sync = Sync(services, self.reads)
        self.to_device = ToDevice(services)
        self.social = Social(services, self.social_store)
        self.presence = Presence(services, self.social_store)
        self.social.presence = self.presence
        self.accounts.visible_user = self.social.visible_user
        self.recalls = Recalls(services, self.conversations, self.social_store)
        self.typing = TypingRelay(services, self.conversations)
        self.attachments = make_attachments(services)
        self.messages.attachments = self.attachments
        self.operators = Operators(
            services, admin_store_of(services.stores), conversations=self.conversations
        )
        self.accounts.operators = self.operators
        c = self.conversations
        so = self.social
        self._table: dict[type[msgspec.Struct], Handler] = {
            ops.Send: self.messages.send,
            ops.History: lambda s, op, _: self.messages.history(s, op),
            ops.SyncRequest: lambda s, op, _: self.sync.sync(s, op),
            ops.ToDeviceSend: lambda s, op, _: self.to_device.send(s, op),
            ops.ToDeviceAck: lambda s, op, _: self.to_device.ack(s, op),
            ops.DirectOpen: lambda s, op, _: c.direct_open(s, op),
            ops.GroupCreate: lambda s, op, _: c.group_create(s, op),
            ops.GroupInvite: lambda s, op, _: c.group_invite(s, op),
            ops.GroupLeave: lambda s, op, _: c.group_leave(s, op),
            ops.GroupRemove: lambda s, op, _: c.group_remove(s, op),
            ops.GroupSetRole: lambda s, op, _: c.group_set_role(s, op),
            ops.GroupRename: lambda s, op, _: c.group_rename(s, op),
            ops.GroupDisband: lambda s, op, _: c.group_disband(s, op),
            ops.ConvGet: lambda s, op, _: c.get(s, op),
            ops.ConvList: lambda s, op, _: c.list_page(s, op),
            social.UserLookup: lambda s, op, _: so.lookup(s, op),
            social.ProfileGet: lambda s, op, _: so.profile_get(s, op),
            social.ProfileSet: lambda s, op, _: so.profile_set(s, op),
            social.FriendRequest: lambda s, op, _: so.request(s, op),
            social.FriendCancel: lambda s, op, _: so.cancel(s, op),
            social.FriendAccept: lambda s, op, _: so.accept(s, op),
            social.FriendReject: lambda s, op, _: so.reject(s, op),
            social.FriendRequests: lambda s, op, _: so.requests(s, op),
            social.ContactList: lambda s, op, _: so.contacts(s, op),
            social.ContactRemove: lambda s, op, _: so.remove(s, op),
            social.Block: lambda s, op, _: so.block(s, op),
            social.Unblock: lambda s, op, _: so.unblock(s, op),
            social.Recall: lambda s, op, _: self.recalls.recall(s, op),
            social.ReadMark: lambda s, op, _: self.reads.mark(s, op),
            social.Receipts: lambda s, op, _: self.reads.receipts(s, op),
            social.Typing: lambda s, op, _: self.typing.typing(s, op),
            social.PresenceGet: lambda s, op, _: self.presence.snapshot(s, op),
            social.MemberNames: lambda s, op, _: c.member_names(s, op),
            blobs.UploadBegin: lambda s, op, _: self.attachments.begin(s, op),
            blobs.UploadCommit: lambda s, op, _: self.attachments.commit(s, op),
            blobs.UploadAbort: lambda s, op, _: self.attachments.abort(s, op),
            blobs.BlobUrl: lambda s, op, _: self.attachments.url(s, op),
            invites.GroupInvites: lambda s, op, _: self.invitations.list(s, op),
            invites.GroupInviteAccept: lambda s, op, _: self.invitations.accept(s, op),
            invites.GroupInviteDecline: lambda s, op, _: self.invitations.decline(s, op),
        }
        assert set(self._table) == set(ops.RESULT_OF), "every op needs a handler"

    async def dispatch(self, session: Session, op: ops.Op, origin: Subscriber | None) -> Result:
        return await self._table[type(op)](session, op, origin)
