"""The services' metrics endpoints as the tests read them.

`series_names` is what a PromQL selector can name on an endpoint: every
sample's name, and for each declared family the series its type exposes
(a counter `x` as `x_total`, a histogram as `x_bucket`, `x_sum`, `x_count`),
so a labelled family with no child yet still counts as exported.

`metrics_endpoint` is the one place that knows how a test finds a service's
bound metrics port (METRICS_PORT=0): the `<PREFIX>_METRICS_PORT_FILE` the
service writes once metrics are served (issue 16, branch obs-metrics).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from executor_service.cli.scrape import Exposition
from executor_service.dev.stack import ServiceProcess
from tests.support.process_pair import both_processes

# The series each family type exposes, by suffix (prometheus_client names a
# counter family without its `_total`).
TYPE_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
    "summary": ("", "_sum", "_count"),
    "info": ("_info",),
}


def series_names(exposition: Exposition) -> set[str]:
    """Every series name the exposition offers a query (see the module's note)."""
    names: set[str] = set()
    for family in exposition.families:
        names.update(sample.name for sample in family.samples)
        names.update(family.name + suffix for suffix in TYPE_SUFFIXES.get(family.type, ("",)))
    return names


def series_labels(exposition: Exposition) -> dict[str, set[str]]:
    """The label names each series name carries, over its samples."""
    labels: dict[str, set[str]] = {}
    for family in exposition.families:
        for sample in family.samples:
            labels.setdefault(sample.name, set()).update(sample.labels)
    return labels


def metrics_settings(root: Path, name: str) -> dict[str, str]:
    """A service's settings (without its prefix) serving metrics on a free port."""
    return {"METRICS_PORT": "0", "METRICS_PORT_FILE": str(root / f"{name}.metrics.port")}


@contextmanager
def pair_with_metrics(root: Path) -> Iterator[tuple[ServiceProcess, ServiceProcess]]:
    """Both services as processes (memory, executor), each serving its metrics."""
    with both_processes(
        root, metrics_settings(root, "memory"), settings=metrics_settings(root, "executor")
    ) as pair:
        yield pair


def metrics_endpoint(service: ServiceProcess, timeout: float = 10.0) -> str:
    """The URL of a started service's metrics, from its metrics port file."""
    setting = service.setting("METRICS_PORT_FILE")
    if setting is None:
        raise AssertionError(f"{service.module} was started without metrics_settings()")
    port_file = Path(setting)
    deadline = time.monotonic() + timeout
    # The file appears once metrics are served (before the service's port file).
    while not port_file.exists() or not port_file.read_text().strip():
        if service.process is None or service.process.poll() is not None:
            raise AssertionError(f"{service.module} is not running")
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{service.module} wrote no metrics port to {port_file} within {timeout} s: "
                f"does it serve {service.prefix}METRICS_PORT?"
            )
        time.sleep(0.02)  # Polling a file the service writes, within a deadline.
    return f"http://127.0.0.1:{int(port_file.read_text())}/metrics"
