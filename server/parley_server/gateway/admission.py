"""Admission of TCP connections before they are authenticated: a per-IP cap and a read timeout.

A connection counts against its client IP from ``connection_made`` until it is either gone or
an authenticated WebSocket (the gateway releases it after a valid ``hello``). So plain HTTP
connections and sockets still waiting for their ``hello`` share one budget per IP, and a
thousand half-sent request heads from one host are refused past the cap instead of being held.

The client IP here is the TCP peer: a reverse proxy shares one budget for all its clients,
so set ``unauth_conns_per_ip`` for the proxy's concurrency when running behind one.
"""

from __future__ import annotations


class Admission:
    """Counts unauthenticated connections per peer IP (per server process)."""

    __slots__ = ("_counts", "limit")

    def __init__(self, limit: int = 256) -> None:
        self.limit = limit
        self._counts: dict[str, int] = {}

    def enter(self, ip: str) -> bool:
        """Count one more connection from ``ip``; False (and not counted) past the cap."""
        n = self._counts.get(ip, 0)
        if self.limit > 0 and n >= self.limit:
            return False
        self._counts[ip] = n + 1
        return True

    def leave(self, ip: str) -> None:
        n = self._counts.get(ip, 0) - 1
        if n > 0:
            self._counts[ip] = n
        else:
            self._counts.pop(ip, None)

    def count(self, ip: str) -> int:
        return self._counts.get(ip, 0)


ADMISSION = Admission()
"""The process's counter; ``runner.build_server`` sets its ``limit`` from the settings."""
