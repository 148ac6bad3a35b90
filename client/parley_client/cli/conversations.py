"""Chats as the CLI names them: resolve ``<user|chat-id>``, list conversations, and turn the E2E
layer's decrypted ``MessageView`` into the stable dict that both renderers print."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from parley.client.attachments import describe as describe_attachment
from parley.client.message_state import MessageState
from parley.crypto import content as content_mod
from parley.protocol.ops import Conversation, ConversationPage, ConvGet, ConvList
from parley.protocol.records import ConversationInfo, Message
from parley_client.cli.errors import CliError
from parley_client.cli.http_api import AccountApi
from parley_client.cli.names import Names

if TYPE_CHECKING:
    from parley_client.e2e_client import E2EClient, MessageView

_CHAT_ID = re.compile(r"^[0-9a-f]{32}$")


def chat_id(cid: bytes) -> str:
    return cid.hex()


async def user_id_of(api: AccountApi, names: Names, username: str) -> str:
    user = await api.user(username.lower())
    names.learn(user.user_id, user.username)
    return user.user_id


async def resolve(client: E2EClient, api: AccountApi, names: Names, target: str) -> bytes:
    """A 32-hex chat id as is; a username opens (or gets) the direct chat with that user."""
    t = target.strip().lower()
    if _CHAT_ID.match(t):
        return bytes.fromhex(t)
    uid = await user_id_of(api, names, t)
    if uid == client.user_id:
        raise CliError("you cannot chat with yourself")
    return await client.open_direct(uid)


async def learn_contacts(client: E2EClient, names: Names) -> None:
    """Learn the usernames of our contacts and pending requests (social ops), so senders can
    be shown by name; a server without them is fine."""
    from parley.client.session import RequestError

    try:
        from parley.protocol.social import ContactList, FriendRequests
    except ImportError:
        return
    try:
        contacts = await client.client.request(ContactList(), 15)
        requests = await client.client.request(FriendRequests(), 15)
    except RequestError:
        return
    for c in getattr(contacts, "contacts", []):
        names.learn(c.user_id, c.username)
    for r in [*getattr(requests, "incoming", []), *getattr(requests, "outgoing", [])]:
        names.learn(r.user_id, r.username)


async def all_conversations(client: E2EClient) -> list[ConversationInfo]:
    out: list[ConversationInfo] = []
    after: bytes | None = None
    for _ in range(1000):  # bounded: 1000 pages
        page = await client.client.request(ConvList(after=after), 15)
        assert isinstance(page, ConversationPage)
        out.extend(page.conversations)
        if page.next is None:
            break
        after = page.next
    return out


async def info(client: E2EClient, cid: bytes) -> ConversationInfo:
    r = await client.client.request(ConvGet(conversation_id=cid), 15)
    assert isinstance(r, Conversation)
    return r.info


def title(conv: ConversationInfo, me: str, names: Names) -> str:
    others = [m.user_id for m in conv.members if m.user_id != me]
    label = ", ".join(names.show(u) for u in others) or "(only you)"
    return label if conv.kind.value == "direct" else f"group: {label}"


async def message_seqs(client: E2EClient, cid: bytes, after: int = 0) -> list[int]:
    """Seqs of stored encrypted messages (not membership entries) after ``after``."""
    out: list[int] = []
    while page := await client.client.store.entries(cid, after=after, limit=1000):
        out.extend(e.seq for e in page if isinstance(e.body, Message))
        after = page[-1].seq
    return out


def as_dict(cid: bytes, m: MessageView, names: Names) -> dict[str, Any]:
    """Stable fields (docs/cli.md): conversation_id, seq, ts, sender, sender_name,
    sender_device, type, and text / caption / id depending on the type."""
    d: dict[str, Any] = {
        "conversation_id": chat_id(cid),
        "seq": m.seq,
        "ts": m.ts,
        "sender": m.sender,
        "sender_name": names.by_id.get(m.sender),
        "sender_device": m.sender_device,
    }
    c = m.content
    if m.state is MessageState.FAILED:
        d["type"] = "undecryptable"
    elif m.state is not MessageState.DECRYPTED or c is None:
        d["type"] = str(m.state)  # waiting (key not here yet), waiting_for_keys / sending (ours)
    elif isinstance(c, content_mod.Text):
        d.update(type="text", text=c.body, id=c.id)
    elif isinstance(c, content_mod.Att):
        d.update(type="attachment", caption=c.caption or "", name=c.att.name or "", id=c.id)
        d["attachment"] = describe_attachment(c.att)
    else:
        d.update(type=str(c.__struct_config__.tag), id=c.id)
    return d
