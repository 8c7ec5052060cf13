"""Rendered pods run as local processes, probed as the kubelet would probe them.

Each service pod runs its container's command and args (or the image's
entry point when the manifest gives none) with the environment
`manifests.pod_environment` builds, in its own root folder. The in-cluster
Redis is stood in for by a real redis-server (tests/support/redis_servers.py)
on the local port of its pod's declared port, with the password its
container reads from its mounted Secret.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from memory_service.security.identity import hash_token
from tests.support.manifests import (
    LOCAL_HOST,
    Cluster,
    ManifestError,
    Obj,
    Pod,
    expand,
    find,
    pods_of,
    write_volumes,
)
from tests.support.redis_servers import RedisServer

SERVING = health_pb2.HealthCheckResponse.SERVING
# The image's own environment (deploy/docker sets the same): console scripts
# on PATH, no bytecode written to a read-only root.
IMAGE_ENVIRONMENT = {
    "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
    "LANG": "C.UTF-8",
}
MAX_REPLICAS = 2
PROBES = ("startupProbe", "livenessProbe", "readinessProbe")


@dataclass
class Running:
    """A pod's process and its log."""

    pod: Pod
    process: subprocess.Popen[bytes]
    log: Path

    def failure(self, what: str) -> ManifestError:
        tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
        return ManifestError(f"{self.pod.name}: {what}\n--- log tail ---\n{tail}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(pod: Pod, env: Mapping[str, str], entrypoint: Sequence[str]) -> Running:
    """Starts the container's command (the image's entry point if it has none) and args."""
    command = pod.container.get("command") or list(entrypoint)
    argv = [expand(part, env) for part in [*command, *pod.container.get("args", [])]]
    log = pod.root / "container.log"
    pod.root.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as sink:
        process = subprocess.Popen(
            argv, env=dict(env), cwd=pod.root, stdout=sink, stderr=subprocess.STDOUT
        )
    return Running(pod, process, log)


def run_probes(running: Running, cap: float = 20.0) -> list[str]:
    """Runs the pod's gRPC probes in the kubelet's order (startup, then liveness
    and readiness), each until SERVING within its failureThreshold periods
    (at most `cap` seconds). Returns what was probed."""
    probed = []
    for kind in PROBES:
        spec = running.pod.container.get(kind, {})
        if (probe := spec.get("grpc")) is None:
            continue
        port, service = int(probe["port"]), probe.get("service", "")
        budget = spec.get("periodSeconds", 10) * spec.get("failureThreshold", 3)
        within = min(cap, float(budget))
        status = _until_serving(running, running.pod.local_port(port), service, within)
        if status != "SERVING":
            raise running.failure(
                f"{kind}: gRPC health Check of service {service!r} on port {port} answered "
                f"{status}, not SERVING, within {within} s"
            )
        probed.append(f"{kind}:{port}:{service or '(liveness)'}")
    return probed


def _until_serving(running: Running, local_port: int, service: str, within: float) -> str:
    deadline = time.monotonic() + within
    last = "no answer"
    # The kubelet's probes are plaintext gRPC.
    with grpc.insecure_channel(f"{LOCAL_HOST}:{local_port}") as channel:
        stub: Any = health_pb2_grpc.HealthStub(channel)  # Its stubs list no methods.
        while time.monotonic() < deadline:
            if running.process.poll() is not None:
                raise running.failure(f"exited with code {running.process.returncode}")
            try:
                request = health_pb2.HealthCheckRequest(service=service)
                status = stub.Check(request, timeout=1).status
                last = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
            except grpc.RpcError as error:
                last = error.code().name
            if last == "SERVING":
                return last
            time.sleep(0.05)  # A probe period, not synchronisation: the next Check decides.
    return last


def redis_stand_in(objects: list[Obj], pod: Pod, directory: Path) -> RedisServer:
    """A redis-server standing in for the Redis pod: the port its config file
    names, the password its command reads from its mounted Secret."""
    write_volumes(objects, pod)
    script = " ".join([*pod.container.get("command", []), *pod.container.get("args", [])])
    password = re.search(r"--requirepass\s+\"?\$\(cat\s+([^)\s]+)\)", script)
    config = re.search(r"redis-server\s+(/\S+)", script)
    if password is None or config is None:
        raise ManifestError(f"{pod.name}: cannot tell the config file and password of {script!r}")
    ports = re.findall(r"^port\s+(\d+)", pod.local_path(config[1]).read_text(), re.MULTILINE)
    secret = pod.local_path(password[1]).read_text().rstrip("\n")  # As $(cat) strips.
    server = RedisServer(directory, port=pod.local_port(int(ports[-1] if ports else 6379)))
    server.password = secret
    return server.start()


def add_caller(tokens_file: Path, token: str, role: str, namespace: str) -> None:
    """Adds a caller to a mounted tokens file, as if its Secret held the entry:
    the example Secret holds hashes only, and a smoke test needs a token."""
    if not tokens_file.exists():
        return  # Mounted elsewhere or not at all: the service says so at start.
    entries = yaml.safe_load(tokens_file.read_text()) or []
    entry = {"user_id": "smoke-test", "token_sha256": hash_token(token), "role": role}
    entries.append({**entry, "namespaces": [namespace]})
    tokens_file.write_text(yaml.safe_dump(entries))


@dataclass
class Workload:
    """A workload to run: its kind and name, its container, the image's entry point."""

    kind: str
    name: str
    container: str
    entrypoint: tuple[str, ...]


@contextlib.contextmanager
def stopping(processes: list[Running], servers: list[RedisServer]) -> Iterator[None]:
    """Stops every process and server on exit."""
    try:
        yield
    finally:
        for running in reversed(processes):
            running.stop()
        for server in servers:
            server.stop()


def cluster_of(objects: list[Obj], workloads: Sequence[Workload], root: Path) -> Cluster:
    """The pods of these workloads: as many replicas as declared, at most
    `MAX_REPLICAS` (enough to show replicas share their store and the
    executor spreads over them)."""
    pods = []
    for w in workloads:
        workload = find(objects, w.kind, w.name)
        replicas = min(int(workload["spec"].get("replicas", 1)), MAX_REPLICAS)
        pods += pods_of(workload, w.container, root / "pods", replicas)
    return Cluster(objects, pods)


def base_environment(root: Path) -> dict[str, str]:
    """The image's environment, with a home inside the test's folder."""
    return {**IMAGE_ENVIRONMENT, "HOME": str(root / "home"), "TZ": os.environ.get("TZ", "UTC")}
