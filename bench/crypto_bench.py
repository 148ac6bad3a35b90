"""Crypto core micro-benchmarks (CPython and Pyodide).

    .venv/bin/python bench/crypto_bench.py [seconds-per-figure]     # CPython
    node bench/pyodide_crypto.mjs [seconds]                          # inside Pyodide

``run(seconds)`` returns a dict of figures; every loop is bounded by time AND a count.
Rates are computed from the process CPU time (``time.process_time``), i.e. per core, so a
busy machine slows the run down but does not distort the figures much; the wall-clock
figure of the sender-key loop is reported alongside for comparison.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

try:
    import parley.crypto  # noqa: F401
except ImportError:  # running from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "shared"))

from parley.crypto import (
    attachments,
    backend,
    bundle,
    devicelist,
    ratchet,
    sender_keys,
    x3dh,
)
from parley.crypto.keys import Ed25519KeyPair, SignedPreKey, X25519KeyPair

MSG = bytes(range(256))
MAX_ITERS = 1_000_000


_clock = time.process_time


def _rate_both(
    fn: Callable[[], None], seconds: float, max_iters: int = MAX_ITERS
) -> tuple[float, float]:
    """(calls/s of CPU time, calls/s of wall time) of ``fn``, for about ``seconds`` of CPU
    time, bounded by ``max_iters`` calls and by 10x ``seconds`` of wall time."""
    fn()  # warm-up
    n = 0
    c0, w0 = _clock(), time.perf_counter()
    while n < max_iters:
        for _ in range(16):
            fn()
        n += 16
        if _clock() - c0 >= seconds or time.perf_counter() - w0 >= 10 * seconds:
            break
    cpu, wall = _clock() - c0, time.perf_counter() - w0
    return n / max(cpu, 1e-9), n / wall


def _rate(fn: Callable[[], None], seconds: float, max_iters: int = MAX_ITERS) -> float:
    return _rate_both(fn, seconds, max_iters)[0]


def bench_double_ratchet(seconds: float) -> float:
    ik_a, ik_b = Ed25519KeyPair.generate(), Ed25519KeyPair.generate()
    spk = X25519KeyPair.generate()
    a = x3dh.initiate(ik_a, ik_b.pub, spk.pub, None)
    b = x3dh.respond(ik_b, spk.priv, None, ik_a.pub, a.ek_pub)
    alice = ratchet.init_alice(a.sk, a.ad, spk.pub)
    bob = ratchet.init_bob(b.sk, b.ad, spk)
    now = 1_700_000_000_000

    def one() -> None:
        ratchet.decrypt(bob, ratchet.encrypt(alice, MSG), now=now)

    return _rate(one, seconds)


def bench_sender_keys(seconds: float) -> tuple[float, float, float, float]:
    """-> (encrypt+decrypt pairs/s, encrypt/s, decrypt/s, pairs/s of wall time)."""
    out = sender_keys.OutboundSenderKey.create(b"G" * 16, direct=False, now=0)
    rec = sender_keys.SenderKeyRecord()
    rec.add_skdm(out.skdm())

    def one() -> None:
        out.msg_count = 0  # the benchmark measures the cipher, not the rotation policy
        sender_keys.decrypt(rec, sender_keys.encrypt(out, MSG, now=0))

    pair, pair_wall = _rate_both(one, seconds)
    out2 = sender_keys.OutboundSenderKey.create(b"G" * 16, direct=False, now=0)
    rec2 = sender_keys.SenderKeyRecord()
    rec2.add_skdm(out2.skdm())
    n = max(64, min(20_000, int(pair * seconds)))
    t0 = _clock()
    msgs = []
    for i in range(n):
        if i % 512 == 0:
            out2.msg_count = 0
        msgs.append(sender_keys.encrypt(out2, MSG, now=0))
    t1 = _clock()
    for m in msgs:
        sender_keys.decrypt(rec2, m)
    t2 = _clock()
    return pair, n / max(t1 - t0, 1e-9), n / max(t2 - t1, 1e-9), pair_wall


def bench_verify(seconds: float) -> tuple[float, float]:
    """-> (bundle verify µs, device list verify µs)."""
    aik, ik = Ed25519KeyPair.generate(), Ed25519KeyPair.generate()
    devs = tuple(
        devicelist.Device(i, ik.pub if i == 1 else Ed25519KeyPair.generate().pub)
        for i in range(1, 6)
    )
    dl = devicelist.DeviceList("user", 3, 0, devs)
    data, sig = devicelist.sign(dl, aik)
    spk = SignedPreKey.generate(ik, 1)
    raw = bundle.make_bundle(
        user_id="user", device_id=1, aik_pub=aik.pub, devlist_data=data, devlist_sig=sig,
        ik_pub=ik.pub, spk_id=1, spk_pub=spk.pub, spk_sig=spk.sig,
        opk=(1, X25519KeyPair.generate().pub),
    )  # fmt: skip
    _, stored = devicelist.accept(None, data, sig, aik.pub, "user")

    def vb() -> None:
        bundle.verify_bundle(
            raw, user_id="user", device_id=1, pinned_aik=aik.pub, stored_devlist=stored
        )

    def vd() -> None:
        devicelist.accept(stored, data, sig, aik.pub, "user")

    return 1e6 / _rate(vb, seconds), 1e6 / _rate(vd, seconds)


def bench_attachments(seconds: float, size: int = 8 * 1024 * 1024) -> tuple[float, float]:
    """-> (encrypt MB/s, decrypt MB/s) for ``size``-byte files (MB = 10^6 bytes)."""
    data = bytes(size)
    enc_t, dec_t, n = 0.0, 0.0, 0
    while n < 50:
        t0 = _clock()
        e = attachments.encrypt(data)
        t1 = _clock()
        pt = attachments.decrypt(
            e.blob, key=e.key, digest=e.digest, size=e.size, blob_size=len(e.blob)
        )
        t2 = _clock()
        assert len(pt) == size
        enc_t += t1 - t0
        dec_t += t2 - t1
        n += 1
        if enc_t + dec_t >= seconds:
            break
    return n * size / max(enc_t, 1e-9) / 1e6, n * size / max(dec_t, 1e-9) / 1e6


def run(seconds: float = 1.0) -> dict[str, object]:
    dr = bench_double_ratchet(seconds)
    sk_pair, sk_enc, sk_dec, sk_wall = bench_sender_keys(seconds)
    bundle_us, dl_us = bench_verify(seconds)
    att_enc, att_dec = bench_attachments(seconds)
    return {
        "python": f"{platform.python_implementation()} {platform.python_version()} ({sys.platform})",
        "backend": backend.NAME,
        "seconds_per_figure": seconds,
        "clock": "process CPU time (per core)",
        "dr_256B_encrypt_decrypt_msgs_per_s": round(dr),
        "sk_256B_encrypt_decrypt_msgs_per_s": round(sk_pair),
        "sk_256B_encrypt_decrypt_msgs_per_s_wall_clock": round(sk_wall),
        "sk_256B_encrypt_only_msgs_per_s": round(sk_enc),
        "sk_256B_decrypt_only_msgs_per_s": round(sk_dec),
        "bundle_verify_us": round(bundle_us, 1),
        "devicelist_verify_us": round(dl_us, 1),
        "attachment_8MiB_encrypt_MB_per_s": round(att_enc, 1),
        "attachment_8MiB_decrypt_MB_per_s": round(att_dec, 1),
    }


if __name__ == "__main__":
    secs = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    figures = run(secs)
    print("command:", " ".join([Path(sys.executable).name, *sys.argv]))
    print(json.dumps(figures, indent=2))
