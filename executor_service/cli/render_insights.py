"""Rich output of `attune search`, `analytics`, `recommend` and `status`."""

from __future__ import annotations

from datetime import UTC

from google.protobuf import timestamp_pb2
from rich.console import Console
from rich.table import Table
from rich.text import Text

from attune.common.v1 import common_pb2
from attune.executor.v1 import executor_pb2
from attune.memory.v1.memory_pb2 import QueryReading
from executor_service.cli.answers import format_value
from executor_service.cli.render import enum_name, usd
from executor_service.convert.enums import tier_name


def _when(moment: timestamp_pb2.Timestamp) -> str:
    return moment.ToDatetime(tzinfo=UTC).strftime("%Y-%m-%d %H:%M")


def _percent(value: float) -> str:
    return f"{value:.0%}"


def proportion(share: executor_pb2.Proportion) -> str:
    """`80% [49%-94%] n=10`; just `n=0` when there is nothing to estimate from."""
    if share.n == 0:
        return "n=0 (no data)"
    return f"{_percent(share.value)} [{_percent(share.lower)}-{_percent(share.upper)}] n={share.n}"


def print_search(
    console: Console, query: str, response: executor_pb2.SearchRunsResponse, explain: bool
) -> None:
    """Where the answer came from, what the query meant, and the hits."""
    source = enum_name(executor_pb2.SearchSource.DESCRIPTOR, response.source, "SEARCH_SOURCE_")
    line = Text.assemble("source: ", (source, "bold"))
    if response.degraded:
        line.append(f"  (degraded: {response.degraded_reason or 'memory unavailable'})", "yellow")
    console.print(line, soft_wrap=True)
    reading = response.query_reading
    read_differently = bool(reading.dropped_words or reading.corrections or reading.relaxed)
    if explain or response.applied_filter or read_differently:
        console.print(f"query: {query or '-'}", soft_wrap=True)
        console.print(f"interpreted filter: {response.applied_filter or '-'}", soft_wrap=True)
        print_reading(console, response.applied_query, reading)
    if not response.hits:
        console.print("no runs match")
        return
    columns = ["run id", "template", "result", "cost", "created (UTC)", "runner"]
    table = Table(*columns, *(["score"] if explain else []), title="Runs found")
    for hit in response.hits:
        cells: list[Text | str] = [
            Text(hit.run_id, style="bold"),
            hit.template_id,
            "succeeded" if hit.success else "failed",
            usd(hit.total_cost_usd),
            _when(hit.create_time),
            hit.runner or "-",
        ]
        table.add_row(*cells, *([f"{hit.score:.3f}"] if explain else []))
    console.print(table)


def print_reading(console: Console, applied_query: str, reading: QueryReading) -> None:
    """Which words were searched, which dropped or corrected, and how many a run has."""
    console.print(f"searched words: {applied_query or '-'}", soft_wrap=True)
    if reading.dropped_words:
        console.print(
            f"not searched (common words): {' '.join(reading.dropped_words)}", soft_wrap=True
        )
    if reading.corrections:
        console.print(f"corrected: {', '.join(reading.corrections)}", soft_wrap=True)
    if reading.relaxed and reading.min_should_match == 0:
        console.print(
            "no run the filter selects has the words; they only order its runs", style="yellow"
        )
    elif reading.relaxed:
        console.print("no run had enough of the words; runs with any one of them", style="yellow")
    elif reading.min_should_match > 1:
        console.print(f"each run has at least {reading.min_should_match} of the unmarked words")


