"""Choosing a runner by name and building it from the executor settings."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

from pydantic import SecretStr

from executor_service.runners.anthropic import AnthropicRunner
from executor_service.runners.base import Runner
from executor_service.runners.errors import RunnerConfigError
from executor_service.runners.llm import LLMConfig
from executor_service.runners.openai_compatible import OpenAICompatibleRunner
from executor_service.runners.prices import load_price_table
from executor_service.runners.simulated import SimulatedRunner, SimulationProfile, role_overrides
from executor_service.settings import ExecutorSettings
from executor_service.templates.models import Tier
from memory_service.servicekit.http_retry import RetryPolicy

__all__ = [
    "RUNNER_NAMES",
    "Provider",
    "RunnerConfigError",
    "build_runner",
    "close_runner",
    "llm_config",
    "resolve_runner_name",
]

Provider = Literal["anthropic", "openai"]
RUNNER_NAMES = ("simulated", "anthropic", "openai")


@runtime_checkable
class _Closable(Protocol):
    async def aclose(self) -> None: ...


def _has_key(key: SecretStr | None, key_file: Path | None) -> bool:
    return bool(key and key.get_secret_value()) or key_file is not None


def resolve_runner_name(requested: str | None, settings: ExecutorSettings) -> str:
    """The concrete runner for a request: None or "auto" defer to the settings,
    and a default of "auto" picks anthropic, else openai, by configured key, else simulated.
    """
    name = settings.runner if requested is None or requested == "auto" else requested
    if name == "auto":
        if _has_key(settings.anthropic_api_key, settings.anthropic_api_key_file):
            return "anthropic"
        if _has_key(settings.openai_api_key, settings.openai_api_key_file):
            return "openai"
        return "simulated"
    if name not in RUNNER_NAMES:
        raise RunnerConfigError(f"unknown runner {name!r}; known: auto, {', '.join(RUNNER_NAMES)}")
    return name


def simulation_profile(settings: ExecutorSettings) -> SimulationProfile:
    """The simulation knobs from the settings."""
    return SimulationProfile(
        success_probability={Tier(k): v for k, v in settings.simulated_success.items()},
        latency_seconds=settings.simulated_latency_ms / 1000,
        input_tokens=settings.simulated_input_tokens,
        output_tokens=settings.simulated_output_tokens,
        role_success_probability=role_overrides(settings.simulated_role_success),
    )


def _api_key(provider: Provider, key: SecretStr | None, key_file: Path | None) -> SecretStr:
    """The key from the setting, else from the key file. Errors never quote it."""
    env = f"EXECUTOR_{provider.upper()}_API_KEY"
    if key is not None and key.get_secret_value():
        return key
    if key_file is None:
        raise RunnerConfigError(f"runner {provider!r} needs an API key: set {env} or {env}_FILE")
    try:
        text = key_file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise RunnerConfigError(
            f"runner {provider!r}: cannot read the API key file {key_file} ({env}_FILE): {reason}"
        ) from None
    if not text:
        raise RunnerConfigError(f"runner {provider!r}: the API key file {key_file} is empty")
    return SecretStr(text)


def llm_config(provider: Provider, settings: ExecutorSettings) -> LLMConfig:
    """The configuration of a model-API runner from the settings."""
    if provider == "anthropic":
        key = _api_key(provider, settings.anthropic_api_key, settings.anthropic_api_key_file)
        base_url, models = settings.anthropic_base_url, settings.anthropic_models
    else:
        key = _api_key(provider, settings.openai_api_key, settings.openai_api_key_file)
        base_url, models = settings.openai_base_url, settings.openai_models
    return LLMConfig(
        api_key=key,
        base_url=base_url,
        models={Tier(tier): model for tier, model in models.items()},
        prices=load_price_table(settings.price_table),
        timeout_seconds=settings.llm_timeout_seconds,
        retry=RetryPolicy(max_retries=settings.llm_max_retries),
    )


def build_runner(name: str, settings: ExecutorSettings, seed: int) -> Runner:
    """The named runner ("simulated", "anthropic" or "openai"); `seed` drives simulation.

    Raises RunnerConfigError if the runner is unknown or not configured.
    Close it with close_runner when the run is over.
    """
    if name == "simulated":
        return SimulatedRunner(seed, simulation_profile(settings))
    if name == "anthropic":
        return AnthropicRunner(llm_config("anthropic", settings))
    if name == "openai":
        return OpenAICompatibleRunner(llm_config("openai", settings))
    raise RunnerConfigError(f"unknown runner {name!r}; known: {', '.join(RUNNER_NAMES)}")


async def close_runner(runner: Runner) -> None:
    """Releases what the runner holds (an HTTP client), if anything."""
    if isinstance(runner, _Closable):
        await runner.aclose()
