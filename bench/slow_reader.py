"""Server memory under sockets that never read (issue 11, defect 2).

Starts its own ``parley serve`` on 127.0.0.1 (fresh data dir), fills a group with ``--messages``
envelopes of ~95 KiB, then opens ``--sockets`` WebSockets whose client stops reading after one
frame (websockets ``max_queue=1``), each sending ``--requests`` ``history{after_seq: 0,
limit: 500}``. Before the byte bounds, 16 such requests grew the server from 61 to 871 MiB and
nothing was closed; now every reply fits one 256 KiB frame and a socket's queue is capped at
``SEND_QUEUE_MAX_BYTES`` (4 MiB), then closed 4009.

Prints the server's RSS (VmRSS from /proc) before, at the peak while the sockets hold
(sampled), and after they are closed, plus the close codes the clients saw. Bounded in count and
time; only the server started here is signalled, by PID.

    .venv/bin/python bench/slow_reader.py [--sockets 8] [--requests 64] [--messages 20]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from websockets.asyncio.client import ClientConnection, connect  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402

from parley.protocol.codec import decode_server, encode  # noqa: E402
from parley.protocol.frames import Hello, Request, Welcome  # noqa: E402
from parley.protocol.limits import MAX_ENVELOPE_BYTES  # noqa: E402
from parley.protocol.ops import Conversation, GroupCreate, History, Send  # noqa: E402
from tests.support.accounts import new_user  # noqa: E402
from tests.support.rawclient import RawClient, envelope_for  # noqa: E402
from tests.support.server import ServerProcess  # noqa: E402


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        srv = ServerProcess(Path(tmp) / "data", env={"PARLEY_GROUP_DIRECT_ADD": "anyone"})
        srv.start()
        assert srv.proc is not None
        pid = srv.proc.pid
        try:
            (alice,), (bob,) = new_user(srv.http_url, "w"), new_user(srv.http_url, "r")
            a = await RawClient.login(srv.ws_url, alice.token)
            conv: Conversation = await a.call(GroupCreate(members=[bob.user_id]))
            cid = conv.info.conversation_id
            for i in range(args.messages):
                env = envelope_for(cid, MAX_ENVELOPE_BYTES - 1200)
                await a.call(Send(conversation_id=cid, client_msg_id=f"m{i}", envelope=env))
            await a.close()
            before = rss_mib(pid)
            sockets = []
            for _ in range(args.sockets):
                ws = await connect(srv.ws_url, max_size=None, compression=None, max_queue=1)
                await ws.send(encode(Hello(token=bob.token)))
                assert isinstance(decode_server(await ws.recv()), Welcome)
                sockets.append(ws)
            for ws in sockets:
                for n in range(args.requests):
                    op = History(conversation_id=cid, after_seq=0, limit=500)
                    await ws.send(encode(Request(id=n + 1, op=op)))
            peak = before
            for _ in range(50):  # 5 s of samples while the sockets hold
                peak = max(peak, rss_mib(pid))
                await asyncio.sleep(0.1)

            async def drain(ws: ClientConnection) -> int | None:
                """Read now (all sockets at once): what was in flight, then the close code.
                A peer that does not read within 10 s of the close is aborted (no code)."""
                try:
                    while True:
                        await asyncio.wait_for(ws.recv(), 30)
                except ConnectionClosed as exc:
                    return exc.rcvd.code if exc.rcvd else None
                except TimeoutError:
                    await ws.close()
                    return None

            codes: Counter[int | None] = Counter(await asyncio.gather(*map(drain, sockets)))
            await asyncio.sleep(1)
            after = rss_mib(pid)
        finally:
            srv.stop()
    print(f"command: {' '.join(sys.argv)}")
    print(
        f"sockets={args.sockets} requests/socket={args.requests} messages={args.messages} "
        f"(~95 KiB each)"
    )
    print(f"server RSS MiB: before {before:.1f}, peak {peak:.1f} (+{peak - before:.1f}), "
          f"after {after:.1f}")  # fmt: skip
    print(f"close codes seen by the clients: {dict(codes)}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sockets", type=int, default=8)
    p.add_argument("--requests", type=int, default=64)
    p.add_argument("--messages", type=int, default=20)
    asyncio.run(main(p.parse_args()))
