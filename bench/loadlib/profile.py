"""Summarise py-spy collapsed stacks (``--format raw``): where the server's samples went."""

from __future__ import annotations

from collections import Counter
from pathlib import Path


def summarize(path: str | Path, top: int = 25) -> str:
    """Self time by leaf frame, and inclusive time by frame (each counted once per stack)."""
    leaf: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in Path(path).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        frames = [f for f in frames if not f.startswith("process ") and not f.startswith("thread ")]
        if not frames:
            continue
        total += n
        leaf[frames[-1]] += n
        for f in set(frames):
            inclusive[f] += n
    out = [f"{total} samples"]
    out.append("-- self (leaf frame)")
    out += [f"{c / total * 100:5.1f}%  {f}" for f, c in leaf.most_common(top)]
    out.append("-- inclusive")
    out += [f"{c / total * 100:5.1f}%  {f}" for f, c in inclusive.most_common(top * 2)]
    return "\n".join(out)
