"""What a query may name on an endpoint (tests/support/metrics_scrape.series_names):
checked on expositions prometheus_client writes, families with and without children."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from executor_service.cli.scrape import parse_exposition
from tests.support.metrics_scrape import series_names

NAMES = st.from_regex(r"attune_[a-z]{1,12}", fullmatch=True)


@given(
    st.lists(NAMES, min_size=3, max_size=3, unique=True),
    st.booleans(),
)
def test_each_type_exposes_its_series_whether_observed_or_not(
    names: list[str], observed: bool
) -> None:
    counter, histogram, gauge = names
    registry = CollectorRegistry()
    made = (
        Counter(counter, "c", ["kind"], registry=registry),
        Histogram(histogram + "_seconds", "h", ["mode"], registry=registry),
        Gauge(gauge, "g", ["pod"], registry=registry),
    )
    if observed:
        made[0].labels("a").inc()
        made[1].labels("b").observe(0.3)
        made[2].labels("c").set(1)
    found = series_names(parse_exposition(generate_latest(registry).decode()))
    expected = {
        f"{counter}_total",
        f"{histogram}_seconds_bucket",
        f"{histogram}_seconds_sum",
        f"{histogram}_seconds_count",
        gauge,
    }
    assert expected <= found
    # A counter or histogram is never queried by its bare name.
    assert counter not in found
    assert f"{histogram}_seconds" not in found
