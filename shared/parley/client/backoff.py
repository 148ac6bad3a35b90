"""Reconnect delays: exponential with jitter, a pure function of the attempt number.

Equal jitter: the delay of attempt ``n`` lies in ``[c/2, c]`` with ``c = min(cap, base*2**(n-1))``,
so a restarted server is not hit by every client at once, yet nobody waits much longer than the
exponential schedule says. ``random`` is an argument (no ``random`` module here): tests and
simulations pass a fixed one, the engine a CSPRNG-backed ``unit_random``.
"""

from __future__ import annotations

from collections.abc import Callable

BASE_S = 0.5
CAP_S = 30.0


def backoff_ceiling(attempt: int, *, base: float = BASE_S, cap: float = CAP_S) -> float:
    """The upper bound of attempt ``attempt`` (1-based)."""
    exponent = min(max(attempt, 1) - 1, 62)
    return min(cap, base * float(2**exponent))


def backoff_delay(
    attempt: int,
    *,
    base: float = BASE_S,
    cap: float = CAP_S,
    random: Callable[[], float],
) -> float:
    """Seconds to wait before reconnect attempt ``attempt`` (1 = first retry)."""
    ceiling = backoff_ceiling(attempt, base=base, cap=cap)
    return ceiling / 2 + random() * ceiling / 2


def unit_random(random_bytes: Callable[[int], bytes]) -> float:
    """A uniform float in [0, 1) from a byte source (48 bits: exact in a double)."""
    return int.from_bytes(random_bytes(6), "big") / float(1 << 48)
