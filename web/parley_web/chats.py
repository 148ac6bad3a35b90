"""What the UI shows, as plain data: a conversation row and a chat summary (both sealed at
rest by ``local_store``)."""

from __future__ import annotations

import msgspec

from parley.client.message_state import MessageState


class Row(msgspec.Struct, omit_defaults=True):
    """One line of a conversation. ``state``: ``DECRYPTED``, ``WAITING`` (key not here yet),
    ``FAILED`` (can never decrypt), ``SYSTEM`` (membership), ``RECALLED``."""

    seq: int
    sender: str
    ts: int
    state: MessageState
    text: str = ""
    device: int = 0
    quote: str = ""  # a reply: the start of the text it answers
    mentions_me: bool = False
    att: str = ""  # an attachment message: its AttachmentPointer as JSON (app.attachment_view)
    edited: bool = False  # the text is the sender's latest edit (``edit_seq``)
    edit_seq: int = 0
    reacts: dict[str, str] = {}  # user_id -> their one reaction (an emoji)
    react_seqs: dict[str, int] = {}  # user_id -> seq of that reaction (the latest wins)


class Chat(msgspec.Struct, omit_defaults=True):
    """A chat-list entry."""

    cid: bytes
    kind: str  # "direct" | "group"
    members: list[str] = []
    last_text: str = ""
    last_state: str = ""  # the last row's state (decrypted, waiting, recalled)
    last_ts: int = 0
    last_seq: int = 0
    unread: int = 0
    read_seq: int = 0
    left: bool = False
    reads: dict[str, int] = {}  # the other members' read positions (receipts), kept


class Ref(msgspec.Struct):
    """A reply target and mentions of a message on its way out (routing metadata the server
    sees; the text itself stays in the envelope). ``kind`` ``edit`` or ``reaction``: the
    message edits or reacts to ``reply_to`` instead of answering it."""

    reply_to: int = 0
    quote: str = ""
    mentions: list[str] = []
    kind: str = ""


class Outgoing(msgspec.Struct):
    """Our own message not yet stored by the server: ``SENDING``, ``WAITING_FOR_KEYS``,
    ``FAILED`` (with a retry)."""

    local_id: str
    text: str
    ts: int
    state: MessageState
    reason: str = ""


row_enc = msgspec.msgpack.Encoder()
row_dec = msgspec.msgpack.Decoder(Row)
chat_dec = msgspec.msgpack.Decoder(Chat)
