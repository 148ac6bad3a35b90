"""Subprocess for the crash test: appends forever, printing each acknowledged seq.

Usage: python -m tests.contract.crash_appender ENGINE DATA_DIR [REDIS_URL PREFIX]. Prints ``conv <hex id>`` once,
then ``ack <seq>`` after each append is acknowledged, until it is killed (or 60 s pass, so a
lost parent cannot leave it running forever).
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from tests.contract.conftest import factory_for

PRODUCERS = 16
MAX_RUN_S = 60.0


async def main(engine: str, data_dir: Path, url: str, prefix: str) -> None:
    store = factory_for(engine, data_dir, url, prefix)()
    await store.open()
    owner = await store.create_user("crash-owner", b"x", 0)
    conversation_id = bytes(range(16))
    await store.create_group(owner.user_id, [], b"", conversation_id, 0)
    print("conv", conversation_id.hex(), flush=True)
    deadline = time.monotonic() + MAX_RUN_S

    async def produce(p: int) -> None:
        i = 0
        while time.monotonic() < deadline:
            res = await store.append_message(
                conversation_id, owner.user_id, 1, f"{p}-{i}", b"ciphertext", i
            )
            print("ack", res.entry.seq, flush=True)
            i += 1

    await asyncio.gather(*(produce(p) for p in range(PRODUCERS)))
    await store.close()


if __name__ == "__main__":
    extra = sys.argv[3:5] if len(sys.argv) >= 5 else ["", ""]
    asyncio.run(main(sys.argv[1], Path(sys.argv[2]), extra[0], extra[1]))
