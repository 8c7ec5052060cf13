"""Manifest smoke test (issue 13): each overlay, rendered, runs as local processes.

`kubectl kustomize deploy/k8s/overlays/<overlay>` is read; the memory
Deployment's and executor StatefulSet's pods are started with the command,
environment (envFrom, env, valueFrom), ports and mounted files their
manifests give them (tests/support/manifests.py), the in-cluster Redis by a
real redis-server with the password of its Secret. Then the kubelet's gRPC
probes run with their service names, one RunWorkflow and one SearchRuns
go through the executor's Service port, and each pod's `metrics`
containerPort is scraped as Prometheus would (issue 16).

What the test substitutes, and why:
- Files: each pod's mounts live under a root folder of its own; every
  absolute path in its environment is re-rooted there.
- Ports: each container port stands for a free local port; Service
  addresses resolve through selector and targetPort to the ports of the
  pods they select (`dns:///` to an `ipv4:` list of them). Each workload
  runs its declared replicas, at most two (prod's memory: two of three,
  on the one Redis).
- Image: no container engine here; the pods' command runs the console
  scripts of this venv with the image's environment (manifest_pods.py).
- Tokens: the executor's example tokens file holds hashes only, so the test
  adds a caller of its own (token and hash) to the mounted file.
- TLS: the example certificates are real (a throwaway CA, make-examples.sh)
  and are used as mounted; the client trusts the executor Secret's ca.crt
  and checks the Service's name.
- Runner: the call asks for the simulated runner (prod's default, `auto`,
  resolves to Anthropic with the example key; no model API from here).
- Hosts stay as rendered (0.0.0.0), so plaintext and TLS rules apply as in a pod.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from pydantic_settings import BaseSettings

from attune.common.v1 import common_pb2
from attune.executor.v1 import executor_pb2, executor_pb2_grpc
from executor_service.cli.scrape import Exposition, ScrapeError, scrape
from executor_service.settings import ExecutorSettings
from memory_service.servicekit.tls import ClientTls
from memory_service.settings import MemorySettings
from tests.support.helpers import run_request
from tests.support.manifest_pods import (
    Running,
    Workload,
    add_caller,
    base_environment,
    cluster_of,
    redis_stand_in,
    run_probes,
    start,
    stopping,
)
from tests.support.manifests import (
    LOCAL_HOST,
    Cluster,
    ManifestError,
    Obj,
    find,
    pod_environment,
    pods_of,
    render,
    setting_names,
    write_volumes,
)
from tests.support.redis_servers import RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

OVERLAYS = ("dev", "prod")
MEMORY = Workload("Deployment", "attune-memory", "memory", ("attune-memory",))
EXECUTOR = Workload("StatefulSet", "attune-executor", "executor", ("attune-executor",))
EXECUTOR_SERVICE, EXECUTOR_SERVICE_PORT = "attune-executor", 50051
SETTINGS: dict[str, type[BaseSettings]] = {"MEMORY_": MemorySettings, "EXECUTOR_": ExecutorSettings}


def unknown_settings(objects: list[Obj]) -> list[str]:
    """Variables with a service's prefix that name none of its settings (the
    settings ignore unknown variables, so a typo would pass silently)."""
    unknown = []
    for name in sorted(setting_names(objects, SETTINGS)):
        prefix = next(p for p in SETTINGS if name.startswith(p))
        if name.removeprefix(prefix).lower() not in SETTINGS[prefix].model_fields:
            unknown.append(f"{name} is not a {SETTINGS[prefix].__name__} setting")
    return unknown


@dataclass
class Deployed:
    """The running pods and how a client in the cluster reaches the executor."""

    cluster: Cluster
    running: list[Running]
    executor_env: dict[str, str]
    token: str | None
    probed: list[str] = field(default_factory=list)

    def executor_channel(self) -> grpc.Channel:
        """A channel to the executor's Service port, as a client in the namespace dials it."""
        pod = next(r.pod for r in self.running if r.pod.name.startswith(EXECUTOR.name))
        ports = self.cluster.endpoints(EXECUTOR_SERVICE, pod.namespace, EXECUTOR_SERVICE_PORT)
        address = f"{LOCAL_HOST}:{ports[0]}"
        cert = self.executor_env.get("EXECUTOR_TLS_CERT_FILE")
        if cert is None:
            return grpc.insecure_channel(address)
        # The CA beside the certificate in its Secret, as cert-manager mounts it.
        tls = ClientTls((Path(cert).parent / "ca.crt").read_bytes(), server_name=EXECUTOR_SERVICE)
        return grpc.secure_channel(address, tls.credentials(), tls.options())

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()