def print_analytics(
    console: Console, template_id: str, response: executor_pb2.GetAnalyticsResponse
) -> None:
    """Totals, cost, tier performance per role, failures and the trend."""
    scope = template_id or "every template"
    console.print(Text(f"Analytics: {scope}, {response.run_count} runs", style="bold"))
    if response.run_count == 0:
        console.print("no runs yet: nothing to learn from")
        return
    console.print(f"success rate: {proportion(response.success_rate)}")
    cost = response.cost
    console.print(
        f"cost per run: mean {usd(cost.mean_usd)}, p50 {usd(cost.p50_usd)}, "
        f"p95 {usd(cost.p95_usd)}, min {usd(cost.min_usd)}, max {usd(cost.max_usd)}; "
        f"total {usd(cost.total_usd)}",
        soft_wrap=True,
    )
    console.print(f"agents per run: {response.mean_agents_per_run:.1f}")
    if response.cost_by_tier_usd:
        tiers = Table("tier", "cost", title="Cost by tier")
        for tier, amount in sorted(response.cost_by_tier_usd.items()):
            tiers.add_row(tier, usd(amount))
        console.print(tiers)
    if response.role_tiers:
        roles = Table("role", "tier", "success rate [95% interval]", "mean cost", title="Roles")
        for row in response.role_tiers:
            roles.add_row(
                Text(row.role, style="bold"),
                tier_name(row.tier),
                proportion(row.success_rate),
                usd(row.mean_cost_usd),
            )
        console.print(roles)
    if response.failures:
        failures = Table("role", "error", "count", title="Failure patterns")
        for failure in response.failures:
            failures.add_row(failure.role, failure.error, str(failure.count))
        console.print(failures)
    if response.trend:
        days = response.trend_bucket.ToSeconds() / 86400
        trend = Table(
            "from (UTC)", "runs", "success", "mean cost", title=f"Trend ({days:g}-day buckets)"
        )
        for point in response.trend:
            trend.add_row(
                _when(point.bucket_start),
                str(point.run_count),
                _percent(point.success_rate),
                usd(point.mean_cost_usd),
            )
        console.print(trend)


def print_recommendations(
    console: Console, template_id: str, response: executor_pb2.GetRecommendationsResponse
) -> None:
    """Tiers with their evidence, similar runs and suggested answers."""
    target = _percent(response.target_success_rate)
    console.print(Text(f"Recommendations: {template_id} (target success {target})", style="bold"))
    tiers = Table("role", "tier", "evidence", "saving", "why", title="Tier per role")
    for tier in response.tiers:
        tiers.add_row(
            Text(tier.role, style="bold"),
            tier_name(tier.recommended_tier)
            if tier.recommended_tier != common_pb2.TIER_UNSPECIFIED
            else "(template's)",
            proportion(tier.evidence),
            usd(tier.expected_saving_usd),
            tier.rationale,
        )
    console.print(tiers)
    if response.similar_runs:
        similar = Table("run id", "result", "cost", "created (UTC)", title="Similar past runs")
        for hit in response.similar_runs:
            similar.add_row(
                hit.run_id,
                "succeeded" if hit.success else "failed",
                usd(hit.total_cost_usd),
                _when(hit.create_time),
            )
        console.print(similar)
    else:
        console.print("no similar past runs")
    if response.suggested_answers:
        answers = Table("question", "suggested", "from", "confidence", title="Suggested answers")
        for suggestion in response.suggested_answers:
            answers.add_row(
                suggestion.question_id,
                format_value(suggestion.value),
                suggestion.source,
                _percent(suggestion.confidence),
            )
        console.print(answers)


def print_status(console: Console, address: str, response: executor_pb2.GetStatusResponse) -> None:
    """The memory link, the breaker, the outbox and the run count."""
    reachable = "reachable" if response.memory_reachable else "UNREACHABLE"
    breaker = enum_name(
        executor_pb2.BreakerState.DESCRIPTOR, response.breaker_state, "BREAKER_STATE_"
    )
    table = Table("", "", title=f"Executor {address} (version {response.version or '-'})")
    table.add_row("memory service", f"{response.memory_address} ({reachable})")
    table.add_row("circuit breaker", breaker)
    oldest = (
        f", oldest queued {response.oldest_queued_age.ToTimedelta().total_seconds():.0f} s ago"
        if response.HasField("oldest_queued_age")
        else ""
    )
    table.add_row("outbox", f"{response.outbox_depth} queued{oldest}")
    table.add_row("rejected patterns", str(response.rejected_pattern_count))
    table.add_row("last memory error", response.last_memory_error or "-")
    table.add_row("runs on disk", str(response.run_count))
    console.print(table)
