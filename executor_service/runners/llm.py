"""What the model-API runners share: config, the attempt flow, outcome building.

A subclass supplies only its wire format: the endpoint, the headers, the
request body, and how to read text and token usage out of the answer.
"""

from __future__ import annotations

import string
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr, ValidationError

from executor_service.runners.base import AttemptOutcome
from executor_service.runners.errors import RunnerConfigError
from executor_service.runners.prices import PriceTable
from executor_service.runners.prompt import Prompt, build_prompt
from executor_service.runners.result_parsing import ParseFailure, judge, parse_report
from executor_service.runs.composition import PlannedAgent
from executor_service.templates.models import Tier
from memory_service.servicekit.http_retry import (
    JsonPost,
    LLMCallError,
    RetryPolicy,
    post_json,
    scrub,
)
from memory_service.servicekit.tracing import instrument_http

# Room for the JSON result, and for the hidden reasoning of reasoning models,
# which counts against the same limit. Only tokens actually used are billed.
MAX_OUTPUT_TOKENS = 8192
_OUTPUT_EXCERPT_CHARS = 2000
_HEADER_SAFE = frozenset(string.ascii_letters + string.digits + string.punctuation)


@dataclass(frozen=True)
class LLMConfig:
    """Everything a model-API runner needs; built from settings by the factory."""

    api_key: SecretStr
    base_url: str
    models: Mapping[Tier, str]
    prices: PriceTable
    timeout_seconds: float
    retry: RetryPolicy


@dataclass(frozen=True)
class Usage:
    """Tokens the API says the call consumed."""

    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class Reply:
    """What a runner needs from an API answer. `model` is the one that answered."""

    text: str
    usage: Usage | None
    model: str
    truncated: bool = False  # Stopped at the output-token limit.


class MalformedReplyError(Exception):
    """The answer is JSON but not of the API's shape."""

    @classmethod
    def from_validation(cls, error: ValidationError) -> MalformedReplyError:
        """The first problem pydantic found, e.g. "choices: Field required"."""
        issue = error.errors()[0]
        where = ".".join(str(part) for part in issue["loc"]) or "(body)"
        return cls(f"{where}: {issue['msg']}")


class LLMRunner(ABC):
    """Attempts via a model API: prompt, call with retries, parse, judge, price."""

    name: str
    api: str  # How messages name the API, e.g. "Anthropic API".

    def __init__(self, config: LLMConfig, client: httpx.AsyncClient | None = None) -> None:
        """`client`, if given, is shared and stays open: its owner closes it."""
        self.check(config)
        self._config = config
        self._base_url = config.base_url.rstrip("/")
        self._owns_client = client is None
        self._client = client or instrument_http(httpx.AsyncClient(timeout=config.timeout_seconds))

    @classmethod
    def check(cls, config: LLMConfig) -> None:
        """RunnerConfigError if this runner cannot work with the config."""
        key = config.api_key.get_secret_value()
        if not key:
            raise RunnerConfigError(f"runner {cls.name!r}: the API key is empty")
        # A stray newline from a key file would otherwise surface, key and all,
        # in an HTTP library error about an invalid header value.
        if not set(key) <= _HEADER_SAFE:
            raise RunnerConfigError(
                f"runner {cls.name!r}: the API key holds whitespace or non-ASCII characters"
            )
        url = urlsplit(config.base_url)
        if url.scheme not in ("http", "https") or not url.netloc:
            raise RunnerConfigError(
                f"runner {cls.name!r}: base URL {config.base_url!r} is not an http(s) URL"
            )
        missing = [tier for tier in Tier if tier not in config.models]
        if missing:
            raise RunnerConfigError(
                f"runner {cls.name!r}: no model for tier(s) {', '.join(missing)}"
            )
        for tier, model in config.models.items():
            try:
                config.prices.price(model)  # Unpriced models fail here, not as a silent zero.
            except RunnerConfigError as error:
                raise RunnerConfigError(f"runner {cls.name!r}, tier {tier}: {error}") from None

    async def aclose(self) -> None:
        """Closes the HTTP client if this runner owns it; safe to call more than once."""
        if self._owns_client:
            await self._client.aclose()

    async def attempt(self, agent: PlannedAgent, tier: Tier, number: int) -> AttemptOutcome:
        model = self._config.models[tier]
        try:
            return await self._attempt(agent, tier, model)
        except Exception as error:
            # The engine records str(error); this is the last place to scrub the key.
            return _failed(model, self._scrub(f"{type(error).__name__}: {error}"))

    async def _attempt(self, agent: PlannedAgent, tier: Tier, model: str) -> AttemptOutcome:
        key = self._config.api_key.get_secret_value()
        post = JsonPost(
            api=self.api,
            url=self._endpoint(self._base_url),
            headers=self._headers(key),
            body=self._body(model, build_prompt(agent, tier)),
            secret=key,
        )
        try:
            payload = await post_json(
                self._client, post, self._config.timeout_seconds, self._config.retry
            )
            reply = self._read(payload)
        except LLMCallError as error:
            return _failed(model, str(error))
        except MalformedReplyError as error:
            return _failed(model, self._scrub(f"{self.api} answer is malformed: {error}"))
        if reply.usage is None:
            return _failed(
                reply.model or model,
                f"{self.api} answer carries no token usage, so its cost cannot be accounted",
            )
        return self._judged(agent, model, reply, reply.usage)

    def _judged(
        self, agent: PlannedAgent, model: str, reply: Reply, usage: Usage
    ) -> AttemptOutcome:
        # Priced by the configured model: the answer may name a dated snapshot of it.
        cost = self._config.prices.cost(model, usage.input_tokens, usage.output_tokens)
        report = parse_report(reply.text)
        if isinstance(report, ParseFailure):
            cut = " (the output hit the token limit)" if reply.truncated else ""
            criteria: dict[str, bool] = {}  # Nothing was judged.
            error = f"unusable result: {report.reason}{cut}"
            output = reply.text[:_OUTPUT_EXCERPT_CHARS]
        else:
            verdict = judge(report, agent.success_criteria)
            criteria, error, output = verdict.criteria, verdict.error, report.summary
        return AttemptOutcome(
            model=reply.model or model,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cost_usd=cost,
            criteria=criteria,
            output=self._scrub(output),
            error=self._scrub(error),
        )

    def _scrub(self, text: str) -> str:
        return scrub(text, self._config.api_key.get_secret_value())

    @abstractmethod
    def _endpoint(self, base_url: str) -> str:
        """The URL to POST to, from the base URL without a trailing slash."""

    @abstractmethod
    def _headers(self, api_key: str) -> dict[str, str]:
        """The request headers, authentication included."""

    @abstractmethod
    def _body(self, model: str, prompt: Prompt) -> dict[str, Any]:
        """The JSON request body."""

    @abstractmethod
    def _read(self, payload: object) -> Reply:
        """Text, usage and model out of the decoded answer; raises MalformedReplyError."""


def _failed(model: str, error: str) -> AttemptOutcome:
    return AttemptOutcome(
        model=model,
        input_tokens=0,
        output_tokens=0,
        cost_usd=0.0,
        criteria={},
        output="",
        error=error,
    )
