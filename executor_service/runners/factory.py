"""Choosing a runner by name and building it from the executor settings."""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

import httpx
from pydantic import SecretStr

from executor_service.runners.anthropic import AnthropicRunner
from executor_service.runners.base import Runner
from executor_service.runners.errors import RunnerConfigError
from executor_service.runners.llm import LLMConfig, LLMRunner
from executor_service.runners.openai_compatible import OpenAICompatibleRunner
from executor_service.runners.prices import PriceTable, load_price_table
from executor_service.runners.simulated import SimulatedRunner, SimulationProfile, role_overrides
from executor_service.settings import ExecutorSettings
from executor_service.templates.models import Tier
from memory_service.servicekit.http_retry import RetryPolicy
from memory_service.servicekit.tracing import instrument_http

__all__ = [
    "RUNNER_NAMES",
    "Provider",
    "RunnerConfigError",
    "Runners",
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


def resolve_runner_name(requested: str | None, settings: ExecutorSettings) -> str:
    """The concrete runner for a request: None or "auto" defer to the settings,
    and a default of "auto" picks anthropic, else openai, by configured key, else simulated.
    """
    name = settings.runner if requested is None or requested == "auto" else requested
    if name == "auto":
        if settings.api_key("anthropic") is not None:
            return "anthropic"
        if settings.api_key("openai") is not None:
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


def _api_key(provider: Provider, settings: ExecutorSettings) -> SecretStr:
    """The key, read at start from the setting or its file. Errors never quote it."""
    key = settings.api_key(provider)
    if key is None:
        env = f"EXECUTOR_{provider.upper()}_API_KEY"
        raise RunnerConfigError(f"runner {provider!r} needs an API key: set {env} or {env}_FILE")
    return key


def llm_config(
    provider: Provider, settings: ExecutorSettings, prices: PriceTable | None = None
) -> LLMConfig:
    """The configuration of a model-API runner from the settings (and the price
    table, if already loaded)."""
    key = _api_key(provider, settings)
    if provider == "anthropic":
        base_url, models = settings.anthropic_base_url, settings.anthropic_models
    else:
        base_url, models = settings.openai_base_url, settings.openai_models
    return LLMConfig(
        api_key=key,
        base_url=base_url,
        models={Tier(tier): model for tier, model in models.items()},
        prices=prices or load_price_table(settings.price_table),
        timeout_seconds=settings.llm_timeout_seconds,
        retry=RetryPolicy(max_retries=settings.llm_max_retries),
    )


_PROVIDERS: dict[str, Provider] = {"anthropic": "anthropic", "openai": "openai"}
_LLM_RUNNERS: dict[Provider, type[LLMRunner]] = {
    "anthropic": AnthropicRunner,
    "openai": OpenAICompatibleRunner,
}


def build_runner(name: str, settings: ExecutorSettings, seed: int) -> Runner:
    """The named runner ("simulated", "anthropic" or "openai"); `seed` drives simulation.

    Raises RunnerConfigError if the runner is unknown or not configured.
    Close it with close_runner when the run is over.
    """
    if name == "simulated":
        return SimulatedRunner(seed, simulation_profile(settings))
    if (provider := _PROVIDERS.get(name)) is not None:
        return _LLM_RUNNERS[provider](llm_config(provider, settings))
    raise RunnerConfigError(f"unknown runner {name!r}; known: {', '.join(RUNNER_NAMES)}")


class Runners:
    """Builds each run's runner from parts made once per process.

    The price table, each model API's checked configuration and its HTTP
    client (with its pooled connections) are made on first use and shared by
    every later run; a run's own state (the simulation seed) stays per run.
    A configuration error is kept too, and raised again for each run asking
    for that runner. Close with aclose() at shutdown.
    """

    def __init__(self, settings: ExecutorSettings) -> None:
        self._settings = settings
        self._profile = simulation_profile(settings)
        self._prices: PriceTable | RunnerConfigError | None = None
        self._llm: dict[Provider, LLMConfig | RunnerConfigError] = {}
        self._clients: dict[Provider, httpx.AsyncClient] = {}

    def build(self, name: str, seed: int) -> Runner:
        """The named runner for one run; RunnerConfigError as build_runner raises it."""
        if name == "simulated":
            return SimulatedRunner(seed, self._profile)
        if (provider := _PROVIDERS.get(name)) is not None:
            config = self._config(provider)
            client = self._clients.get(provider)
            if client is None:
                client = instrument_http(httpx.AsyncClient(timeout=config.timeout_seconds))
                self._clients[provider] = client
            return _LLM_RUNNERS[provider](config, client)
        raise RunnerConfigError(f"unknown runner {name!r}; known: {', '.join(RUNNER_NAMES)}")

    def _config(self, provider: Provider) -> LLMConfig:
        config = self._llm.get(provider)
        if config is None:
            try:
                config = llm_config(provider, self._settings, self._price_table())
                _LLM_RUNNERS[provider].check(config)
            except RunnerConfigError as error:
                config = error
            self._llm[provider] = config
        if isinstance(config, RunnerConfigError):
            raise config
        return config

    def _price_table(self) -> PriceTable:
        if self._prices is None:
            try:
                self._prices = load_price_table(self._settings.price_table)
            except RunnerConfigError as error:
                self._prices = error
        if isinstance(self._prices, RunnerConfigError):
            raise self._prices
        return self._prices

    async def aclose(self) -> None:
        """Closes the shared HTTP clients; safe to call more than once."""
        for client in self._clients.values():
            await client.aclose()


async def close_runner(runner: Runner) -> None:
    """Releases what the runner holds (an HTTP client), if anything."""
    if isinstance(runner, _Closable):
        await runner.aclose()
