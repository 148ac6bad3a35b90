"""A real coturn TURN server (Debian ``coturn``) on loopback, for call tests and benchmarks.

``allow-loopback-peers`` is set because every relay address here is 127.0.0.1: a test-only
setting, never for production (docs/calls.md shows a production configuration). The process is
stopped by its PID.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.support.server import free_port

REALM = "parley.test"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _free_both() -> int:
    """A port free for both TCP and UDP (TURN listens on both)."""
    for _ in range(50):
        p = free_port()
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return p
    raise RuntimeError("no free port")


def _relay_range(size: int) -> tuple[int, int]:
    """A block of ``size`` UDP ports that are free now, away from the ephemeral range's start."""
    for _ in range(200):
        base = 20_000 + int.from_bytes(os.urandom(2), "big") % 20_000
        socks = []
        try:
            for p in range(base, base + size):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", p))
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        return base, base + size - 1
    raise RuntimeError("no free relay port range")


class Coturn:
    def __init__(self, workdir: Path, secret: str = "turn-test-secret", relay_ports: int = 300):
        self.workdir = workdir
        self.secret = secret
        self.port = _free_both()
        self.min_port, self.max_port = _relay_range(relay_ports)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "turnserver.log"

    @property
    def uri(self) -> str:
        return f"turn:127.0.0.1:{self.port}?transport=udp"

    def start(self, timeout: float = 20.0) -> None:
        binary = shutil.which("turnserver") or "/usr/bin/turnserver"
        conf = self.workdir / "turnserver.conf"
        conf.write_text(
            "\n".join(
                [
                    "listening-ip=127.0.0.1",
                    "relay-ip=127.0.0.1",
                    f"listening-port={self.port}",
                    f"min-port={self.min_port}",
                    f"max-port={self.max_port}",
                    f"realm={REALM}",
                    "use-auth-secret",
                    f"static-auth-secret={self.secret}",
                    "no-tls",
                    "no-dtls",
                    "no-cli",
                    "fingerprint",
                    "allow-loopback-peers",
                    "no-stdout-log",
                    f"log-file={self.log_path}",
                    "simple-log",
                    f"pidfile={self.workdir / 'turnserver.pid'}",
                    f"userdb={self.workdir / 'turndb.sqlite'}",
                ]
            )
            + "\n"
        )
        self.proc = subprocess.Popen(
            [binary, "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.workdir,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"turnserver exited: {self._log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"turnserver did not listen: {self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text()[-2000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None
