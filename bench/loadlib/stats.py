"""Percentiles and the machine context printed with every figure."""

from __future__ import annotations

import math
import os
import platform


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100) of unsorted values; None when empty."""
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(p / 100.0 * len(s)) - 1))
    return s[k]


def fmt_ms(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f}"


def machine() -> str:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}, loadavg {load}"
