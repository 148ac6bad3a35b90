"""Conversation rows as chat bubbles: mine on the right, theirs on the left, consecutive
messages of one sender grouped (one name, tighter spacing), a separator at each new day.

Text keeps its newlines and wraps; ``http(s)://`` and ``www.`` links become anchors that open
in a new tab with ``rel="noopener noreferrer"`` and nothing is ever fetched for a preview (a
preview would tell the linked site who talks about it). Each bubble carries its actions (reply,
react, edit, recall) as buttons with ``data-*`` attributes for one delegated click listener.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import js  # type: ignore[import-not-found]

from parley.client.message_state import MessageState
from parley_web import dom
from parley_web.chats import Row
from parley_web.i18n import lang, t

GROUP_GAP_MS = 5 * 60 * 1000
"""Consecutive messages of one sender closer than this share one bubble group."""
REACTIONS = ("👍", "❤️", "😂", "😮", "😢", "🙏")
LINK = re.compile(r"\b(?:https?://|www\.)[^\s<>\"']+", re.IGNORECASE)
TRAILING = ".,;:!?)]}'\""


def links(text: str) -> list[tuple[str, str | None]]:
    """``text`` as pieces ``(text, href)``; ``href`` None for plain text. Only http(s)."""
    out: list[tuple[str, str | None]] = []
    pos = 0
    for m in LINK.finditer(text):
        url = m.group(0).rstrip(TRAILING)
        if not url:
            continue
        start, end = m.start(), m.start() + len(url)
        if start > pos:
            out.append((text[pos:start], None))
        href = url if "://" in url else f"https://{url}"
        out.append((url, href))
        pos = end
    if pos < len(text):
        out.append((text[pos:], None))
    return out


def text_node(text: str) -> Any:
    """The message text, newlines kept (CSS ``pre-wrap``), links safe and clickable."""
    body = dom.h("div", "text")
    for piece, href in links(text):
        if href is None:
            body.appendChild(js.document.createTextNode(piece))
        else:
            a = dom.h("a", "link", piece, href=href, target="_blank", rel="noopener noreferrer")
            a.setAttribute("referrerpolicy", "no-referrer")
            body.appendChild(a)
    return body


_offsets: dict[int, int] = {}


def _local_ms(ts: int) -> int:
    """``ts`` shifted into local time. The zone offset comes from JS once per hour of
    timestamps (it changes with daylight saving time), so a page of rows costs a few FFI
    crossings, not several per row."""
    hour = ts // 3_600_000
    off = _offsets.get(hour)
    if off is None:
        off = _offsets[hour] = -int(js.Date.new(ts).getTimezoneOffset()) * 60_000
    return ts + off


def clock(ts: int) -> str:
    minutes = _local_ms(ts) // 60_000 % 1440
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def day_key(ts: int) -> int:
    return _local_ms(ts) // 86_400_000


def day_label(ts: int, now_ms: float) -> str:
    key = day_key(ts)
    if key == day_key(int(now_ms)):
        return t("conv.today")
    if key == day_key(int(now_ms) - 86_400_000):
        return t("conv.yesterday")
    return str(js.Date.new(ts).toLocaleDateString("zh-CN" if lang() == "zh" else "en-GB"))


class Context:
    """What a bubble needs to know about its conversation."""

    def __init__(
        self,
        me: str,
        group: bool,
        name: Callable[[str], str],
        readers: Callable[[int], list[str]],
    ) -> None:
        self.me = me
        self.group = group
        self.name = name
        self.readers = readers  # seq -> the other members who have read it


def render(rows: Sequence[Row], ctx: Context, before: Row | None = None) -> Any:
    """A document fragment of day separators and bubbles; ``before``: the row just above the
    first one (grouping and the day separator continue from it)."""
    frag = js.document.createDocumentFragment()
    now = float(js.Date.now())
    prev = before
    for r in rows:
        if prev is None or day_key(prev.ts) != day_key(r.ts):
            frag.appendChild(dom.h("div", "day", day_label(r.ts, now), role="separator"))
            prev = None
        cont = (
            prev is not None
            and prev.sender == r.sender
            and prev.state != MessageState.SYSTEM
            and r.state != MessageState.SYSTEM
            and r.ts - prev.ts < GROUP_GAP_MS
        )
        frag.appendChild(bubble(r, ctx, cont))
        prev = r
    return frag


def bubble(r: Row, ctx: Context, cont: bool) -> Any:
    mine = r.sender == ctx.me
    cls = f"msg {r.state}" + (" mine" if mine else " theirs") + (" cont" if cont else "")
    cls += " mention" if r.mentions_me else ""
    node = dom.h("div", cls, data_seq=str(r.seq))
    if r.state == MessageState.SYSTEM:
        action, _, who = r.text.partition(":")
        node.appendChild(dom.h("div", "text", t(f"conv.system.{action}", who=who)))
        return node
    b = dom.h("div", "bubble")
    if not mine and ctx.group and not cont:
        b.appendChild(dom.h("span", "who", ctx.name(r.sender)))
    decrypted = r.state == MessageState.DECRYPTED
    if decrypted:
        if r.quote:
            b.appendChild(dom.h("div", "quote", f"↪ {r.quote}"))
        b.appendChild(text_node(r.text))
    else:
        text = {
            MessageState.WAITING: t("conv.waiting"),
            MessageState.FAILED: t("conv.failed"),
            MessageState.RECALLED: t("conv.recalled"),
        }.get(r.state, r.text)
        b.appendChild(dom.h("div", "text", text))
    meta = dom.h("div", "meta")
    if r.edited and decrypted:
        meta.appendChild(dom.h("span", "edited", t("msg.edited")))
    meta.appendChild(dom.h("span", "when", clock(r.ts)))
    if mine and decrypted:
        meta.appendChild(_receipt(r, ctx))
    b.appendChild(meta)
    node.appendChild(b)
    if decrypted and r.reacts:
        node.appendChild(_reactions(r, ctx))
    if decrypted:
        node.appendChild(_actions(r, mine))
    return node


def _receipt(r: Row, ctx: Context) -> Any:
    readers = ctx.readers(r.seq)
    if not readers:
        return dom.h("span", "sent", t("msg.sent"))
    if not ctx.group:
        return dom.h("span", "read", t("msg.read"))
    names = [ctx.name(u) for u in readers]
    shown = ", ".join(names[:3]) + (f" +{len(names) - 3}" if len(names) > 3 else "")
    node = dom.h("span", "read", t("msg.read_by", who=shown))
    node.title = t("msg.read_by", who=", ".join(names))
    return node


def _reactions(r: Row, ctx: Context) -> Any:
    counts: dict[str, list[str]] = {}
    for user, emoji in r.reacts.items():
        counts.setdefault(emoji, []).append(user)
    box = dom.h("div", "reactions")
    for emoji, users in sorted(counts.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        mine = " mine" if ctx.me in users else ""
        chip = dom.h(
            "button",
            "chip" + mine,
            f"{emoji} {len(users)}",
            type="button",
            data_react=str(r.seq),
            data_emoji=emoji,
        )
        chip.title = ", ".join(ctx.name(u) for u in users)
        box.appendChild(chip)
    return box


def _actions(r: Row, mine: bool) -> Any:
    acts = dom.h("div", "acts")
    seq = str(r.seq)
    acts.appendChild(dom.h("button", "act", t("msg.reply"), type="button", data_reply=seq))
    acts.appendChild(dom.h("button", "act", t("msg.react"), type="button", data_picker=seq))
    if mine:
        acts.appendChild(dom.h("button", "act", t("msg.edit"), type="button", data_edit=seq))
        acts.appendChild(dom.h("button", "act", t("msg.recall"), type="button", data_recall=seq))
    return acts


def picker(seq: int) -> Any:
    """The reaction picker under a bubble: a few emoji, one click each."""
    box = dom.h("div", "picker", role="menu")
    for emoji in REACTIONS:
        box.appendChild(
            dom.h("button", "chip", emoji, type="button", data_react=str(seq), data_emoji=emoji)
        )
    return box


def confirm_recall(seq: int) -> Any:
    """Recall asks first: it removes the message for everyone."""
    box = dom.h("div", "confirm", role="alertdialog")
    box.appendChild(dom.h("span", "", t("msg.recall_confirm")))
    box.appendChild(
        dom.h(
            "button", "small danger", t("msg.recall_yes"), type="button", data_recall_yes=str(seq)
        )
    )
    box.appendChild(
        dom.h("button", "small secondary", t("msg.cancel"), type="button", data_recall_no=str(seq))
    )
    return box
