"""Tiny helpers over ``js.document``: find, build and listen, with proxy lifetimes handled.

A Python function handed to ``addEventListener`` must be a ``create_proxy``; it lives until
``destroy()``. ``Listeners`` owns the proxies of one screen part and releases them all when
that part is rebuilt (``clear``), so re-rendering never leaks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import js  # type: ignore[import-not-found]
from pyodide.ffi import create_proxy  # type: ignore[import-not-found]


def el(element_id: str) -> Any:
    return js.document.getElementById(element_id)


def h(tag: str, cls: str = "", text: str | None = None, **attrs: str) -> Any:
    """A new element; ``data_x="1"`` becomes ``data-x``."""
    node = js.document.createElement(tag)
    if cls:
        node.className = cls
    if text is not None:
        node.textContent = text
    for k, v in attrs.items():
        node.setAttribute(k.rstrip("_").replace("_", "-"), v)
    return node


def clear(node: Any) -> None:
    node.replaceChildren()


def show(node: Any, visible: bool) -> None:
    node.hidden = not visible


class Listeners:
    """Event handlers whose proxies are destroyed together."""

    def __init__(self) -> None:
        self._held: list[tuple[Any, str, Any]] = []

    def on(self, node: Any, event: str, fn: Callable[[Any], object]) -> None:
        proxy = create_proxy(fn)
        node.addEventListener(event, proxy)
        self._held.append((node, event, proxy))

    def clear(self) -> None:
        for node, event, proxy in self._held:
            node.removeEventListener(event, proxy)
            proxy.destroy()
        self._held.clear()


def data(node: Any, name: str) -> str | None:
    """The ``data-<name>`` attribute, or None (a missing dataset key raises in Pyodide)."""
    if not node or getattr(node, "hasAttribute", None) is None:
        return None
    attr = f"data-{name}"
    return str(node.getAttribute(attr)) if node.hasAttribute(attr) else None


@contextmanager
def keeping_focus() -> Iterator[None]:
    """Rebuild part of the page without taking the caret away from the user.

    A field that had the focus (and an id) before the rebuild gets it back afterwards, in the
    element that now has that id, with its selection. Otherwise text typed between a rebuild and
    the next keystroke would go nowhere: typing is focus, then keys, and a rebuild can land in
    between (a browser test lost a pasted link code that way).
    """
    active = js.document.activeElement
    focus_id = str(getattr(active, "id", "") or "") if active is not None else ""
    selection: tuple[int, int] | None = None
    if focus_id:
        try:
            start, end = active.selectionStart, active.selectionEnd
            if start is not None and end is not None:
                selection = (int(start), int(end))
        except Exception:  # selection is not defined for every kind of input
            selection = None
    yield
    if not focus_id:
        return
    node = js.document.getElementById(focus_id)
    now = js.document.activeElement
    if node is None or (now is not None and str(getattr(now, "id", "") or "") == focus_id):
        return
    node.focus()
    if selection is not None and getattr(node, "setSelectionRange", None) is not None:
        with suppress(Exception):
            node.setSelectionRange(*selection)
