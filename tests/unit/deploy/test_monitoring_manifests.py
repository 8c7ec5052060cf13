"""The metrics ports and components/monitoring, rendered with `kubectl kustomize`.

Prometheus finds each pod through its ServiceMonitor, the metrics Service
and the pod's `metrics` port, and the service listens where that port says
(its *_METRICS_PORT setting); the NetworkPolicies let Prometheus, and only
the scrapers they name, reach that port. Without the component, the pods'
prometheus.io annotations say the same. The rules and dashboard shipped
are the checked-in files.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.support.manifests import (
    TARGETS,
    Obj,
    find,
    render,
    rendered_with,
    workload_setting,
)
from tests.support.monitoring import DASHBOARD_FILE, MONITORING, RULES_FILE
from tests.support.network_policies import Peer, admits, selects

WITH_MONITORING = TARGETS
PROMETHEUS = Peer({"app.kubernetes.io/name": "prometheus"}, "monitoring")
SCRAPER = Peer({"attune.dev/metrics-scraper": "true"}, "observability")
STRANGER = Peer({"app.kubernetes.io/name": "something-else"}, "monitoring")
WORKLOADS = ("Deployment", "StatefulSet")
PREFIXES = {"attune-memory": "MEMORY_", "attune-executor": "EXECUTOR_"}


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("monitoring-variants")


def _in(objects: list[Obj], kind: str, namespace: str) -> list[Obj]:
    return [o for o in objects if o["kind"] == kind and o["metadata"].get("namespace") == namespace]


def _metrics_port(workload: Obj) -> tuple[dict[str, str], int]:
    """The pod labels and the `metrics` containerPort of a workload."""
    template = workload["spec"]["template"]
    ports = [
        int(port["containerPort"])
        for container in template["spec"]["containers"]
        for port in container.get("ports", [])
        if port.get("name") == "metrics"
    ]
    assert len(ports) == 1, f"{workload['metadata']['name']}: metrics ports {ports}"
    return template["metadata"]["labels"], ports[0]


def _check_workload_serves_its_port(objects: list[Obj], workload: Obj, scrape: str) -> int:
    labels, port = _metrics_port(workload)
    prefix = PREFIXES[workload["metadata"]["name"]]
    assert workload_setting(objects, workload, f"{prefix}METRICS_PORT") == str(port)
    assert workload_setting(objects, workload, f"{prefix}METRICS_HOST") == "0.0.0.0"
    annotations = workload["spec"]["template"]["metadata"].get("annotations", {})
    assert annotations.get("prometheus.io/port") == str(port)
    assert annotations.get("prometheus.io/scrape") == scrape
    namespace = workload["metadata"]["namespace"]
    assert admits(objects, labels, namespace, SCRAPER, port)
    assert not admits(objects, labels, namespace, STRANGER, port)
    return port


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_without_the_component_pods_announce_their_metrics_port(overlay: str) -> None:
    objects = render(overlay)
    workloads = [o for o in objects if o["kind"] in WORKLOADS and o["metadata"]["name"] in PREFIXES]
    assert len(workloads) == 2
    for workload in workloads:
        port = _check_workload_serves_its_port(objects, workload, scrape="true")
        labels, _ = _metrics_port(workload)
        # The Operator's Prometheus gets in only with the component.
        assert not admits(objects, labels, workload["metadata"]["namespace"], PROMETHEUS, port)
    assert not [o for o in objects if o["apiVersion"].startswith("monitoring.coreos.com/")]


@pytest.mark.parametrize("name", list(WITH_MONITORING))
def test_each_service_monitor_reaches_a_metrics_port_prometheus_may_open(
    name: str, scratch: Path
) -> None:
    objects = rendered_with(MONITORING, name, scratch)
    namespace = WITH_MONITORING[name][1]
    monitors = _in(objects, "ServiceMonitor", namespace)
    assert {m["metadata"]["name"] for m in monitors} == set(PREFIXES)
    for monitor in monitors:
        selector = monitor["spec"]["selector"]
        services = [
            s
            for s in _in(objects, "Service", namespace)
            if selects(selector, s["metadata"]["labels"])
        ]
        assert len(services) == 1, [s["metadata"]["name"] for s in services]
        (service,) = services
        # Not-ready pods stay targets: their metrics say why they are not ready.
        assert service["spec"].get("publishNotReadyAddresses") is True
        for endpoint in monitor["spec"]["endpoints"]:
            (entry,) = [p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]]
            workloads = [
                w
                for kind in WORKLOADS
                for w in _in(objects, kind, namespace)
                if selects(
                    {"matchLabels": service["spec"]["selector"]},
                    w["spec"]["template"]["metadata"]["labels"],
                )
            ]
            assert len(workloads) == 1
            (workload,) = workloads
            assert entry["targetPort"] == "metrics"
            port = _check_workload_serves_its_port(objects, workload, scrape="false")
            labels, _ = _metrics_port(workload)
            assert admits(objects, labels, namespace, PROMETHEUS, port)


@pytest.mark.parametrize("name", list(WITH_MONITORING))
def test_the_shipped_rules_and_dashboard_are_the_checked_in_files(name: str, scratch: Path) -> None:
    objects = rendered_with(MONITORING, name, scratch)
    namespace = WITH_MONITORING[name][1]
    rule = find(_in(objects, "PrometheusRule", namespace), "PrometheusRule", "attune")
    assert rule["spec"] == yaml.safe_load(RULES_FILE.read_text())["spec"]
    dashboard = find(_in(objects, "ConfigMap", namespace), "ConfigMap", "attune-grafana-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["data"]["attune.json"] == DASHBOARD_FILE.read_text()