@contextlib.contextmanager
def deployed(objects: list[Obj], root: Path) -> Iterator[Deployed]:
    """Starts the pods of the rendered objects and runs their probes."""
    cluster = cluster_of(objects, (MEMORY, EXECUTOR), root)
    servers: list[RedisServer] = []
    running: list[Running] = []
    with stopping(running, servers):
        redis = [
            o
            for o in objects
            if o["kind"] == "StatefulSet" and o["metadata"]["name"] == "attune-redis"
        ]
        for statefulset in redis:
            (pod,) = pods_of(statefulset, "redis", root / "pods")
            cluster.pods.append(pod)
            servers.append(redis_stand_in(objects, pod, root / "redis"))
        token: str | None = None
        executor_env: dict[str, str] = {}
        probed: list[str] = []
        # Memory first: the executor is ready only once memory answers.
        for pod in sorted(cluster.pods, key=lambda p: p.name.startswith(EXECUTOR.name)):
            if pod.container["name"] == "redis":
                continue
            workload = MEMORY if pod.container["name"] == MEMORY.container else EXECUTOR
            write_volumes(objects, pod)
            env = pod_environment(cluster, pod, base_environment(root))
            if workload is EXECUTOR:
                executor_env = env
                if "EXECUTOR_TOKENS_FILE" in env:
                    token = secrets.token_urlsafe(24)
                    namespace = env.get("EXECUTOR_MEMORY_NAMESPACE", "default")
                    add_caller(Path(env["EXECUTOR_TOKENS_FILE"]), token, "runner", namespace)
            running.append(start(pod, env, workload.entrypoint))
            probed += run_probes(running[-1])
        yield Deployed(cluster, running, executor_env, token, probed)


def smoke(objects: list[Obj], root: Path) -> dict[str, Any]:
    """The whole smoke test of one rendering; ManifestError says what broke."""
    if unknown := unknown_settings(objects):
        raise ManifestError("unknown settings: " + "; ".join(unknown))
    with deployed(objects, root) as deployment, deployment.executor_channel() as channel:
        stub = executor_pb2_grpc.ExecutorServiceStub(channel)
        request = run_request(package_name="smoke")
        request.runner = common_pb2.RUNNER_SIMULATED  # No model API from here.
        request.seed = 7
        try:
            events = list(stub.RunWorkflow(request, timeout=30, metadata=deployment.metadata()))
            found = stub.SearchRuns(
                executor_pb2.SearchRunsRequest(query="smoke"),
                timeout=10,
                metadata=deployment.metadata(),
            )
        except grpc.RpcError as error:
            raise ManifestError(
                f"through Service {EXECUTOR_SERVICE}:{EXECUTOR_SERVICE_PORT}: "
                f"{error.code().name} {error.details()}"
            ) from None
        metrics = {running.pod.name: scraped_metrics(running) for running in deployment.running}
        return {"events": events, "found": found, "probed": deployment.probed, "metrics": metrics}


def scraped_metrics(running: Running) -> Exposition:
    """The pod's metrics, read where Prometheus reads them: its `metrics` containerPort."""
    port = running.pod.named_port("metrics")
    if port is None:
        raise running.failure("no containerPort named metrics")
    url = f"http://{LOCAL_HOST}:{running.pod.local_port(port)}/metrics"
    try:
        return scrape(url, timeout=5)
    except ScrapeError as error:
        raise running.failure(f"metrics containerPort {port}: {error}") from None


@functools.cache
def rendering(overlay: str) -> list[Obj]:
    """An overlay rendered once per session (tests mutate deep copies)."""
    return render(overlay)


@pytest.fixture(params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[Obj]]:
    return request.param, copy.deepcopy(rendering(request.param))


def test_every_prefixed_variable_is_a_real_setting(rendered: tuple[str, list[Obj]]) -> None:
    overlay, objects = rendered
    assert setting_names(objects, SETTINGS), f"{overlay}: no settings found at all"
    assert unknown_settings(objects) == []


