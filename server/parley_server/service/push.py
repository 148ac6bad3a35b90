"""Pushing stored changes to connected devices: each frame is encoded once, then fanned out."""

from __future__ import annotations

from collections.abc import Iterable

from parley.protocol.codec import encode
from parley.protocol.frames import EntryPush, EventPush
from parley.protocol.records import ConvEntry, UserEvent
from parley_server.fanout.base import Broker, Subscriber
from parley_server.store.base import MembershipResult


async def push_entry(
    broker: Broker, entry: ConvEntry, user_ids: Iterable[str], exclude: Subscriber | None = None
) -> None:
    await broker.publish_to_users(user_ids, encode(EntryPush(entry=entry)), exclude=exclude)


async def push_events(broker: Broker, events: Iterable[tuple[str, UserEvent]]) -> None:
    for user_id, event in events:
        await broker.publish_to_users((user_id,), encode(EventPush(event=event)))


async def push_membership(
    broker: Broker, result: MembershipResult, extra_users: Iterable[str] = ()
) -> None:
    """The entry to every member after the change (plus ``extra_users``, e.g. who was just
    removed, so their devices see why), then each user's events to that user."""
    recipients = {m.user_id for m in result.info.members}
    recipients.update(extra_users)
    await push_entry(broker, result.entry, recipients)
    await push_events(broker, result.events)
