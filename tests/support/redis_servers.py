"""Real redis-server processes for tests: standalone servers and a 3-master cluster.

Every server binds 127.0.0.1 on a port picked free by the OS (redis has no
`--port 0`), keeps its files in a directory of the test's own, and is
stopped by whoever started it. Waiting for a server means polling it with a
deadline, never sleeping a fixed time.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
HOST = "127.0.0.1"


def free_port() -> int:
    """A port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def command(port: int, *args: str, timeout: float = 1.0) -> bytes:
    """One command over a raw RESP connection; the reply's raw bytes."""
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    with socket.create_connection((HOST, port), timeout=timeout) as connection:
        connection.sendall(b"".join(parts))
        reply = connection.recv(65536)
        # A bulk reply may arrive in pieces; read until its announced length is in.
        if reply.startswith(b"$"):
            header, _, body = reply.partition(b"\r\n")
            length = int(header[1:])
            while length >= 0 and len(body) < length + 2:
                chunk = connection.recv(65536)
                if not chunk:
                    break
                body += chunk
            return body[: max(length, 0)]
        return reply


def wait_until(condition: str, probe: Callable[[], bool], within: float = 10.0) -> None:
    """Polls probe() until it returns True; fails after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        with contextlib.suppress(OSError):
            if probe():
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{condition}: not within {within} s")
        time.sleep(0.01)


@dataclass
class RedisServer:
    """One redis-server process; stop() and start() keep its port and directory."""

    directory: Path
    port: int = 0
    cluster_port: int = 0
    cluster: bool = False
    persistent: bool = False
    password: str | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """The redis:// URL of database 0."""
        return f"redis://{HOST}:{self.port}/0"

    @property
    def node(self) -> str:
        """host:port, as a cluster seed."""
        return f"{HOST}:{self.port}"

    def _arguments(self) -> list[str]:
        arguments = [
            REDIS_SERVER,
            "--bind", HOST,
            "--port", str(self.port),
            "--dir", str(self.directory),
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        if self.password is not None:
            arguments += ["--requirepass", self.password]
        if self.persistent:
            # Data survives a restart, as on a production Redis.
            arguments += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            arguments += ["--appendonly", "no"]
        if self.cluster:
            arguments += [
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(self.directory / f"nodes-{self.port}.conf"),
                "--cluster-port", str(self.cluster_port),
                "--cluster-node-timeout", "2000",
            ]  # fmt: skip
        return arguments

    def start(self, within: float = 10.0) -> RedisServer:
        """Starts the server and returns once it answers PING.

        A first start picks free ports, and picks again if another process
        took one in the meantime; a restart reuses them.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        attempts = 1 if self.port else 5
        for _ in range(attempts):
            if not self.port or attempts > 1:
                self.port = free_port()
                self.cluster_port = free_port() if self.cluster else 0
            self.process = subprocess.Popen(
                self._arguments(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            try:
                wait_until(f"redis-server on port {self.port}", self._answers, within)
                return self
            except (RuntimeError, TimeoutError):
                self.stop()
                if attempts == 1:
                    raise
        raise RuntimeError(f"redis-server did not start; see {self.directory / 'redis.log'}")

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"redis-server exited with code {self.process.returncode}")
        # Up, whether or not it wants a password first.
        return command(self.port, "PING").startswith((b"+PONG", b"-NOAUTH"))

    def stop(self) -> None:
        """Stops the server (SIGTERM, then SIGKILL if it lingers) and waits for it."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self) -> RedisServer:
        """Stops and starts again on the same port and directory."""
        self.stop()
        return self.start()


@contextlib.contextmanager
def standalone(directory: Path, persistent: bool = False) -> Iterator[RedisServer]:
    """A standalone redis-server, stopped on exit."""
    server = RedisServer(directory, persistent=persistent)
    try:
        yield server.start()
    finally:
        server.stop()


@dataclass
class RedisCluster:
    """Three masters covering every slot, no replicas."""

    servers: list[RedisServer]

    @property
    def nodes(self) -> list[str]:
        """host:port of every node: the seeds for a cluster client."""
        return [server.node for server in self.servers]

    def stop(self) -> None:
        """Stops every node."""
        for server in self.servers:
            server.stop()


def _cluster_ok(port: int) -> bool:
    return b"cluster_state:ok" in command(port, "CLUSTER", "INFO")


@contextlib.contextmanager
def cluster(directory: Path, masters: int = 3) -> Iterator[RedisCluster]:
    """A Redis Cluster of `masters` nodes, every one reporting cluster_state:ok."""
    running = RedisCluster(
        [RedisServer(directory / f"node-{index}", cluster=True) for index in range(masters)]
    )
    try:
        for server in running.servers:
            server.start()
        subprocess.run(
            [REDIS_CLI, "--cluster", "create", *running.nodes, "--cluster-replicas", "0",
             "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=30,
        )  # fmt: skip
        for server in running.servers:
            wait_until(f"cluster_state:ok on {server.node}", partial(_cluster_ok, server.port))
        yield running
    finally:
        running.stop()
