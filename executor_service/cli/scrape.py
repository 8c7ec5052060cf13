"""Reading a service's Prometheus endpoint for `attune status`.

The text is parsed by prometheus_client's own parser; what goes wrong on
the way (no answer, an HTTP error, not an exposition) is a `ScrapeError`
whose message the CLI prints as it is.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

# What a URL without a path means: the services serve metrics on any path,
# Prometheus asks for /metrics.
DEFAULT_PATH = "/metrics"


class ScrapeError(Exception):
    """The endpoint could not be read; the message says why, for the user."""


@dataclass(frozen=True)
class Sample:
    """One exposed series: `name{labels} value`."""

    name: str
    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True)
class Exposition:
    """One scrape: the metric families as declared, with their samples."""

    families: tuple[Metric, ...]

    def samples(self, name: str) -> Iterator[Sample]:
        """Every sample of this exact series name (e.g. `x_total`, `x_bucket`)."""
        for family in self.families:
            for sample in family.samples:
                if sample.name == name:
                    yield Sample(sample.name, sample.labels, float(sample.value))

    def declares(self, family: str) -> bool:
        """Whether a family of this name is exposed (with samples or not)."""
        return any(found.name == family for found in self.families)


def parse_exposition(text: str) -> Exposition:
    """The families of a Prometheus text exposition; ValueError if it is not one."""
    try:
        return Exposition(tuple(text_string_to_metric_families(text)))
    except (ValueError, IndexError, KeyError) as error:
        # The parser reports malformed lines with any of these.
        raise ValueError(f"not a Prometheus text exposition ({error})") from None


def metrics_url(given: str) -> str:
    """A full URL from what the user gave: `host:port` means plain HTTP and /metrics."""
    url = given if "://" in given else f"http://{given}"
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ScrapeError(f"{given!r} is not an http(s) URL or host:port")
    return url if parts.path not in {"", "/"} else url.rstrip("/") + DEFAULT_PATH


def scrape(url: str, timeout: float) -> Exposition:
    """GET the endpoint and parse it."""
    try:
        response = httpx.get(url, timeout=timeout, follow_redirects=True)
    except httpx.TimeoutException:
        raise ScrapeError(f"no answer from {url} within {timeout} s") from None
    except httpx.HTTPError as error:
        raise ScrapeError(f"cannot reach {url}: {error or type(error).__name__}") from None
    if response.status_code != httpx.codes.OK:
        raise ScrapeError(f"{url} answered HTTP {response.status_code}, not metrics")
    try:
        return parse_exposition(response.text)
    except ValueError as error:
        raise ScrapeError(f"{url}: {error}") from None
