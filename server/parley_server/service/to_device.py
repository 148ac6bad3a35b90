"""The per-device queue of pairwise-encrypted envelopes (key distribution, call signalling)."""

from __future__ import annotations

from parley.protocol.codec import encode
from parley.protocol.errors import ErrorCode
from parley.protocol.frames import ToDevicePush
from parley.protocol.ops import Ok, ToDeviceAck, ToDeviceSend, ToDeviceSent
from parley_server.service.context import Services, Session, now_ms
from parley_server.service.errors import ServiceError
from parley_server.store.base import NotFound, ToDeviceOut
from parley_server.store.reach import ReachStore


class ToDevice:
    def __init__(self, services: Services) -> None:
        self.s = services

    async def send(self, session: Session, op: ToDeviceSend) -> ToDeviceSent:
        cfg = self.s.settings
        if not op.messages:
            raise ServiceError(ErrorCode.INVALID, "no messages")
        if len(op.messages) > cfg.max_to_device_batch:
            raise ServiceError(ErrorCode.TOO_LARGE, f"at most {cfg.max_to_device_batch} messages")
        if any(len(m.body) > cfg.max_to_device_bytes for m in op.messages):
            raise ServiceError(
                ErrorCode.TOO_LARGE, f"a body exceeds {cfg.max_to_device_bytes} bytes"
            )
        devices: dict[str, set[int]] = {}
        for user_id in {m.user_id for m in op.messages}:
            devices[user_id] = {d.device_id for d in await self.s.store.list_devices(user_id)}
        for m in op.messages:
            if m.device_id not in devices[m.user_id]:
                raise ServiceError(ErrorCode.UNKNOWN_DEVICE, "no such device")
        await self._check_reach(session, op)
        try:
            queued = await self.s.store.enqueue_to_device(
                session.user_id,
                session.device_id,
                [
                    ToDeviceOut(user_id=m.user_id, device_id=m.device_id, body=m.body)
                    for m in op.messages
                ],
                now_ms(),
            )
        except NotFound:
            # A recipient was revoked between the check above and the (atomic) enqueue.
            raise ServiceError(ErrorCode.UNKNOWN_DEVICE, "no such device") from None
        for user_id, device_id, item in queued:
            await self.s.broker.publish_to_device(
                user_id, device_id, encode(ToDevicePush(item=item))
            )
        return ToDeviceSent(count=len(queued))

    async def _check_reach(self, session: Session, op: ToDeviceSend) -> None:
        """Only to oneself, contacts and co-members; at most ``to_device_queue_max`` items
        queued per (sender, recipient user) (the recipient's devices fetch and ack them)."""
        reach = self.s.stores.get(ReachStore)  # type: ignore[type-abstract]
        per_user: dict[str, int] = {}
        for m in op.messages:
            per_user[m.user_id] = per_user.get(m.user_id, 0) + 1
        allowed = await reach.may_reach(session.user_id, list(per_user))
        if not allowed.issuperset(per_user):
            raise ServiceError(
                ErrorCode.FORBIDDEN, "to-device goes only to contacts and conversation members"
            )
        cap = self.s.settings.to_device_queue_max
        for user_id, n in per_user.items():
            if user_id == session.user_id:
                continue  # one's own devices (key sharing between them) are not capped
            if await reach.queued_from(session.user_id, user_id) + n > cap:
                raise ServiceError(
                    ErrorCode.RATE_LIMITED,
                    f"at most {cap} undelivered items per recipient; wait for them to sync",
                )

    async def ack(self, session: Session, op: ToDeviceAck) -> Ok:
        await self.s.store.ack_to_device(session.user_id, session.device_id, op.upto_seq)
        return Ok()

    async def expire(self) -> int:
        older_than = now_ms() - int(self.s.settings.to_device_ttl_s * 1000)
        return await self.s.store.expire_to_device(older_than)
