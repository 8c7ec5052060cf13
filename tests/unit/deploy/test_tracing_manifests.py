"""components/tracing, rendered with `kubectl kustomize`: with it, both
services get the collector's OTLP endpoint and their network policies let
them reach the collector's pods on 4317 (and nothing else there); without
it, no OTEL_* setting and no such egress, so nothing is exported."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.support.manifests import (
    OVERLAYS,
    TARGETS,
    Obj,
    render,
    rendered_with,
    workload_setting,
)
from tests.support.network_policies import selects

TRACING = OVERLAYS.parent / "components" / "tracing"
SERVICES = ("attune-memory", "attune-executor")
COLLECTOR = {"app.kubernetes.io/name": "opentelemetry-collector"}
STRANGER = {"app.kubernetes.io/name": "something-else"}
OTLP_PORT = 4317


def tracing_env() -> dict[str, str]:
    lines = (TRACING / "tracing.env").read_text().splitlines()
    pairs = (line.split("=", 1) for line in lines if line and not line.startswith("#"))
    return dict(pairs)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tracing-variants")


def may_reach(
    objects: list[Obj], pod: Mapping[str, str], peer: Mapping[str, str], port: int
) -> bool:
    """Whether an egress rule lets a pod with these labels open `port` on a
    pod with the peer's labels (in any namespace)."""
    for policy in objects:
        spec = policy.get("spec", {})
        if policy["kind"] != "NetworkPolicy" or "Egress" not in spec.get("policyTypes", []):
            continue
        if not selects(spec.get("podSelector", {}), pod):
            continue
        for rule in spec.get("egress", []):
            ports = [entry.get("port") for entry in rule.get("ports", [])]
            if ports and port not in ports:
                continue
            for to in rule.get("to", []):
                if "podSelector" in to and selects(to["podSelector"], peer):
                    return True
    return False


def workloads(objects: list[Obj]) -> list[Obj]:
    found = [
        o
        for o in objects
        if o["kind"] in ("Deployment", "StatefulSet") and o["metadata"]["name"] in SERVICES
    ]
    assert len(found) == 2
    return found


def pod_labels(workload: Obj) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


@pytest.mark.parametrize("name", list(TARGETS))
def test_with_the_component_both_services_export_to_the_collector(name: str, scratch: Path) -> None:
    objects = rendered_with(TRACING, name, scratch)
    wanted = tracing_env()
    assert wanted["OTEL_EXPORTER_OTLP_ENDPOINT"].endswith(f":{OTLP_PORT}")
    for workload in workloads(objects):
        for variable, value in wanted.items():
            assert workload_setting(objects, workload, variable) == value
        labels = pod_labels(workload)
        assert may_reach(objects, labels, COLLECTOR, OTLP_PORT)
        assert not may_reach(objects, labels, STRANGER, OTLP_PORT)


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_without_it_nothing_is_exported(overlay: str) -> None:
    objects = render(overlay)
    for workload in workloads(objects):
        assert workload_setting(objects, workload, "OTEL_EXPORTER_OTLP_ENDPOINT") is None
        assert not may_reach(objects, pod_labels(workload), COLLECTOR, OTLP_PORT)
