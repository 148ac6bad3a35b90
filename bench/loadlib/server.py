"""The server under test: our own ``parley serve`` subprocess, or a ``--url`` we only talk to.

Only the process started here is ever signalled, by its PID. RSS and CPU come from
``/proc/<pid>`` so they count the server alone (all its threads), not the load generator.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

_TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_cpu_s(pid: int) -> float:
    """utime + stime of ``pid`` in seconds (every thread of the process)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def machine_cpu_s() -> float:
    """Busy CPU seconds of the whole machine so far (all cores; /proc/stat, not idle/iowait):
    the part not spent by the server or the load processes is other work on a shared box."""
    v = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(v) - v[3] - v[4]) / _TICK


def proc_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


class ServerUnderTest:
    """Start (or attach to) the server; ``pid`` is None for an external ``--url``."""

    def __init__(
        self, url: str | None, extra_args: list[str], tracemalloc_out: str | None = None
    ) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if url is not None:
            self.http_url = url.rstrip("/")
            return
        self._tmp = tempfile.TemporaryDirectory(prefix="parley-load-")
        self.port = free_port()
        self.http_url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(self._tmp.name) / "server.log"
        # A load test is one host opening thousands of sockets and accounts: lift the per-IP
        # abuse limits (registration, logins, unauthenticated connections) for it.
        self.env = {
            "PARLEY_REGISTER_IP_LIMIT": "10000000",
            "PARLEY_LOGIN_IP_LIMIT": "10000000",
            "PARLEY_LOOKUP_LIMIT": "10000000",
            "PARLEY_UNAUTH_CONNS_PER_IP": "0",
            **os.environ,
            "PYTHONUNBUFFERED": "1",
        }
        entry = ["-m", "parley_client.cli.main"]
        if tracemalloc_out is not None:
            entry = [str(Path(__file__).with_name("memprobe.py"))]
            self.env["PARLEY_MEMPROBE_OUT"] = tracemalloc_out
        data = str(Path(self._tmp.name) / "data")
        self.cmd = [sys.executable, *entry, "serve", "--host", "127.0.0.1", "--port",
                    str(self.port), "--data-dir", data, *extra_args]  # fmt: skip

    @property
    def ws_url(self) -> str:
        return "ws" + self.http_url.removeprefix("http") + "/ws"

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def start(self, timeout: float = 30.0) -> None:
        if self._tmp is None:
            return
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}: {self.log_tail()}")
            try:
                if httpx.get(f"{self.http_url}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not become healthy: {self.log_tail()}")

    def log_tail(self, n: int = 4000) -> str:
        if self._tmp is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-n:]

    def cpu_s(self) -> float | None:
        return None if self.pid is None else proc_cpu_s(self.pid)

    def rss_kib(self) -> int | None:
        return None if self.pid is None else proc_rss_kib(self.pid)

    def signal_probe(self) -> None:
        """SIGUSR1 to our server (the memprobe snapshot); a no-op for an external one."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGUSR1)

    def alive(self) -> bool:
        return self.proc is None or self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM our own server by PID (SIGKILL if it will not go), then drop the temp dir."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
