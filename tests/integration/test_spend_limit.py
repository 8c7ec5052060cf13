"""Model spend per caller per hour (issue 11): once a caller's runs have spent the
limit, its next run is RESOURCE_EXHAUSTED with RetryInfo; other callers are not."""

from __future__ import annotations

from pathlib import Path

from attune.executor.v1 import executor_pb2_grpc
from tests.integration.test_run_admission import NO_RATE, quota, refused, run_to_end_as
from tests.support.executor_callers import write_executor_tokens
from tests.support.stack import running_stack

# A few simulated runs (priced from the price table, about 0.05 to 0.2 USD each).
LIMIT_USD = 0.25


async def spend_until_refused(
    stub: executor_pb2_grpc.ExecutorServiceAsyncStub, token: str | None
) -> tuple[float, list[float]]:
    """Runs until the caller's spend reaches the limit: each run starts under it."""
    spent, costs = 0.0, []
    while spent < LIMIT_USD:
        run = await run_to_end_as(stub, token)
        costs.append(run.total_cost_usd)
        spent += run.total_cost_usd
        assert len(costs) < 50, "simulated runs cost nothing?"
    return spent, costs


async def test_a_caller_over_its_hourly_spend_is_refused_and_others_are_not(
    tmp_path: Path,
) -> None:
    tokens = write_executor_tokens(
        tmp_path / "tokens.yaml", {"alice": ("alice", "runner"), "bob": ("bob", "runner")}
    )
    async with running_stack(
        tmp_path,
        tokens_file=tmp_path / "tokens.yaml",
        runner="simulated",
        max_spend_per_hour_per_caller_usd=LIMIT_USD,
        **NO_RATE,
    ) as stack:
        stub = stack.executor_stub()
        spent, costs = await spend_until_refused(stub, tokens["alice"])
        assert all(cost > 0 for cost in costs)
        error = await refused(stub, tokens["alice"])
        violations, delay = quota(error)
        assert [subject for subject, _ in violations] == ["alice"]
        assert "EXECUTOR_MAX_SPEND_PER_HOUR_PER_CALLER_USD" in violations[0][1]
        assert f"spent {spent:.4f} USD" in violations[0][1]
        # Spend ages out an hour after it was made: none has yet.
        assert delay is not None
        assert 3500 < delay <= 3600
        # Another user is unaffected, and is held to the limit on their own.
        assert (await run_to_end_as(stub, tokens["bob"])).run_id


async def test_with_authentication_off_each_caller_key_has_its_own_spend(
    tmp_path: Path,
) -> None:
    async with running_stack(
        tmp_path, runner="simulated", max_spend_per_hour_per_caller_usd=LIMIT_USD, **NO_RATE
    ) as stack:
        stub = stack.executor_stub()
        await spend_until_refused(stub, None)
        violations, _ = quota(await refused(stub, None))
        assert [subject for subject, _ in violations] == ["peer:127.0.0.1"]
        assert (await run_to_end_as(stub, "someone-else")).run_id


async def test_no_limit_refuses_nothing(tmp_path: Path) -> None:
    async with running_stack(
        tmp_path, runner="simulated", max_spend_per_hour_per_caller_usd=0.0, **NO_RATE
    ) as stack:
        stub = stack.executor_stub()
        spent = 0.0
        while spent < 2 * LIMIT_USD:
            spent += (await run_to_end_as(stub, None)).total_cost_usd
