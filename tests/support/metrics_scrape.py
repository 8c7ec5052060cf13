"""The services' metrics endpoints as the tests read them.

`series_names` is what a PromQL selector can name on an endpoint: every
sample's name, and for each declared family the series its type exposes
(a counter `x` as `x_total`, a histogram as `x_bucket`, `x_sum`, `x_count`),
so a labelled family with no child yet still counts as exported."""

from __future__ import annotations

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


@contextmanager
def pair_with_metrics(root: Path) -> Iterator[tuple[ServiceProcess, ServiceProcess]]:
    """Both services as processes (memory, executor), each serving its metrics
    on a free port: `ServiceProcess.metrics_url` says where."""
    with both_processes(root, {"METRICS_PORT": "0"}, METRICS_PORT="0") as pair:
        yield pair
