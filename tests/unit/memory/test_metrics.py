"""The memory service's metric families, and the helpers that count into them.

The families are the process's own: counters are compared before and after.
"""

from __future__ import annotations

import grpc
import pytest

from attune.common.v1 import common_pb2
from attune.memory.v1 import memory_pb2
from memory_service import metrics
from memory_service.security.identity import Principal
from memory_service.security.pii import PII_KINDS
from memory_service.security.secrets import SECRET_KINDS, find_secrets
from memory_service.servicekit.errors import ServiceError, invalid_argument, unavailable
from memory_service.sizes import too_large
from memory_service.write_pipeline import Retention, _unscrubbable, secret_rejection, secure
from tests.support.metric_families import scraped_labels
from tests.support.metrics_contract import MEMORY
from tests.support.scrape import Scrape, read

AWS_KEY = "AKIAZ7Q4M2W8R5T1Y6UX"


def scrape() -> Scrape:
    return read(metrics.REGISTRY)


def test_every_contract_family_is_registered_with_its_type() -> None:
    families = metrics.families()
    for name, (kind, _) in MEMORY.items():
        assert families.get(name) == kind, name


@pytest.mark.parametrize("name", sorted(MEMORY))
def test_every_contract_family_has_exactly_its_labels(name: str) -> None:
    _, labels = MEMORY[name]
    if not labels:
        with pytest.raises(ValueError, match="No label names"):
            scraped_labels(metrics, name, labels)
        return
    found = scraped_labels(metrics, name, labels)
    assert found
    assert all(names == set(labels) for names in found)


def test_bounded_label_values_are_listed_from_the_start() -> None:
    scraped = scrape()
    assert scraped.label_values("attune_memory_secrets_refused_total", "kind") >= set(SECRET_KINDS)
    assert scraped.label_values("attune_memory_pii_scrubbed_total", "kind") >= set(PII_KINDS)
    assert scraped.label_values("attune_memory_patterns_rejected_total", "reason") >= set(
        metrics.REJECTION_REASONS
    )
    assert scraped.label_values("attune_memory_patterns_stored_total", "classification") >= set(
        metrics.CLASSIFICATIONS
    )


def pattern(content: str) -> memory_pb2.Pattern:
    return memory_pb2.Pattern(id="p1", type=memory_pb2.PATTERN_TYPE_INSIGHT, content=content)


def test_rejection_reasons_come_from_the_write_pipelines_own_errors() -> None:
    secret = secret_rejection(pattern(f"key {AWS_KEY} here"), "")
    assert secret is not None
    assert metrics.rejection_reason(secret) == "secret"
    assert metrics.secret_kinds(secret) == sorted({f.kind for f in find_secrets(pattern(AWS_KEY))})
    assert metrics.rejection_reason(_unscrubbable("")) == "unscrubbable"
    assert metrics.rejection_reason(invalid_argument([("pattern.id", "required")])) == "invalid"
    assert metrics.rejection_reason(too_large("pattern", 10, 5)) == "invalid"  # Callers say.
    assert metrics.rejection_reason(ServiceError(grpc.StatusCode.ALREADY_EXISTS, "")) == "conflict"
    assert (
        metrics.rejection_reason(ServiceError(grpc.StatusCode.FAILED_PRECONDITION, ""))
        == "no_encryption_key"
    )
    # Not about the pattern: not a rejection.
    assert metrics.rejection_reason(unavailable("down")) is None
    assert metrics.rejection_reason(ServiceError(grpc.StatusCode.PERMISSION_DENIED, "")) is None


def test_a_refused_secret_counts_its_reason_and_each_kind_once() -> None:
    content = f"{AWS_KEY} and again {AWS_KEY}"
    with pytest.raises(ServiceError) as refused:
        secure(pattern(content), Principal.ANONYMOUS, Retention(), 0)
    kinds = {finding.kind for finding in find_secrets(pattern(content))}
    assert kinds == {"aws_access_key"}
    before = scrape()
    assert metrics.rejected(refused.value) is refused.value
    after = scrape()
    name, reason = "attune_memory_patterns_rejected_total", {"reason": "secret"}
    assert after.value(name, **reason) - before.value(name, **reason) == 1
    secrets = "attune_memory_secrets_refused_total"
    assert (
        after.value(secrets, kind="aws_access_key") - before.value(secrets, kind="aws_access_key")
        == 1
    )
    assert after.total(secrets) - before.total(secrets) == 1