def test_overlay_runs_as_rendered(rendered: tuple[str, list[Obj]], tmp_path: Path) -> None:
    overlay, objects = rendered
    began = time.monotonic()
    outcome = smoke(objects, tmp_path)
    events = outcome["events"]
    assert events, f"{overlay}: no run events"
    assert events[-1].HasField("run_finished"), f"{overlay}: the run did not finish"
    run = events[-1].run_finished.run
    assert run.status in {executor_pb2.RUN_STATUS_SUCCEEDED, executor_pb2.RUN_STATUS_FAILED}
    assert any(e.HasField("pattern_stored") for e in events), f"{overlay}: memory not reached"
    assert any(hit.run_id == run.run_id for hit in outcome["found"].hits), outcome["found"]
    # Startup, liveness and readiness of every pod.
    pods = 3 if overlay == "prod" else 2  # Two memory replicas of prod's three, one in dev.
    assert len(outcome["probed"]) == 3 * pods, outcome["probed"]
    # Each pod's metrics port answers; the executor's counted this run.
    assert len(outcome["metrics"]) == pods
    for name, exposition in outcome["metrics"].items():
        assert list(exposition.samples("grpc_server_handled_total")), name
    (executor,) = [e for n, e in outcome["metrics"].items() if n.startswith(EXECUTOR.name)]
    assert sum(s.value for s in executor.samples("attune_executor_runs_total")) == 1
    assert time.monotonic() - began < 60


# One deliberate breakage per kind: (overlay, mutation, what the failure must say).
Mutation = Callable[[list[Obj]], None]


def _typo_in_setting(objects: list[Obj]) -> None:
    data = find(objects, "ConfigMap", _config_name(objects, "attune-memory-config"))["data"]
    data["MEMORY_GRACE_PERIOD_SECOND"] = data.pop("MEMORY_GRACE_PERIOD_SECONDS")


def _service_targets_wrong_port(objects: list[Obj]) -> None:
    find(objects, "Service", EXECUTOR_SERVICE)["spec"]["ports"][0]["targetPort"] = 50052


def _headless_selector_typo(objects: list[Obj]) -> None:
    selector = find(objects, "Service", "attune-memory-headless")["spec"]["selector"]
    selector["app.kubernetes.io/name"] = "attune-memroy"


def _probe_service_typo(objects: list[Obj]) -> None:
    container = _container(find(objects, "Deployment", MEMORY.name), MEMORY.container)
    container["readinessProbe"]["grpc"]["service"] = "attune.memory.v1.MemorySrvice"


def _tokens_mounted_elsewhere(objects: list[Obj]) -> None:
    container = _container(find(objects, "Deployment", MEMORY.name), MEMORY.container)
    mount = next(m for m in container["volumeMounts"] if m["name"] == "tokens")
    mount["mountPath"] = "/etc/attune/token"


def _metrics_port_moved(objects: list[Obj]) -> None:
    container = _container(find(objects, "Deployment", MEMORY.name), MEMORY.container)
    next(p for p in container["ports"] if p["name"] == "metrics")["containerPort"] = 50099


def _container(workload: Obj, name: str) -> Obj:
    return next(c for c in workload["spec"]["template"]["spec"]["containers"] if c["name"] == name)


def _config_name(objects: list[Obj], prefix: str) -> str:
    # The generator appends a content hash to the name.
    names = [o["metadata"]["name"] for o in objects if o["kind"] == "ConfigMap"]
    return str(next(n for n in names if n.startswith(prefix)))


BREAKAGES = {
    "setting-name-typo": ("dev", _typo_in_setting, r"MEMORY_GRACE_PERIOD_SECOND is not a"),
    "service-target-port": (
        "dev",
        _service_targets_wrong_port,
        rf"through Service {EXECUTOR_SERVICE}:{EXECUTOR_SERVICE_PORT}: UNAVAILABLE",
    ),
    "service-selector": (
        "dev",
        _headless_selector_typo,
        r"Service attune-memory-headless selects no pod",
    ),
    "probe-service-name": (
        "dev",
        _probe_service_typo,
        r"readinessProbe: .*'attune.memory.v1.MemorySrvice'.* NOT_FOUND, not SERVING",
    ),
    "metrics-port-not-served": (
        "dev",
        _metrics_port_moved,
        r"metrics containerPort 50099: cannot reach",
    ),
    "secret-mount-path": (
        "prod",
        _tokens_mounted_elsewhere,
        r"exited .*tokens file \S*/etc/attune/tokens/tokens.yaml: cannot be read",
    ),
}


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_each_kind_of_breakage_fails_the_smoke_test(breakage: str, tmp_path: Path) -> None:
    overlay, mutate, reason = BREAKAGES[breakage]
    objects = copy.deepcopy(rendering(overlay))
    mutate(objects)
    with pytest.raises(ManifestError, match=f"(?s){reason}"):
        smoke(objects, tmp_path)
