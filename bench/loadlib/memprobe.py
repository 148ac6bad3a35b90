"""``parley serve`` under tracemalloc, for ``load.py idle --tracemalloc OUT``: where the
per-connection memory goes, by allocation site.

The first SIGUSR1 takes a baseline snapshot; each later one writes the growth since the
baseline (grouped by source line and by 8-frame traceback) to ``PARLEY_MEMPROBE_OUT``.
tracemalloc itself adds memory per block, so RSS figures from such a run are not the real ones.
"""

from __future__ import annotations

import os
import signal
import sys
import tracemalloc
from types import FrameType

_base: list[tracemalloc.Snapshot] = []


def _dump(signum: int, frame: FrameType | None) -> None:
    snap = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)]
    )
    if not _base:
        _base.append(snap)
        return
    out = os.environ.get("PARLEY_MEMPROBE_OUT", "memprobe.txt")
    with open(out + ".tmp", "w") as f:
        diff = snap.compare_to(_base[0], "lineno")
        total = sum(d.size_diff for d in diff)
        f.write(f"growth since baseline: {total / 1024:.0f} KiB (traced Python allocations)\n")
        f.write("-- by file\n")
        for d in snap.compare_to(_base[0], "filename")[:25]:
            f.write(f"{d.size_diff / 1024:10.0f} KiB {d.count_diff:+8d} blocks  {d.traceback}\n")
        f.write("-- by line\n")
        for d in diff[:40]:
            f.write(f"{d.size_diff / 1024:10.0f} KiB {d.count_diff:+8d} blocks  {d.traceback}\n")
        f.write("-- by traceback (8 frames)\n")
        for d in snap.compare_to(_base[0], "traceback")[:12]:
            f.write(f"{d.size_diff / 1024:10.0f} KiB {d.count_diff:+8d} blocks\n")
            for line in d.traceback.format()[-16:]:
                f.write(f"    {line}\n")
    os.replace(out + ".tmp", out)  # appears complete or not at all


if __name__ == "__main__":
    tracemalloc.start(8)
    signal.signal(signal.SIGUSR1, _dump)
    from parley_client.cli.main import main

    sys.argv[0] = "parley"
    main()