def test_an_explicit_reason_wins_and_unavailability_counts_nothing() -> None:
    before = scrape()
    metrics.rejected(invalid_argument([("pattern", "big")]), "too_large")
    metrics.rejected(unavailable("down"))
    after = scrape()
    name = "attune_memory_patterns_rejected_total"
    assert after.value(name, reason="too_large") - before.value(name, reason="too_large") == 1
    assert after.total(name) - before.total(name) == 1


def test_a_written_pattern_counts_as_stored_or_deduped_with_its_scrubbing() -> None:
    before = scrape()
    metrics.pattern_written(common_pb2.CLASSIFICATION_SENSITIVE, False, {"email": 2, "phone": 0})
    metrics.pattern_written(common_pb2.CLASSIFICATION_PUBLIC, True, {"email": 1})
    after = scrape()

    def delta(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert delta("attune_memory_patterns_stored_total", classification="SENSITIVE") == 1
    assert delta("attune_memory_patterns_stored_total", classification="PUBLIC") == 0
    assert delta("attune_memory_patterns_deduped_total") == 1
    assert delta("attune_memory_pii_scrubbed_total", kind="email") == 3
    assert delta("attune_memory_pii_scrubbed_total", kind="phone") == 0


def test_searches_count_by_effective_mode_backend_and_fallback() -> None:
    before = scrape()
    metrics.search_answered(memory_pb2.SEARCH_MODE_KEYWORD, "redis", 0.004, None)
    metrics.search_answered(memory_pb2.SEARCH_MODE_KEYWORD, "redis", 0.2, "no_embeddings_provider")
    metrics.search_answered(memory_pb2.SEARCH_MODE_HYBRID, "embedded", 0.03, None)
    after = scrape()
    count = "attune_memory_search_seconds_count"
    assert (
        after.value(count, mode="keyword", source="redis")
        - before.value(count, mode="keyword", source="redis")
        == 2
    )
    assert (
        after.value(count, mode="hybrid", source="embedded")
        - before.value(count, mode="hybrid", source="embedded")
        == 1
    )
    degraded = "attune_memory_searches_degraded_total"
    assert after.total(degraded) - before.total(degraded) == 1
    assert (
        after.value(degraded, reason="no_embeddings_provider")
        - before.value(degraded, reason="no_embeddings_provider")
        == 1
    )


def test_readiness_is_read_at_each_scrape_and_the_key_set_once() -> None:
    ready = [False]
    unbind = metrics.bind_state(lambda: ready[0], key_available=True)
    try:
        assert scrape().value("attune_memory_ready") == 0
        ready[0] = True
        assert scrape().value("attune_memory_ready") == 1
        assert scrape().value("attune_memory_encryption_key_available") == 1
    finally:
        unbind()
    assert scrape().value("attune_memory_ready") == 0
    metrics.bind_state(lambda: True, key_available=False)()
    assert scrape().value("attune_memory_encryption_key_available") == 0


def test_the_cache_lag_is_the_largest_namespace_lag_and_forgotten_at_unbind() -> None:
    lag = metrics.CACHE_CATCH_UP
    lag.forget()
    assert scrape().value("attune_memory_cache_catch_up_lag_seconds") == 0
    lag.caught_up("a", 3.0)
    lag.caught_up("b", 1.5)
    assert scrape().value("attune_memory_cache_catch_up_lag_seconds") == 3.0
    lag.caught_up("a", 0.0)
    assert scrape().value("attune_memory_cache_catch_up_lag_seconds") == 1.5
    lag.caught_up("b", -0.2)  # Redis's clock a little ahead of ours.
    assert scrape().value("attune_memory_cache_catch_up_lag_seconds") == 0
    lag.caught_up("c", 2.0)
    metrics.bind_state(lambda: True, key_available=True)()
    assert scrape().value("attune_memory_cache_catch_up_lag_seconds") == 0
