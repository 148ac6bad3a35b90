"""In-memory sliding-window counters for login throttling (per account and per client IP).

Per process: with several server nodes each node counts on its own, which still bounds an
attacker to nodes x limit guesses per window.
"""

from __future__ import annotations

import time
from collections import deque


class SlidingWindow:
    def __init__(self, limit: int, window_s: float, max_keys: int = 100_000) -> None:
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

    def hit(self, key: str, now: float | None = None) -> None:
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
