"""Real Redis servers for the tests, on loopback ports of their own (never the machine's 6379).

``RedisServer``: one persistent ``redis-server`` (AOF, ``appendfsync always``) in a temp dir.
``RedisClusterServers``: a cluster of three primaries and three replicas made with
``redis-cli --cluster create``; ready once the cluster state is ok and every replica's link to
its primary is up. Every process is started here and stopped by its PID.

The pytest fixtures ``redis_server`` and ``redis_cluster`` (session scope) skip the tests that
need them when ``redis-server`` is not installed (scripts/test installs it).
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REDIS_SERVER = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(n: int, bus: bool = False) -> list[int]:
    """``n`` consecutive free ports (and their cluster bus ports, +10000, when ``bus``).

    All of them below 32768, Linux's first ephemeral port: an outgoing connection of any
    process may otherwise take a bus port between this check and the server's start."""
    for _ in range(200):
        base = random.randint(12000, 22000)
        ports = list(range(base, base + n))
        if all(_port_free(p) and (not bus or _port_free(p + 10000)) for p in ports):
            return ports
    raise RuntimeError("no free ports")


def cli(port: int, *args: str, timeout: float = 10.0) -> str:
    assert REDIS_CLI is not None
    out = subprocess.run(
        [REDIS_CLI, "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return out.stdout.strip()


def wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


class RedisServer:
    """One redis-server process; restartable on the same directory (its AOF survives)."""

    def __init__(self, directory: Path, port: int | None = None, *extra: str) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_ports(1)[0]
        self.extra = list(extra)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20.0) -> None:
        assert REDIS_SERVER is not None
        log = (self.dir / "redis.log").open("ab")
        self.proc = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--daemonize",
                "no",
                *self.extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        proc = self.proc

        def up() -> bool:
            if proc.poll() is not None:  # it exited (a port taken after all): say why, now
                tail = (self.dir / "redis.log").read_text(errors="replace")[-600:]
                raise RuntimeError(f"redis-server on {self.port} exited: {tail}")
            return cli(self.port, "ping") == "PONG"

        wait_for(up, timeout, f"redis on {self.port}")

    def kill(self) -> None:
        """SIGKILL (a crash)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


class RedisClusterServers:
    """Three primaries and three replicas."""

    def __init__(self, directory: Path) -> None:
        self.ports = free_ports(6, bus=True)
        self.nodes = [
            RedisServer(
                directory / str(p),
                p,
                "--cluster-enabled",
                "yes",
                "--cluster-node-timeout",
                "2000",
                "--cluster-config-file",
                f"nodes-{p}.conf",
            )
            for p in self.ports
        ]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports[:3])

    def start(self, timeout: float = 60.0) -> None:
        for n in self.nodes:
            n.start()
        assert REDIS_CLI is not None
        subprocess.run(
            [
                REDIS_CLI,
                "--cluster",
                "create",
                *(f"127.0.0.1:{p}" for p in self.ports),
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            capture_output=True,
            timeout=timeout,
            check=True,
        )

        def ok() -> bool:
            return all("cluster_state:ok" in cli(p, "cluster", "info") for p in self.ports)

        wait_for(ok, timeout, "cluster state ok")

        def replicas_up() -> bool:
            roles = [cli(p, "info", "replication") for p in self.ports]
            replicas = [r for r in roles if "role:slave" in r]
            return len(replicas) == 3 and all("master_link_status:up" in r for r in replicas)

        wait_for(replicas_up, timeout, "replicas' links up")

    def stop(self) -> None:
        for n in self.nodes:
            n.stop()


def _need_redis() -> None:
    if REDIS_SERVER is None or REDIS_CLI is None:
        pytest.skip("redis-server is not installed (scripts/test installs it)")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    _need_redis()
    server = RedisServer(tmp_path_factory.mktemp("redis-single"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    _need_redis()
    cluster = RedisClusterServers(tmp_path_factory.mktemp("redis-cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
