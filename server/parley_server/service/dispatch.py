"""Routes a decoded ``Request.op`` to its service method; one table, checked against RESULT_OF."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from parley.protocol import ops
from parley.protocol.errors import ErrorCode
from parley.protocol.ops import Result
from parley_server.fanout.base import Subscriber
from parley_server.service.accounts import Accounts
from parley_server.service.context import Services, Session
from parley_server.service.conversations import Conversations
from parley_server.service.errors import ServiceError
from parley_server.service.messages import Messages
from parley_server.service.sync import Sync
from parley_server.service.to_device import ToDevice

Handler = Callable[[Session, Any, Subscriber | None], Awaitable[Result]]


async def _not_yet(session: Session, op: Any, origin: Subscriber | None) -> Result:
    raise ServiceError(ErrorCode.UNKNOWN_OP, f"{type(op).__name__} is not served yet")


class App:
    """All services of one server process, plus the op table the gateway dispatches through."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.accounts = Accounts(services)
        self.conversations = Conversations(services)
        self.messages = Messages(services, self.conversations)
        self.sync = Sync(services)
        self.to_device = ToDevice(services)
        c = self.conversations
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
        }
        for op_type in ops.RESULT_OF:  # social ops: wired up below as they land
            self._table.setdefault(op_type, _not_yet)
        assert set(self._table) == set(ops.RESULT_OF), "every op needs a handler"

    async def dispatch(self, session: Session, op: ops.Op, origin: Subscriber | None) -> Result:
        return await self._table[type(op)](session, op, origin)
