"""Terminal output with rich: tables and message lines for people, one JSON object per line
for scripts. User-supplied text is always rendered as plain ``Text`` (never as markup)."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from parley.protocol.http import DeviceInfo

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def when(ts_ms: int) -> str:
    if ts_ms <= 0:
        return "-"
    return datetime.fromtimestamp(ts_ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def ok(message: str) -> None:
    out.print(Text(message))


def info(message: str) -> None:
    err.print(Text(message, style="dim"))


def warn(message: str) -> None:
    err.print(Text("warning: ", style="bold yellow") + Text(message))


def devices(items: list[DeviceInfo]) -> None:
    table = Table("ID", "Name", "Created", "Last seen", "", box=None, pad_edge=False)
    for d in items:
        table.add_row(
            str(d.device_id), Text(d.name or "-"), when(d.created), when(d.last_seen),
            "this device" if d.current else "",
        )  # fmt: skip
    out.print(table)


def chats(rows: list[dict[str, Any]]) -> None:
    if not rows:
        out.print("No chats yet. Start one with: parley send USER TEXT")
        return
    table = Table("Chat", "With", "Unread", "Last activity", box=None, pad_edge=False)
    for r in rows:
        unread = str(r["unread"]) if r["unread"] else ""
        table.add_row(r["chat"], Text(r["with"]), unread, when(r["last_ts"]))
    out.print(table)


def message_line(m: dict[str, Any]) -> None:
    """One human line: time, sender, text (or a placeholder)."""
    line = Text(f"{when(m['ts'])}  ", style="dim")
    line += Text(m.get("sender_name") or m["sender"], style="bold")
    line += Text(": ")
    kind = m["type"]
    if kind == "text":
        line += Text(m["text"])
    elif kind == "attachment":
        line += Text(f"[attachment] {m.get('caption', '')}", style="italic")
    elif kind in ("waiting", "undecryptable", "sending", "waiting_for_keys"):
        line += Text(f"[{kind.replace('_', ' ')}]", style="yellow")
    else:
        line += Text(f"[{kind}]", style="dim")
    out.print(line)


def json_line(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def table(headers: list[str], rows: list[list[str]], empty: str) -> None:
    if not rows:
        out.print(empty)
        return
    t = Table(*headers, box=None, pad_edge=False)
    for r in rows:
        t.add_row(*(Text(c) for c in r))
    out.print(t)
