"""Tiny helpers over ``js.document``: find, build and listen, with proxy lifetimes handled.

A Python function handed to ``addEventListener`` must be a ``create_proxy``; it lives until
``destroy()``. ``Listeners`` owns the proxies of one screen part and releases them all when
that part is rebuilt (``clear``), so re-rendering never leaks.
"""

from __future__ import annotations

from collections.abc import Callable
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
