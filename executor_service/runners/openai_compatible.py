"""The OpenAI-compatible runner: Chat Completions (POST {base}/chat/completions).

Any server speaking that API works: OpenAI itself, or a local or hosted
compatible server at another base URL.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, ValidationError

from executor_service.runners.llm import (
    MAX_OUTPUT_TOKENS,
    LLMRunner,
    MalformedReplyError,
    Reply,
    Usage,
)
from executor_service.runners.prompt import Prompt


class _Usage(BaseModel):
    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)


class _Message(BaseModel):
    content: str | None = None
    refusal: str | None = None


class _Choice(BaseModel):
    message: _Message
    finish_reason: str | None = None


class _Completion(BaseModel):
    model: str = ""
    choices: list[_Choice] = Field(min_length=1)
    usage: _Usage | None = None


class OpenAICompatibleRunner(LLMRunner):
    """Attempts via an OpenAI-compatible Chat Completions API."""

    name = "openai"
    api = "OpenAI-compatible API"

    def _endpoint(self, base_url: str) -> str:
        return f"{base_url}/chat/completions"

    def _headers(self, api_key: str) -> dict[str, str]:
        return {"authorization": f"Bearer {api_key}"}

    def _body(self, model: str, prompt: Prompt) -> dict[str, Any]:
        # max_completion_tokens, not the deprecated max_tokens: OpenAI's reasoning
        # models (gpt-5, o3) reject max_tokens.
        return {
            "model": model,
            "max_completion_tokens": MAX_OUTPUT_TOKENS,
            "messages": [
                {"role": "system", "content": prompt.system},
                {"role": "user", "content": prompt.user},
            ],
        }

    def _read(self, payload: object) -> Reply:
        try:
            completion = _Completion.model_validate(payload)
        except ValidationError as error:
            raise MalformedReplyError.from_validation(error) from None
        choice = completion.choices[0]
        usage = completion.usage
        text = choice.message.content
        if text is None and choice.message.refusal:
            text = f"(refused) {choice.message.refusal}"
        return Reply(
            text=text or "",
            usage=Usage(usage.prompt_tokens, usage.completion_tokens) if usage else None,
            model=completion.model,
            truncated=choice.finish_reason == "length",
        )
