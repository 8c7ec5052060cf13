"""Runner resolution and construction from settings, and the price table."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from executor_service.runners.anthropic import AnthropicRunner
from executor_service.runners.factory import (
    RunnerConfigError,
    build_runner,
    close_runner,
    resolve_runner_name,
)
from executor_service.runners.openai_compatible import OpenAICompatibleRunner
from executor_service.runners.prices import SHIPPED_PRICES, load_price_table
from executor_service.runners.simulated import SimulatedRunner, SimulationProfile
from executor_service.runs.composition import PlannedAgent
from executor_service.settings import ExecutorSettings
from executor_service.templates.models import Tier, TierStrategy

API_KEY = "sk-unit-secret-value"


@pytest.fixture(autouse=True)
def _no_executor_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's real keys in the environment must not change these tests.
    for name in list(os.environ):
        if name.startswith("EXECUTOR_"):
            monkeypatch.delenv(name)


def settings(**overrides: Any) -> ExecutorSettings:
    return ExecutorSettings(**overrides)


# --- resolve_runner_name ---


@pytest.mark.parametrize("requested", [None, "auto"])
def test_unnamed_request_takes_the_configured_default(requested: str | None) -> None:
    assert resolve_runner_name(requested, settings(runner="simulated")) == "simulated"
    assert resolve_runner_name(requested, settings(runner="openai")) == "openai"


def test_named_request_wins_over_the_default() -> None:
    configured = settings(runner="simulated", anthropic_api_key=SecretStr(API_KEY))
    assert resolve_runner_name("openai", configured) == "openai"
    assert resolve_runner_name("simulated", configured) == "simulated"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, "simulated"),
        ({"anthropic_api_key": SecretStr("")}, "simulated"),
        ({"openai_api_key": SecretStr(API_KEY)}, "openai"),
        ({"openai_api_key_file": "key"}, "openai"),
        ({"anthropic_api_key_file": "key"}, "anthropic"),
        (
            {"anthropic_api_key": SecretStr(API_KEY), "openai_api_key": SecretStr(API_KEY)},
            "anthropic",
        ),
    ],
)
def test_auto_picks_by_configured_key(
    overrides: dict[str, Any], expected: str, tmp_path: Path
) -> None:
    # Key files are read at start, so a named one must exist.
    (tmp_path / "key").write_text(API_KEY)
    files = {name: tmp_path / value for name, value in overrides.items() if name.endswith("_file")}
    configured = settings(runner="auto", **{**overrides, **files})
    assert resolve_runner_name(None, configured) == expected


def test_unknown_runner_is_a_config_error() -> None:
    with pytest.raises(RunnerConfigError, match="unknown runner 'gemini'"):
        resolve_runner_name("gemini", settings())
    with pytest.raises(RunnerConfigError, match="unknown runner 'gemini'"):
        build_runner("gemini", settings(), seed=1)


# --- build_runner ---

AGENT = PlannedAgent(
    role="writer",
    strategy=TierStrategy.PROGRESSIVE,
    depends_on=(),
    stage=0,
    success_criteria=("a", "b"),
)


async def test_simulated_runner_is_built_from_the_simulation_settings() -> None:
    configured = settings(
        simulated_success={"cheap": 0.1, "capable": 0.5, "premium": 1.0},
        simulated_input_tokens=(10, 20),
        simulated_output_tokens=(1, 2),
    )
    runner = build_runner("simulated", configured, seed=42)
    expected = SimulatedRunner(
        42,
        SimulationProfile(
            success_probability={Tier.CHEAP: 0.1, Tier.CAPABLE: 0.5, Tier.PREMIUM: 1.0},
            input_tokens=(10, 20),
            output_tokens=(1, 2),
        ),
    )
    assert isinstance(runner, SimulatedRunner)
    assert runner.seed == 42
    for number, tier in enumerate(Tier, start=1):
        assert await runner.attempt(AGENT, tier, number) == await expected.attempt(
            AGENT, tier, number
        )
    await close_runner(runner)  # Nothing to close: a no-op.


async def test_llm_runners_build_from_a_key_and_close() -> None:
    anthropic = build_runner("anthropic", settings(anthropic_api_key=SecretStr(API_KEY)), 0)
    openai = build_runner("openai", settings(openai_api_key=SecretStr(API_KEY)), 0)
    assert isinstance(anthropic, AnthropicRunner)
    assert anthropic.name == "anthropic"
    assert isinstance(openai, OpenAICompatibleRunner)
    assert openai.name == "openai"
    await close_runner(anthropic)
    await close_runner(openai)
    await close_runner(openai)  # Closing twice is harmless.


async def test_key_comes_from_the_key_file(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(f"{API_KEY}\n")  # Mounted secrets often end in a newline.
    runner = build_runner("anthropic", settings(anthropic_api_key_file=key_file), 0)
    assert isinstance(runner, AnthropicRunner)
    await close_runner(runner)


@pytest.mark.parametrize(
    ("name", "variable"),
    [("anthropic", "EXECUTOR_ANTHROPIC_API_KEY"), ("openai", "EXECUTOR_OPENAI_API_KEY")],
)
def test_missing_key_is_a_clear_error(name: str, variable: str) -> None:
    with pytest.raises(RunnerConfigError, match=f"{name!r} needs an API key: set {variable}"):
        build_runner(name, settings(), seed=0)


def test_unreadable_or_empty_key_file_stops_the_executor_at_start(tmp_path: Path) -> None:
    # Read when the settings are made, so the executor does not start; before,
    # this surfaced only when a run asked for the runner.
    absent = f"EXECUTOR_OPENAI_API_KEY_FILE \\({tmp_path / 'absent'}\\) cannot be read"
    with pytest.raises(ValidationError, match=absent):
        settings(openai_api_key_file=tmp_path / "absent")
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ValidationError, match=r"EXECUTOR_OPENAI_API_KEY_FILE .* is empty"):
        settings(openai_api_key_file=empty)


def test_key_and_key_file_both_set_is_an_error(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(API_KEY)
    both = "set EXECUTOR_ANTHROPIC_API_KEY or EXECUTOR_ANTHROPIC_API_KEY_FILE, not both"
    with pytest.raises(ValidationError, match=both) as caught:
        settings(anthropic_api_key=SecretStr(API_KEY), anthropic_api_key_file=key_file)
    assert API_KEY not in str(caught.value)


def test_key_with_whitespace_is_refused_without_quoting_it() -> None:
    broken = f"{API_KEY}\nx"
    with pytest.raises(RunnerConfigError, match="whitespace") as caught:
        build_runner("anthropic", settings(anthropic_api_key=SecretStr(broken)), 0)
    assert API_KEY not in str(caught.value)


def test_unpriced_model_is_a_config_error_at_construction() -> None:
    configured = settings(
        openai_api_key=SecretStr(API_KEY),
        openai_models={"cheap": "llama-3.1-8b", "capable": "gpt-5", "premium": "o3"},
    )
    with pytest.raises(RunnerConfigError, match=r"tier cheap: no price for model 'llama-3\.1-8b'"):
        build_runner("openai", configured, 0)


def test_bad_base_url_is_a_config_error() -> None:
    configured = settings(openai_api_key=SecretStr(API_KEY), openai_base_url="localhost:8000")
    with pytest.raises(RunnerConfigError, match="not an http"):
        build_runner("openai", configured, 0)


# --- the price table ---

DEFAULT_PRICES = {
    "claude-haiku-4-5": (1.0, 5.0),
    "claude-sonnet-4-5": (3.0, 15.0),
    "claude-opus-4-1": (15.0, 75.0),
    "gpt-5-mini": (0.25, 2.0),
    "gpt-5": (1.25, 10.0),
    "o3": (2.0, 8.0),
}


def test_shipped_table_prices_every_default_model() -> None:
    table = load_price_table()
    defaults = ExecutorSettings()
    for model in [*defaults.anthropic_models.values(), *defaults.openai_models.values()]:
        price = table.price(model)
        assert (price.input_per_mtok, price.output_per_mtok) == DEFAULT_PRICES[model]
    assert table.as_of
    assert table.source


def test_cost_is_tokens_times_price_per_million() -> None:
    assert load_price_table().cost("claude-sonnet-4-5", 2_000_000, 100_000) == pytest.approx(7.5)


def write_table(path: Path, models: dict[str, Any]) -> Path:
    path.write_text(json.dumps({"as_of": "2030-01-01", "source": "test", "models": models}))
    return path


async def test_price_table_setting_overrides_the_shipped_one(tmp_path: Path) -> None:
    table = write_table(
        tmp_path / "prices.json", {"local-model": {"input_per_mtok": 0, "output_per_mtok": 0}}
    )
    configured = settings(
        price_table=table,
        openai_api_key=SecretStr(API_KEY),
        openai_models=dict.fromkeys(("cheap", "capable", "premium"), "local-model"),
    )
    runner = build_runner("openai", configured, 0)
    await close_runner(runner)
    with pytest.raises(RunnerConfigError, match=r"no price for model 'gpt-5-mini'"):
        build_runner("openai", settings(price_table=table, openai_api_key=SecretStr(API_KEY)), 0)


@pytest.mark.parametrize(
    ("models", "problem"),
    [
        ({"m": {"input_per_mtok": -1, "output_per_mtok": 1}}, "models.m.input_per_mtok"),
        ({"m": {"input_per_mtok": 1}}, "models.m.output_per_mtok"),
        ({"m": {"input_per_mtok": 1, "output_per_mtok": 1, "currency": "EUR"}}, "currency"),
    ],
)
def test_invalid_price_table_is_a_config_error(
    tmp_path: Path, models: dict[str, Any], problem: str
) -> None:
    with pytest.raises(RunnerConfigError, match=f"invalid price table .*{problem}"):
        load_price_table(write_table(tmp_path / "prices.json", models))


def test_missing_or_garbled_price_table_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(RunnerConfigError, match="cannot read the price table"):
        load_price_table(tmp_path / "absent.json")
    garbled = tmp_path / "garbled.json"
    garbled.write_text("{not json")
    with pytest.raises(RunnerConfigError, match="invalid price table"):
        load_price_table(garbled)


def test_shipped_table_is_the_default_path() -> None:
    assert load_price_table(SHIPPED_PRICES) == load_price_table()
