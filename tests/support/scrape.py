"""Reading a Prometheus text exposition the way a scraper does, for tests."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


@dataclass(frozen=True)
class Scrape:
    """One scrape: every family (exposed name -> type) and every sample."""

    families: Mapping[str, str]
    samples: tuple[Sample, ...]

    def value(self, name: str, **labels: str) -> float:
        """The sample named `name` with exactly these labels (0 when absent:
        a child not made yet has counted nothing)."""
        matching = [s.value for s in self.samples if s.name == name and s.labels == labels]
        assert len(matching) <= 1, f"{name}{labels} appears {len(matching)} times"
        return matching[0] if matching else 0.0

    def total(self, name: str, **labels: str) -> float:
        """The sum of the samples named `name` whose labels include these."""
        return sum(
            s.value
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )

    def label_values(self, name: str, label: str) -> set[str]:
        """Every value `label` takes in the samples named `name`."""
        return {s.labels[label] for s in self.samples if s.name == name and label in s.labels}


def parse(text: str) -> Scrape:
    """The scrape `text` holds. Family names as the text format prints them:
    the parser drops a counter's `_total`, so it is put back."""
    families: dict[str, str] = {}
    samples: list[Sample] = []
    for family in text_string_to_metric_families(text):
        name = f"{family.name}_total" if family.type == "counter" else family.name
        families[name] = family.type
        samples.extend(family.samples)
    return Scrape(families, tuple(samples))


def read(registry: CollectorRegistry) -> Scrape:
    """A scrape of a registry in this process, through the text format."""
    return parse(generate_latest(registry).decode())


def grew(before: Scrape, after: Scrape, name: str, **labels: str) -> float:
    """How much the sample `name` with exactly these labels grew between scrapes."""
    return after.value(name, **labels) - before.value(name, **labels)


def fetch(url: str, timeout: float = 5.0) -> str:
    """The body of a GET (blocking)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (http to 127.0.0.1)
        body: bytes = response.read()
        return body.decode()


async def scrape(url: str) -> Scrape:
    """A scrape of `url`, off the event loop."""
    return parse(await asyncio.to_thread(fetch, url))


def missing(expected: Iterable[str], scraped: Scrape) -> set[str]:
    """The expected family names a scrape does not list."""
    return set(expected) - set(scraped.families)
