"""Runners: what runs share is built once per executor and closed at shutdown."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from pydantic import SecretStr

from executor_service.runners.errors import RunnerConfigError
from executor_service.runners.factory import Runners, close_runner
from executor_service.runners.llm import LLMRunner
from executor_service.runners.prices import SHIPPED_PRICES
from executor_service.runners.simulated import SimulatedRunner
from executor_service.settings import ExecutorSettings

API_KEY = "sk-unit-secret-value"


@pytest.fixture(autouse=True)
def _no_executor_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("EXECUTOR_"):
            monkeypatch.delenv(name)


def llm(runner: object) -> LLMRunner:
    assert isinstance(runner, LLMRunner)
    return runner


async def test_runs_share_one_client_one_price_table_and_the_key_read_at_start(
    tmp_path: Path,
) -> None:
    key_file, table = tmp_path / "key", tmp_path / "prices.json"
    key_file.write_text(f"{API_KEY}\n")
    table.write_bytes(SHIPPED_PRICES.read_bytes())
    runners = Runners(ExecutorSettings(openai_api_key_file=key_file, price_table=table))
    first = llm(runners.build("openai", 1))
    # Neither file is read again: a run after they change or vanish is unaffected.
    key_file.unlink()
    table.write_text(json.dumps({"as_of": "x", "source": "y", "models": {}}))
    second = llm(runners.build("openai", 2))
    assert first is not second  # Each run has its own runner ...
    assert first._client is second._client  # ... over one HTTP client,
    assert first._config is second._config  # one checked configuration,
    assert first._config.prices.price("gpt-5-mini")  # from the table as it was at first use.
    assert first._config.api_key == SecretStr(API_KEY)
    await close_runner(first)  # The end of a run leaves the shared client open.
    assert not second._client.is_closed
    await runners.aclose()
    assert second._client.is_closed
    await runners.aclose()  # Closing twice is harmless.


async def test_each_provider_has_its_own_client() -> None:
    runners = Runners(
        ExecutorSettings(anthropic_api_key=SecretStr(API_KEY), openai_api_key=SecretStr(API_KEY))
    )
    anthropic, openai = llm(runners.build("anthropic", 0)), llm(runners.build("openai", 0))
    assert anthropic._client is not openai._client
    await runners.aclose()
    assert anthropic._client.is_closed
    assert openai._client.is_closed


async def test_a_configuration_error_is_raised_for_every_run(tmp_path: Path) -> None:
    settings = ExecutorSettings(
        openai_api_key=SecretStr(API_KEY),
        openai_models={"cheap": "llama-3.1-8b", "capable": "gpt-5", "premium": "o3"},
    )
    runners = Runners(settings)
    for _ in range(2):
        with pytest.raises(RunnerConfigError, match=r"tier cheap: no price for model"):
            runners.build("openai", 0)
    with pytest.raises(RunnerConfigError, match="'anthropic' needs an API key"):
        runners.build("anthropic", 0)
    with pytest.raises(RunnerConfigError, match="unknown runner 'gemini'"):
        runners.build("gemini", 0)
    await runners.aclose()  # Nothing was opened.


def test_simulated_runs_keep_their_own_seed() -> None:
    runners = Runners(ExecutorSettings())
    one, two = runners.build("simulated", 1), runners.build("simulated", 2)
    assert isinstance(one, SimulatedRunner)
    assert isinstance(two, SimulatedRunner)
    assert one is not two
