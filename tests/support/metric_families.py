"""Checks of a service's metric families against the contract (metrics_contract.py)."""

from __future__ import annotations

from types import ModuleType

from prometheus_client import Counter, generate_latest
from prometheus_client.metrics import MetricWrapperBase

from tests.support.scrape import parse


def family_objects(module: ModuleType) -> dict[str, MetricWrapperBase]:
    """A service metrics module's families (its own and its gRPC server ones),
    by exposed name."""
    found: dict[str, MetricWrapperBase] = {}
    service = module.SERVICE
    for value in [*vars(module).values(), *vars(service.grpc).values()]:
        if isinstance(value, MetricWrapperBase):
            (family,) = value.describe()
            name = f"{family.name}_total" if isinstance(value, Counter) else family.name
            found[name] = value
    return found


def scraped_labels(module: ModuleType, name: str, labels: tuple[str, ...]) -> list[set[str]]:
    """The label names the family `name` of the module shows in a scrape,
    one set per sample, for a child made (and removed) with `labels`;
    a family without labels must refuse any (ValueError)."""
    metric = family_objects(module)[name]
    if not labels:
        metric.labels("x")  # Raises: no label names were set.
    values = [f"probe-{label}" for label in labels]
    metric.labels(*values)
    try:
        probe = dict(zip(labels, values, strict=True))
        scraped = parse(generate_latest(module.REGISTRY).decode())
        return [
            set(sample.labels) - {"le"}
            for sample in scraped.samples
            if probe.items() <= sample.labels.items()
        ]
    finally:
        metric.remove(*values)
