"""In-memory sliding-window counters for login throttling (per account and per client IP).

Counted in each process. A window created with a ``name`` is shared between the nodes of a
scale-out deployment: each hit is handed to the hook set by ``share_hits`` (the Redis broker
publishes it to every node) and a hit from another node arrives through ``remote_hit``, so
a login throttle holds across nodes (within the milliseconds a publish takes). Unnamed windows
(per-connection or per-session limits) stay local.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

_shared: dict[str, SlidingWindow] = {}
_share: Callable[[str, str], None] | None = None


def share_hits(publish: Callable[[str, str], None] | None) -> None:
    """Hand every hit of a named window to ``publish(window, key)`` (None: stop sharing)."""
    global _share
    _share = publish


def remote_hit(window: str, key: str) -> None:
    """A hit another node counted in its window ``window``."""
    w = _shared.get(window)
    if w is not None:
        w.hit(key, remote=True)


class SlidingWindow:
    def __init__(
        self, limit: int, window_s: float, max_keys: int = 100_000, name: str = ""
    ) -> None:
        self.name = name
        if name:
            _shared[name] = self
        self.limit = limit
        self.window_s = window_s
        self.max_keys = max_keys
        self._hits: dict[str, deque[float]] = {}

    def _prune(self, key: str, now: float) -> deque[float] | None:
        hits = self._hits.get(key)
        if hits is None:
            return None
        while hits and hits[0] <= now - self.window_s:
            hits.popleft()
        if not hits:
            del self._hits[key]
            return None
        return hits

    def retry_after(self, key: str, now: float | None = None) -> float | None:
        """Seconds until ``key`` may try again, or None when it is under the limit."""
        now = time.monotonic() if now is None else now
        hits = self._prune(key, now)
        if hits is None or len(hits) < self.limit:
            return None
        return max(0.0, hits[len(hits) - self.limit] + self.window_s - now)

    def hit(self, key: str, now: float | None = None, remote: bool = False) -> None:
        if self.name and _share is not None and not remote:
            _share(self.name, key)
        now = time.monotonic() if now is None else now
        if len(self._hits) >= self.max_keys and key not in self._hits:
            self._sweep(now)
        self._hits.setdefault(key, deque()).append(now)

    def _sweep(self, now: float) -> None:
        for key in list(self._hits):
            self._prune(key, now)
        if len(self._hits) >= self.max_keys:  # still full: forget the oldest keys
            for key in list(self._hits)[: self.max_keys // 10]:
                del self._hits[key]
